package session

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/internal/subsession"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/transcript"
)

// rotation is what the subsession rotation owns: the current subsession,
// the previous ones still shutting down, what recognises the late traffic
// of finished ones, the message log that linearises them all, and the
// trial buffer of packets none of them could open yet.
type rotation struct {
	// cur is the current subsession; prevs are older ones still finishing
	// their shutdown, oldest first (at most maxPrevs: a quick succession of
	// operations must not force-stop a shutdown in progress, which would
	// report its unacknowledged messages for no fault of anyone's).
	cur     *sub
	prevs   []*sub
	retired []retiredSub // finished subsessions whose late packets we still recognise
	log     *causal.MessageLog
	trial   *subsession.TrialBuffer
	// oldSenders: members known to be finishing an older subsession we
	// were not part of (we were just included); their undecryptable
	// packets are that subsession's, not warnings, until the time given.
	oldSenders map[string]time.Time
	// unopened: packets no subsession opened since the last rotation (a
	// copy is dropped without a signature check: replayed garbage costs
	// a hash). A rotation forgets them: they may open now.
	unopened packetSet
	// lateTries counts, per channel sender, the late packets of the
	// current minute (since lateMinute) looked for among the other
	// members' keys of finished subsessions (a third member's resend)
	// after the sender's own key failed: at most subsession.OthersPerMinute each (the live
	// subsessions' budget), so
	// that a member flooding junk costs one verification per packet and
	// retired subsession.
	lateTries  map[string]int
	lateMinute time.Time
}

// mayTryOthersLate spends one of sender's late trials of this minute, if
// any is left. It is called only for a sender that is a member of the
// finished subsession, so the map holds members only.
func (c *Core) mayTryOthersLate(sender string) bool {
	if c.lateTries == nil || !c.now.Before(c.lateMinute.Add(time.Minute)) {
		c.lateTries, c.lateMinute = map[string]int{}, c.now
	}
	if c.lateTries[sender] >= subsession.OthersPerMinute {
		return false
	}
	c.lateTries[sender]++
	return true
}

// failedPacket names a data packet by its channel sender and id.
type failedPacket struct {
	sender string
	id     wire.MessageID
}

// maxUnopened bounds the packets remembered as unopened.
const maxUnopened = 1024

// packetSet is a bounded set of packets, oldest forgotten first.
type packetSet struct {
	m    map[failedPacket]struct{}
	ring []failedPacket
}

func (s *packetSet) has(k failedPacket) bool { _, ok := s.m[k]; return ok }

func (s *packetSet) add(k failedPacket) {
	if s.m == nil {
		s.m = make(map[failedPacket]struct{}, maxUnopened)
	}
	if len(s.ring) == maxUnopened {
		delete(s.m, s.ring[0])
		s.ring = s.ring[1:]
	}
	s.m[k] = struct{}{}
	s.ring = append(s.ring, k)
}

// maxPrevs bounds the previous subsessions kept while they shut down.
const maxPrevs = 4

// subs returns the current subsession then the previous ones, newest
// first: the order of trial decryption.
func (c *Core) subs() []*sub {
	out := make([]*sub, 0, 1+len(c.prevs))
	if c.cur != nil {
		out = append(out, c.cur)
	}
	for i := len(c.prevs) - 1; i >= 0; i-- {
		out = append(out, c.prevs[i])
	}
	return out
}

// lastPrev returns the most recent previous subsession, or nil.
func (c *Core) lastPrev() *sub {
	if len(c.prevs) == 0 {
		return nil
	}
	return c.prevs[len(c.prevs)-1]
}

// maxRetired bounds the finished subsessions remembered by retire.
const maxRetired = 8

// retiredSub recognises the late packets of a finished subsession until a
// deadline.
type retiredSub struct {
	v     *message.Verifier
	until time.Time
}

