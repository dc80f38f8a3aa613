package xmpp

import "mellium.im/xmpp/jid"

// maxPendingInvitations is how many received invitations wait for the
// consumer of Invitations; more are dropped (and counted), so that a
// stranger sending invitations in a loop costs us a bounded amount of
// memory.
const maxPendingInvitations = 16

// Invitation is an invitation to another room that arrived on the channel's
// connection: a mediated one (XEP-0045 §7.8.2, sent by the room on an
// occupant's behalf) or a direct one (XEP-0249, sent by the inviter).
//
// Nothing in it is authenticated beyond what the server vouches for: the
// room of a mediated invitation and the sender of a direct one are the
// stanza's sender as our server delivered it; a mediated invitation's
// inviter is only what that sender says (any JID can claim to be a room
// and name any inviter): show it as such. Reason is free text from a
// stranger: sanitise it before showing it.
type Invitation struct {
	Room   string // the room's bare JID
	From   string // who invites (bare JID); empty when the room did not say
	Reason string
	Direct bool // XEP-0249 rather than mediated
	// ID is the stanza's id (possibly empty): the same invitation delivered
	// to several connections of one account carries the same one.
	ID string
}

// Invitations returns the invitations to other rooms received on this
// channel's connection, in the order they came. The channel is closed by
// Close. Reading it is optional: when nobody does, the invitations beyond
// the first few are dropped.
//
// An account's messages go to its connections with the highest priority,
// so an invitation sent to a bare JID may arrive on every Channel of the
// account at once; deduplicate by (Room, From, ID) when holding several.
func (c *Channel) Invitations() <-chan Invitation { return c.invites }

// inviteLocked queues the invitation a message stanza carries, if it is
// well formed and for a room other than ours.
func (c *Channel) inviteLocked(st *inStanza) {
	inv, ok := invitationOf(st)
	if !ok || inv.Room == c.cfg.room.String() || c.closed {
		c.invStats.InvitesDropped++
		return
	}
	select {
	case c.invites <- inv:
		c.invStats.Invites++
	default:
		c.invStats.InvitesDropped++
		c.cfg.logf("xmpp: invitation dropped: %d waiting", maxPendingInvitations)
	}
}

// invitationOf checks an invitation as received: a mediated one comes from
// the room's bare JID, a direct one from a user and names a room; errors
// (which echo our own outgoing invitations back) and groupchat messages
// are not invitations.
func invitationOf(st *inStanza) (Invitation, bool) {
	in := st.Invite
	if in == nil || !st.FromOK || st.Type == "error" || st.Type == "groupchat" {
		return Invitation{}, false
	}
	inv := Invitation{Reason: in.Reason, Direct: in.Direct, ID: st.ID}
	if in.Direct {
		if st.HasMUCUser {
			// Relayed by a room (a private message from an occupant):
			// the sender is the room, not the inviter.
			return Invitation{}, false
		}
		room, err := jid.Parse(in.Room)
		if err != nil || room.Localpart() == "" || room.Resourcepart() != "" {
			return Invitation{}, false
		}
		inv.Room, inv.From = room.String(), st.From.Bare().String()
		return inv, true
	}
	if st.From.Localpart() == "" || st.From.Resourcepart() != "" {
		return Invitation{}, false // not from a room
	}
	inv.Room = st.From.String()
	if from, err := jid.Parse(in.From); err == nil && from.Localpart() != "" {
		inv.From = from.Bare().String()
	}
	return inv, true
}
