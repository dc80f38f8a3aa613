package session

import (
	"fmt"
	"time"
)

// Tick fires everything due at now.
func (c *Core) Tick(now time.Time) {
	c.advance(now)
	c.tick()
	c.after()
}

// NextDeadline returns when Tick must be called next, if ever.
func (c *Core) NextDeadline() (time.Time, bool) {
	var t time.Time
	ok := false
	consider := func(d time.Time, has bool) {
		if has && !d.IsZero() && (!ok || d.Before(t)) {
			t, ok = d, true
		}
	}
	for _, s := range c.subs() {
		if !s.finished {
			consider(s.base.NextDeadline())
		}
	}
	consider(c.trial.NextDeadline())
	if c.joinPending() {
		consider(c.joinDeadline, true)
		if t := c.seniorsKnown(); len(c.seniors) > 0 && t.After(c.now) {
			consider(t, true) // seniors that do not speak mpENC stop counting then
		}
	}
	consider(c.reenterAt, true)
	consider(c.leaveAt, true)
	if c.op != nil && !c.op.abortSent {
		consider(c.op.abortAt, true)
	}
	if c.op != nil && c.op.prevMembers == nil {
		consider(c.op.started.Add(c.newcomerWait()), true)
	}
	if c.isExcluded() {
		consider(c.backstop(), true)
	}
	if c.proposal != nil {
		consider(c.proposal.sentAt.Add(c.echoWait()), true)
	}
	consider(c.outboxDeadline())
	consider(c.noiseDeadline())
	if c.cur != nil && c.cfg.RekeyAfter > 0 && !c.keyedAt.IsZero() {
		if t := c.keyedAt.Add(c.cfg.RekeyAfter); t.After(c.now) {
			consider(t, true) // a fresh START is due then
		}
	}
	for _, m := range c.channel {
		if p, ok := c.stalled[m]; ok && c.now.Before(p.until) {
			consider(p.until, true) // it may be proposed again then
		}
	}
	if c.cur != nil && c.cur.checked != nil && !c.cur.checkDone {
		consider(c.cur.checkDue, true)
	}
	return t, ok
}

func due(t, now time.Time) bool { return !t.IsZero() && !now.Before(t) }

// tick fires the core's own timers and the subsessions'.
func (c *Core) tick() {
	now := c.now
	for _, s := range c.subs() {
		if !s.finished {
			s.base.Tick(now)
			c.drain(s)
		}
	}
	c.trial.Tick(now)
	c.drainTrial()
	c.chainCheckDue()
	c.sumUpNoise(false)
	if c.op != nil && c.op.prevMembers == nil && due(c.op.started.Add(c.newcomerWait()), now) {
		// The operation that was to include us went nowhere (the others
		// aborted it without our seeing it, or it was one they never
		// accepted): back to waiting, as after a failed inclusion.
		c.endOp(fmt.Errorf("%w: the operation that was to include us stalled", ErrAborted), false)
	}
	// (After it: a join whose window ended while that operation ran fails.)
	c.seniority()
	if c.joinPending() && due(c.joinDeadline, now) {
		c.joinFailed(ErrJoinTimeout)
	}
	if due(c.reenterAt, now) {
		c.reenterAt = time.Time{}
		if c.stage == stageEntering {
			c.enterChannel()
		}
	}
	if due(c.leaveAt, now) {
		c.leaveAt = time.Time{}
		if c.stage.inRoom() {
			c.leaveChannel()
		}
	}
	if c.proposal != nil && due(c.proposal.sentAt.Add(c.echoWait()), now) {
		c.withdrawProposal()
	}
	if c.op != nil && !c.op.abortSent && due(c.op.abortAt, now) {
		c.sendAbort()
	}
	if c.isExcluded() && due(c.backstop(), now) {
		c.leaveAtBackstop() // excluded and never kicked (D17, docs/SESSION.md)
	}
}
