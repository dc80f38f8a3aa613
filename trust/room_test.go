package trust_test

import (
	"strings"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/trusttest"
	"github.com/mpenc/mpenc/trust"
)

// One key announced by two members of one account present in the room at
// once (Directory.SetPresent): our client has one full JID per device per
// room, so one of the two is not the device it claims to be.

const (
	roomSelf  = "alice@example.org/phone-r1" // us, in this room
	roomBob   = "bob@example.org/phone-r1"
	roomGhost = "bob@example.org/ghost"
)

var roomSelfKey = trusttest.Key(9)

// roomDir is a room's directory over s, with us in it, recording its
// decisions.
func roomDir(s *trust.Store, got *[]trust.Decision) *trust.Directory {
	return &trust.Directory{Store: s, Self: roomSelf, SelfKey: roomSelfKey, OnDecision: func(d trust.Decision) { *got = append(*got, d) }}
}

// observeIn observes key for member through dir and returns the decision
// handed to OnDecision and the error.
func observeIn(t *testing.T, dir *trust.Directory, got *[]trust.Decision, member string, key crypto.PublicKey) (trust.Decision, error) {
	t.Helper()
	n := len(*got)
	err := dir.ObserveKey(member, key)
	if len(*got) != n+1 {
		t.Fatalf("ObserveKey(%s): no decision (%v)", member, err)
	}
	return (*got)[n], err
}

// quiet observes and fails on a warning.
func quiet(t *testing.T, dir *trust.Directory, got *[]trust.Decision, member string, key crypto.PublicKey) trust.Decision {
	t.Helper()
	d, err := observeIn(t, dir, got, member, key)
	if d.Warning() || err != nil || d.Kind == trust.KeyClaimed {
		t.Fatalf("%s announcing %s: %v, %v; want no warning", member, trust.FingerprintOf(key).Short(), d, err)
	}
	return d
}

// TestKeyClaimedInRoom: a member announcing a key that another member of
// its account, present in the room, announced there first is a KeyClaimed
// warning naming that member, refused (whatever the user decides) while
// both are present; the first keeps working, its announcements again are
// no warning, and once either leaves the other is judged by the store
// alone.
func TestKeyClaimedInRoom(t *testing.T) {
	ts := trust.New(new(trust.Memory), trust.Config{})
	var got []trust.Decision
	dir := roomDir(ts, &got)
	k1 := trusttest.Key(1)
	dir.SetPresent([]string{roomSelf, roomBob})
	quiet(t, dir, &got, roomBob, k1)
	dir.SetPresent([]string{roomSelf, roomBob, roomGhost})
	d, err := observeIn(t, dir, &got, roomGhost, k1)
	if d.Kind != trust.KeyClaimed || !d.Warning() || d.Trusted || d.Own || len(d.Previous) != 1 ||
		d.Previous[0].Member != roomBob || d.Previous[0].JID != "bob@example.org" || d.Previous[0].Key != k1 {
		t.Fatalf("the ghost announcing bob's key in the room: %+v", d)
	}
	if err == nil || !strings.Contains(err.Error(), "which "+roomBob+", also in this room, announced first: one of them is not the device it claims to be") {
		t.Fatalf("error %v", err)
	}
	refusedHere := func(when string) {
		t.Helper()
		if k, err := dir.IdentityKey(roomGhost); err == nil {
			t.Fatalf("%s: IdentityKey(ghost) = %x", when, k[:4])
		} else if !strings.Contains(err.Error(), roomBob+", also in this room, announced it first") {
			t.Fatalf("%s: IdentityKey(ghost): %v", when, err)
		}
		rec, by, ok, err := dir.Current(roomGhost)
		if err != nil || !ok || !rec.Claimed || rec.Trusted || len(by) != 1 || by[0].Member != roomBob {
			t.Fatalf("%s: Current(ghost) = %+v, %+v, %v, %v", when, rec, by, ok, err)
		}
		if k, err := dir.IdentityKey(roomBob); err != nil || k != k1 {
			t.Fatalf("%s: the first announcer is refused: %v", when, err)
		}
		if rec, by, _, _ := dir.Current(roomBob); rec.Claimed || !rec.Trusted || by != nil {
			t.Fatalf("%s: Current(bob) = %+v, %+v", when, rec, by)
		}
		if rec, _, _ := ts.Current(roomGhost); rec.Claimed {
			t.Fatalf("%s: the store recorded the room's claim: %+v", when, rec)
		}
	}
	refusedHere("claimed")
	// Bob announcing his key again is no warning; the ghost again is.
	quiet(t, dir, &got, roomBob, k1)
	if d, err := observeIn(t, dir, &got, roomGhost, k1); d.Kind != trust.KeyClaimed || err == nil {
		t.Fatalf("the ghost again: %v, %v", d, err)
	}
	// No decision of the user settles it while both are present.
	if _, err := ts.Verify(roomGhost, k1); err != nil {
		t.Fatal(err)
	}
	refusedHere("after the user verified the key")
	// Bob leaves: the ghost is judged by the store alone.
	dir.SetPresent([]string{roomSelf, roomGhost})
	if k, err := dir.IdentityKey(roomGhost); err != nil || k != k1 {
		t.Fatalf("alone in the room: IdentityKey(ghost) = %v", err)
	}
	// Bob back: he is the later one now.
	dir.SetPresent([]string{roomSelf, roomGhost, roomBob})
	if d, _ := observeIn(t, dir, &got, roomBob, k1); d.Kind != trust.KeyClaimed || d.Previous[0].Member != roomGhost {
		t.Fatalf("bob after the ghost: %+v", d)
	}
	// We leave: nobody is present any more.
	dir.SetPresent(nil)
	if _, err := dir.IdentityKey(roomBob); err != nil {
		t.Fatalf("out of the room: %v", err)
	}
}

