package session

import (
	"fmt"
	"slices"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/internal/subsession"
)

// stage is where this member stands on its own side: in or out of the room,
// in or out of the session, and what it is trying to do. What the group
// decided about us is the other half ([exclusion]). The transitions are the
// table [stageMoves]; every change goes through [Core.moveTo].
type stage uint8

const (
	// stageOutside: not in the room and not trying to be. outcome says how
	// the last stay ended (PARTED, PART_FAILED or JOIN_FAILED).
	stageOutside stage = iota // outside
	// stageEntering: not in the room, trying to be: an enter is under way
	// or scheduled (reenterAt, after a kick while joining), or the
	// transport re-enters by itself after losing the room.
	stageEntering // entering
	// stageWaiting: in the room, not in the session yet: waiting to be
	// included (until joinDeadline), or synced to the chain by an
	// operation that includes us and has not completed.
	stageWaiting // waiting
	// stageAlone: in the room and the session's only member, holding the
	// chain without a subsession: we founded it (nobody was there), or
	// stayed as its last member (Config.StayIfLastMember). The internal
	// state COsJ of docs/SESSION.md.
	stageAlone // alone
	// stageMember: in the session with others: a member of the current
	// subsession.
	stageMember // member
	// stageEnded: an operation left us the session's only member; the
	// previous subsession finishes its shutdown, then we leave the room
	// (or stay alone, with StayIfLastMember).
	stageEnded // ended
	// stageParting: the user parts: our leave intent is out (a double FIN
	// in the current subsession), our subsessions finish, then we leave
	// the room.
	stageParting // parting
	// stageLeaving: the session is over for us (a join that failed, the
	// exclusion backstop, the end of the session, a fatal error) and we
	// asked the channel to leave the room.
	stageLeaving // leaving
)

// inRoom reports whether the stage is one of being in the room.
func (s stage) inRoom() bool { return s != stageOutside && s != stageEntering }

// wantsIn reports whether the user wants to be in the session at this
// stage: an own enter or leave of the room is then a reconnection to
// follow, not the end of a stay.
func (s stage) wantsIn() bool {
	switch s {
	case stageEntering, stageWaiting, stageAlone, stageMember, stageEnded:
		return true
	}
	return false
}

// stageMoves lists, for each stage, the stages it may move to. Moving to
// the same stage is always allowed (a no-op).
//
//	outside  → entering (Join), waiting (the transport entered by itself)
//	entering → waiting (own enter), outside (Part, an enter that failed)
//	waiting  → alone (founded: no senior left), member (an inclusion
//	           completed), parting (Part), leaving (the join timed out),
//	           entering (kicked while joining, or the connection lost),
//	           outside (gave up after kicks)
//	alone    → member (an inclusion completed), ended (an operation left
//	           us alone again), parting, entering (connection lost),
//	           leaving (a fatal error)
//	member   → ended, parting, leaving (the exclusion backstop, a fatal
//	           error), entering (connection lost), outside (kicked after
//	           the group excluded us)
//	ended    → alone (stay as last member), member (an inclusion completed
//	           meanwhile), leaving, parting, entering, outside
//	parting  → outside (we left the room), waiting (the transport entered
//	           again before our leave), leaving (a fatal error)
//	leaving  → outside (we left the room), waiting (entered again: the
//	           transport re-enters and the user still wants the session),
//	           parting (Part while leaving: settle it when we are out)
var stageMoves = [...][]stage{
	stageOutside:  {stageEntering, stageWaiting},
	stageEntering: {stageWaiting, stageOutside},
	stageWaiting:  {stageAlone, stageMember, stageParting, stageLeaving, stageEntering, stageOutside},
	stageAlone:    {stageMember, stageEnded, stageParting, stageEntering, stageLeaving, stageOutside},
	stageMember:   {stageEnded, stageParting, stageLeaving, stageEntering, stageOutside},
	stageEnded:    {stageAlone, stageMember, stageLeaving, stageParting, stageEntering, stageOutside},
	stageParting:  {stageOutside, stageWaiting, stageLeaving},
	stageLeaving:  {stageOutside, stageWaiting, stageParting},
}

