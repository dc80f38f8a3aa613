package app

import (
	"sync"

	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/trust"
)

// EventKind says what an Event carries.
type EventKind uint8

// Event kinds.
const (
	// EventEntry: a line of the conversation (Entry), recorded in the
	// history before it is delivered: a message, a queued message, an
	// unencrypted message or a membership change; or a line delivered
	// earlier again, with its new acknowledgement or delivery state
	// (same Seq and ID: replace its line); or a message that was queued
	// (Replaces: it takes the place of that line, with another Seq).
	// App.History reads the same entries back after a restart.
	EventEntry EventKind = iota + 1
	// EventNotice: a session notice that is not history (Notice):
	// progress of membership operations, state changes, newcomers,
	// kicks, warnings... Message, Queued, Plain, Membership, FullyAcked,
	// NotFullyAcked and NotDelivered notices come as EventEntry instead.
	// On a Gap notice, Err is set when the room removed us for good (an
	// EventOut follows); nil, the channel is getting us back in.
	EventNotice
	// EventDecision: the trust store's decision about a key announced in
	// the room (Decision): a new key, a new device, a changed or a
	// distrusted key (Decision.Warning).
	EventDecision
	// EventJoined: the background join finished; Err says why it failed.
	EventJoined
	// EventInfo: something the user asked for progressed (Text), such as
	// a remembered invitation being carried out.
	EventInfo
	// EventClosed: the room was left and its connection closed; Err says
	// why if it was not on request.
	EventClosed
	// EventInvitation: someone invites us to a room we are not in
	// (Invitation); Room is empty. Nothing is joined by itself.
	EventInvitation
	// EventOut: we are out of the room, and nothing brings us back by
	// itself until App.Join is called for it: the room removed us
	// (kicked, banned, the room destroyed), the join failed (nobody
	// included us in time), the session stopped on an error, or it left
	// the room when the others excluded us. Err says why (the room's
	// reason is the server's text: show it as theirs). Not sent when we
	// left on request, nor for a lost connection or a server restart,
	// after which the room is entered and the session joined again by
	// themselves (a Gap notice says so).
	EventOut
	// EventDevice: a payload (Payload) from another device (Device, its
	// full JID) over the device channel (App.SendToDevice), decrypted
	// and authenticated for that device's identity key; Room is empty.
	// Whether that key is trusted is the trust store's question.
	EventDevice
	// EventTrust: the account's trust store recorded a decision (Trust):
	// the user's (made through App.Trust), one a trust message from
	// another device brought (Trust.By is then the vouching device's
	// key, Trust.Member its full JID), or TOAKAFA's. Trust.String words
	// it. A key no longer trusted may still be in a session: the client
	// excludes it. Room is empty.
	EventTrust
	// EventVerify: a live verification with Device (App.VerifyDevice, or
	// the other device's request) moved on. Words, when set, are the
	// words to compare with the other screen (then ConfirmWords); Err,
	// when set, says why it failed (Warning: a mismatch, and the
	// device's key is now distrusted); otherwise Text says what
	// happened ("verified: …" at the end). Room is empty.
	EventVerify
	// EventPairing: KeySync (App.PairDevices) moved on. Words, when set,
	// are the words to compare with Device's screen (then
	// AnswerPairing); Text says what happened; Warning marks a
	// rejection. Room is empty.
	EventPairing
	// EventHistory: the own archive (App.EnableHistory) moved on: Text
	// says what was read or done; Warning marks a problem with what the
	// history service handed back (pages withheld, reordered, replayed
	// or tampered with) or a read that failed. Room is empty; fetched
	// messages come as EventEntry (Entry.Archived).
	EventHistory
)

// Event is something that happened in a room, for the user interface.
// Which fields are set depends on Kind.
type Event struct {
	Room     string // the room's bare JID
	Kind     EventKind
	Entry    Entry
	Notice   session.Notice
	Decision trust.Decision
	Trust    trust.Event // EventTrust's decision
	// Label is, for EventDecision, the label the member's device
	// announced with the key, signed by it ("" if none): its owner's
	// words, sanitise them.
	Label string
	Text  string
	Err   error
	// Invitation is an invitation to a room we are not in: an XEP-0045
	// mediated one (sent by the room, which says who invites) or an
	// XEP-0249 direct one. Only the server vouches for the sender (Room
	// of a mediated one, From of a direct one); the inviter a mediated
	// one names is that room's claim, and Reason is free text: sanitise
	// both before showing them. Join takes its Room.
	Invitation xmpp.Invitation
	// Device and Payload: for EventDevice, the sending device's full JID
	// and what it sent (its owner's bytes: treat them as untrusted input).
	Device  string
	Payload []byte
	// Words and Warning: for EventVerify and EventPairing; Warning for
	// EventHistory too.
	Words   []string
	Warning bool
	// Rooms: for EventPairing, rooms the device group's devices join at
	// start that this device does not (bare JIDs from another of your
	// devices): the client joins them.
	Rooms []string
}

// queue is an unbounded FIFO of events pumped into an unbuffered channel,
// so that no room ever waits for a slow user interface.
type queue struct {
	mu     sync.Mutex
	items  []Event
	wake   chan struct{}
	closed bool
	out    chan Event
	done   chan struct{}
}

func newQueue() *queue {
	q := &queue{wake: make(chan struct{}, 1), out: make(chan Event), done: make(chan struct{})}
	go q.pump()
	return q
}

func (q *queue) push(ev Event) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close delivers what is queued (while someone reads), then closes out.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) pump() {
	defer close(q.out)
	for {
		q.mu.Lock()
		batch, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		for _, ev := range batch {
			q.out <- ev
		}
		if closed && len(batch) == 0 {
			return
		}
		if len(batch) == 0 {
			<-q.wake
		}
	}
}
