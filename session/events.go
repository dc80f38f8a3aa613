package session

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/internal/subsession"
	"github.com/mpenc/mpenc/internal/wire"
)

// HandleEvent processes one channel event, to completion, at now
// (SESSION-RULES §3.2). Events must come in the channel's order.
func (c *Core) HandleEvent(ev channel.Event, now time.Time) {
	c.advance(now)
	c.tick() // timers due before this event fire first
	if c.fatal == nil || ev.Kind == channel.EventOwnLeave {
		switch ev.Kind {
		case channel.EventOwnEnter:
			c.onOwnEnter(ev)
		case channel.EventOwnLeave:
			c.onOwnLeave(ev)
		case channel.EventOthers:
			c.onOthers(ev)
		case channel.EventPacket:
			c.onPacket(ev)
		case channel.EventPlain:
			c.notify(Notice{Kind: Plain, Author: ev.Sender, Text: ev.Body})
		case channel.EventIdentity:
			// Identity announcements are the trust layer's business: a
			// directory that learns keys gets them now, in order.
			known := c.speaksMpENC(ev.Sender)
			c.announced.add(ev.Sender)
			if o, ok := c.cfg.Directory.(KeyObserver); ok {
				if err := o.ObserveKey(ev.Sender, ev.Key); err != nil {
					c.warn(ev.Sender, err)
				}
			}
			// A newcomer's key usually arrives just after its entry: now it
			// is known to speak mpENC, ask for its inclusion.
			if !known && ev.Sender != c.cfg.Self && c.so.Synced() && !c.cfg.AutoInclude &&
				slices.Contains(c.channel, ev.Sender) && !slices.Contains(c.Members(), ev.Sender) {
				c.notify(Notice{Kind: JoinRequest, Author: ev.Sender})
			}
		}
	}
	c.after()
}

// after runs what must follow every input: the idle tasks and the state.
func (c *Core) after() {
	c.handleTasks()
	c.updateState()
}

func (c *Core) setChannel(members []string) {
	c.channel = slices.Sorted(slices.Values(members))
	for _, s := range c.subs() {
		s.base.SetChannelMembers(c.channel)
		c.drain(s)
	}
}

// onOwnEnter: we entered the room. seniors := the members present; the
// oldest remaining member founds the session (seniority).
func (c *Core) onOwnEnter(ev channel.Event) {
	c.inChannel = true
	c.setChannel(ev.Members)
	c.seniors = set{}
	for _, m := range ev.Members {
		if m != c.cfg.Self {
			c.seniors.add(m)
		}
	}
	if !c.wantIn {
		// Entered without being asked (a reconnecting transport re-enters
		// by itself): the user still wants the session, so join again.
		c.wantIn = true
	}
	if c.joinOp == nil || c.joinOp.done {
		c.joinOp = c.newOp(OpJoin, nil)
	}
	c.joinDeadline = c.now.Add(c.joinWait(len(c.channel)))
	c.seniority()
}

// joinWait is how long a newcomer waits to be included: (2 + n)·(BC + 1 s),
// n the channel size (SESSION-RULES §3.5).
func (c *Core) joinWait(n int) time.Duration {
	return time.Duration(2+n) * (c.cfg.Timing.BC + time.Second)
}

// seniority: while unsynced with no senior left, found the session
// ourselves: SyncNew, solo (COsJ), and the join succeeds.
func (c *Core) seniority() {
	if c.so.Synced() || len(c.seniors) > 0 || !c.inChannel {
		return
	}
	if err := c.so.SyncNew(c.cfg.Rand); err != nil {
		c.setFatal(fmt.Errorf("session: randomness: %w", err))
		return
	}
	c.justSynced = true
	c.joinDeadline = time.Time{}
	c.settle(c.joinOp, nil)
	// Juniors present get rule ES (handleTasks includes them if AutoInclude).
	if !c.cfg.AutoInclude {
		for _, m := range c.channel {
			if m != c.cfg.Self {
				c.notify(Notice{Kind: JoinRequest, Author: m})
			}
		}
	}
}

