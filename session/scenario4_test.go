package session_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/session"
)

// Scenario numbers are those of docs/SESSION.md, "Scenario tests"; rule
// codes (EIO, EII, LI, LOI, ES, EAL, …) are defined in its "Channel
// rules", defect numbers (D5, …) in "Beyond the reference".

// Scenario 21: EIO then EII: a newcomer blacklists a parent it saw spent,
// then syncs to a later proposal that includes it.
func TestScenario21EIOThenEII(t *testing.T) {
	w := world(t, 21, hop, "A", "B", "C", "D")
	join(t, w, "A")
	run(t, w, time.Second)
	join(t, w, "B")
	join(t, w, "D")
	run(t, w, time.Second)
	opOf(t, w, "A", include("B", "D"))
	run(t, w, 15*time.Second)
	sameSession(t, w, "A", "B", "D")
	join(t, w, "C")
	run(t, w, time.Second)
	// A proposes to include C, but its packet is held until D's exclusion
	// of B has been echoed: both name the same parent P1.
	release := holdFirst(w, "A", isGreet(wire.GreetIncludeAuxInitiatorUp))
	opA := opOf(t, w, "A", include("C"))
	p1 := session.ServerOrderOf(w.Members["A"].Core).PrevPF()
	opD := opOf(t, w, "D", exclude("B"))
	run(t, w, 200*time.Millisecond)
	release()
	run(t, w, 20*time.Second)
	if !opD.Done() || opD.Err() != nil {
		t.Fatalf("D's exclude: %v", opD)
	}
	if !opA.Done() || !errors.Is(opA.Err(), session.ErrRejected) {
		t.Fatalf("A's include: %v", opA)
	}
	if l := session.LettersOf(w.Members["C"].Core); l != "Cos_" {
		t.Fatalf("C is %s", l)
	}
	_ = p1
	// After the exclusion, A includes C naming P2: C syncs (EII).
	opA2 := opOf(t, w, "A", include("C"))
	p2 := session.ServerOrderOf(w.Members["A"].Core).PrevPF()
	run(t, w, 15*time.Second)
	if !opA2.Done() || opA2.Err() != nil {
		t.Fatalf("A's second include: %v", opA2)
	}
	sameSession(t, w, "A", "C", "D")
	ids, _ := w.Members["C"].Core.Chain()
	if ids[0] != p2 {
		t.Errorf("C synced to %x, want P2 %x", ids[0][:4], p2[:4])
	}
}

// Scenario 22: greeting packets for nobody: an unsynced member gets a
// final-looking confirm, a solo member a proposal from outside: ignored.
func TestScenario22IgnoredGreetings(t *testing.T) {
	w := three(t, 22, false, "E")
	// Record a confirm of a future operation.
	var confirm string
	w.Intercept = func(id string, a session.Action) []session.Action {
		if a.Kind == session.ActSend && confirm == "" && isGreet(wire.GreetExcludeAuxParticipantConfirmDown)(a.Wire) {
			confirm = a.Wire
		}
		return []session.Action{a}
	}
	opOf(t, w, "A", exclude("C"))
	run(t, w, 2*time.Second)
	w.Intercept = nil
	join(t, w, "E") // unsynced newcomer
	run(t, w, time.Second)
	w.Act("B", session.Action{Kind: session.ActSend, Wire: confirm})
	run(t, w, time.Second)
	if ids, _ := w.Members["E"].Core.Chain(); len(ids) != 0 {
		t.Fatalf("E's chain %d", len(ids))
	}
	// A solo member gets a proposal from outside its group.
	w2 := world(t, 222, hop, "A", "E")
	join(t, w2, "A")
	run(t, w2, time.Second)
	w2.Hub.Enter("E")
	run(t, w2, time.Second)
	e := w2.Members["E"]
	gr := &greeting.Greeter{Self: "E", Identity: e.Key, Directory: directoryOf(w2)}
	prop, err := gr.Propose(nil, []string{"E", "A"}, &wire.Metadata{PrevPF: [32]byte{9}})
	if err != nil {
		t.Fatal(err)
	}
	before := chainLen(w2, "A")
	w2.Act("E", session.Action{Kind: session.ActSend, Wire: prop.Wire})
	run(t, w2, 5*time.Second)
	if chainLen(w2, "A") != before || session.LettersOf(w2.Members["A"].Core) != "COsJ" {
		t.Fatalf("A: chain %d→%d, %s", before, chainLen(w2, "A"), session.LettersOf(w2.Members["A"].Core))
	}
}

