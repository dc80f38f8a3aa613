package xmpp

import "mellium.im/xmpp/jid"

// Invitation is an invitation to a room that arrived on the account's
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

// invStats counts invitations, for tests.
type invStats struct {
	Invites uint64 // invitations handed to Config.OnInvitation
	// InvitesDropped counts invitations not handed on: malformed, to a
	// room we have a channel for, or with nobody to take them.
	InvitesDropped uint64
}

// invitationLocked returns the invitation a message stanza carries, if it
// is well formed, for a room we have no channel for, and someone wants
// it (Config.OnInvitation).
func (a *Account) invitationLocked(st *inStanza) (Invitation, bool) {
	inv, ok := invitationOf(st)
	if !ok || a.rooms[inv.Room] != nil || a.closed || a.cfg.OnInvitation == nil {
		a.invStats.InvitesDropped++
		return Invitation{}, false
	}
	a.invStats.Invites++
	return inv, true
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
