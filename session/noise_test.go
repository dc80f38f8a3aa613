package session_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/subsession"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/session"
)

// An error packet is its sender's claim: it reaches the user as an
// ErrorReport naming the sender, never as our security warning, whatever
// its text says; Signed only when it verifies under the sender's
// ephemeral key. (Before: any occupant's text was shown inside "SECURITY
// WARNING", attributed to whatever SOURCE it named.)
func TestErrorReportIsTheSendersClaim(t *testing.T) {
	w := three(t, 71, false)
	forged := "SECURITY WARNING: your identity key was stolen, run /trust mallory"
	p := &wire.ErrorPacket{Source: "B", Severity: wire.SeverityTerminal, Message: []byte(forged)}
	raw, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	w.Hub.Send("B", wire.Armour(raw)) // unsigned
	run(t, w, time.Second)
	signed := &wire.ErrorPacket{Source: "B", Severity: wire.SeverityWarning, Message: []byte("my disk is full")}
	raw, err = signed.Sign(session.GroupStateOf(w.Members["B"].Core).OwnEphemeralKey())
	if err != nil {
		t.Fatal(err)
	}
	w.Hub.Send("B", wire.Armour(raw))
	run(t, w, time.Second)
	// A SOURCE that is not the sender: not a report at all.
	other := &wire.ErrorPacket{Source: "A", Severity: wire.SeverityInfo, Message: []byte("it is A speaking")}
	raw, err = other.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	w.Hub.Send("B", wire.Armour(raw))
	run(t, w, time.Second)

	a := w.Members["A"]
	reports := notices(a, session.ErrorReport)
	if len(reports) != 2 {
		t.Fatalf("A got %d reports, want 2: %v", len(reports), reports)
	}
	if r := reports[0]; r.Author != "B" || r.Text != forged || r.Signed || r.Severity != "terminal" || r.IsWarning() {
		t.Errorf("unsigned report %+v", r)
	}
	if r := reports[1]; r.Author != "B" || r.Text != "my disk is full" || !r.Signed || r.Severity != "warning" {
		t.Errorf("signed report %+v", r)
	}
	for _, n := range a.Warnings() {
		if n.Err != nil && strings.Contains(n.Err.Error(), "stolen") {
			t.Errorf("the report's text became our warning: %v", n)
		}
	}
	if ws := a.Warnings(); len(ws) != 1 || ws[0].Author != "B" || !strings.Contains(ws[0].Err.Error(), "SOURCE is not its sender") {
		t.Errorf("A's warnings %v, want one about the SOURCE", ws)
	}
}

// A flood of garbage from one occupant gives its first three warnings a
// minute and one warning that counts the rest, not one each. (Before: one
// warning, and a log line, per packet.)
func TestWarningsRateLimitedPerSender(t *testing.T) {
	w := three(t, 72, false)
	for range 100 {
		w.Hub.Send("C", "?mpENC:not base64 at all.")
	}
	w.Hub.Send("B", "?mpENC:garbage too.")
	run(t, w, 2*time.Minute)
	var fromC, fromB []session.Notice
	for _, n := range w.Members["A"].Warnings() {
		switch n.Author {
		case "C":
			fromC = append(fromC, n)
		case "B":
			fromB = append(fromB, n)
		}
	}
	if len(fromB) != 1 {
		t.Errorf("B's one bad packet gave %d warnings", len(fromB))
	}
	if len(fromC) != 4 {
		t.Fatalf("C's 100 bad packets gave %d warnings, want 3 and a count: %v", len(fromC), fromC)
	}
	if sum := fromC[3].Err; sum == nil || !strings.Contains(sum.Error(), "97 more") {
		t.Errorf("the count: %v", sum)
	}
	if errors.Is(fromC[0].Err, session.ErrServerSplit) {
		t.Error("garbage read as a split")
	}
}

// A member flooding packets with the right SIDKEY_HINT and a junk
// signature costs one signature verification per packet (its own key),
// not one per member key of every subsession; a copy of a packet that
// opened nowhere costs none; an occupant outside the session costs none.
// (Before: every member's key of every live and retired subsession.)
func TestForgedDataFloodIsCheap(t *testing.T) {
	w := three(t, 73, false, "D", "E", "F", "G")
	for _, id := range []string{"D", "E", "F", "G"} {
		join(t, w, id)
	}
	run(t, w, time.Second)
	opOf(t, w, "A", include("D", "E", "F", "G"))
	run(t, w, 20*time.Second)
	sameSession(t, w, "A", "B", "C", "D", "E", "F", "G")
	// Two earlier subsessions are now retired: their verifiers are kept.
	hint := session.GroupStateOf(w.Members["C"].Core).SidKeyHint()
	forged := func(i int) string {
		p := &wire.DataPacket{SidkeyHint: hint, Payload: make([]byte, 128)}
		p.IV[0], p.IV[1] = byte(i), byte(i>>8)
		p.Signature[0] = 1
		raw, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return wire.Armour(raw)
	}
	const n = 200
	before := primitive.ReadOpCounts()
	for i := range n {
		w.Hub.Send("C", forged(i))
	}
	run(t, w, time.Second)
	fresh := primitive.ReadOpCounts().Sub(before).Verify
	// Six readers (A, B, D, E, F, G); each tries C's key in its current
	// subsession (and in the previous ones still shutting down that have
	// C, at most two here), plus a few trials of every key a minute.
	if max := int64(6 * (3*n + 3*othersBudget*7)); fresh > max {
		t.Errorf("%d forged packets cost %d verifications, want at most %d", n, fresh, max)
	}
	before = primitive.ReadOpCounts()
	for i := range n {
		w.Hub.Send("C", forged(i)) // the same packets again
	}
	run(t, w, time.Second)
	if again := primitive.ReadOpCounts().Sub(before).Verify; again != 0 {
		t.Errorf("copies of %d packets that opened nowhere cost %d verifications", n, again)
	}
	t.Logf("%d forged packets, 6 readers: %d verifications (%.1f per packet and reader)", n, fresh, float64(fresh)/(6*n))
}

// othersBudget is the live subsessions' budget of other-key trials.
const othersBudget = subsession.OthersPerMinute