// retire remembers a finished subsession's verifier, so that its late
// packets (resends and acks from members still finishing it) are dropped
// silently instead of waiting in the trial buffer and being reported as
// undecryptable, and wipes the subsession's copy of its group key. (The
// greeting.State it came from keeps its own copy until the next operation
// replaces it (replaceState wipes it then); the contributions and the
// ephemeral signing key the States share across operations are left to
// the garbage collector: zeroing them here would pull them from under the
// subsessions and States still using them.)
func (c *Core) retire(s *sub) {
	if len(c.retired) == maxRetired {
		c.retired = slices.Delete(c.retired, 0, 1)
	}
	// Others finish at most FinTimeout after us; their last resends and
	// acks take a few more broadcast rounds to arrive.
	until := c.now.Add(c.cfg.Timing.FinTimeout + 4*c.cfg.Timing.BC)
	c.retired = append(c.retired, retiredSub{v: s.base.Verifier(), until: until})
	s.base.Zero(c.now)
	c.wipeSigningKey(s.signer)
	if s != c.cur {
		c.log.Forget(s.ref) // its messages are all in; the app keeps them on disk
	}
}

// wipeSigningKey zeroes an ephemeral signing key once neither our group
// state nor a subsession still shutting down signs with it (a START gives
// us a new one; the old one stays until its subsessions are done).
func (c *Core) wipeSigningKey(k *crypto.SigningKey) {
	if k == nil || c.state != nil && c.state.OwnEphemeralKey() == k {
		return
	}
	for _, s := range c.subs() {
		if s.signer == k && !s.finished {
			return
		}
	}
	k.Zero()
}

// lateForRetired reports whether a data packet no live subsession took is
// a late packet of a finished one: its author's, or one a third member
// resent (before, only the sender's key was tried, and such a resend
// after the end of its subsession was reported as undecryptable: honest
// simulator seed 14496, TestSimulatorRegressions).
func (c *Core) lateForRetired(p *wire.DataPacket, sender string) bool {
	c.retired = slices.DeleteFunc(c.retired, func(r retiredSub) bool { return !c.now.Before(r.until) })
	for _, r := range c.retired {
		if _, err := r.v.IdentifyFrom(p, sender, func() bool { return c.mayTryOthersLate(sender) }); err == nil {
			return true
		}
	}
	return false
}

// sub is a subsession and its place in the message log.
type sub struct {
	base     *subsession.SessionBase
	ref      causal.TranscriptRef
	sid      [32]byte
	finished bool               // its FinComplete was seen
	excluded set                // members the operation that retired it excluded
	signer   *crypto.SigningKey // our ephemeral key in it (wiped when nothing signs with it any more)

	// The server-order check: the position that created the subsession,
	// who has stated the same, and when to report those who did not.
	expect    message.ChainPosition
	checked   set
	checkDue  time.Time
	checkDone bool
}

// complete finishes the running operation at its final packet: the
// subsessions rotate (docs/SESSION.md, "Rotation").
func (c *Core) complete() {
	op := c.op
	c.op = nil
	res := op.g.Result()
	if res == nil {
		// It excludes us: we keep the old subsession, reading and acking,
		// until we are kicked (or the backstop fires).
		c.excl = excluded
		return
	}
	if !subset(res.Members, c.channel) {
		c.setFatal(errors.New("session: operation completed with members outside the room"))
		return
	}
	old := op.prevMembers
	if old == nil {
		old = []string{c.cfg.Self}
	}
	remain, include, exclude := membershipChange(old, res.Members)
	for _, m := range include {
		delete(c.returning, m)
		delete(c.stalled, m)
	}
	c.scheduleRemovals(exclude)
	c.notExcludedAnyMore()
	prevRef := c.shutDownCurrent(exclude)
	if err := c.startNext(res, prevRef, op.latestPM); err != nil {
		c.setFatal(err)
		return
	}
	if op.g.Op() == wire.OpStart || c.keyedAt.IsZero() {
		c.keyedAt, c.opsSinceStart = c.now, 0
	} else {
		c.opsSinceStart++
	}
	c.announceCompletion(op, res, remain, include, exclude)
	if lp := c.lastPrev(); lp == nil || lp.base.State().Done() {
		if lp != nil {
			c.prevs = c.prevs[:len(c.prevs)-1]
		}
		c.onPrevSessionFin()
	}
	c.retryTrial()
}

