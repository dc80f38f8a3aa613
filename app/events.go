package app

import (
	"sync"

	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/trust"
)

// EventKind says what an Event carries.
type EventKind uint8

// Event kinds.
const (
	// EventNotice: a session notice (Notice), already recorded in the
	// history when it is history (messages, membership, acknowledgement).
	EventNotice EventKind = iota + 1
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

func (k EventKind) String() string {
	switch k {
	case EventNotice:
		return "notice"
	case EventDecision:
		return "decision"
	case EventJoined:
		return "joined"
	case EventInfo:
		return "info"
	case EventClosed:
		return "closed"
	case EventInvitation:
		return "invitation"
	}
	return "EventKind(?)"
}

// Event is something that happened in a room, for the user interface.
type Event struct {
	Room     string // the room's bare JID
	Kind     EventKind
	Notice   session.Notice
	Decision trust.Decision
	Text     string
	Err      error
	// Invitation is set for EventInvitation.
	Invitation Invitation
}

// Invitation is an invitation to a room we are not in: an XEP-0045
// mediated invitation (sent by the room, which says who invites) or an
// XEP-0249 direct one (sent by the inviter). Only the server vouches for
// the sender (Room of a mediated one, From of a direct one); the inviter
// a mediated one names is that sender's claim, and Reason is free text:
// sanitise both before showing them.
type Invitation struct {
	Room   string // the room's bare JID: what Join takes
	From   string // the inviter's bare JID; empty when the room did not say
	Reason string
	Direct bool
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
