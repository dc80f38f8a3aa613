package session_test

import (
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/session"
)

// A packet of a subsession that has finished (a resend, an ack still on
// its way, replayed by the server) reaches a member after the rotation: it
// is recognised by its signature and dropped silently, not reported as
// undecryptable. A packet that no subsession, live or finished, can verify
// still is.
func TestLatePacketOfFinishedSubsession(t *testing.T) {
	w := world(t, 51, hop)
	addAll(w, auto, "A", "B")
	formSession(t, w, "A", "B")
	var last string
	prev := w.Intercept
	w.Intercept = func(id string, a session.Action) []session.Action {
		if id == "B" && a.Kind == session.ActSend {
			if p, err := wire.DecodeWire(a.Wire); err == nil {
				if _, ok := p.(*wire.DataPacket); ok {
					last = a.Wire
				}
			}
		}
		if prev != nil {
			return prev(id, a)
		}
		return []session.Action{a}
	}
	if err := w.Send("B", "before the refresh"); err != nil {
		t.Fatal(err)
	}
	run(t, w, 10*time.Second)
	if last == "" {
		t.Fatal("no data packet from B recorded")
	}
	old := last
	op := opOf(t, w, "A", func(c *session.Core, now time.Time) (*session.Op, error) { return c.Refresh(now) })
	run(t, w, 20*time.Second) // the old subsession finishes everywhere
	if !op.Done() || op.Err() != nil {
		t.Fatalf("refresh: %v", op)
	}
	for _, id := range []string{"A", "B"} {
		if n := session.FinishingOf(w.Members[id].Core); n != 0 {
			t.Fatalf("%s: %d subsessions still finishing", id, n)
		}
	}
	w.Act("B", session.Action{Kind: session.ActSend, Wire: old})
	run(t, w, 2*time.Minute)
	noWarnings(t, w)

	// A corrupted copy is no subsession's: it is reported.
	b := []byte(old)
	b[len(b)-10] ^= 4
	w.Act("B", session.Action{Kind: session.ActSend, Wire: string(b)})
	run(t, w, 2*time.Minute)
	if n := len(notices(w.Members["A"], session.NotDecrypted)); n != 1 {
		t.Errorf("A: %d NotDecrypted for a corrupted packet, want 1", n)
	}
}