// Scenario 23: a forged initial packet in A's name: A ignores it as a
// proposal, B and C refuse it on the signature; the parent stays free.
func TestScenario23ForgedOwnPI(t *testing.T) {
	w := three(t, 23, false)
	forger, _ := crypto.GenerateSigningKey(nil)
	so := session.ServerOrderOf(w.Members["A"].Core)
	p := &wire.GreetPacket{Type: wire.GreetExcludeAuxInitiatorDown, Source: "A", Members: []string{"A", "B"},
		IntKeys: make([]wire.IntKey, 2), Nonces: make([][32]byte, 2), PubKeys: make([]crypto.PublicKey, 2),
		Metadata: &wire.Metadata{PrevPF: so.PrevPF(), ChainHash: so.PrevCH()}, SessionSignature: &crypto.Signature{}}
	p.IntKeys[0][0], p.IntKeys[1][0] = 9, 9
	raw, err := p.Sign(forger)
	if err != nil {
		t.Fatal(err)
	}
	lens := map[string]int{}
	for _, id := range []string{"A", "B", "C"} {
		lens[id] = chainLen(w, id)
	}
	w.Act("A", session.Action{Kind: session.ActSend, Wire: wire.Armour(raw)})
	run(t, w, 2*time.Second)
	for _, id := range []string{"A", "B", "C"} {
		if chainLen(w, id) != lens[id] {
			t.Errorf("%s: chain %d→%d", id, lens[id], chainLen(w, id))
		}
	}
	for _, id := range []string{"B", "C"} {
		if n := notices(w.Members[id], session.SecurityWarning); len(n) != 1 {
			t.Errorf("%s: %d security warnings", id, len(n))
		}
	}
	// The parent is still free: a real operation on it succeeds.
	op := opOf(t, w, "B", func(c *session.Core, now time.Time) (*session.Op, error) { return c.Refresh(now) })
	run(t, w, 5*time.Second)
	if !op.Done() || op.Err() != nil {
		t.Fatalf("refresh after the forgery: %v", op)
	}
}

// Scenario 24: a refresh from a peer: one chain entry "3", the same sid,
// a new group key.
func TestScenario24Refresh(t *testing.T) {
	w := three(t, 24, false)
	sid, _ := w.Members["A"].Core.SessionID()
	old := session.GroupStateOf(w.Members["A"].Core)
	gk := old.GroupKey
	n := chainLen(w, "A")
	opOf(t, w, "C", func(c *session.Core, now time.Time) (*session.Op, error) { return c.Refresh(now) })
	run(t, w, 5*time.Second)
	sameSession(t, w, "A", "B", "C")
	sid2, _ := w.Members["A"].Core.SessionID()
	if sid2 != sid || session.GroupStateOf(w.Members["A"].Core).GroupKey == gk || chainLen(w, "A") != n+1 {
		t.Fatalf("sid kept %v, key changed %v, chain %d→%d", sid2 == sid, session.GroupStateOf(w.Members["A"].Core).GroupKey != gk, n, chainLen(w, "A"))
	}
	if old.GroupKey != ([32]byte{}) {
		t.Error("the replaced State still holds the old group key")
	}
	ids, hashes := w.Members["A"].Core.Chain()
	if want := wire.ChainHash(hashes[n-1][:], ids[n], wire.PTypeBoth); hashes[n] != want {
		t.Error("the refresh's chain entry is not of ptype 3")
	}
	// Messages flow under the new key.
	if err := w.Send("A", "after refresh"); err != nil {
		t.Fatal(err)
	}
	run(t, w, time.Minute)
	for _, id := range []string{"B", "C"} {
		if got := texts(w.Members[id]); !slices.Contains(got, "A:after refresh") {
			t.Errorf("%s: %v", id, got)
		}
	}
	noWarnings(t, w)
}

