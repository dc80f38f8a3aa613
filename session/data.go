package session

import (
	"fmt"
	"slices"

	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/subsession"
	"github.com/mpenc/mpenc/internal/wire"
)

// sessionMembersIf returns sessionMembers when synced, else nil.
func (c *Core) sessionMembersIf(synced bool) []string {
	if !synced {
		return nil
	}
	return c.sessionMembers()
}

// onData tries a data packet on the current, then the previous subsessions
// (SIDKEY_HINT, signature, decryption); then on the verifiers of finished
// ones (a late packet, dropped); none: the trial buffer.
func (c *Core) onData(p *wire.DataPacket, w, sender string) {
	key := failedPacket{sender: sender, id: p.ID()}
	if c.unopened.has(key) {
		return // a copy of a packet nothing here opened: no crypto twice
	}
	if c.tryData(p, w, sender) || c.lateForRetired(p, sender) {
		return
	}
	c.unopened.add(key)
	if c.couldBeOurs(sender) {
		c.trial.Add(p, w, sender, c.now)
		c.drainTrial()
	}
	// Otherwise it belongs to a subsession we are not part of (the old
	// one of members who just included us, the new one of members who
	// are excluding us, another group in the room): not ours to read, and
	// nothing is wrong.
}

// couldBeOurs reports whether an undecryptable data packet from sender may
// be meant for us, so that it waits in the trial buffer (and is reported
// if it never opens): the sender is in our current subsession, we are not
// being excluded or parting, and the sender is not finishing an older
// subsession we were not part of.
func (c *Core) couldBeOurs(sender string) bool {
	if c.cur == nil || c.isExcluded() || c.parting() || !slices.Contains(c.cur.base.Members(), sender) {
		return false
	}
	if until, ok := c.oldSenders[sender]; ok {
		if c.now.Before(until) {
			return false
		}
		delete(c.oldSenders, sender)
	}
	return true
}

// tryData offers a packet to our subsessions; false if none takes it.
func (c *Core) tryData(p *wire.DataPacket, w, sender string) bool {
	for _, s := range c.subs() {
		if s.finished {
			continue
		}
		r := s.base.Receive(p, w, sender, c.now)
		c.drain(s)
		if r.Outcome != subsession.NotMine {
			return true
		}
	}
	return false
}

// retryTrial offers the trial buffer's packets again (a greeting completed
// or was cleared).
func (c *Core) retryTrial() {
	c.trial.Retry(func(pd subsession.Pending) bool { return c.tryData(pd.Packet, pd.Wire, pd.Sender) })
	c.drainTrial()
}

func (c *Core) drainTrial() {
	for _, n := range c.trial.TakeNotices() {
		c.limited(Notice{Kind: NotDecrypted, Author: n.Author})
	}
}

// drain collects a subsession's output: packets to send, notices to
// translate.
func (c *Core) drain(s *sub) {
	out := s.base.TakeOutput()
	for _, w := range out.Packets {
		c.send(w)
	}
	c.translate(s, out.Notices)
}

// drainNotices is drain for a subsession being dropped: its notices still
// matter, its packets are not sent.
func (c *Core) drainNotices(s *sub) {
	c.translate(s, s.base.TakeOutput().Notices)
}

// drainLeaving is drainNotices when we leave the room: the final
// NotFullyAcked of others' messages are dropped (whether they reached the
// others is no longer ours to know or to worry about); ours are kept.
func (c *Core) drainLeaving(s *sub) {
	ns := s.base.TakeOutput().Notices
	keep := ns[:0]
	for _, n := range ns {
		if n.Kind == subsession.MsgNotFullyAcked && n.Author != c.cfg.Self {
			continue
		}
		keep = append(keep, n)
	}
	c.translate(s, keep)
}

