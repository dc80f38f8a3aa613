package session_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/internal/sim"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/session"
)

// splitWarnings returns a member's security warnings that report a server
// split.
func splitWarnings(m *sim.Member) []session.Notice {
	var out []session.Notice
	for _, n := range m.Notices {
		if n.Kind == session.SecurityWarning && errors.Is(n.Err, session.ErrServerSplit) {
			out = append(out, n)
		}
	}
	return out
}

// showInOrder plays a lying server: it hands packets straight to one
// member, in the order given, as if the room had carried them.
func showInOrder(w *sim.World, to string, pkts ...session.Action) {
	for _, p := range pkts {
		ev := channel.Event{Kind: channel.EventPacket, Sender: p.Members[0], Body: p.Wire, Members: w.Hub.Members()}
		w.Do(to, func(c *session.Core, now time.Time) { c.HandleEvent(ev, now) })
	}
}

// holdInitials keeps back the first initial packet of type t that each of
// the given members sends, recording its sender in Members[0].
func holdInitials(w *sim.World, t wire.GreetType, from ...string) *[]session.Action {
	held := &[]session.Action{}
	taken := map[string]bool{}
	prev := w.Intercept
	w.Intercept = func(id string, a session.Action) []session.Action {
		if a.Kind == session.ActSend && !taken[id] && isGreet(t)(a.Wire) {
			for _, f := range from {
				if f == id {
					taken[id] = true
					*held = append(*held, session.Action{Kind: session.ActSend, Wire: a.Wire, Members: []string{id}})
					return nil
				}
			}
		}
		if prev != nil {
			return prev(id, a)
		}
		return []session.Action{a}
	}
	return held
}

// heldFromAAndB returns the two proposals holdInitials kept back from A and
// B, A's first.
func heldFromAAndB(t *testing.T, held *[]session.Action) (pa, pb session.Action) {
	t.Helper()
	if len(*held) != 2 {
		t.Fatalf("held %d proposals, want 2", len(*held))
	}
	pa, pb = (*held)[0], (*held)[1]
	if pa.Members[0] != "A" {
		pa, pb = pb, pa
	}
	return pa, pb
}

// A server that shows two concurrent exclusions in opposite orders to their
// authors: each refuses the other's, the one the rest of the room follows
// stalls on the member that refused it, and B's own stalls on everyone
// else; both are aborted, and each abort reaches members that refused the
// operation, which name the split.
func TestSplitAbortOfRefusedOperation(t *testing.T) {
	w := world(t, 41, hop)
	addAll(w, auto, "A", "B", "C", "D")
	formSession(t, w, "A", "B", "C", "D")
	held := holdInitials(w, wire.GreetExcludeAuxInitiatorDown, "A", "B")
	opOf(t, w, "A", exclude("D"))
	opOf(t, w, "B", exclude("C"))
	pa, pb := heldFromAAndB(t, held)
	showInOrder(w, "A", pa, pb)
	showInOrder(w, "B", pb, pa)
	showInOrder(w, "C", pa, pb)
	showInOrder(w, "D", pa, pb)
	run(t, w, 3*time.Minute)
	// Each author aborts the operation it alone (B) or the rest (A) ran;
	// every member refused one of the two, so every member sees an abort
	// of an operation it refused.
	for _, id := range []string{"A", "B", "C", "D"} {
		if len(splitWarnings(w.Members[id])) == 0 {
			t.Errorf("%s was not warned of the split; its warnings: %v", id, w.Members[id].Warnings())
		}
	}
}