// Scenario 25: the final packet of a START is the last confirm echoed,
// at all three members.
func TestScenario25FinalClassification(t *testing.T) {
	w := world(t, 25, hop, "A", "B", "C")
	join(t, w, "A")
	run(t, w, time.Second)
	join(t, w, "B")
	join(t, w, "C")
	run(t, w, time.Second)
	var confirms []string
	w.Intercept = func(id string, a session.Action) []session.Action {
		if a.Kind == session.ActSend && isGreet(wire.GreetInitParticipantConfirmDown)(a.Wire) {
			confirms = append(confirms, id+"|"+a.Wire)
		}
		return []session.Action{a}
	}
	opOf(t, w, "A", include("B", "C"))
	run(t, w, 15*time.Second)
	sameSession(t, w, "A", "B", "C")
	if len(confirms) != 2 {
		t.Fatalf("%d confirms", len(confirms))
	}
	// The hub orders them; compute both ids and find which is the pF.
	ids, _ := w.Members["A"].Core.Chain()
	pf := ids[len(ids)-1]
	found := false
	for _, c := range confirms {
		sender, wr := c[:1], c[2:]
		if wire.PacketID(wr, sender, []string{"A", "B", "C"}) == pf {
			found = true
		}
	}
	if !found {
		t.Fatal("the final packet is not a confirm")
	}
	for _, id := range []string{"B", "C"} {
		o, _ := w.Members[id].Core.Chain()
		if !slices.Equal(o, ids) {
			t.Errorf("%s's chain differs", id)
		}
	}
}

// Scenario 26: we drop during our own operation: LI at us, LOI at the
// others, then they exclude us.
func TestScenario26OwnLeaveMidOp(t *testing.T) {
	w := three(t, 26, false, "D")
	join(t, w, "D")
	run(t, w, time.Second)
	release := holdFirst(w, "D", isGreet(wire.GreetIncludeAuxParticipantDown))
	op := opOf(t, w, "A", include("D"))
	run(t, w, time.Second)
	w.Crash("A")
	run(t, w, time.Second)
	release()
	if !op.Done() || !errors.Is(op.Err(), session.ErrAborted) {
		t.Fatalf("A's include: %v", op)
	}
	if l := session.LettersOf(w.Members["A"].Core); l != "cos_" {
		t.Fatalf("A is %s", l)
	}
	run(t, w, time.Minute)
	sameSession(t, w, "B", "C")
}

// Scenario 27: an excluded member misreads a later failure: it keeps its
// old subsession and is kicked in the end.
func TestScenario27ExcludedMisreads(t *testing.T) {
	w := three(t, 27, false)
	opOf(t, w, "A", exclude("C"))
	run(t, w, 200*time.Millisecond)
	w.Crash("B")
	run(t, w, 3*time.Minute)
	if slices.Contains(w.Hub.Members(), "C") || slices.Contains(w.Hub.Members(), "B") {
		t.Fatalf("room: %v", w.Hub.Members())
	}
	// C took B's leave for a failure of the operation (it could not see its
	// final packet), kept its old subsession, and was kicked by A.
	c := w.Members["C"]
	if n := notices(c, session.OpFailed); len(n) == 0 {
		t.Error("C recorded no failure")
	}
	for _, n := range notices(c, session.SecurityWarning) {
		t.Errorf("C: %v", n)
	}
}