// exclusion is what the group decided about us: the other half of where
// we stand. While excluded (in either form) we send nothing of our own,
// infer nothing from the order, and leave by ourselves at the backstop
// (excludedAt + backstop delay) if nobody kicks us.
type exclusion uint8

const (
	// notExcluded: no accepted operation excludes us.
	notExcluded exclusion = iota
	// excluding: an accepted operation excludes us and has not completed.
	// It may still fail (a leave, an abort): we keep following the order,
	// so that a later proposal keeping us is judged as everyone judges it.
	excluding
	// excluded: the operation that excludes us completed: we are out of
	// the group, read and ack the old subsession, ignore proposals that do
	// not keep us, and wait to be kicked.
	excluded
)

// lifecycle is the state the lifecycle code owns: the stage, the group's
// verdict on us, and the deadlines and counters that belong to them.
type lifecycle struct {
	stage   stage
	excl    exclusion
	outcome State // how the last stay ended (PARTED, PART_FAILED, JOIN_FAILED): the public state while outside

	joinOp, partOp *Op // the pending join and part, if any

	joinDeadline time.Time // the end of the pending join's window (JoinWindow from its start): give up then
	reenterAt    time.Time // while entering after a kick: re-enter then
	enterSeq     uint64    // the latest enter we asked for
	excludedAt   time.Time // when an accepted operation excluded us (the backstop runs from here)
	leaveAt      time.Time // leave the room then (after a part completes, or at the end of the session)
}

// moveTo changes the stage. A move the table does not allow is a bug of
// ours: the session goes to ERROR, visibly, rather than on in a state
// nobody designed.
func (c *Core) moveTo(next stage) {
	from := c.stage
	if next == from {
		return
	}
	if !slices.Contains(stageMoves[from], next) {
		c.setFatal(fmt.Errorf("session: internal error: stage %v cannot move to %v", from, next))
		return
	}
	c.stage = next
}

// parting reports whether the user is parting.
func (c *Core) parting() bool { return c.stage == stageParting }

// isExcluded reports whether an accepted operation excludes us.
func (c *Core) isExcluded() bool { return c.excl != notExcluded }

// excludedBy records that an accepted operation excludes us: the backstop
// runs from its initial packet.
func (c *Core) excludedBy() { c.excl, c.excludedAt = excluding, c.now }

// notExcludedAnyMore records that no operation excludes us (any more).
func (c *Core) notExcludedAnyMore() { c.excl, c.excludedAt = notExcluded, time.Time{} }

// joinUntil is the end of the window of a join that waits in the room to
// be included, or zero.
func (c *Core) joinUntil() time.Time {
	if c.joinPending() {
		return c.joinDeadline
	}
	return time.Time{}
}

// publicState is the public state the stage, the chain and the current
// subsession amount to.
func (c *Core) publicState() State {
	switch {
	case c.fatal != nil:
		return StateError
	case !c.stage.inRoom():
		return c.outcome
	case !c.so.Synced():
		return StateJoining
	case c.cur == nil:
		if c.stage == stageAlone || c.op != nil || c.joinOp != nil && !c.joinOp.done {
			return StateJoining
		}
		return StateParting
	case c.stage == stageParting || c.stage == stageLeaving || c.isExcluded():
		return StateParting
	}
	return StateJoined
}

// updateState announces a change of the public state.
func (c *Core) updateState() {
	if s := c.publicState(); s != c.public {
		c.public = s
		c.notify(Notice{Kind: StateChanged, State: s, Until: c.joinUntil()})
	}
}

