package app

import (
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel/xmpp"
)

// Copies of one invitation (the server may deliver one twice) are shown
// once; invitations to a room we are in are not shown.
func TestInvitationsDeduplicated(t *testing.T) {
	a := &App{rooms: map[string]*Room{"in@muc.example": {}}, q: newQueue()}
	defer a.q.close()
	inv := xmpp.Invitation{Room: "other@muc.example", From: "alice@example.org", Reason: "hi", ID: "i1"}
	again := inv
	again.ID, again.Reason = "i2", "hi again" // invited again later: shown again
	for _, i := range []xmpp.Invitation{inv, {Room: "in@muc.example", From: "alice@example.org"}, inv, again} {
		a.invitation(i)
	}
	want := []Event{
		{Kind: EventInvitation, Invitation: inv},
		{Kind: EventInvitation, Invitation: again},
	}
	for i, w := range want {
		if got := <-a.q.out; got.Room != w.Room || got.Kind != w.Kind || got.Invitation != w.Invitation {
			t.Fatalf("event %d: %+v, want %+v", i, got, w)
		}
	}
	select {
	case ev := <-a.q.out:
		t.Fatalf("unexpected %+v", ev)
	default:
	}
}

func TestRecentInvitesWindow(t *testing.T) {
	var r recentInvites
	t0 := time.Unix(1e9, 0)
	later := t0
	for i := range recentInviteWindow + 1 {
		later = t0.Add(time.Duration(i) * invitePeriod) // slow enough for the rate limit
		if !r.add(xmpp.Invitation{Room: "r@m", ID: string(rune('A' + i))}, later) {
			t.Fatalf("invitation %d not new", i)
		}
	}
	later = later.Add(invitePeriod)
	if r.add(xmpp.Invitation{Room: "r@m", ID: string(rune('A' + recentInviteWindow))}, later) {
		t.Fatal("the latest invitation was forgotten")
	}
	if !r.add(xmpp.Invitation{Room: "r@m", ID: "A"}, later) {
		t.Fatal("the oldest invitation is still remembered past the window")
	}
}

// A flood of distinct invitations shows inviteBurst a minute; invitations
// without a stanza id are never taken for copies.
func TestInvitesRateLimited(t *testing.T) {
	var r recentInvites
	t0 := time.Unix(1e9, 0)
	shown := 0
	for i := range 3 * inviteBurst {
		if r.add(xmpp.Invitation{Room: "r@m", Reason: "same"}, t0.Add(time.Duration(i)*time.Second)) {
			shown++
		}
	}
	if shown != inviteBurst {
		t.Fatalf("%d shown in %d s, want %d", shown, 3*inviteBurst, inviteBurst)
	}
	if !r.add(xmpp.Invitation{Room: "r@m", Reason: "same"}, t0.Add(invitePeriod)) {
		t.Fatal("still limited a minute after the first")
	}
}