// onOwnLeave: rule LI. We may have missed packets: reset everything.
func (c *Core) onOwnLeave(ev channel.Event) {
	hadSession := c.cur != nil
	oldMembers := c.Members()
	if c.op != nil {
		if c.op.g.Excluded() {
			c.endOp(nil, true) // "ignored: we left during a greeting that excluded us; assume it succeeded"
		} else {
			c.endOp(fmt.Errorf("%w: we left the room", ErrAborted), false)
		}
	}
	c.settleProposal(fmt.Errorf("%w: we left the room", ErrAborted))
	c.settle(c.userOp, fmt.Errorf("%w: we left the room", ErrAborted))
	excluded := !c.excludedAt.IsZero()
	// Out of the room first: stopping the subsessions runs their shutdown
	// hooks, which must not ask to kick or leave.
	c.inChannel = false
	c.channel = nil
	for _, s := range c.subs() {
		s.base.Stop(c.now)
		c.drainLeaving(s)
	}
	c.cur, c.prevs = nil, nil
	c.replaceState(nil)
	c.retired = nil                                             // the room's traffic since we left never reaches us
	c.rejected, c.diverged, c.positionsWarned = nil, false, nil // a new chain starts when we are back
	c.trial = subsession.NewTrialBuffer(c.cfg.Timing)
	c.oldSenders = map[string]time.Time{}
	c.so.Clear()
	c.seniors, c.taskExclude, c.taskLeave = set{}, set{}, set{}
	c.justSynced = false
	c.excludedAt, c.leaveAt, c.excludedDone = time.Time{}, time.Time{}, false
	c.inChannel = false
	c.channel = nil
	if hadSession {
		var others []string
		for _, m := range oldMembers {
			if m != c.cfg.Self {
				others = append(others, m)
			}
		}
		c.notify(Notice{Kind: Membership, Remain: []string{c.cfg.Self}, Exclude: others})
	}
	switch {
	case c.parting || c.partOp != nil && !c.partOp.done:
		c.parting = false
		c.wantIn = false
		c.settle(c.partOp, nil)
		c.lastOutcome = StateParted
	case c.joinOp != nil && !c.joinOp.done && c.wantIn:
		// Kicked while joining (rules EO, EAL): re-enter after a random
		// delay, a few times (SESSION-RULES §3.5).
		if c.rejoins < c.cfg.MaxRejoins {
			c.rejoins++
			n := len(ev.Members)
			u := 0.5 + 0.25*c.randFloat()
			c.reenterAt = c.now.Add(time.Duration(u * float64(c.joinWait(n))))
		} else {
			c.joinFailed(ErrJoinTimeout)
		}
	case excluded:
		// Kicked after an operation excluded us: that is its expected end.
		c.wantIn = false
	case c.wantIn && hadSession:
		// Disconnected or kicked out of a running session: the transport
		// may re-enter; when it does, we join again. Warn about the gap.
		c.notify(Notice{Kind: Gap, Err: ev.Err})
	}
}

// EnterFailed reports that the channel could not enter the room for the
// enter action numbered seq (the transport's Enter returned err): a join
// waiting for it fails at once with ErrEnterFailed, instead of waiting for
// an enter event that will never come. A failure of an older enter than
// the latest we asked for is ignored.
func (c *Core) EnterFailed(seq uint64, err error, now time.Time) {
	c.advance(now)
	defer c.after()
	if seq != c.enterSeq || c.inChannel || !c.wantIn {
		return // superseded, entered after all, or nobody wants in any more
	}
	c.joinFailed(fmt.Errorf("%w: %w", ErrEnterFailed, err))
}

