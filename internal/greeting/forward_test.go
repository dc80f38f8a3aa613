package greeting_test

import (
	"testing"

	"github.com/mpenc/mpenc/internal/greeting"
)

// Forward secrecy across a fresh START: take a member's full state after
// the START (its private CLIQUES contributions) and every intermediate key
// the traffic carried before it; no group key from before the START comes
// out, while the same computation with the state from before the START
// recovers them all (which is what a memory image taken then gives). The
// replaced states' contributions are zeroed.
func TestStartBoundsWhatAMemoryImageReveals(t *testing.T) {
	ids := []string{memberID(0), memberID(1), memberID(2)}
	r := newRoom(t, 91, ids...)
	r.mustOp(ids[0], ids) // START
	type past struct {
		groupKey [32]byte
		intKey   [32]byte // member 1's, as the downflow carried it
		n        int      // how many contributions member 1 had then
	}
	var history []past
	record := func() {
		s := r.states[ids[1]]
		history = append(history, past{s.GroupKey, s.IntKeys[s.Position(ids[1])], s.ContributionCount()})
	}
	record()
	for i := range 3 { // three refreshes, by member 1 (its list grows) and others
		r.mustOp(ids[i%3], ids)
		record()
	}
	before := r.states[ids[1]]
	for k, h := range history {
		gk, err := greeting.RecomputeGroupKey(before, h.n, h.intKey)
		if err != nil || gk != h.groupKey {
			t.Fatalf("sanity: the state before the START does not recover group key %d (%v)", k, err)
		}
	}
	// The fresh START, proposed by member 0 from no state.
	r.states[ids[0]] = nil
	r.mustOp(ids[0], ids)
	after := r.states[ids[1]]
	if after.ContributionCount() != 1 {
		t.Fatalf("after the START member 1 holds %d contributions, want 1", after.ContributionCount())
	}
	for k, h := range history {
		for n := 1; n <= after.ContributionCount(); n++ {
			if gk, err := greeting.RecomputeGroupKey(after, n, h.intKey); err == nil && gk == h.groupKey {
				t.Errorf("group key %d (before the START) recomputed from the state after it", k)
			}
		}
	}
	before.Wipe(after)
	for i, c := range before.UnsafeContributions() {
		if c != ([32]byte{}) {
			t.Errorf("contribution %d of the replaced state not zeroed", i)
		}
	}
	if before.GroupKey != ([32]byte{}) {
		t.Error("the replaced state's group key not zeroed")
	}
}
