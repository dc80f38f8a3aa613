package session

import (
	"slices"
	"time"

	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/subsession"
	"github.com/mpenc/mpenc/transcript"
)

// outbox is what the outbox owns: messages typed while we had no
// subsession to send them in (a lost connection, a server restart),
// waiting for the members they were meant for (docs/SESSION.md, "Messages
// typed while out of the session").
type outbox struct {
	queued []queuedMessage
	// lastReaders are the others of our last subsession: whom a message
	// typed while we are out of the session is meant for.
	lastReaders []string
	// sentAs maps the id of a queued message once sent to its handle,
	// until its Message notice carries it (Replaces).
	sentAs map[transcript.ID]transcript.ID
}

// queuedMessage is one message waiting in the outbox.
type queuedMessage struct {
	handle  transcript.ID // names it in notices until it is sent
	text    string
	readers []string // whom it is meant for
	until   time.Time
}

// maxQueued bounds the messages the outbox holds: a user typing into a
// room that never comes back is told, not buffered without end.
const maxQueued = 64

// canQueue reports whether a message typed now can wait for the session
// to re-form: we want to be in it, we had one, and the outbox has room.
func (c *Core) canQueue() bool {
	return c.stage.wantsIn() && c.cur == nil && len(c.lastReaders) > 0 && len(c.queued) < maxQueued
}

// enqueue keeps a message typed while out of the session, for the members
// of our last subsession, and tells the user.
func (c *Core) enqueue(text string) (transcript.ID, error) {
	var h transcript.ID
	if err := primitive.RandomBytes(c.cfg.Rand, h[:]); err != nil {
		return transcript.ID{}, err
	}
	q := queuedMessage{handle: h, text: text, readers: slices.Clone(c.lastReaders), until: c.now.Add(c.cfg.JoinWindow)}
	c.queued = append(c.queued, q)
	c.notify(Notice{Kind: Queued, ID: h, Text: text, Own: true, Author: c.cfg.Self, Members: q.readers, Until: q.until})
	return h, nil
}

// flushOutbox sends the queued messages whose readers are all members of
// the current subsession again, and, once a message's wait is over, sends
// it to whoever is there and reports whom it did not reach; with no
// subsession to send it in, it is reported as not delivered at all.
func (c *Core) flushOutbox() {
	if len(c.queued) == 0 {
		return
	}
	ready := c.cur != nil && c.cur.base.State() == subsession.Joined && !c.parting() && !c.isExcluded()
	var members []string
	if ready {
		members = c.cur.base.Members()
	}
	keep := c.queued[:0]
	for _, q := range c.queued {
		var missing []string
		for _, r := range q.readers {
			if !slices.Contains(members, r) {
				missing = append(missing, r)
			}
		}
		due := !c.now.Before(q.until)
		switch {
		case ready && (len(missing) == 0 || due):
			id, err := c.cur.base.SendPayload(q.text, c.now)
			if err != nil {
				c.notify(Notice{Kind: NotDelivered, ID: q.handle, Text: q.text, Members: q.readers, Err: err})
				continue
			}
			if c.sentAs == nil {
				c.sentAs = map[transcript.ID]transcript.ID{}
			}
			c.sentAs[id] = q.handle
			c.drain(c.cur)
			if len(missing) > 0 {
				c.notify(Notice{Kind: NotDelivered, ID: id, Members: missing})
			}
		case due:
			c.notify(Notice{Kind: NotDelivered, ID: q.handle, Text: q.text, Members: q.readers})
		default:
			keep = append(keep, q)
		}
	}
	clear(c.queued[len(keep):])
	c.queued = keep
}

// dropOutbox reports every queued message as not delivered: we will not
// be back in the session to send them (we part, or the join failed).
func (c *Core) dropOutbox() {
	for _, q := range c.queued {
		c.notify(Notice{Kind: NotDelivered, ID: q.handle, Text: q.text, Members: q.readers})
	}
	c.queued = nil
}

// outboxDeadline is when the first queued message stops waiting.
func (c *Core) outboxDeadline() (time.Time, bool) {
	var t time.Time
	for _, q := range c.queued {
		if t.IsZero() || q.until.Before(t) {
			t = q.until
		}
	}
	return t, !t.IsZero()
}