// The same lie with two refreshes (one-packet operations): A and B each
// complete their own, with different keys and chains. Neither can read the
// other's chain check, and neither confirms the other's order in time: both
// are warned.
func TestSplitConcurrentRefreshes(t *testing.T) {
	w := world(t, 42, hop)
	addAll(w, auto, "A", "B", "C")
	formSession(t, w, "A", "B", "C")
	held := holdInitials(w, wire.GreetRefreshAuxInitiatorDown, "A", "B")
	opOf(t, w, "A", func(c *session.Core, now time.Time) (*session.Op, error) { return c.Refresh(now) })
	opOf(t, w, "B", func(c *session.Core, now time.Time) (*session.Op, error) { return c.Refresh(now) })
	pa, pb := heldFromAAndB(t, held)
	showInOrder(w, "A", pa, pb)
	showInOrder(w, "B", pb, pa)
	showInOrder(w, "C", pa, pb)
	run(t, w, 2*time.Minute)
	for _, id := range []string{"A", "B"} {
		if len(w.Members[id].Warnings()) == 0 {
			t.Errorf("%s was not warned after the split", id)
		}
	}
}

// The honest counterpart: the same two concurrent exclusions in one order
// for everyone raise no warning at all.
func TestSplitHonestConcurrentExclusions(t *testing.T) {
	w := world(t, 43, hop)
	addAll(w, auto, "A", "B", "C", "D")
	formSession(t, w, "A", "B", "C", "D")
	held := holdInitials(w, wire.GreetExcludeAuxInitiatorDown, "A", "B")
	opOf(t, w, "A", exclude("D"))
	opOf(t, w, "B", exclude("C"))
	pa, pb := heldFromAAndB(t, held)
	for _, id := range []string{"A", "B", "C", "D"} {
		showInOrder(w, id, pa, pb)
	}
	run(t, w, 3*time.Minute)
	noWarnings(t, w)
}

// A server that shows one refresh with different room lists (so different
// packet ids, hence chain hashes) to different members: the greeting
// completes for everyone with the same key, and the chain check of the new
// subsession shows the split at once.
func TestSplitChainCheck(t *testing.T) {
	w := world(t, 44, hop)
	addAll(w, auto, "A", "B", "C")
	formSession(t, w, "A", "B", "C")
	held := holdInitials(w, wire.GreetRefreshAuxInitiatorDown, "A")
	opOf(t, w, "A", func(c *session.Core, now time.Time) (*session.Op, error) { return c.Refresh(now) })
	if len(*held) != 1 {
		t.Fatalf("held %d proposals, want 1", len(*held))
	}
	p := (*held)[0]
	showInOrder(w, "A", p)
	for _, id := range []string{"B", "C"} {
		ev := channel.Event{Kind: channel.EventPacket, Sender: "A", Body: p.Wire, Members: append(w.Hub.Members(), "Z")}
		w.Do(id, func(c *session.Core, now time.Time) { c.HandleEvent(ev, now) })
	}
	run(t, w, time.Minute)
	for _, id := range []string{"A", "B", "C"} {
		c := w.Members[id].Core
		if !errors.Is(c.Err(), session.ErrServerSplit) || c.State() != session.StateError {
			t.Errorf("%s: state %v, error %v; want the split detected", id, c.State(), c.Err())
		}
	}
}

// heldExclusions forms a session of A to E, has A propose to exclude E and
// B to exclude D at once, and returns both proposals held back, A's first.
func heldExclusions(t *testing.T, w *sim.World) (pa, pb session.Action) {
	t.Helper()
	addAll(w, auto, "A", "B", "C", "D", "E")
	formSession(t, w, "A", "B", "C", "D", "E")
	held := holdInitials(w, wire.GreetExcludeAuxInitiatorDown, "A", "B")
	opOf(t, w, "A", exclude("E"))
	opOf(t, w, "B", exclude("D"))
	return heldFromAAndB(t, held)
}