// membershipChange splits the members before and after an operation into
// those who remain, those included and those excluded.
func membershipChange(before, after []string) (remain, include, exclude []string) {
	for _, m := range before {
		if slices.Contains(after, m) {
			remain = append(remain, m)
		} else {
			exclude = append(exclude, m)
		}
	}
	for _, m := range after {
		if !slices.Contains(before, m) {
			include = append(include, m)
		}
	}
	return remain, include, exclude
}

// scheduleRemovals notes that the excluded members, their exclusion done,
// must leave the room: they are kicked once the old subsession has shut
// down (onPrevSessionFin).
func (c *Core) scheduleRemovals(exclude []string) {
	c.taskExclude.del(exclude...)
	c.excludedLast = set{}
	c.excludedLast.add(exclude...)
	for _, m := range exclude {
		if slices.Contains(c.channel, m) {
			c.taskLeave.add(m)
		}
	}
}

// shutDownCurrent starts the shutdown of the current subsession (its FIN),
// keeping it among the previous ones until it completes, and returns its
// place in the message log. Too many shutdowns at once force-stop the
// oldest.
func (c *Core) shutDownCurrent(exclude []string) causal.TranscriptRef {
	prevRef := causal.NoTranscript
	if old := c.cur; old != nil {
		prevRef = old.ref
		old.excluded = set{}
		old.excluded.add(exclude...)
		c.lastMembers = set{}
		c.lastMembers.add(old.base.Members()...)
		c.prevs = append(c.prevs, old)
		if old.base.State() == subsession.Joined {
			old.base.Fin(c.now)
			c.drain(old)
		}
	}
	for len(c.prevs) > maxPrevs {
		// What the oldest had not seen acknowledged is reported. Its
		// FinComplete, translated while draining, already takes it off the
		// list; removing it again must not drop another one.
		oldest := c.prevs[0]
		oldest.base.Stop(c.now)
		c.drainNotices(oldest)
		c.prevs = slices.DeleteFunc(c.prevs, func(p *sub) bool { return p == oldest })
	}
	c.cur = nil
	return prevRef
}

// startNext makes the operation's result our state: a new current
// subsession with the others, whose creating position we state (the
// server-order check), or none when the operation left us alone.
func (c *Core) startNext(res *greeting.State, prevRef causal.TranscriptRef, latestPM []transcript.ID) error {
	c.lastReaders = nil
	if len(res.Members) == 1 {
		c.replaceState(nil) // solo: the next inclusion starts afresh
		if c.stage != stageParting && c.stage != stageLeaving {
			c.moveTo(stageEnded)
		}
		return nil
	}
	s, err := c.newSub(res, prevRef, latestPM)
	if err != nil {
		return err
	}
	c.cur = s
	c.unopened = packetSet{}
	c.replaceState(res)
	c.lastReaders = slices.DeleteFunc(slices.Clone(res.Members), func(m string) bool { return m == c.cfg.Self })
	if c.stage != stageParting && c.stage != stageLeaving {
		c.moveTo(stageMember)
	}
	c.startChainCheck(s)
	return nil
}

// announceCompletion tells the user, and settles what the operation
// settles: our proposal, our join, a user operation that another member's
// operation carried out.
func (c *Core) announceCompletion(op *running, res *greeting.State, remain, include, exclude []string) {
	kind, _, _ := opShape(op.prevMembers, res.Members, op.g.Op())
	done := Notice{Kind: OpSucceeded, Author: op.initiator, OpKind: kind, Include: include, Exclude: exclude}
	if op.own != nil && op.own.op != nil {
		done.Op = op.own.op
		c.settle(op.own.op, nil)
	}
	c.notify(done)
	c.notify(Notice{Kind: Membership, Remain: remain, Include: include, Exclude: exclude, LogParents: c.logHeads()})
	if op.prevMembers == nil {
		// We were just included: the others are still finishing the
		// subsession they had without us; its packets are not for us.
		until := c.now.Add(c.cfg.Timing.FinTimeout + 2*c.cfg.Timing.BC)
		for _, m := range op.piPrev {
			c.oldSenders[m] = until
		}
	}
	if c.joinOp != nil && !c.joinOp.done && slices.Contains(res.Members, c.cfg.Self) {
		c.settle(c.joinOp, nil)
		c.joinDeadline = time.Time{}
	}
	if c.userOp != nil && !c.userOp.done && c.userOp.followsWinner {
		c.settle(c.userOp, nil) // someone else's operation did what we asked
	}
}

