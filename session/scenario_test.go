package session_test

import (
	"slices"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/session"
)

// Scenario 1: solo join.
func TestScenario01SoloJoin(t *testing.T) {
	w := world(t, 1, hop, "A")
	op := join(t, w, "A")
	run(t, w, time.Second)
	if !op.Done() || op.Err() != nil {
		t.Fatalf("join: %v", op)
	}
	a := w.Members["A"].Core
	if session.LettersOf(a) != "COsJ" {
		t.Fatalf("A is %s", session.LettersOf(a))
	}
	ids, hashes := a.Chain()
	if len(ids) != 1 || hashes[0] != wire.SyncChainHash(ids[0]) {
		t.Fatalf("chain %x %x", ids, hashes)
	}
	if st := w.Hub.Stats(); st.Ordered != 0 {
		t.Errorf("solo join sent %d packets", st.Ordered)
	}
	noWarnings(t, w)
}

// Scenario 2: auto-include on join.
func TestScenario02AutoInclude(t *testing.T) {
	w := world(t, 2, hop)
	w.Add("A", auto)
	w.Add("B", nil)
	join(t, w, "A")
	run(t, w, time.Second)
	opB := join(t, w, "B")
	run(t, w, 10*time.Second)
	if !opB.Done() || opB.Err() != nil {
		t.Fatalf("B's join: %v (%s)", opB, letters(w, "A", "B"))
	}
	sameSession(t, w, "A", "B")
	if l := letters(w, "A", "B"); l != "A:COS_ B:COS_" {
		t.Fatalf("states %s", l)
	}
	a, b := w.Members["A"].Core, w.Members["B"].Core
	ia, ha := a.Chain()
	ib, hb := b.Chain()
	if len(ia) != 3 || !slices.Equal(ia, ib) || !slices.Equal(ha, hb) {
		t.Fatalf("chains differ or wrong length: %d %d", len(ia), len(ib))
	}
	mb := notices(w.Members["B"], session.Membership)
	if len(mb) != 1 || !slices.Equal(mb[0].Remain, []string{"B"}) || !slices.Equal(mb[0].Include, []string{"A"}) {
		t.Fatalf("B's membership notices %v", mb)
	}
	// Messages both ways, then quiet: everything fully acked, no warning.
	if err := w.Send("A", "hello B"); err != nil {
		t.Fatal(err)
	}
	run(t, w, time.Second)
	if err := w.Send("B", "hi A"); err != nil {
		t.Fatal(err)
	}
	run(t, w, 2*time.Minute)
	if got := texts(w.Members["A"]); !slices.Equal(got, []string{"A:hello B", "B:hi A"}) {
		t.Errorf("A's log %v", got)
	}
	if got := texts(w.Members["B"]); !slices.Equal(got, []string{"A:hello B", "B:hi A"}) {
		t.Errorf("B's log %v", got)
	}
	if n := len(notices(w.Members["A"], session.FullyAcked)); n < 2 {
		t.Errorf("A saw %d full acks", n)
	}
	noWarnings(t, w)
}