// A server that shows two concurrent exclusions in different orders and
// hides one from its own author, then lets a member leave so that both
// operations end by the leave, without an abort and without a new
// subsession: A ran B's, everyone else A's. The chains now differ, and
// the next proposal from either side names a position the other side was
// never shown (found by the simulator, seed 1246 of the hostile runs).
func TestSplitHiddenProposalEndedByLeave(t *testing.T) {
	w := world(t, 45, hop)
	pa, pb := heldExclusions(t, w)
	showInOrder(w, "A", pb, pa)
	showInOrder(w, "B", pa) // B never sees its own
	for _, id := range []string{"C", "D", "E"} {
		showInOrder(w, id, pa, pb)
	}
	w.Hub.Leave("C")
	// The proposals that follow (excluding C) show it at once: well before
	// an operation refused by the other side could stall and be aborted.
	run(t, w, 10*time.Second)
	var warned []string
	for _, id := range []string{"A", "B", "D", "E"} {
		if len(splitWarnings(w.Members[id])) > 0 {
			warned = append(warned, id)
		}
	}
	// A is on one side, B, D and E on the other: A must see it, or all of
	// them (the next proposals come from both sides).
	if !slices.Contains(warned, "A") || len(warned) < 2 {
		t.Errorf("warned of the split: %v; want A and the others; their warnings: A %v, B %v",
			warned, w.Members["A"].Warnings(), w.Members["B"].Warnings())
	}
}

// The same lie, A shown its own proposal first and everyone else B's, and
// nobody proposes anything after the leave that ends both operations (the
// server drops every later proposal): no abort, no new subsession, no
// proposal to look at. Only the positions every member states in the
// current subsession once an operation ends without one show the split
// (found by the simulator, seed 4206 of the hostile runs of 8,000).
func TestSplitStatedAfterLeave(t *testing.T) {
	w := world(t, 46, hop)
	pa, pb := heldExclusions(t, w)
	showInOrder(w, "A", pa, pb)
	for _, id := range []string{"B", "C", "D", "E"} {
		showInOrder(w, id, pb, pa)
	}
	dropped := 0
	hold := w.Intercept
	w.Intercept = func(id string, a session.Action) []session.Action {
		if a.Kind == session.ActSend && isGreet(wire.GreetExcludeAuxInitiatorDown)(a.Wire) {
			dropped++
			return nil
		}
		return hold(id, a)
	}
	w.Hub.Leave("C")
	run(t, w, 10*time.Second)
	if dropped == 0 {
		t.Fatal("nobody proposed to exclude C: the scenario no longer tests what it says")
	}
	// A's chain differs from B's, D's and E's: for each of those pairs,
	// one of the two must be warned.
	if len(splitWarnings(w.Members["A"])) == 0 {
		for _, id := range []string{"B", "D", "E"} {
			if len(splitWarnings(w.Members[id])) == 0 {
				t.Errorf("neither A nor %s was warned of the split; their warnings: A %v, %s %v",
					id, w.Members["A"].Warnings(), id, w.Members[id].Warnings())
			}
		}
	}
}

// Its honest counterpart: an operation ended by a leave, every member shown
// the same order; the positions stated afterwards agree, no warning.
func TestStatedPositionsAfterLeaveAgree(t *testing.T) {
	w := world(t, 47, hop)
	addAll(w, auto, "A", "B", "C", "D")
	formSession(t, w, "A", "B", "C", "D")
	held := holdInitials(w, wire.GreetExcludeAuxInitiatorDown, "A")
	opOf(t, w, "A", exclude("D"))
	if len(*held) != 1 {
		t.Fatalf("held %d proposals, want 1", len(*held))
	}
	for _, id := range []string{"A", "B", "C", "D"} {
		showInOrder(w, id, (*held)[0])
	}
	w.Hub.Leave("C")
	run(t, w, 2*time.Minute)
	for _, id := range []string{"A", "B", "D"} { // (C, gone, is told of its gap)
		for _, n := range w.Members[id].Warnings() {
			t.Errorf("%s: unexpected warning %v", id, n)
		}
	}
	// The exclusion of D failed; the one of C that follows completes.
	sameSession(t, w, "A", "B", "D")
	if m := w.Members["A"].Core.Members(); !slices.Equal(m, []string{"A", "B", "D"}) {
		t.Errorf("members after the leave and the next exclusion: %v, want [A B D]", m)
	}
}