// Join enters the room and waits to be included, or founds the session if
// nobody is there (docs/SESSION.md, "Joining").
func (c *Core) Join(now time.Time) (*Op, error) {
	c.advance(now)
	defer c.after()
	if c.fatal != nil {
		return nil, c.fatal
	}
	switch c.stage {
	case stageAlone, stageMember:
		op := c.newOp(OpJoin, nil)
		c.settle(op, nil)
		return op, nil
	case stageParting, stageLeaving:
		return nil, fmt.Errorf("%w: leaving the room", ErrBusy)
	}
	if c.joinOp != nil && !c.joinOp.done {
		return c.joinOp, nil
	}
	switch {
	case c.stage == stageEnded, c.stage == stageWaiting && c.so.Synced():
		return nil, fmt.Errorf("%w: joining or ending", ErrBusy)
	case c.stage == stageWaiting:
		c.joinOp = c.newOp(OpJoin, nil)
		return c.joinOp, nil
	}
	c.outcome = StateParted
	c.joinOp = c.newOp(OpJoin, nil)
	c.joinDeadline = c.now.Add(c.cfg.JoinWindow)
	c.enterChannel()
	c.moveTo(stageEntering)
	return c.joinOp, nil
}

// Part leaves the session: announce it (a double FIN), finish the
// subsession, then leave the room (docs/SESSION.md, "Parting").
func (c *Core) Part(now time.Time) (*Op, error) {
	c.advance(now)
	defer c.after()
	if c.partOp != nil && !c.partOp.done {
		return c.partOp, nil
	}
	op := c.newOp(OpPart, nil)
	clear(c.returning) // we leave on purpose: nobody is coming back to us
	c.dropOutbox()
	c.lastReaders = nil
	c.settle(c.joinOp, fmt.Errorf("%w: parting", ErrAborted))
	c.settle(c.userOp, fmt.Errorf("%w: parting", ErrAborted))
	if !c.stage.inRoom() {
		c.settle(op, nil)
		c.reenterAt = time.Time{}
		c.moveTo(stageOutside)
		return op, nil
	}
	c.partOp = op
	sendIntent := c.cur != nil && c.cur.base.State() == subsession.Joined && !c.isExcluded()
	c.moveTo(stageParting)
	if sendIntent {
		if _, _, err := c.cur.base.SendLeaveIntent(c.now); err != nil {
			c.leaveAt = c.now
		}
		c.drain(c.cur)
	} else {
		c.leaveIfParted()
	}
	return op, nil
}

// EnterFailed reports that the channel could not enter the room for the
// enter action numbered seq (the transport's Enter returned err): a join
// waiting for it fails at once with ErrEnterFailed, instead of waiting for
// an enter event that will never come. A failure of an older enter than
// the latest we asked for is ignored.
func (c *Core) EnterFailed(seq uint64, err error, now time.Time) {
	c.advance(now)
	defer c.after()
	if seq != c.enterSeq || c.stage != stageEntering {
		return // superseded, entered after all, or nobody wants in any more
	}
	c.joinFailed(fmt.Errorf("%w: %w", ErrEnterFailed, err))
}

// joinFailed ends a join that cannot succeed, with reason.
func (c *Core) joinFailed(reason error) {
	c.outcome = StateJoinFailed
	c.dropOutbox()
	c.lastReaders = nil
	c.settle(c.joinOp, reason)
	c.reenterAt, c.joinDeadline = time.Time{}, time.Time{}
	switch {
	case !c.stage.inRoom():
		c.moveTo(stageOutside)
	case c.stage == stageParting:
		c.leaveChannel()
	default:
		c.leaveChannel()
		c.moveTo(stageLeaving)
	}
}

// joinPending reports whether a join waits, in the room and unsynced, for
// someone to include us (until joinDeadline).
func (c *Core) joinPending() bool {
	return c.joinOp != nil && !c.joinOp.done && c.stage.inRoom() && !c.so.Synced()
}

// onOwnEnter: we entered the room. The members present are our seniors;
// the oldest remaining member founds the session (seniority). Entering
// without being asked (a reconnecting transport re-enters by itself) means
// the user still wants the session: we join again.
func (c *Core) onOwnEnter(ev channel.Event) {
	c.setChannel(ev.Members)
	c.enteredAt = c.now
	c.seniors = set{}
	for _, m := range ev.Members {
		if m != c.cfg.Self {
			c.seniors.add(m)
		}
	}
	if !c.stage.inRoom() || c.stage == stageLeaving {
		c.moveTo(stageWaiting)
	}
	if c.joinOp == nil || c.joinOp.done || c.joinDeadline.IsZero() {
		if c.joinOp == nil || c.joinOp.done {
			c.joinOp = c.newOp(OpJoin, nil)
		}
		c.joinDeadline = c.now.Add(c.cfg.JoinWindow)
	}
	c.reenterAt = time.Time{}
	c.seniority()
}

