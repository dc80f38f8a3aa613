package session_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/greeter"
	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/internal/sim"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/session"
)

// Scenario numbers are those of docs/SESSION.md, "Scenario tests"; rule
// codes (LOI, EAL, IAL, …) are defined in its "Channel rules", defect
// numbers (D15, …) in "Beyond the reference".

// three forms {A,B,C} with A the founder; auto sets AutoInclude for all.
func three(t *testing.T, seed uint64, auto bool, extra ...string) *sim.World {
	w := world(t, seed, hop)
	for _, id := range append([]string{"A", "B", "C"}, extra...) {
		w.Add(id, func(c *session.Config) { c.AutoInclude = auto })
	}
	join(t, w, "A")
	run(t, w, time.Second)
	join(t, w, "B")
	join(t, w, "C")
	run(t, w, time.Second)
	if !auto {
		opOf(t, w, "A", include("B", "C"))
	}
	run(t, w, 15*time.Second)
	sameSession(t, w, "A", "B", "C")
	return w
}

func kicks(w *sim.World, into *[]string) {
	prev := w.Intercept
	w.Intercept = func(id string, a session.Action) []session.Action {
		if a.Kind == session.ActKick {
			*into = append(*into, id+">"+strings.Join(a.Members, ","))
		}
		if prev != nil {
			return prev(id, a)
		}
		return []session.Action{a}
	}
}

// Scenario 13: a member being excluded leaves mid-operation: no LOI, the
// exclusion completes, nothing left to do.
func TestScenario13LeaverBeingExcluded(t *testing.T) {
	w := three(t, 13, false)
	proposed := len(notices(w.Members["A"], session.OpProposed)) + len(notices(w.Members["B"], session.OpProposed))
	release := holdFirst(w, "A", isGreet(wire.GreetExcludeAuxParticipantConfirmDown))
	op := opOf(t, w, "B", exclude("C"))
	run(t, w, time.Second)
	w.Crash("C")
	run(t, w, time.Second)
	release()
	var k []string
	kicks(w, &k)
	run(t, w, 2*time.Minute)
	if !op.Done() || op.Err() != nil {
		t.Fatalf("B's exclude: %v", op)
	}
	sameSession(t, w, "A", "B")
	if len(k) > 0 {
		t.Errorf("kicks: %v", k)
	}
	if n := len(notices(w.Members["A"], session.OpProposed)) + len(notices(w.Members["B"], session.OpProposed)) - proposed; n != 1 {
		t.Errorf("%d proposals, want only B's", n)
	}
}

// Scenario 14: EAL: a leaver re-enters before its exclusion completes: it
// is kicked at once, excluded, re-enters later and is included again.
func TestScenario14EALRejoin(t *testing.T) {
	w := three(t, 14, true)
	// Hold every exclusion proposal until C is back in the room.
	var held []session.Action
	var heldBy []string
	w.Intercept = func(id string, a session.Action) []session.Action {
		if a.Kind == session.ActSend && isGreet(wire.GreetExcludeAuxInitiatorDown)(a.Wire) && len(held) < 2 {
			held, heldBy = append(held, a), append(heldBy, id)
			return nil
		}
		return []session.Action{a}
	}
	w.Crash("C")
	run(t, w, time.Second)
	var k []string
	kicks(w, &k)
	join(t, w, "C")
	run(t, w, 500*time.Millisecond)
	if len(k) == 0 {
		t.Fatal("C was not kicked on re-entry (EAL)")
	}
	for i, a := range held {
		w.Act(heldBy[i], a)
	}
	run(t, w, 3*time.Minute)
	sameSession(t, w, "A", "B", "C")
}

// Scenario 15: IAL: an initial packet including someone being removed is
// accepted; the others kick it, and the operation fails by LOI.
func TestScenario15IAL(t *testing.T) {
	w := three(t, 15, false)
	// A excludes C; hold the FIN traffic long enough by running briefly.
	op := opOf(t, w, "A", exclude("C"))
	run(t, w, 2*time.Second)
	if !op.Done() || op.Err() != nil {
		t.Fatalf("exclude: %v", op)
	}
	if !slices.Contains(w.Hub.Members(), "C") {
		t.Fatal("C already gone")
	}
	// B, non-conforming, proposes to include C back at once, with its own
	// greeter and state, bypassing its session's checks.
	b := w.Members["B"]
	gr := &greeting.Greeter{Self: "B", Identity: b.Key, Directory: directoryOf(w), Rand: nil}
	so := session.ServerOrderOf(b.Core)
	prop, err := gr.Propose(session.GroupStateOf(b.Core), []string{"A", "B", "C"}, &wire.Metadata{PrevPF: so.PrevPF(), ChainHash: so.PrevCH()})
	if err != nil {
		t.Fatal(err)
	}
	var k []string
	kicks(w, &k)
	w.Act("B", session.Action{Kind: session.ActSend, Wire: prop.Wire})
	run(t, w, time.Minute)
	if !slices.ContainsFunc(k, func(s string) bool { return strings.HasSuffix(s, ">C") }) {
		t.Fatalf("nobody kicked C: %v", k)
	}
	if n := notices(w.Members["A"], session.OpFailed); len(n) == 0 {
		t.Fatal("the inclusion did not fail at A")
	}
	sameSession(t, w, "A", "B")
}

