package app

import (
	"time"

	"github.com/mpenc/mpenc/channel/xmpp"
)

// recentInviteWindow is how many invitations are remembered to drop the
// copies of one invitation (a server may deliver it both to the bare JID's
// connections and again, and a room may repeat it).
const recentInviteWindow = 64

// Invitations shown are limited to inviteBurst per invitePeriod: anyone who
// sees one of our full JIDs can send them, and each is a line in front of
// the user.
const (
	inviteBurst  = 8
	invitePeriod = time.Minute
)

// recentInvites remembers the last invitations shown (oldest overwritten)
// and when the last few were shown.
type recentInvites struct {
	keys  [recentInviteWindow]xmpp.Invitation
	next  int
	shown [inviteBurst]time.Time // ring: the oldest is overwritten
	slot  int
}

// add reports whether inv should be shown at now: not a copy of one shown
// (same stanza id; invitations without one cannot be told apart from a
// repeat and are never dropped as copies) and within the rate limit.
func (r *recentInvites) add(inv xmpp.Invitation, now time.Time) bool {
	if inv.ID != "" {
		for _, k := range r.keys {
			if k == inv {
				return false
			}
		}
	}
	if oldest := r.shown[r.slot]; !oldest.IsZero() && now.Sub(oldest) < invitePeriod {
		return false
	}
	r.shown[r.slot] = now
	r.slot = (r.slot + 1) % len(r.shown)
	if inv.ID != "" {
		r.keys[r.next] = inv
		r.next = (r.next + 1) % len(r.keys)
	}
	return true
}

// invitation turns an invitation received on the account's connection
// into EventInvitation: once each (the server may deliver one twice), none
// for a room we are in already, and no more than inviteBurst a minute. It
// runs on the connection's receive loop (xmpp.Config.OnInvitation) and
// does not wait.
func (a *App) invitation(inv xmpp.Invitation) {
	a.mu.Lock()
	_, joined := a.rooms[inv.Room]
	fresh := !joined && !a.closed && a.invites.add(inv, time.Now())
	a.mu.Unlock()
	if !fresh {
		a.log().Debug("invitation not shown (a copy, a room we are in, or over the rate)", "room", inv.Room)
		return
	}
	a.log().Info("invitation", "room", inv.Room, "from", inv.From)
	a.q.push(Event{Kind: EventInvitation, Invitation: inv})
}