// seniorsKnown is when we know which of our seniors speak mpENC: a
// broadcast round after our own enter.
func (c *Core) seniorsKnown() time.Time { return c.enteredAt.Add(c.cfg.Timing.BC) }

// joinWait is the protocol's unit of waiting for a room of n: (2 + n)·(BC
// + 1 s), about the time every member takes to answer once. A kicked
// newcomer re-enters after part of it; the exclusion backstop counts
// from it. (A person waiting to be included waits JoinWindow.)
func (c *Core) joinWait(n int) time.Duration {
	return time.Duration(2+n) * (c.cfg.Timing.BC + time.Second)
}

// seniority: waiting unsynced with no senior left, we found the session
// ourselves: a new chain, alone, and the join succeeds.
func (c *Core) seniority() {
	if c.stage != stageWaiting || c.so.Synced() {
		return
	}
	if !c.now.Before(c.seniorsKnown()) {
		// Everyone present has had a broadcast round to announce an
		// identity key: an occupant that has not, and whose key the
		// directory does not know either, does not speak mpENC (a plain
		// XMPP client, a moderator) and will never include us.
		for m := range c.seniors {
			if !c.speaksMpENC(m) {
				delete(c.seniors, m)
			}
		}
	}
	if len(c.seniors) > 0 {
		return
	}
	if err := c.so.SyncNew(c.cfg.Rand); err != nil {
		c.setFatal(fmt.Errorf("session: randomness: %w", err))
		return
	}
	c.moveTo(stageAlone)
	c.joinDeadline = time.Time{}
	c.settle(c.joinOp, nil)
	// Members already present may be included (handleTasks does it with
	// AutoInclude; otherwise the user is asked).
	for _, m := range c.channel {
		if m != c.cfg.Self && !c.autoIncludes(m) && c.speaksMpENC(m) {
			c.notify(Notice{Kind: JoinRequest, Author: m})
		}
	}
}

// onOwnLeave: we are out of the room. We may have missed packets: every
// subsession, the chain and the tasks are reset; what comes next depends
// on why we were in the room.
func (c *Core) onOwnLeave(ev channel.Event) {
	hadSession := c.cur != nil
	oldMembers := c.Members()
	if c.op != nil {
		if c.op.g.Excluded() {
			c.endOp(nil, true) // we left during a greeting that excluded us: assume it succeeded
		} else {
			c.endOp(fmt.Errorf("%w: we left the room", ErrAborted), false)
		}
	}
	c.settleProposal(fmt.Errorf("%w: we left the room", ErrAborted))
	c.settle(c.userOp, fmt.Errorf("%w: we left the room", ErrAborted))
	wasExcluded := c.isExcluded()
	from := c.stage
	// Out of the room first: stopping the subsessions runs their shutdown
	// hooks, which must not ask to kick or leave.
	c.moveTo(stageOutside)
	c.channel = nil
	for _, s := range c.subs() {
		s.base.Stop(c.now)
		c.drainLeaving(s)
	}
	if c.cur != nil {
		c.log.Forget(c.cur.ref) // a new session starts from nothing when we are back
	}
	c.cur, c.prevs = nil, nil
	c.replaceState(nil)
	c.retired = nil // the room's traffic since we left never reaches us
	c.unopened = packetSet{}
	c.keyedAt, c.opsSinceStart = time.Time{}, 0
	c.orderCheck = orderCheck{}
	c.trial = subsession.NewTrialBuffer(c.cfg.Timing)
	c.oldSenders = map[string]time.Time{}
	c.so.Clear()
	c.seniors, c.taskExclude, c.taskLeave, c.excludedLast = set{}, set{}, set{}, set{}
	c.notExcludedAnyMore()
	c.leaveAt = time.Time{}
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
	case from == stageParting || c.partOp != nil && !c.partOp.done:
		// A part is complete once we are out; what our FIN's shutdown
		// found (PART_FAILED) stays the outcome.
		if c.outcome != StatePartFailed {
			c.outcome = StateParted
		}
		c.settle(c.partOp, nil)
	case from.wantsIn() && c.joinOp != nil && !c.joinOp.done:
		// Removed while joining (we entered during an operation, or before
		// the others finished excluding us): re-enter after a random
		// delay, as long as the join's window lasts.
		u := 0.5 + 0.25*c.randFloat()
		at := c.now.Add(time.Duration(u * float64(c.joinWait(len(ev.Members)))))
		if at.Before(c.joinDeadline) {
			c.reenterAt = at
			c.moveTo(stageEntering)
			c.notify(Notice{Kind: Kicked, Members: []string{c.cfg.Self}, Err: ev.Err, Until: at})
		} else {
			c.notify(Notice{Kind: Kicked, Members: []string{c.cfg.Self}, Err: ev.Err})
			c.joinFailed(ErrJoinTimeout)
		}
	case wasExcluded:
		// Kicked after an operation excluded us: that is its expected end.
	case from.wantsIn() && hadSession:
		// Disconnected or kicked out of a running session: the transport
		// may re-enter; when it does, we join again. Warn about the gap.
		// The others lost us as we lost them: whoever of them comes back
		// while we wait is of our last subsession, and included again.
		c.notify(Notice{Kind: Gap, Err: ev.Err})
		c.moveTo(stageEntering)
		for _, m := range oldMembers {
			if m != c.cfg.Self {
				c.returning[m] = c.now.Add(c.cfg.JoinWindow)
			}
		}
	case from.wantsIn():
		// Out of the room without a subsession (waiting, alone, ending):
		// if the transport re-enters, we join again.
		c.moveTo(stageEntering)
	}
}

