package app

import (
	"context"
	"fmt"
	"time"

	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/store"
	"github.com/mpenc/mpenc/transcript"
)

// Entry is one line of a room's conversation, as the history keeps it: an
// encrypted message, a message typed while out of the session and waiting
// to be sent, an unencrypted one, or a change of the session's
// membership. The App makes entries from session notices as they arrive
// and records them before delivering them (EventEntry, and again each
// time a message's acknowledgement or delivery state changes); after a
// restart [App.History] reads the same entries back. A client that draws
// both through one function shows a conversation the same way live and
// after a restart.
type Entry struct {
	// Seq is the entry's position in the history: the cursor for
	// App.History. Zero if it could not be recorded.
	Seq int64
	// Kind is the notice the entry was made from: session.Message,
	// session.Queued (our message typed while out of the session, after a
	// lost connection or a server restart: it waits until Until for the
	// members it is meant for, Members, and becomes a Message when sent),
	// session.Plain (a message sent without encryption by a client that
	// does not speak mpENC: the server can read and forge it, so always
	// show it marked) or session.Membership.
	Kind session.NoticeKind
	// ID is the message id (session.Message), or the handle Room.Send
	// returned for a queued message (session.Queued).
	ID transcript.ID
	// Replaces is, on a Message that was queued, the ID of its Queued
	// entry: that line is gone (it was recorded in the history where it was
	// typed; the message is recorded, and drawn, where it was sent).
	Replaces transcript.ID
	// Until is when a Queued entry stops waiting: it is then sent to
	// whoever is back, or reported not sent.
	Until  time.Time
	Author string // participant id; empty for a membership change
	// AuthorLabel is the label the author's device announced, signed by
	// its key, when the entry was made ("" if none): its owner's words,
	// sanitise them.
	AuthorLabel string
	Text        string // message text: display it, never log it
	At          time.Time
	Own         bool
	// Members: who a message was sent to (its subsession's members), who
	// a queued one is meant for (the others of our last subsession), or
	// who remains after a membership change; Include and Exclude: who
	// joined and who left.
	Members          []string
	Include, Exclude []string
	// LogParents: how many messages above each of the message's log
	// parents is ({1}: the one just above; anything else deserves a mark).
	LogParents []int
	// Ack is the latest acknowledgement notice about a message: zero
	// while it waits, session.FullyAcked, or session.NotFullyAcked:
	// NotAcked did not acknowledge it in time (a warning, unless Absent:
	// they all left on purpose); Final: it can no longer be.
	//
	// Acknowledged by everyone means by everyone it was sent to: a
	// message with NotDelivered was not sent to them, and is never "seen
	// by everyone".
	Ack      session.NoticeKind
	NotAcked []string
	Final    bool
	Absent   bool
	// NotDelivered: on a Message, the members it was meant for that it
	// did not reach (queued while we were out of the session, it was sent
	// at the end of its wait without them); on a Queued entry, everyone
	// it was meant for: it was never sent, and the user may send it again
	// (Room.Send).
	NotDelivered []string
	// Unconfirmed is set on a message read from the history that was
	// still waiting for acknowledgements when its session ended (an
	// earlier run): nobody will ever confirm it; and on a Queued entry
	// that was still waiting: it was never sent.
	Unconfirmed bool
	// Archived is set on a Message this device did not see in its room:
	// another of your devices saw it and wrote it to your history
	// service, and this device fetched it (App.EnableHistory). Show it as
	// such; its acknowledgement state is not known here.
	Archived bool
	// Cut, on a Plain entry, is how many bytes of the text were not kept:
	// the history keeps the first 4 KiB of an unencrypted message (live
	// and after a restart alike: the entry is what the store recorded).
	// Show that it was cut.
	Cut int
}

// Entry kinds and acknowledgement states as store.Entry spells them.
var (
	storeKinds = map[session.NoticeKind]string{session.Message: "message", session.Plain: "plain", session.Membership: "membership",
		session.Queued: "queued"}
	storeAcks = map[session.NoticeKind]string{0: "pending", session.FullyAcked: "acked", session.NotFullyAcked: "not-acked"}
)

func lookup(m map[session.NoticeKind]string, name string) (session.NoticeKind, bool) {
	for k, v := range m {
		if v == name {
			return k, true
		}
	}
	return 0, false
}

// entryOf returns the entry a Message, Queued, Plain or Membership notice
// makes.
func entryOf(n session.Notice) (Entry, bool) {
	switch n.Kind {
	case session.Message:
		return Entry{Kind: n.Kind, ID: n.ID, Author: n.Author, Text: n.Text, At: n.At, Own: n.Own,
			Members: n.Members, LogParents: n.LogParents, Replaces: n.Replaces}, true
	case session.Queued:
		return Entry{Kind: n.Kind, ID: n.ID, Author: n.Author, Text: n.Text, At: n.At, Own: true,
			Members: n.Members, Until: n.Until}, true
	case session.Plain:
		return Entry{Kind: n.Kind, Author: n.Author, Text: n.Text, At: n.At}, true
	case session.Membership:
		return Entry{Kind: n.Kind, At: n.At, Members: n.Remain, Include: n.Include, Exclude: n.Exclude,
			LogParents: n.LogParents}, true
	}
	return Entry{}, false
}

// withAck returns e with the acknowledgement state a FullyAcked or
// NotFullyAcked notice reports.
func withAck(e Entry, n session.Notice) Entry {
	e.Ack = n.Kind
	e.NotAcked, e.Final, e.Absent = nil, false, false
	if n.Kind == session.NotFullyAcked {
		e.NotAcked, e.Final, e.Absent = n.Members, n.Final, n.Absent
	}
	return e
}

