package causal

import (
	"fmt"

	"github.com/mpenc/mpenc/transcript"
)

// MaxMembers bounds the members of one subsession. It equals
// wire.MaxMembers, the cap on MEMBER and MESSAGE_PARENT repetitions, so that
// member indexes fit a byte.
const MaxMembers = 256

// Index is the position of a message in the accept order of one [Graph]:
// 0 for the first message accepted, 1 for the next, and so on. Indexes are
// stable and cost 4 bytes, so the graph and its users refer to messages by
// Index rather than by pointer or by ID.
type Index uint32

// Kind is what a message's body is, as far as ordering, acks and liveness
// care. The body codec (package message) maps the wire body types onto it:
// 0 Payload, 1 ExplicitAck [manual], 2 HeartBeat, 3 Consistency [close],
// and our addition 4 ChainCheck.
type Kind uint8

// Kinds of messages.
const (
	KindPayload   Kind = iota // body type 0: user content, the only kind the MessageLog shows
	KindAutoAck               // body type 1, [false]: automatic "delivered" ack
	KindManualAck             // body type 1, [true]: user's "read up to here"
	KindHeartBeat             // body type 2: decoded, never sent (docs/MESSAGE-LAYER.md §4.7)
	KindFlush                 // body type 3, [false]: "please ack now", also our heartbeat
	KindFin                   // body type 3, [true]: FIN, the author closes the subsession
	// KindChainCheck is our addition (body type 4): the author states the
	// ServerOrder position that created the subsession, so that members
	// can compare what the server showed them (docs/PROTOCOL.md §8;
	// docs/SESSION.md, "Server-order check").
	KindChainCheck
	numKinds
)

var kindNames = [numKinds]string{"Payload", "AutoAck", "ManualAck", "HeartBeat", "Flush", "Fin", "ChainCheck"}

// String returns the kind's name.
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Valid reports whether k is one of the defined kinds.
func (k Kind) Valid() bool { return k < numKinds }

// IsExplicitAck reports whether k is an ExplicitAck (automatic or manual).
// ExplicitAcks are never acked by anyone on purpose, never monitored and
// never shown in the MessageLog (docs/MESSAGE-LAYER.md §4.3).
func (k Kind) IsExplicitAck() bool { return k == KindAutoAck || k == KindManualAck }

// Monitored reports whether messages of kind k get a full-ack warning, an
// ack monitor and a resend monitor: every kind but ExplicitAck.
func (k Kind) Monitored() bool { return k.Valid() && !k.IsExplicitAck() }

// Message is a message offered to [Graph.Accept].
type Message struct {
	ID transcript.ID
	// Author is the member index of the author (members sorted bytewise).
	// The receiver learns it from the ephemeral key that verified the
	// packet's signature; readers are never on the wire and are always
	// every member but the author.
	Author int
	// Parents are the ids the author cited, in the order sent.
	Parents []transcript.ID
	Kind    Kind
}