// translate turns a subsession's notices into session notices and acts on
// those that concern the session (leave intents, shutdowns).
func (c *Core) translate(s *sub, ns []subsession.Notice) {
	members := s.base.Members()
	for _, n := range ns {
		switch n.Kind {
		case subsession.MsgAccepted:
			if n.Body == causal.KindChainCheck && !n.Own {
				c.chainCheckReceived(s, n.Author, n.Chain)
			}
			ready, ok, err := c.log.Append(s.ref, n.Index, n.Text)
			if err != nil {
				c.setFatal(fmt.Errorf("session: message log: %w", err))
				continue
			}
			if !ok {
				continue // acks, flushes, FINs: not shown
			}
			msg := Notice{Kind: Message, ID: n.ID, Author: n.Author, Text: n.Text, Own: n.Own,
				Members: members, LogParents: ready.ParIdx, AfterOwnFin: n.AfterOwnFin, Late: n.Late}
			if h, ok := c.sentAs[n.ID]; ok && n.Own {
				msg.Replaces = h
				delete(c.sentAs, n.ID)
			}
			c.notify(msg)
		case subsession.MsgFullyAcked:
			if n.Body == causal.KindPayload {
				c.notify(Notice{Kind: FullyAcked, ID: n.ID, Author: n.Author})
			}
		case subsession.MsgNotFullyAcked:
			// Only Payloads' acknowledgement is the user's business (the
			// reference forwards only these too); FINs, flushes and
			// heartbeats have their own consequences (PART_FAILED, expiry).
			// Members the group excluded since are gone on purpose too:
			// their silence is information, not an alarm.
			if n.Body == causal.KindPayload {
				absent := n.Absent || len(s.excluded) > 0 && !slices.ContainsFunc(n.Members, func(m string) bool { return !s.excluded[m] })
				c.notify(Notice{Kind: NotFullyAcked, ID: n.ID, Author: n.Author, Members: n.Members, Final: n.Final, Absent: absent})
			}
		case subsession.MsgNotAccepted:
			c.notify(Notice{Kind: Waiting, ID: n.ID, Author: n.Author, Missing: n.Missing})
		case subsession.MsgDropped, subsession.BufferOverflow:
			c.notify(Notice{Kind: Dropped, ID: n.ID, Author: n.Author})
		case subsession.SecurityWarning:
			w := Notice{Kind: SecurityWarning, ID: n.ID, Author: n.Author, Err: n.Err, Terminal: n.Terminal}
			if n.Terminal {
				c.notify(w)
			} else {
				c.limited(w) // a forged or malformed packet's doing: rate-limited per sender
			}
		case subsession.LeaveIntent:
			// The author wants to leave the session: exclude it (unless it
			// is us, or no longer a member).
			if s == c.cur && n.Author != c.cfg.Self && slices.Contains(members, n.Author) {
				c.taskExclude.add(n.Author)
			}
		case subsession.MemberExpired, subsession.MemberPresent, subsession.MemberAbsent:
			// Presence is a property of the current subsession: one that is
			// shutting down may hold members who moved on (excluded, then
			// back in the room) and will never answer in it again.
			if s != c.cur {
				continue
			}
			kind := map[subsession.NoticeKind]NoticeKind{subsession.MemberExpired: MemberExpired,
				subsession.MemberPresent: MemberPresent, subsession.MemberAbsent: MemberAbsent}[n.Kind]
			c.notify(Notice{Kind: kind, Author: n.Author})
		case subsession.FinComplete:
			s.finished = true
			c.retire(s)
			c.onFinComplete(s, n.State)
		case subsession.NotDecrypted:
			c.limited(Notice{Kind: NotDecrypted, Author: n.Author})
		}
	}
}

// heads returns the current subsession's heads, as LATEST_PM.
func (c *Core) heads() []wire.MessageID {
	if c.cur == nil {
		return nil
	}
	var out []wire.MessageID
	for _, h := range c.cur.base.Heads() {
		out = append(out, wire.MessageID(h))
	}
	return out
}