// Scenario 28: a LATEST_PM naming a message we never accepted: ERROR with
// a "dodgy transport" warning, no silent continuation.
func TestScenario28LatestPMMismatch(t *testing.T) {
	w := three(t, 28, false)
	a := w.Members["A"]
	gr := &greeting.Greeter{Self: "A", Identity: a.Key, Directory: directoryOf(w)}
	so := session.ServerOrderOf(a.Core)
	prop, err := gr.Propose(session.GroupStateOf(a.Core), []string{"A", "B"}, &wire.Metadata{PrevPF: so.PrevPF(), ChainHash: so.PrevCH(),
		LatestPM: []wire.MessageID{{1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	w.Act("A", session.Action{Kind: session.ActSend, Wire: prop.Wire})
	run(t, w, 10*time.Second)
	b := w.Members["B"]
	if b.Core.State() != session.StateError {
		t.Fatalf("B is %v", b.Core.State())
	}
	found := false
	for _, n := range notices(b, session.SecurityWarning) {
		if n.Terminal && n.Err != nil && strings.Contains(n.Err.Error(), "dodgy transport") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no terminal dodgy-transport warning at B: %v", notices(b, session.SecurityWarning))
	}
}

// Scenario 29: joining twice succeeds; a second operation while one is
// pending gets ErrOperationInProgress.
func TestScenario29DoubleJoinDoubleOp(t *testing.T) {
	w := world(t, 29, hop, "A", "B", "C")
	join(t, w, "A")
	run(t, w, time.Second)
	op := join(t, w, "A")
	if !op.Done() || op.Err() != nil {
		t.Fatalf("second join: %v", op)
	}
	join(t, w, "B")
	join(t, w, "C")
	run(t, w, time.Second)
	first := opOf(t, w, "A", include("B"))
	var again *session.Op
	var err error
	w.Do("A", func(c *session.Core, now time.Time) { again, err = c.Include([]string{"B"}, now) })
	if err != nil || again != first {
		t.Fatalf("the same include again: %v %v", again, err)
	}
	w.Do("A", func(c *session.Core, now time.Time) { _, err = c.Include([]string{"C"}, now) })
	if !errors.Is(err, session.ErrOperationInProgress) {
		t.Fatalf("another include: %v", err)
	}
	run(t, w, 15*time.Second)
	sameSession(t, w, "A", "B")
}

// Scenario 30: a member re-enters right after its exclusion's final packet:
// handled against the rotated state (ES, not EAL).
func TestScenario30EnterDuringPostProcessing(t *testing.T) {
	w := three(t, 30, true)
	w.Crash("A")
	var pfSeen bool
	w.Intercept = func(id string, a session.Action) []session.Action {
		if a.Kind == session.ActSend && isGreet(wire.GreetExcludeAuxParticipantConfirmDown)(a.Wire) && !pfSeen {
			pfSeen = true
			w.Later(w.Now().Add(30*time.Millisecond), func() { join(t, w, "A") })
		}
		return []session.Action{a}
	}
	run(t, w, 3*time.Minute)
	if !pfSeen {
		t.Fatal("no exclusion")
	}
	// A was included again by the auto-including members.
	sameSession(t, w, "A", "B", "C")
}

// D5: a member that stops answering but stays in the room no longer blocks
// the session: the operation is aborted for everyone at one position, and
// the silent member is excluded next.
func TestAbortStalledOperation(t *testing.T) {
	w := three(t, 31, false, "D")
	w.Freeze("C")
	op := opOf(t, w, "A", exclude("B"))
	run(t, w, 10*time.Second)
	if op.Done() {
		t.Fatalf("the exclusion completed without C: %v", op)
	}
	// (2 + 3)·(BC + 1 s) = 30 s after the proposal, the first of the
	// remaining members sends the abort.
	run(t, w, 40*time.Second)
	if !op.Done() || !errors.Is(op.Err(), session.ErrAborted) {
		t.Fatalf("A's exclusion: %v", op)
	}
	ia, _ := w.Members["A"].Core.Chain()
	ib, _ := w.Members["B"].Core.Chain()
	if !slices.Equal(ia, ib) {
		t.Fatal("A and B disagree on the chain after the abort")
	}
	// C did not take its turn: excluded next, then kicked.
	run(t, w, 2*time.Minute)
	sameSession(t, w, "A", "B")
	if slices.Contains(w.Hub.Members(), "C") {
		t.Fatal("C is still in the room")
	}
}