// leaveIfParted leaves the room once a part has finished every subsession
// we still hold: the current one (our leave intent) and any previous one
// still shutting down, so the acks of our last messages are not lost by
// leaving early. The others exclude us and kick us if we are still there.
// Excluded before we parted, we sent no leave intent (our current
// subsession is still JOINED) and it only ends with the kick: we wait for
// the previous ones only. Excluded after our leave intent, which is how
// the others answer it, we still wait for the intent's shutdown: the
// exclusion's initial packet usually comes before their acks of our FIN
// and of our last messages (simulator seed 13899).
func (c *Core) leaveIfParted() {
	if c.stage != stageParting || len(c.prevs) > 0 {
		return
	}
	if c.cur != nil && !c.cur.base.State().Done() && !(c.isExcluded() && c.cur.base.State() == subsession.Joined) {
		return
	}
	c.leaveAt = c.now
}

// backstop is when an excluded member that was not kicked leaves by
// itself: (2 + n)·(BC + 1 s) + 17·BC after the initial packet that
// excluded it.
func (c *Core) backstop() time.Time {
	return c.excludedAt.Add(c.joinWait(len(c.channel)) + 17*c.cfg.Timing.BC)
}

// leaveAtBackstop: excluded and never kicked, we leave by ourselves.
func (c *Core) leaveAtBackstop() {
	c.notExcludedAnyMore()
	if c.stage.inRoom() {
		c.leaveChannel()
		if c.stage != stageParting {
			c.moveTo(stageLeaving)
		}
	}
}

// sessionOver decides what follows when no subsession is left for us (an
// operation left us alone and the previous subsession finished): stay as
// the last member with the chain, or leave the room.
func (c *Core) sessionOver() {
	rest := 0
	for _, m := range c.channel {
		if m != c.cfg.Self && !c.taskLeave[m] && !c.excludedLast[m] && c.lastMembers[m] && c.speaksMpENC(m) {
			// (a plain XMPP client never joins the session, a member we
			// just excluded that came back has none, and an occupant
			// that was not in our last subsession is no sign of one:
			// none counts)
			rest++
		}
	}
	if c.cfg.StayIfLastMember && rest == 0 && c.stage != stageParting {
		c.moveTo(stageAlone)
		return
	}
	c.leaveAt = c.now
	if c.stage != stageParting {
		c.moveTo(stageLeaving)
	}
}
