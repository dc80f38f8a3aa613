package session_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mpenc/mpenc/session"
)

// A member that parts while one of its messages was not acknowledged by
// everyone ends PART_FAILED, not PARTED: the public state keeps what the
// shutdown of its last subsession found once it is out of the room. (It
// used to be overwritten with PARTED when the leave came.)
func TestPartFailedShown(t *testing.T) {
	w := three(t, 41, false)
	w.Freeze("B") // a hung client: in the room, never answering
	if err := w.Send("C", "hello"); err != nil {
		t.Fatal(err)
	}
	run(t, w, time.Second)
	op := opOf(t, w, "C", part)
	run(t, w, 3*time.Minute)
	if !op.Done() || op.Err() != nil {
		t.Fatalf("C's part: %v", op)
	}
	if slices.Contains(w.Hub.Members(), "C") {
		t.Fatal("C still in the room")
	}
	if s := w.Members["C"].Core.State(); s != session.StatePartFailed {
		t.Fatalf("C is %v, want PART_FAILED", s)
	}
	// The next join starts afresh.
	w.Thaw("B")
	join(t, w, "C")
	run(t, w, time.Second)
	if s := w.Members["C"].Core.State(); s == session.StatePartFailed {
		t.Fatalf("C is still %v after joining again", s)
	}
}

// Joining while a part is under way is refused: the user asked to leave,
// and the part settles first.
func TestJoinWhileParting(t *testing.T) {
	w := three(t, 42, false)
	op := opOf(t, w, "C", part)
	var err error
	w.Do("C", func(c *session.Core, now time.Time) { _, err = c.Join(now) })
	if !errors.Is(err, session.ErrBusy) {
		t.Fatalf("join while parting: %v, want ErrBusy", err)
	}
	run(t, w, 3*time.Minute)
	if !op.Done() || op.Err() != nil || w.Members["C"].Core.State() != session.StateParted {
		t.Fatalf("C's part: %v, state %v", op, w.Members["C"].Core.State())
	}
}
