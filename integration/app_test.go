//go:build integration

package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/session"
)

// TestIntegrationAppInviteRemembered: an invitation to someone who is not
// in the room reaches them as an XMPP invitation from the room (seen here
// by a plain client of theirs), is remembered, and is carried out when they
// enter: they are included without anyone acting, although nobody
// includes newcomers automatically. Members then list each other with
// their status, and the invitee's messages arrive.
func TestIntegrationAppInviteRemembered(t *testing.T) {
	s := serverFromEnv(t)
	aAcct, bAcct := s.cmdAccount(t, 3), s.cmdAccount(t, 4)
	room := s.newRoom(t)
	a := s.newAppPeer(t, aAcct, t.TempDir())
	from := a.mark()
	ra := a.join(room, "manual")
	if ev := a.waitEvent(from, "a's join", func(ev app.Event) bool { return ev.Kind == app.EventJoined }); ev.Err != nil {
		t.Fatalf("a's join: %v", ev.Err)
	}
	// b's account online elsewhere, not in the room, and available (so that
	// messages to the bare JID reach it) once the ping is answered.
	bPlain := s.rawDial(t, 4)
	bPlain.mustWrite("<presence/>")
	bPlain.iq("ping1", "<iq type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>")
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	text, err := ra.Invite(ctx, bare(bAcct.jid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "invitation sent") || !strings.Contains(text, "included when they enter") {
		t.Errorf("invite answer: %q", text)
	}
	inv := bPlain.waitFor("the XMPP invitation", func(s string) bool {
		return strings.HasPrefix(s, "<message") && strings.Contains(s, "<invite")
	})
	if !strings.Contains(inv, `from="`+room) || !strings.Contains(inv, `"http://jabber.org/protocol/muc#user"`) ||
		!strings.Contains(inv, `from="`+ra.Self()) || !strings.Contains(inv, "mpENC encrypted room") {
		t.Errorf("invitation as received: %s", inv)
	}

	b := s.newAppPeer(t, bAcct, t.TempDir())
	from = b.mark()
	rb := b.join(room, "manual")
	if ev := b.waitEvent(from, "b's join", func(ev app.Event) bool { return ev.Kind == app.EventJoined }); ev.Err != nil {
		t.Fatalf("b's join: %v", ev.Err)
	}
	a.waitEvent(0, "the remembered invitation carried out", func(ev app.Event) bool {
		return ev.Kind == app.EventInfo && strings.Contains(ev.Text, "(invited)")
	})
	// The app says "including … (invited)" as it starts the inclusion:
	// wait (bounded) until a's list shows b as a member.
	var ms []app.Member
	found := false
	for !found {
		if ms, err = ra.Members(ctx); err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.ID == rb.Self() {
				found = m.InSession && m.InRoom && m.HasKey && m.Status == "member"
			}
		}
		if found {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("b is not a member in a's list: %+v", ms)
		case <-time.After(100 * time.Millisecond):
		}
	}
	from = a.mark()
	if _, err := rb.Send(ctx, "thanks for the invitation"); err != nil {
		t.Fatal(err)
	}
	a.waitMessage(from, room, bare(bAcct.jid), "b's message", func(s string) bool { return s == "thanks for the invitation" })
	// Inviting a member again says so.
	if text, err := ra.Invite(ctx, bare(bAcct.jid)); err != nil || !strings.Contains(text, "already a member") {
		t.Errorf("inviting a member: %q, %v", text, err)
	}
	for _, p := range []*appPeer{a, b} {
		var late []app.Entry
		p.mu.Lock()
		for _, ev := range p.evs {
			if ev.Kind == app.EventEntry && ev.Entry.Ack == session.NotFullyAcked && !ev.Entry.Absent {
				late = append(late, ev.Entry)
			} else if ev.Kind == app.EventNotice && ev.Notice.IsWarning() || ev.Kind == app.EventDecision && ev.Decision.Warning() {
				t.Errorf("a warning: %v %v %+v", ev.Notice, ev.Decision, ev.Entry)
			}
		}
		p.mu.Unlock()
		// A message not fully acknowledged in time that is fully
		// acknowledged later only says the machine was slow (these peers
		// run LoopbackTiming), as realWarnings tolerates for sessions.
		for _, e := range late {
			p.waitEvent(0, "the late acknowledgement of "+e.ID.String(), func(ev app.Event) bool {
				return ev.Kind == app.EventEntry && ev.Entry.ID == e.ID && ev.Entry.Ack == session.FullyAcked
			})
			t.Logf("%+v: not fully acknowledged in time, fully acknowledged later (a slow machine)", e)
		}
	}
}

// An invitation to one of our devices' full JIDs (as a co-member sees it
// in another room) reaches our App as an EventInvitation, once, and
// joining the room it names gets us included by the inviter.
func TestIntegrationAppInvitationReceived(t *testing.T) {
	s := serverFromEnv(t)
	aAcct, bAcct := s.cmdAccount(t, 3), s.cmdAccount(t, 4)
	room1, room2 := s.newRoom(t), s.newRoom(t)
	a := s.newAppPeer(t, aAcct, t.TempDir())
	b := s.newAppPeer(t, bAcct, t.TempDir())
	from := a.mark()
	ra := a.join(room1, "manual")
	if ev := a.waitEvent(from, "a's join", func(ev app.Event) bool { return ev.Kind == app.EventJoined }); ev.Err != nil {
		t.Fatalf("a's join: %v", ev.Err)
	}
	from = b.mark()
	rb2 := b.join(room2, "manual")
	if ev := b.waitEvent(from, "b's join of room2", func(ev app.Event) bool { return ev.Kind == app.EventJoined }); ev.Err != nil {
		t.Fatalf("b's join: %v", ev.Err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	from = b.mark()
	text, err := ra.Invite(ctx, rb2.Self())
	if err != nil || !strings.Contains(text, "invitation sent") {
		t.Fatalf("invite: %q, %v", text, err)
	}
	ev := b.waitEvent(from, "the invitation", func(ev app.Event) bool { return ev.Kind == app.EventInvitation })
	got := ev.Invitation
	got.ID = "" // the stanza's
	if want := (xmpp.Invitation{Room: room1, From: bare(aAcct.jid), Reason: "mpENC encrypted room"}); got != want || ev.Room != "" {
		t.Fatalf("invitation %+v (event room %q), want %+v", got, ev.Room, want)
	}
	from = b.mark()
	rb1 := b.join(ev.Invitation.Room, "manual")
	if ev := b.waitEvent(from, "b's join of room1", func(ev app.Event) bool { return ev.Kind == app.EventJoined && ev.Room == room1 }); ev.Err != nil {
		t.Fatalf("b's join of room1: %v", ev.Err)
	}
	from = a.mark()
	if _, err := rb1.Send(ctx, "accepted"); err != nil {
		t.Fatal(err)
	}
	a.waitMessage(from, room1, bare(bAcct.jid), "b's message", func(s string) bool { return s == "accepted" })
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, ev := range b.evs {
		if ev.Kind == app.EventInvitation {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d invitation events, want 1", n)
	}
}
