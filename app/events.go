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
	// history before it is delivered: a message, an unencrypted message
	// or a membership change, or a message delivered earlier again, with
	// its new acknowledgement state (same Seq and ID: replace its line).
	// App.History reads the same entries back after a restart.
	EventEntry EventKind = iota + 1
	// EventNotice: a session notice that is not history (Notice):
	// progress of membership operations, state changes, newcomers,
	// warnings... Message, Plain, Membership, FullyAcked and NotFullyAcked
	// notices come as EventEntry instead.
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
	// EventInvitation: someone invites us to another room (Invitation),
	// received on the connection of Room. Nothing is joined by itself.
	EventInvitation
)

// Event is something that happened in a room, for the user interface.
// Which fields are set depends on Kind.
type Event struct {
	Room     string // the room's bare JID
	Kind     EventKind
	Entry    Entry
	Notice   session.Notice
	Decision trust.Decision
	Text     string
	Err      error
	// Invitation is an invitation to a room we are not in: an XEP-0045
	// mediated one (sent by the room, which says who invites) or an
	// XEP-0249 direct one. Only the server vouches for the sender (Room
	// of a mediated one, From of a direct one); the inviter a mediated
	// one names is that room's claim, and Reason is free text: sanitise
	// both before showing them. Join takes its Room.
	Invitation xmpp.Invitation
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