// TestOwnKeyClaimedInRoom: another member of our own account announcing
// our key while we are in the room is posing as this device: a KeyClaimed
// warning naming us, never used, whatever the user decides.
func TestOwnKeyClaimedInRoom(t *testing.T) {
	ts := trust.New(new(trust.Memory), trust.Config{})
	var got []trust.Decision
	dir := roomDir(ts, &got)
	const ghost = "alice@example.org/ghost"
	dir.SetPresent([]string{roomSelf, ghost})
	if err := dir.ObserveKey(roomSelf, roomSelfKey); err != nil || len(got) != 0 {
		t.Fatalf("our own announcement: %v, %v", err, got)
	}
	d, err := observeIn(t, dir, &got, ghost, roomSelfKey)
	if d.Kind != trust.KeyClaimed || !d.Own || d.Trusted || len(d.Previous) != 1 || d.Previous[0].Member != roomSelf {
		t.Fatalf("our key announced by %s: %+v", ghost, d)
	}
	if err == nil || !strings.Contains(err.Error(), "announced YOUR OWN identity key") || !strings.Contains(err.Error(), "someone is posing as this device") {
		t.Fatalf("error %v", err)
	}
	if _, err := ts.Trust(ghost, roomSelfKey); err != nil {
		t.Fatal(err)
	}
	if k, err := dir.IdentityKey(ghost); err == nil {
		t.Fatalf("IdentityKey(%s) = %x: our own key is used for another device", ghost, k[:4])
	} else if !strings.Contains(err.Error(), "it is YOUR OWN key, which this device uses in this room") {
		t.Fatalf("IdentityKey(%s): %v", ghost, err)
	}
	if rec, by, ok, _ := dir.Current(ghost); !ok || !rec.Claimed || rec.Trusted || len(by) != 1 || by[0].Member != roomSelf {
		t.Fatalf("Current(%s) = %+v, %+v", ghost, rec, by)
	}
	if rec, by, ok, _ := dir.Current(roomSelf); !ok || rec.Claimed || !rec.Trusted || rec.Key != roomSelfKey || by != nil {
		t.Fatalf("Current(self) = %+v, %+v", rec, by)
	}
	// Our own announcement is never a warning, with the ghost present or not.
	if err := dir.ObserveKey(roomSelf, roomSelfKey); err != nil {
		t.Fatal(err)
	}
}

// TestKeyClaimedInRoomPrecedence: a changed or distrusted key stays
// KeyChanged or KeyDistrusted when it is also claimed in the room; a key
// another account has too names both.
func TestKeyClaimedInRoomPrecedence(t *testing.T) {
	ts := trust.New(new(trust.Memory), trust.Config{})
	var got []trust.Decision
	dir := roomDir(ts, &got)
	const bobB, bobC = "bob@example.org/b", "bob@example.org/c"
	k1, k2, k3 := trusttest.Key(1), trusttest.Key(2), trusttest.Key(3)
	dir.SetPresent([]string{roomSelf, roomBob, bobB, bobC})
	quiet(t, dir, &got, bobB, k1)
	quiet(t, dir, &got, roomBob, k2)
	if d, _ := observeIn(t, dir, &got, bobB, k2); d.Kind != trust.KeyChanged || d.Trusted {
		t.Fatalf("a changed key also claimed in the room: %+v", d)
	}
	if _, err := ts.Distrust(roomBob, k3); err != nil {
		t.Fatal(err)
	}
	if d, _ := observeIn(t, dir, &got, bobC, k3); d.Kind != trust.KeyDistrusted {
		t.Fatalf("%+v", d)
	}
	dir.SetPresent([]string{roomSelf, roomBob, bobB, bobC, roomGhost})
	if d, _ := observeIn(t, dir, &got, roomGhost, k3); d.Kind != trust.KeyDistrusted || d.Trusted {
		t.Fatalf("a distrusted key also claimed in the room: %+v", d)
	}
	// mallory had k4 first; two new members of bob's announce it.
	const mallory, bobD, bobE = "mallory@evil.example/m", "bob@example.org/d", "bob@example.org/e"
	k4 := trusttest.Key(4)
	dir.SetPresent([]string{roomSelf, mallory, bobD, bobE})
	quiet(t, dir, &got, mallory, k4)
	if d, _ := observeIn(t, dir, &got, bobD, k4); d.Kind != trust.KeyClaimed || len(d.Previous) != 1 || d.Previous[0].JID != "mallory@evil.example" {
		t.Fatalf("%+v", d)
	}
	d, err := observeIn(t, dir, &got, bobE, k4)
	if d.Kind != trust.KeyClaimed || len(d.Previous) != 2 || d.Previous[0].JID != "mallory@evil.example" || d.Previous[1].Member != bobD {
		t.Fatalf("claimed by another account and in the room: %+v", d)
	}
	if err == nil || !strings.Contains(err.Error(), bobD+", also in this room, announced first (it is also the key of mallory@evil.example (another account))") {
		t.Fatalf("error %v", err)
	}
}

