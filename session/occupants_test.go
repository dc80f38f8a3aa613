package session_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/session"
)

// callLog is a key directory that logs what the session tells it.
type callLog struct {
	session.MemoryDirectory
	calls []string
}

func (d *callLog) ObserveKey(member string, key crypto.PublicKey) error {
	d.calls = append(d.calls, "key "+member)
	return d.MemoryDirectory.ObserveKey(member, key)
}

func (d *callLog) occupants(members []string) {
	d.calls = append(d.calls, fmt.Sprintf("occupants %v", members))
}

// TestOccupantsInOrder: Config.OnOccupants is told the room's occupants
// at our enter, at others' enters and leaves, and none at our leave,
// between the identity announcements the directory observes exactly as
// the channel ordered them (trust.Directory.SetPresent relies on it).
func TestOccupantsInOrder(t *testing.T) {
	seed := func(b byte) crypto.PublicKey {
		var s [crypto.SeedSize]byte
		s[0] = b
		return crypto.NewSigningKey(s).Public()
	}
	var me [crypto.SeedSize]byte
	me[0] = 9
	dir := &callLog{}
	c, err := session.NewCore(session.Config{Self: "me", Identity: crypto.NewSigningKey(me), Directory: dir,
		OnOccupants: dir.occupants, Timing: session.LoopbackTiming()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, ev := range []channel.Event{
		{Kind: channel.EventOwnEnter, Members: []string{"a", "me"}},
		{Kind: channel.EventIdentity, Sender: "a", Key: seed(1), Members: []string{"a", "me"}},
		{Kind: channel.EventOthers, Enter: []string{"b"}, Members: []string{"a", "b", "me"}},
		{Kind: channel.EventIdentity, Sender: "b", Key: seed(2), Members: []string{"a", "b", "me"}},
		{Kind: channel.EventOthers, Leave: []string{"a"}, Members: []string{"b", "me"}},
		{Kind: channel.EventIdentity, Sender: "b", Key: seed(2), Members: []string{"b", "me"}},
		{Kind: channel.EventOwnLeave, Members: []string{"b", "me"}},
	} {
		now = now.Add(time.Millisecond)
		c.HandleEvent(ev, now)
	}
	want := []string{"occupants [a me]", "key a", "occupants [a b me]", "key b", "occupants [b me]", "key b", "occupants []"}
	if !slices.Equal(dir.calls, want) {
		t.Fatalf("calls\n%s\nwant\n%s", strings.Join(dir.calls, "\n"), strings.Join(want, "\n"))
	}
}