func directoryOf(w *sim.World) greeter.Directory {
	return greeter.DirectoryFunc(func(m string) (crypto.PublicKey, error) {
		mm, ok := w.Members[m]
		if !ok {
			return crypto.PublicKey{}, errors.New("unknown")
		}
		return mm.Key.Public(), nil
	})
}

// Scenario 16: quick re-include: include someone just excluded: it is
// kicked first; once it is back, the inclusion works.
func TestScenario16QuickReinclude(t *testing.T) {
	w := three(t, 16, false)
	opOf(t, w, "A", exclude("B"))
	run(t, w, 2*time.Second)
	var err error
	w.Do("A", func(c *session.Core, now time.Time) { _, err = c.Include([]string{"B"}, now) })
	if !errors.Is(err, session.ErrBusy) {
		t.Fatalf("include right after exclude: %v", err)
	}
	run(t, w, time.Second)
	if slices.Contains(w.Hub.Members(), "B") {
		t.Fatal("B was not kicked")
	}
	join(t, w, "B") // B comes back (invited)
	run(t, w, time.Second)
	op := opOf(t, w, "A", include("B"))
	run(t, w, 15*time.Second)
	if !op.Done() || op.Err() != nil {
		t.Fatalf("re-include: %v", op)
	}
	sameSession(t, w, "A", "B", "C")
}

// Scenario 17: part: a double FIN; the others exclude the leaver, which
// leaves (or is kicked); its part succeeds.
func TestScenario17Part(t *testing.T) {
	w := three(t, 17, false)
	op := opOf(t, w, "C", part)
	run(t, w, 3*time.Minute)
	if !op.Done() || op.Err() != nil {
		t.Fatalf("C's part: %v", op)
	}
	sameSession(t, w, "A", "B")
	mc := notices(w.Members["C"], session.Membership)
	last := mc[len(mc)-1]
	if !slices.Equal(last.Remain, []string{"C"}) || !slices.Equal(last.Exclude, []string{"A", "B"}) {
		t.Fatalf("C's last membership %v", last)
	}
	if slices.Contains(w.Hub.Members(), "C") {
		t.Fatal("C still in the room")
	}
	if s := w.Members["C"].Core.State(); s != session.StateParted {
		t.Fatalf("C is %v", s)
	}
	noWarnings(t, w)
}

// Scenario 18: the excluded member stays in its old subsession until
// kicked; its greeting ends "ignored", not as an error.
func TestScenario18ExcludedWaitsForKick(t *testing.T) {
	w := three(t, 18, false)
	op := opOf(t, w, "A", exclude("C"))
	run(t, w, 2*time.Second)
	if !op.Done() || op.Err() != nil {
		t.Fatal(op)
	}
	c := w.Members["C"]
	if !session.InSubsession(c.Core) || c.Core.State() != session.StateParting {
		t.Fatalf("C: %s %v", session.LettersOf(c.Core), c.Core.State())
	}
	run(t, w, 3*time.Minute)
	if slices.Contains(w.Hub.Members(), "C") {
		t.Fatal("C was never kicked")
	}
	for _, n := range notices(c, session.OpFailed) {
		t.Errorf("C recorded a failure: %v", n)
	}
	if n := notices(c, session.OpSucceeded); len(n) == 0 {
		t.Error("C's view of its exclusion is not 'ignored, assumed to succeed'")
	}
	noWarnings(t, w)
}

// Scenario 19: exclude to solo: one packet; the survivor kicks the other
// after its previous subsession's fin, then leaves; not after 16·BC.
func TestScenario19ExcludeToSolo(t *testing.T) {
	w := world(t, 19, hop, "A", "B")
	join(t, w, "A")
	run(t, w, time.Second)
	join(t, w, "B")
	run(t, w, time.Second)
	opOf(t, w, "A", include("B"))
	run(t, w, 15*time.Second)
	before := chainLen(w, "B")
	start := w.Now()
	opOf(t, w, "B", exclude("A"))
	var gone time.Time
	for w.Now().Before(start.Add(3 * time.Minute)) {
		run(t, w, 100*time.Millisecond)
		if gone.IsZero() && len(w.Hub.Members()) == 0 {
			gone = w.Now()
		}
	}
	if chainLen(w, "B") != 0 || session.LettersOf(w.Members["B"].Core) != "cos_" || session.LettersOf(w.Members["A"].Core) != "cos_" {
		t.Fatalf("%s, chain before %d", letters(w, "A", "B"), before)
	}
	if gone.IsZero() || gone.Sub(start) >= 16*ref.BC {
		t.Fatalf("the room emptied after %v (D15: must not wait 16·BC)", gone.Sub(start))
	}
}