// joinFailed ends a join that cannot succeed, with reason.
func (c *Core) joinFailed(reason error) {
	c.wantIn = false
	c.lastOutcome = StateJoinFailed
	c.settle(c.joinOp, reason)
	c.reenterAt, c.joinDeadline = time.Time{}, time.Time{}
	if c.inChannel {
		c.leaveChannel()
	}
}

// onOthers: others left and/or entered. Leaves first (SESSION-RULES §3.2).
func (c *Core) onOthers(ev channel.Event) {
	c.setChannel(ev.Members)
	if len(ev.Leave) > 0 {
		for _, m := range ev.Leave {
			c.notify(Notice{Kind: ChannelLeave, Author: m})
		}
		c.seniors.del(ev.Leave...)
		c.announced.del(ev.Leave...)
		c.seniority()
		c.ruleLOI(ev)
		c.taskLeave.del(ev.Leave...)
		c.ruleLS(ev.Leave)
	}
	for _, m := range ev.Enter {
		c.notify(Notice{Kind: ChannelEnter, Author: m})
		c.onEnter(m)
	}
}

// ruleLOI: members of the running operation left: it cannot complete. The
// leave is at one position of the order for everyone, so everyone ends the
// operation there with the leave pseudo-packet.
func (c *Core) ruleLOI(ev channel.Event) {
	if c.op == nil || !c.so.Ongoing() {
		return
	}
	hit := false
	for _, m := range ev.Leave {
		if slices.Contains(c.op.members, m) {
			hit = true
		}
	}
	if !hit {
		return
	}
	if _, err := c.so.AcceptLeave(ev.Leave, ev.Members); err != nil {
		return
	}
	c.endOp(fmt.Errorf("%w: %v left the room during it", ErrAborted, ev.Leave), false)
	c.statePosition()
}

// ruleLS: a session member left outside (or right after) an operation:
// propose to exclude it (LS, LOX).
func (c *Core) ruleLS(leavers []string) {
	members := c.Members()
	for _, m := range leavers {
		if m != c.cfg.Self && slices.Contains(members, m) {
			c.taskExclude.add(m)
		}
	}
}

// onEnter applies EAL, EO and ES to one entrant.
func (c *Core) onEnter(m string) {
	switch {
	case c.taskExclude[m]:
		// EAL: it reset its state; it must be excluded before it rejoins.
		c.kick([]string{m})
	case c.op != nil && !slices.Contains(c.op.members, m):
		// EO: not in the pending membership; it may have synced on a
		// losing proposal.
		c.kick([]string{m})
	case !c.so.Synced():
		// D11: unsynced members ignore entries.
	case !c.cfg.AutoInclude && c.speaksMpENC(m):
		c.notify(Notice{Kind: JoinRequest, Author: m})
	}
	// With AutoInclude, handleTasks proposes the inclusion when idle.
}

// onPacket dispatches a packet event.
func (c *Core) onPacket(ev channel.Event) {
	if !wire.IsMpENC(ev.Body) {
		c.notify(Notice{Kind: Plain, Author: ev.Sender, Text: ev.Body})
		return
	}
	p, err := wire.DecodeWire(ev.Body)
	if err != nil {
		// Everything from the network is hostile: a packet that does not
		// decode is dropped, and the user told once per packet.
		c.warn(ev.Sender, fmt.Errorf("session: undecodable packet: %w", err))
		return
	}
	switch p := p.(type) {
	case *wire.GreetPacket:
		c.onGreet(p, ev)
	case *wire.DataPacket:
		c.onData(p, ev.Body, ev.Sender)
	case *wire.ErrorPacket:
		msg := string(p.Message)
		if len(msg) > 256 {
			msg = msg[:256]
		}
		c.warn(ev.Sender, fmt.Errorf("session: %s reports (%v): %q", p.Source, p.Severity, msg))
	case *wire.QueryPacket:
		// mpENC queries are not used in rooms: nothing to answer.
	}
}

var errSourceMismatch = errors.New("session: greeting packet whose SOURCE is not its sender")
