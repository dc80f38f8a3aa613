package session_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mpenc/mpenc/session"
)

// A member's message crossing its exclusion, and the excluder's user at
// once asking to include it again: the excluded member is kicked first
// (it must leave before it can come back), and our ack of its message goes
// out before the kick, or it would warn that we never read it (found by
// the simulator, honest seeds 9292, 12565 and 15288 of 16,000).
func TestKickAfterAckingCrossingMessage(t *testing.T) {
	w := world(t, 48, hop)
	addAll(w, auto, "A", "B")
	formSession(t, w, "A", "B")
	opOf(t, w, "A", exclude("B"))
	// B sends before the exclusion reaches it, and its message reaches A
	// after the exclusion's echo (A's FIN, which would ack it, is out).
	run(t, w, 18*time.Millisecond)
	w.Do("B", func(c *session.Core, now time.Time) {
		if _, err := c.Send("crossing my exclusion", now); err != nil {
			t.Fatal(err)
		}
	})
	run(t, w, 200*time.Millisecond) // B's message has reached A; A's ack is not due yet
	if got := texts(w.Members["A"]); !slices.Contains(got, "B:crossing my exclusion") {
		t.Fatalf("A has not read B's message yet: %v", got)
	}
	var err error
	w.Do("A", func(c *session.Core, now time.Time) { _, err = c.Include([]string{"B"}, now) })
	if !errors.Is(err, session.ErrBusy) {
		t.Fatalf("including B while it is still in the room: %v, want ErrBusy (B kicked)", err)
	}
	run(t, w, time.Minute)
	for _, n := range notices(w.Members["B"], session.NotFullyAcked) {
		t.Errorf("B: %v", n)
	}
}