// TestNoClaimInRoom: the cases that are no alarm. A member against itself
// (announcing again, under two nicks); one that leaves and comes back
// under the same full JID; two members of one account with one key not
// present at the same time (one device's resources in turn); the same
// device in two rooms (a full JID in each, each room's own directory);
// our own announcement of our key, and our other device's key; an
// announcement by a member not present; and a directory never told who
// is present (the store alone judges, as before).
func TestNoClaimInRoom(t *testing.T) {
	ts := trust.New(new(trust.Memory), trust.Config{})
	var got []trust.Decision
	dir := roomDir(ts, &got)
	k1 := trusttest.Key(1)
	used := func(m string) {
		t.Helper()
		if k, err := dir.IdentityKey(m); err != nil || k != k1 {
			t.Fatalf("IdentityKey(%s): %v", m, err)
		}
		if rec, by, _, _ := dir.Current(m); rec.Claimed || by != nil {
			t.Fatalf("Current(%s) = %+v, %+v", m, rec, by)
		}
	}
	// Itself: again, and twice in the occupant list (two nicks).
	dir.SetPresent([]string{roomSelf, roomBob, roomBob})
	quiet(t, dir, &got, roomBob, k1)
	quiet(t, dir, &got, roomBob, k1)
	used(roomBob)
	// Leaves and comes back under the same full JID.
	dir.SetPresent([]string{roomSelf})
	dir.SetPresent([]string{roomSelf, roomBob})
	quiet(t, dir, &got, roomBob, k1)
	used(roomBob)
	// Bob's device under another resource, once the first has left.
	const bobLater = "bob@example.org/phone-r1-again"
	dir.SetPresent([]string{roomSelf, bobLater})
	quiet(t, dir, &got, bobLater, k1)
	used(bobLater)
	// Our own key from us, and our other device with its own key.
	const tablet = "alice@example.org/tablet-r1"
	dir.SetPresent([]string{roomSelf, bobLater, tablet})
	if err := dir.ObserveKey(roomSelf, roomSelfKey); err != nil {
		t.Fatal(err)
	}
	if d := quiet(t, dir, &got, tablet, trusttest.Key(8)); !d.Own {
		t.Fatalf("our other device: %+v", d)
	}
	// A member not present (presence and announcements in order, this
	// does not happen): not judged by the room.
	quiet(t, dir, &got, roomGhost, k1)
	// We are out, then back: what was announced before is forgotten.
	dir.SetPresent(nil)
	dir.SetPresent([]string{roomSelf, roomBob})
	quiet(t, dir, &got, roomBob, k1)

	// One device in two rooms: a full JID in each, both present at once,
	// each room with its own directory over the one store.
	var got2 []trust.Decision
	room2 := &trust.Directory{Store: ts, Self: "alice@example.org/phone-r2", SelfKey: roomSelfKey,
		OnDecision: func(d trust.Decision) { got2 = append(got2, d) }}
	const bobR2 = "bob@example.org/phone-r2"
	room2.SetPresent([]string{"alice@example.org/phone-r2", bobR2})
	quiet(t, room2, &got2, bobR2, k1)
	quiet(t, dir, &got, roomBob, k1)
	if k, err := room2.IdentityKey(bobR2); err != nil || k != k1 {
		t.Fatalf("IdentityKey(%s) in room 2: %v", bobR2, err)
	}
	used(roomBob)

	// Never told who is present: two members of one account with one
	// key at once are the store's business, which does not flag them.
	var got3 []trust.Decision
	plain := &trust.Directory{Store: ts, Self: roomSelf, SelfKey: roomSelfKey, OnDecision: func(d trust.Decision) { got3 = append(got3, d) }}
	quiet(t, plain, &got3, roomBob, k1)
	quiet(t, plain, &got3, roomGhost, k1)
	if k, err := plain.IdentityKey(roomGhost); err != nil || k != k1 {
		t.Fatalf("without presence: %v", err)
	}
}