// Scenario 20: stay-if-last: the survivor keeps its chain and includes the
// other when it comes back, naming its last final packet.
func TestScenario20StayIfLast(t *testing.T) {
	w := world(t, 20, hop)
	w.Add("A", nil)
	w.Add("B", func(c *session.Config) { c.StayIfLastMember = true; c.AutoInclude = true })
	join(t, w, "B")
	run(t, w, time.Second)
	join(t, w, "A")
	run(t, w, 15*time.Second)
	sameSession(t, w, "A", "B")
	opOf(t, w, "B", exclude("A"))
	run(t, w, 2*time.Minute)
	if l := session.LettersOf(w.Members["B"].Core); l != "COsJ" {
		t.Fatalf("B is %s", l)
	}
	lastPF := session.ServerOrderOf(w.Members["B"].Core).PrevPF()
	var pi *wire.GreetPacket
	w.Intercept = func(id string, a session.Action) []session.Action {
		if id == "B" && a.Kind == session.ActSend && isGreet(wire.GreetInitInitiatorUp)(a.Wire) {
			p, _ := wire.DecodeWire(a.Wire)
			pi = p.(*wire.GreetPacket)
		}
		return []session.Action{a}
	}
	join(t, w, "A")
	run(t, w, 20*time.Second)
	sameSession(t, w, "A", "B")
	if pi == nil || pi.Metadata.PrevPF != lastPF {
		t.Fatalf("B's START does not name its last pF")
	}
}

// A member that parts while an exclusion of it is under way (it saw the
// initial packet) sends no leave intent and leaves as soon as its previous
// subsessions are done, without waiting for a kick that may never come.
func TestPartWhileBeingExcluded(t *testing.T) {
	w := three(t, 62, false)
	w.Intercept = func(id string, a session.Action) []session.Action {
		if a.Kind == session.ActKick {
			return nil // nobody has kick rights here
		}
		return []session.Action{a}
	}
	opOf(t, w, "A", exclude("C"))
	run(t, w, 300*time.Millisecond) // C has seen the initial packet
	op := opOf(t, w, "C", part)
	run(t, w, 10*time.Second)
	if slices.Contains(w.Hub.Members(), "C") {
		t.Fatalf("C still in the room (%s)", letters(w, "C"))
	}
	if !op.Done() || op.Err() != nil {
		t.Fatalf("C's part: %v", op)
	}
}

// A proposal the server loses (no echo ever comes) is withdrawn after
// echoWait: the user's operation fails with ErrNoEcho instead of blocking
// every later proposal, and the next attempt goes through.
func TestProposalWithoutEchoWithdrawn(t *testing.T) {
	w := three(t, 63, false)
	lost := false
	w.Intercept = func(id string, a session.Action) []session.Action {
		if id == "A" && a.Kind == session.ActSend && !lost && isGreet(wire.GreetExcludeAuxInitiatorDown)(a.Wire) {
			lost = true
			return nil
		}
		return []session.Action{a}
	}
	first := opOf(t, w, "A", exclude("C"))
	run(t, w, time.Minute)
	if !lost || !first.Done() || !errors.Is(first.Err(), session.ErrNoEcho) {
		t.Fatalf("lost %v, first exclude: %v", lost, first)
	}
	second := opOf(t, w, "A", exclude("C"))
	run(t, w, time.Minute)
	if !second.Done() || second.Err() != nil {
		t.Fatalf("second exclude: %v", second)
	}
	sameSession(t, w, "A", "B")
}

// A member comes back under the same participant id while the survivor
// excludes it: the survivor (StayIfLastMember) kicks the re-entered
// device (EAL), and when it enters once more, stays in the room and
// includes it again. It used to count it as someone else in the room, take
// itself for the one left out, and leave, leaving the device alone. A
// new-user trial of stream management met this on ejabberd: a device that
// quit while offline and started again within the server's hold time
// leaves and re-enters in one instant (its new login replaces the held
// session).
func TestStayIfLastMemberReturningDuringExclude(t *testing.T) {
	w := world(t, 20, hop)
	w.Add("A", nil)
	w.Add("B", func(c *session.Config) { c.StayIfLastMember = true; c.AutoInclude = true })
	join(t, w, "B")
	run(t, w, time.Second)
	join(t, w, "A")
	run(t, w, 15*time.Second)
	sameSession(t, w, "A", "B")
	var held []session.Action
	w.Intercept = func(id string, a session.Action) []session.Action {
		if id == "B" && a.Kind == session.ActSend && len(held) == 0 {
			if p, err := wire.DecodeWire(a.Wire); err == nil {
				if _, ok := p.(*wire.GreetPacket); ok {
					held = append(held, a) // B's exclusion of A, until A is back
					return nil
				}
			}
		}
		return []session.Action{a}
	}
	w.Crash("A")
	run(t, w, time.Second)
	if len(held) == 0 {
		t.Fatal("B did not propose to exclude A")
	}
	join(t, w, "A")
	run(t, w, 500*time.Millisecond)
	for _, a := range held {
		w.Act("B", a)
	}
	run(t, w, 3*time.Minute)
	if !slices.Contains(w.Hub.Members(), "B") {
		t.Fatalf("B left the room (%s)", letters(w, "A", "B"))
	}
	sameSession(t, w, "A", "B")
}
