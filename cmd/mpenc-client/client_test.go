package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mpenc/mpenc/session"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/channel/xmpp"
)

// fakeUI records what the controller shows.
type fakeUI struct {
	notes    []string
	warnings []string
	rooms    int
	quits    int
}

func (f *fakeUI) lineAdded(*roomView, *line)   {}
func (f *fakeUI) lineChanged(*roomView, *line) {}
func (f *fakeUI) note(text string, warning bool) {
	if warning {
		f.warnings = append(f.warnings, text)
	} else {
		f.notes = append(f.notes, text)
	}
}
func (f *fakeUI) roomsChanged()            { f.rooms++ }
func (f *fakeUI) stateChanged(*roomView)   {}
func (f *fakeUI) membersChanged(*roomView) {}
func (f *fakeUI) quit()                    { f.quits++ }

// newTestClient is a controller without an App: enough for what does not
// touch the network.
func newTestClient(rooms ...string) (*client, *fakeUI) {
	c := newClient(nil, &Config{HistoryLines: 10}, nopLog)
	f := &fakeUI{}
	c.ui = f
	c.post = func(fn func()) { fn() }
	for _, r := range rooms {
		c.views[r] = newRoomView(r)
		c.order = append(c.order, r)
	}
	if len(rooms) > 0 {
		c.cur = rooms[0]
	}
	return c, f
}

func TestClientInput(t *testing.T) {
	c, f := newTestClient()
	c.input("hello")
	if len(f.warnings) != 1 || !strings.Contains(f.warnings[0], "no room: /join") {
		t.Errorf("message without a room: %q", f.warnings)
	}
	c.input("/nonsense")
	if len(f.warnings) != 2 || !strings.Contains(f.warnings[1], "unknown command") {
		t.Errorf("unknown command: %q", f.warnings)
	}
	c.input("/help")
	if len(f.notes) != 1 || !strings.Contains(f.notes[0], "/verify") {
		t.Errorf("help: %q", f.notes)
	}
	c.input("/quit")
	if f.quits != 1 {
		t.Error("/quit did not quit")
	}
	c.input("   ")
	if len(f.notes)+len(f.warnings) != 3 {
		t.Error("an empty line did something")
	}
}

// TestClientSendBeforeJoined: the client keeps no queue of its own. A
// message typed where there is nobody to send it to yet is not sent, and
// says so; typed while out of the session after a gap, the session keeps
// it (a queued line follows: TestViewQueuedLines).
func TestClientSendBeforeJoined(t *testing.T) {
	c, f := newTestClient("a@muc")
	c.input("first")
	if len(f.warnings) != 1 || !strings.Contains(f.warnings[0], "not sent: not connected to a@muc yet") {
		t.Errorf("not connected: %q", f.warnings)
	}
	c.sendHook = func(room, text string) error { return fmt.Errorf("app: %w", session.ErrNotJoined) }
	c.input("second")
	if len(f.warnings) != 2 || !strings.Contains(f.warnings[1], "not sent: you are not in the session yet") {
		t.Errorf("never joined: %q", f.warnings)
	}
	if !c.idle() {
		t.Error("not idle: nothing waits")
	}
}

func TestClientSwitchRooms(t *testing.T) {
	c, f := newTestClient("a@muc", "b@muc", "c@muc")
	c.views["b@muc"].unread = 3
	if err := c.switchTo("2"); err != nil || c.cur != "b@muc" || c.views["b@muc"].unread != 0 {
		t.Errorf("switch to 2: %v, %s", err, c.cur)
	}
	if err := c.switchTo("c"); err != nil || c.cur != "c@muc" {
		t.Errorf("switch to c: %v, %s", err, c.cur)
	}
	c.cycle(1)
	if c.cur != "a@muc" {
		t.Errorf("cycle forward from the last: %s", c.cur)
	}
	c.cycle(-1)
	if c.cur != "c@muc" {
		t.Errorf("cycle back from the first: %s", c.cur)
	}
	for _, bad := range []string{"4", "0", "z"} {
		if err := c.switchTo(bad); err == nil {
			t.Errorf("switched to %q", bad)
		}
	}
	if f.rooms == 0 {
		t.Error("the front end was not told")
	}
	c.input("/info 1")
	if len(f.warnings) != 1 || !strings.Contains(f.warnings[0], "no message #1") {
		t.Errorf("/info of a missing message: %q", f.warnings)
	}
}

// The control character is dropped (what follows it is harmless text).
func TestInvitationShown(t *testing.T) {
	c, f := newTestClient("room@muc.example")
	c.handle(app.Event{Room: "room@muc.example", Kind: app.EventInvitation,
		Invitation: xmpp.Invitation{Room: "other@muc.example", From: "alice@example.org", Reason: "come\x1b[2J see\nnow"}})
	c.handle(app.Event{Room: "room@muc.example", Kind: app.EventInvitation, Invitation: xmpp.Invitation{Room: "x@muc.example"}})
	c.handle(app.Event{Room: "room@muc.example", Kind: app.EventInvitation, Invitation: xmpp.Invitation{Room: "y@muc.example", From: "bob@example.org", Direct: true}})
	want := []string{
		"other@muc.example says alice@example.org invites you there: \u201ccome[2J see now\u201d (/join other@muc.example to accept)",
		"x@muc.example invites you (/join x@muc.example to accept)",
		"bob@example.org invites you to y@muc.example (/join y@muc.example to accept)",
	}
	if len(f.notes) != 3 || len(f.warnings) != 0 {
		t.Fatalf("notes %q, warnings %q", f.notes, f.warnings)
	}
	for i := range want {
		if f.notes[i] != want[i] {
			t.Errorf("note %d: %q, want %q", i, f.notes[i], want[i])
		}
	}
}