// replaceState makes res our result state and wipes the group key of the
// State it replaces: every subsession holds its own copy, and no later
// operation starts from a replaced State. (The contributions and the
// ephemeral signing key are shared with res and stay.)
func (c *Core) replaceState(res *greeting.State) {
	old := c.state
	c.state = res
	if old != nil && old != res {
		old.Wipe(res)
		c.wipeSigningKey(old.OwnEphemeralKey())
	}
}

// newSub creates the subsession of a new membership and registers its
// transcript with the message log after the previous one, checking
// LATEST_PM (docs/SESSION.md, "Rotation", step 7).
func (c *Core) newSub(res *greeting.State, prevRef causal.TranscriptRef, latestPM []transcript.ID) (*sub, error) {
	members := slices.Sorted(slices.Values(res.Members))
	pubs := make([]crypto.PublicKey, len(members))
	for i, m := range members {
		pubs[i] = res.EphemeralKeys[res.Position(m)]
	}
	base, err := subsession.New(subsession.Config{
		Self: c.cfg.Self, Members: members, SID: res.SID[:], GroupKey: res.GroupKey[:],
		SigningKey: res.OwnEphemeralKey(), PublicKeys: pubs, Timing: c.cfg.Timing, Rand: c.cfg.Rand,
	}, c.now)
	if err != nil {
		return nil, fmt.Errorf("session: new subsession: %w", err)
	}
	base.SetChannelMembers(c.channel)
	if prevRef == causal.NoTranscript {
		latestPM = nil // a newcomer cannot check what it never saw
	}
	ref, err := c.log.AddTranscript(base.Graph(), prevRef, latestPM)
	if err != nil && errors.Is(err, causal.ErrLatestPMMissing) {
		return nil, fmt.Errorf("session: dodgy transport: %w", err)
	} else if err != nil {
		return nil, err
	}
	return &sub{base: base, ref: ref, sid: res.SID, signer: res.OwnEphemeralKey()}, nil
}

// logHeads returns the message log's heads for a membership notice.
func (c *Core) logHeads() []int {
	if c.cur != nil {
		return c.log.PayloadHeads(c.cur.ref)
	}
	if lp := c.lastPrev(); lp != nil {
		return c.log.PayloadHeads(lp.ref)
	}
	return nil
}

// onPrevSessionFin runs when the previous subsession's shutdown is complete
// (or at once if there is none): kick who was excluded, and end our stay
// if no session is left for us.
func (c *Core) onPrevSessionFin() {
	if !c.stage.inRoom() {
		return
	}
	var kicked []string
	for _, m := range c.taskLeave.sorted() {
		if slices.Contains(c.channel, m) {
			kicked = append(kicked, m)
		}
	}
	c.kick(kicked, reasonExcluded)
	if c.cur == nil && c.so.Synced() && c.op == nil && c.stage != stageAlone {
		c.sessionOver()
	}
}

// onFinComplete: a subsession's shutdown completed.
func (c *Core) onFinComplete(s *sub, st subsession.State) {
	switch {
	case s == c.lastPrev():
		c.prevs = c.prevs[:len(c.prevs)-1]
		c.onPrevSessionFin()
	case s != c.cur:
		c.prevs = slices.DeleteFunc(c.prevs, func(p *sub) bool { return p == s })
	default:
		if c.parting() && st == subsession.PartFailed {
			c.outcome = StatePartFailed
		}
	}
	c.leaveIfParted()
}