func (e Entry) toStore() store.Entry {
	kind := storeKinds[e.Kind]
	if e.Archived {
		kind = "archived"
	}
	return store.Entry{Seq: e.Seq, Kind: kind, ID: e.ID, Replaces: e.Replaces, Until: e.Until,
		Author: e.Author, AuthorLabel: e.AuthorLabel, Text: e.Text, At: e.At, Own: e.Own, Members: e.Members, Include: e.Include, Exclude: e.Exclude,
		LogParents: e.LogParents, Ack: storeAcks[e.Ack], NotAcked: e.NotAcked, Final: e.Final, Absent: e.Absent,
		NotDelivered: e.NotDelivered, Cut: e.Cut}
}

func fromStore(s store.Entry) (Entry, error) {
	archived := s.Kind == "archived"
	if archived {
		s.Kind = storeKinds[session.Message]
	}
	kind, ok := lookup(storeKinds, s.Kind)
	ack, ok2 := lookup(storeAcks, s.Ack)
	if !ok || !ok2 {
		return Entry{}, fmt.Errorf("app: history entry %d: kind %q, ack %q", s.Seq, s.Kind, s.Ack)
	}
	return Entry{Seq: s.Seq, Kind: kind, ID: s.ID, Until: s.Until, Author: s.Author, AuthorLabel: s.AuthorLabel, Text: s.Text, At: s.At, Own: s.Own,
		Members: s.Members, Include: s.Include, Exclude: s.Exclude, LogParents: s.LogParents,
		Ack: ack, NotAcked: s.NotAcked, Final: s.Final, Absent: s.Absent, NotDelivered: s.NotDelivered, Cut: s.Cut, Archived: archived}, nil
}

// record stores e in the room's history and returns it as stored, which
// is what a restart reads back. If it cannot be stored, it is logged and
// returned as it is (Seq zero): shown all the same.
func (r *Room) record(e Entry) Entry {
	a := r.app
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := a.st.Append(ctx, a.acct.ID, r.jid, e.toStore())
	if err == nil {
		var got Entry
		if got, err = fromStore(s); err == nil {
			return got
		}
	}
	a.log().Error("history not recorded", "room", r.jid, "kind", e.Kind.String(), "err", err)
	return e
}

// isHistory reports whether notices of kind k make or change history
// entries (and are delivered as EventEntry, never as EventNotice).
func isHistory(k session.NoticeKind) bool {
	switch k {
	case session.Message, session.Queued, session.Plain, session.Membership, session.FullyAcked, session.NotFullyAcked,
		session.NotDelivered:
		return true
	}
	return false
}

// entry records what a history notice adds or changes and returns the
// entry to deliver: a new line (Message, Queued, Plain, Membership; a
// Message with Replaces instead of its Queued line), or a line again with
// its new acknowledgement or delivery state (FullyAcked, NotFullyAcked,
// NotDelivered). ok is false when there is nothing to deliver: a message
// delivered already, or a notice about a message this session did not
// show.
func (r *Room) entry(n session.Notice) (e Entry, ok bool) {
	switch n.Kind {
	case session.Message, session.Queued, session.Plain, session.Membership:
		if n.Kind == session.Message && r.isWaiting(n.ID) {
			return Entry{}, false // the same message twice: one line
		}
		e, _ = entryOf(n)
		if n.Kind == session.Membership {
			r.mu.Lock()
			parting := r.state == session.StateParting
			r.mu.Unlock()
			if parting && len(e.Members) == 1 && e.Members[0] == r.self && len(e.Exclude) > 0 && len(e.Include) == 0 {
				// Our own part: the session reports it from our last
				// subsession, where we alone remain, which reads as if
				// the others had left. Record what happened: we left,
				// they go on (the client says "you left the session").
				e.Members, e.Exclude = e.Exclude, []string{r.self}
			}
		}
		if e.Author != "" {
			r.mu.Lock()
			e.AuthorLabel = r.labels[e.Author]
			r.mu.Unlock()
			if e.Author == r.self {
				e.AuthorLabel = r.app.cfg.Label
			}
		}
		e = r.record(e)
		e.Replaces = n.Replaces // not stored: it only tells the client which line this one takes over
	case session.FullyAcked, session.NotFullyAcked:
		r.mu.Lock()
		prev, known := r.waiting[n.ID]
		r.mu.Unlock()
		if !known {
			return Entry{}, false
		}
		e = r.record(withAck(prev, n))
	case session.NotDelivered:
		r.mu.Lock()
		prev, known := r.waiting[n.ID]
		if !known {
			prev, known = r.queued[n.ID] // never sent
		}
		r.mu.Unlock()
		if !known || len(n.Members) == 0 {
			return Entry{}, false
		}
		prev.NotDelivered = n.Members
		e = r.record(prev)
	default:
		return Entry{}, false
	}
	r.mu.Lock()
	switch e.Kind {
	case session.Message:
		delete(r.queued, n.Replaces)
		if e.Ack == session.FullyAcked {
			delete(r.waiting, e.ID)
		} else {
			r.waiting[e.ID] = e
		}
	case session.Queued:
		if len(e.NotDelivered) > 0 {
			delete(r.queued, e.ID)
		} else {
			r.queued[e.ID] = e
		}
	}
	r.mu.Unlock()
	return e, true
}
