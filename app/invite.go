package app

import "github.com/mpenc/mpenc/channel/xmpp"

// recentInviteWindow is how many invitations are remembered to drop the
// copies of one invitation that every connection of the account receives.
const recentInviteWindow = 64

// recentInvites remembers the last invitations shown, oldest overwritten.
type recentInvites struct {
	keys [recentInviteWindow]xmpp.Invitation
	next int
}

// add reports whether inv is new, and remembers it.
func (r *recentInvites) add(inv xmpp.Invitation) bool {
	for _, k := range r.keys {
		if k == inv {
			return false
		}
	}
	r.keys[r.next] = inv
	r.next = (r.next + 1) % len(r.keys)
	return true
}

// invitations turns the invitations received on one room's connection
// into EventInvitation until the connection closes: once each (the
// account's other connections may get the same one), and none for a room
// we are in already.
func (a *App) invitations(via string, in <-chan xmpp.Invitation) {
	for inv := range in {
		a.mu.Lock()
		_, joined := a.rooms[inv.Room]
		fresh := !joined && !a.closed && a.invites.add(inv)
		a.mu.Unlock()
		if !fresh {
			continue
		}
		a.log(LevelInfo, "invitation", "room", inv.Room, "from", inv.From, "via", via)
		a.q.push(Event{Room: via, Kind: EventInvitation, Invitation: Invitation{Room: inv.Room, From: inv.From, Reason: inv.Reason}})
	}
}
