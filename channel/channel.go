// Package channel defines GroupChannel: the transport a session runs over,
// a room in which one server puts every event in a single total order that
// all members see (an XMPP multi-user chat, or channel/memchan in tests).
//
// The contract (docs/SESSION.md, "Channel contract", says what the session
// relies on):
//
//   - Events arrive in one total order, the same for every member, and are
//     unauthenticated: the session layer detects deviations.
//   - Every event carries the channel membership at its position
//     (Event.Members): after the event for packets, own enter and others'
//     enter/leave; before it (so including us) for own leave.
//   - The first event is EventOwnEnter; after EventOwnLeave the next one, if
//     any, is EventOwnEnter. Others' leaves and enters in one event are
//     disjoint; leaves are applied before enters.
//   - A packet is delivered to everyone present, the sender included: our
//     own packets come back as echoes, and the echo is our packet's place in
//     the order. Only the echo counts; Send is best effort.
//   - Participant ids are full real JIDs (in XMPP); a channel never reports
//     a room where it cannot see them.
//
// The package holds the interface and the event type only; implementations
// live in channel/memchan and channel/xmpp.
package channel

import (
	"context"
	"fmt"

	"github.com/mpenc/mpenc/crypto"
)

// EventKind says what an Event is.
type EventKind uint8

// Event kinds.
const (
	// EventPacket: an mpENC wire string ("?mpENC:…") sent by Sender.
	EventPacket EventKind = iota + 1
	// EventPlain: a message without the mpENC prefix from Sender, from a
	// client that does not speak mpENC. Never trusted; shown as unencrypted.
	EventPlain
	// EventOwnEnter: we entered the room; Members are those present.
	EventOwnEnter
	// EventOwnLeave: we left, were kicked, or lost the connection.
	EventOwnLeave
	// EventOthers: others entered (Enter) and/or left (Leave).
	EventOthers
	// EventIdentity: Sender announced identity key Key, and device label
	// Label (on entering, or later in a presence update that changes
	// either; also for ourselves, just after our own enter). The channel
	// reports announcements; it does not judge them: the trust layer does.
	EventIdentity
)

func (k EventKind) String() string {
	switch k {
	case EventPacket:
		return "packet"
	case EventPlain:
		return "plain"
	case EventOwnEnter:
		return "own-enter"
	case EventOwnLeave:
		return "own-leave"
	case EventOthers:
		return "others"
	case EventIdentity:
		return "identity"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one thing that happened in the room, in the server's order.
type Event struct {
	Kind EventKind
	// Sender is the participant id of a packet's, plain message's or
	// identity announcement's sender.
	Sender string
	// Body is the wire string of a packet, or the text of a plain message.
	Body string
	// Enter and Leave are the others entering and leaving (EventOthers).
	Enter, Leave []string
	// Members is the channel membership at this event's position (see the
	// package documentation), including us while we are in the room.
	Members []string
	// Key is the announced identity key (EventIdentity).
	Key crypto.PublicKey
	// Label is the device label announced with Key (EventIdentity), only
	// when signed by Key; empty otherwise. Text from another member: show
	// it as theirs, sanitised.
	Label string
	// Err says why we are out of the room (EventOwnLeave): nil when we left
	// on request; otherwise a lost connection, a kick, a ban... Channels
	// report what they know; the session shows it and does not branch on
	// it (a leave is a leave: rule LI of docs/SESSION.md, "Channel rules").
	Err error
}

// GroupChannel is a server-ordered room. Implementations are safe for
// concurrent use; Events must be drained by its one consumer (the session's
// event loop), or the channel stalls.
type GroupChannel interface {
	// Self returns our participant id in this room. It never changes for
	// the life of the channel (a reconnecting channel keeps its full JID).
	Self() string
	// Events returns the stream of events. It is closed by Close.
	Events() <-chan Event
	// Enter enters the room. It returns once EventOwnEnter has been queued,
	// or with an error. Entering while in the room is a no-op.
	Enter(ctx context.Context) error
	// Leave leaves the room. It returns once EventOwnLeave has been queued.
	Leave(ctx context.Context) error
	// Send broadcasts a wire string to the room, best effort. Its echo, if
	// it comes, is an EventPacket from Self.
	Send(ctx context.Context, wire string) error
	// Kick asks the server to remove members, telling them reason (a
	// short sentence; XMPP rooms pass it on in the removal). It may fail
	// (no moderator rights) or take effect later; kicking someone already
	// gone is a no-op.
	Kick(ctx context.Context, members []string, reason string) error
	// Close leaves the room if needed and releases the channel.
	Close() error
}
