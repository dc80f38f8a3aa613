package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/trusttest"
	"github.com/mpenc/mpenc/session"
)

// TestMemberTrustClaimedKeys: the member list marks a member whose key
// another account had first, as the store judges it, and a member of
// another account that announces our own key, which the store does not
// know: claimed and not trusted, whatever the user decides, as the
// room's key directory answers.
func TestMemberTrustClaimedKeys(t *testing.T) {
	a, r := testApp(t, t.TempDir()+"/a.db")
	defer a.Close(context.Background())
	r.sessionConfig()
	ours := a.PublicKey()
	dir := r.dir
	const ghost, mallory = "ghost@evil.example/r", "mallory@evil.example/r"
	for _, o := range []struct {
		member string
		key    crypto.PublicKey
	}{{bob, trusttest.Key(1)}, {ghost, trusttest.Key(1)}, {mallory, ours}, {carol, trusttest.Key(2)}} {
		dir.ObserveKey(o.member, o.key) // the warnings are the directory's tests'
	}
	if _, err := r.trust.Trust(mallory, ours); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		member           string
		claimed, trusted bool
	}{{bob, false, true}, {ghost, true, false}, {mallory, true, false}, {carol, false, true}} {
		rec, _, ok := r.memberTrust(c.member)
		if !ok || rec.Claimed != c.claimed || rec.Trusted != c.trusted {
			t.Errorf("memberTrust(%s) = %+v, %v; want claimed %v, trusted %v", c.member, rec, ok, c.claimed, c.trusted)
		}
		if _, err := dir.IdentityKey(c.member); (err == nil) != c.trusted {
			t.Errorf("the list and the directory disagree about %s: IdentityKey = %v", c.member, err)
		}
	}
	if _, _, ok := r.memberTrust("nobody@example.org/x"); ok {
		t.Error("a member that announced no key has a record")
	}
}

// TestKeyTwiceInRoom: the room's session tells its key directory who is
// in the room (Room.sessionConfig), in order with the announcements: a
// ghost of bob's present with bob and announcing his key is a security
// warning naming bob, marked in the member list; so is a ghost of our
// own account announcing our key. No warning when bob leaves and comes
// back under the same full JID, when our own member announces our key,
// or for the same device in another room (a full JID per room, a
// directory per room).
func TestKeyTwiceInRoom(t *testing.T) {
	a, r := testApp(t, t.TempDir()+"/a.db")
	defer a.Close(context.Background())
	c, err := session.NewCore(r.sessionConfig(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ours, k1 := a.PublicKey(), trusttest.Key(1)
	const bobGhost, aliceGhost = "bob@example.org/ghost", "alice@example.org/ghost"
	now := time.Now()
	// warnings feeds events and returns the members the session warned
	// about.
	warnings := func(c *session.Core, evs ...channel.Event) []string {
		t.Helper()
		var out []string
		for _, ev := range evs {
			now = now.Add(time.Millisecond)
			c.HandleEvent(ev, now)
		}
		for _, n := range c.TakeNotices() {
			if n.Kind == session.SecurityWarning {
				out = append(out, n.Author+": "+n.Err.Error())
			}
		}
		return out
	}
	ident := func(who string, k crypto.PublicKey, members ...string) channel.Event {
		return channel.Event{Kind: channel.EventIdentity, Sender: who, Key: k, Members: members}
	}
	if w := warnings(c,
		channel.Event{Kind: channel.EventOwnEnter, Members: []string{alice, bob}},
		ident(alice, ours, alice, bob), ident(bob, k1, alice, bob),
		channel.Event{Kind: channel.EventOthers, Leave: []string{bob}, Members: []string{alice}},
		channel.Event{Kind: channel.EventOthers, Enter: []string{bob}, Members: []string{alice, bob}},
		ident(bob, k1, alice, bob),
	); len(w) != 0 {
		t.Fatalf("bob back under his full JID: %v", w)
	}
	w := warnings(c,
		channel.Event{Kind: channel.EventOthers, Enter: []string{bobGhost}, Members: []string{alice, bob, bobGhost}},
		ident(bobGhost, k1, alice, bob, bobGhost))
	if len(w) != 1 || !strings.Contains(w[0], bobGhost+": trust: "+bobGhost+" announced the identity key") ||
		!strings.Contains(w[0], "which "+bob+", also in this room, announced first") {
		t.Fatalf("bob's key from a ghost of his account in the room: %v", w)
	}
	if rec, by, ok := r.memberTrust(bobGhost); !ok || !rec.Claimed || rec.Trusted || len(by) != 1 || by[0].Member != bob {
		t.Errorf("member list: %s = %+v, %+v", bobGhost, rec, by)
	}
	if rec, _, ok := r.memberTrust(bob); !ok || rec.Claimed || !rec.Trusted {
		t.Errorf("member list: %s = %+v", bob, rec)
	}
	w = warnings(c,
		channel.Event{Kind: channel.EventOthers, Enter: []string{aliceGhost}, Members: []string{alice, aliceGhost, bob, bobGhost}},
		ident(aliceGhost, ours, alice, aliceGhost, bob, bobGhost))
	if len(w) != 1 || !strings.Contains(w[0], "announced YOUR OWN identity key") {
		t.Fatalf("our key from a ghost of our account: %v", w)
	}
	if rec, by, ok := r.memberTrust(aliceGhost); !ok || !rec.Claimed || rec.Trusted || len(by) != 1 || by[0].Member != alice {
		t.Errorf("member list: %s = %+v, %+v", aliceGhost, rec, by)
	}
	// The ghost gone, bob is alone with his key again.
	if w := warnings(c, channel.Event{Kind: channel.EventOthers, Leave: []string{bobGhost, aliceGhost}, Members: []string{alice, bob}},
		ident(bob, k1, alice, bob)); len(w) != 0 {
		t.Fatalf("after the ghosts left: %v", w)
	}

	// The same device of bob's in another room of ours, at the same time:
	// a full JID per room, a directory per room.
	const alice2, bob2 = "alice@example.org/a2", "bob@example.org/b2"
	r2 := newRoom(a, "other@muc.example.org", RoomOptions{})
	r2.self = alice2
	c2, err := session.NewCore(r2.sessionConfig(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if w := warnings(c2, channel.Event{Kind: channel.EventOwnEnter, Members: []string{alice2, bob2}},
		ident(alice2, ours, alice2, bob2), ident(bob2, k1, alice2, bob2)); len(w) != 0 {
		t.Fatalf("bob's device in two rooms: %v", w)
	}
	for _, m := range []struct {
		r  *Room
		id string
	}{{r, bob}, {r2, bob2}} {
		if rec, _, ok := m.r.memberTrust(m.id); !ok || rec.Claimed || !rec.Trusted {
			t.Errorf("%s: %+v", m.id, rec)
		}
	}
}
