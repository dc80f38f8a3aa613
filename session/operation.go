package session

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/internal/serverorder"
	"github.com/mpenc/mpenc/internal/subsession"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/transcript"
)

// membership is what the membership operations own: ServerOrder's chain,
// our group state, the operation under way, and the operations the
// channel rules call for (docs/SESSION.md, "Channel rules").
type membership struct {
	so    serverorder.Resolver
	state *greeting.State // our membership's result state; nil when alone or outside
	op    *running        // the operation under way, accepted by ServerOrder

	taskExclude set // members to exclude next (they left, stalled, or asked to leave)
	taskLeave   set // excluded members still in the room: kicked once the old subsession has shut down
	// excludedLast: whom the last operation we completed as a member
	// excluded. Back in the room (a device that restarted under the same
	// participant id), such a member is a newcomer, not the sign of a
	// session that went on without us (sessionOver).
	excludedLast set
	// lastMembers: the members of the subsession we were last in. Only
	// they, still in the room, tell sessionOver that the session went on
	// without us: an occupant that was never in it (one waiting to be
	// included, or refused) does not.
	lastMembers set

	// returning: members of our last subsession who lost the room without
	// leaving on purpose (a restart, a lost connection), and until when
	// they are included again automatically if they come back: they are
	// known and trusted, whatever AutoInclude says.
	returning map[string]time.Time
	// stalled: newcomers whose inclusion stalled (they announced a key and
	// never answered), not proposed again automatically before until; the
	// pause doubles at each stall.
	stalled map[string]pause

	// Forward secrecy: when our group's keys were last made afresh (a
	// START, or our inclusion, as far as we know), and how many
	// operations completed since.
	keyedAt       time.Time
	opsSinceStart int
}

// pause is how long a stalled newcomer is left out of automatic
// inclusions, and until when.
type pause struct {
	delay time.Duration
	until time.Time
}

// First and longest pauses before a newcomer whose inclusion stalled is
// proposed again automatically.
const (
	minStallPause = 30 * time.Second
	maxStallPause = 10 * time.Minute
	maxStalled    = 256 // pauses remembered
)

// running is an operation accepted by ServerOrder and not ended yet.
type running struct {
	g           *greeting.Greeting
	pi          [32]byte // packet id of its initial packet
	initiator   string
	members     []string // M, in operation order
	prevMembers []string // M': the session's members before it
	piKeys      map[string]crypto.PublicKey
	latestPM    []transcript.ID
	piPrev      []string // the members that had a session before it, as its initial packet says
	started     time.Time
	abortR      []string  // who may abort it (sorted), from its initial packet
	failed      error     // our Greeting failed: the operation cannot complete
	abortAt     time.Time // when we send an abort (zero: we do not)
	abortSent   bool
	own         *proposal // ours, if we proposed it
}

// onGreet handles a greeting packet (docs/SESSION.md, "Receive path", step
// 3; the D-numbers below are its "Beyond the reference").
func (c *Core) onGreet(p *wire.GreetPacket, ev channel.Event) {
	if p.Source != ev.Sender {
		// D1: the transport sender must be the packet's SOURCE.
		c.warnAbout(ev.Sender, fmt.Errorf("%w (%q)", errSourceMismatch, p.Source))
		return
	}
	if p.Type == wire.GreetQuitDown {
		return // vestigial; the reference throws, we ignore it
	}
	if p.Type == wire.GreetAbortDown {
		c.onAbort(p, ev)
		return
	}
	var running *greeting.Greeting
	if c.op != nil {
		running = c.op.g
	}
	switch greeting.Classify(p, running) {
	case greeting.ClassInitial:
		c.onInitial(p, ev, false)
	case greeting.ClassBoth:
		c.onInitial(p, ev, true)
	case greeting.ClassFinal:
		c.onFinal(p, ev)
	default:
		if c.so.Synced() && c.op != nil {
			c.deliver(p)
		}
		// Otherwise nothing to do with it (D20: never into the data path).
	}
}

// sessionMembers is M' for proposals: our membership, or just us when solo.
func (c *Core) sessionMembers() []string {
	if c.state != nil {
		return c.state.Members
	}
	return []string{c.cfg.Self}
}

// verifyInitial checks an initial packet's signature before ServerOrder
// sees it (D2): with the initiator's ephemeral key if we know it, else with
// the packet's own PUB_KEY entry when it has one (newcomers can do no
// better; the ASKE authenticates it before anything completes).
func (c *Core) verifyInitial(p *wire.GreetPacket) bool {
	// A START always carries fresh ephemeral keys: the founder's is its own
	// PUB_KEY entry, whatever key we knew for it before.
	if c.state != nil && p.Type != wire.GreetInitInitiatorUp {
		if i := c.state.Position(p.Source); i >= 0 {
			return p.Verify(c.state.EphemeralKeys[i])
		}
	}
	if i := slices.Index(p.Members, p.Source); i >= 0 && i < len(p.PubKeys) {
		return p.Verify(p.PubKeys[i])
	}
	return true
}

// onInitial handles an initial (or initial+final) packet.
func (c *Core) onInitial(p *wire.GreetPacket, ev channel.Event, both bool) {
	self := c.cfg.Self
	var own *proposal
	if ev.Sender == self || p.Source == self {
		if own = c.ownProposal(ev.Body); own == nil {
			return // a replay or forgery of a proposal in our name: ignore it
		}
	}
	if p.Metadata == nil {
		c.warnAbout(p.Source, errors.New("session: initial packet without proposal metadata"))
		return
	}
	// Group filter: a proposal from outside our group is none of our
	// business (no blacklist, no chain entry). Once an operation excluded
	// us and completed, neither is any proposal that does not keep us as a
	// member: we only wait to be kicked. (After an exclusion that failed,
	// by a leave or an abort, we still follow the order: the next proposal
	// may exclude us again, and ServerOrder must refuse what comes while
	// it runs, as everyone else does.)
	if c.so.Synced() && !slices.Contains(c.sessionMembers(), p.Source) ||
		c.excl == excluded && !slices.Contains(continuing(p), self) {
		return
	}
	if own == nil && !c.verifyInitial(p) {
		// Being excluded, we may have missed the others' fresh START
		// (new ephemeral keys, Config.RekeyOps): our keys are stale, not
		// their packets forged.
		if !c.isExcluded() {
			c.warnAbout(p.Source, errors.New("session: initial packet with a bad signature"))
		}
		return
	}
	pid := wire.PacketID(ev.Body, ev.Sender, ev.Members)
	cand := &serverorder.Candidate{
		PacketID: pid, Initial: true, Final: both,
		PrevPF: p.Metadata.PrevPF, ChainHash: p.Metadata.ChainHash,
		ForUs: slices.Contains(p.Members, self), Members: p.Members, EchoMembers: ev.Members,
		PrevPI: pid,
	}
	wasSynced := c.so.Synced()
	if err := c.so.Commit(cand); err != nil {
		if own != nil {
			c.rejectProposal(own, fmt.Errorf("%w: %w", ErrRejected, err))
		}
		if wasSynced && !slices.Contains(c.so.PacketIDs(), pid) {
			c.rememberRejected(pid, p)
		}
		if wasSynced && own == nil && c.suspended == nil {
			c.checkProposalPosition(p)
		}
		return
	}
	c.acceptInitial(p, ev, pid, own, wasSynced)
	if both && c.op != nil {
		if c.op.g.Result() != nil || c.op.g.Excluded() {
			c.complete()
		} else {
			// A one-packet operation whose Greeting did not complete: it
			// failed (warned in acceptInitial); it is over all the same.
			c.endOp(fmt.Errorf("%w: %v", ErrAborted, c.op.g.Err()), false)
			c.statePosition()
		}
	}
}

// acceptInitial is the accept-initial hook: build the Greeting, flush the
// current subsession, settle our proposal, apply IAL (docs/SESSION.md,
// "The accept/reject order" and "Channel rules").
func (c *Core) acceptInitial(p *wire.GreetPacket, ev channel.Event, pid [32]byte, own *proposal, wasSynced bool) {
	kind, inc, exc := opShape(c.sessionMembersIf(wasSynced), p.Members, p.Type.Op())
	if own == nil && c.proposal != nil {
		// Another proposal won our parent: ours is rejected (its echo will
		// be refused by ServerOrder); settle the user now, unless the winner
		// does what we asked (both include D): then it succeeds with it.
		lost := c.proposal
		if lost.op != nil && lost.op.satisfiedBy(inc, exc, kind) {
			lost.op.followsWinner = true
			lost.op = nil
		}
		c.rejectProposal(lost, fmt.Errorf("%w: %s's proposal came first", ErrRejected, p.Source))
		// Its echo must still be recognised as ours: ServerOrder refuses
		// it, and rememberRejected notes the refusal, so that a member
		// aborting it (it accepted ours where we accepted this one) is
		// seen as the server split it is.
		lost.op = nil
		c.keepRecognisable(lost)
	}
	var ownProp *greeting.Proposal
	if own != nil {
		ownProp = own.prop
		c.dropProposal(own)
	}
	prev := c.state
	g, out, err := c.gr.Accept(prev, p, ownProp)
	op := &running{
		g: g, pi: pid, initiator: p.Source, members: slices.Clone(p.Members),
		prevMembers: c.sessionMembers(), started: c.now, own: own, piKeys: c.abortKeys(p),
	}
	if !wasSynced {
		op.prevMembers = nil // a newcomer knows no previous membership
	}
	// Who may abort it, from the initial packet alone, so that every member
	// agrees: the continuing members whose key the packet lists (an
	// include's existing members, an exclude's remaining ones), or a
	// START's founder, and for a fresh START of our group (forward
	// secrecy) every member of it we share a group with (abortKeys).
	switch p.Type {
	case wire.GreetInitInitiatorUp:
		op.abortR = []string{p.Source}
		op.piPrev = []string{p.Source}
		for m := range op.piKeys {
			if m != p.Source {
				op.abortR = append(op.abortR, m)
			}
		}
	case wire.GreetIncludeAuxInitiatorUp:
		op.abortR = slices.Clone(p.Members[:min(len(p.Nonces), len(p.Members))])
		op.piPrev = op.abortR
	case wire.GreetExcludeAuxInitiatorDown:
		op.abortR = slices.Clone(p.Members)
		op.piPrev = op.abortR
	}
	slices.Sort(op.abortR)
	for _, id := range p.Metadata.LatestPM {
		op.latestPM = append(op.latestPM, transcript.ID(id))
	}
	c.op = op
	n := Notice{Kind: OpAccepted, Author: p.Source, OpKind: kind, Include: inc, Exclude: exc}
	if own != nil {
		n.Op = own.op
	}
	c.notify(n)
	if c.cur != nil && c.cur.base.State() == subsession.Joined {
		// Flush acks so the old subsession reaches full-ack before rotation.
		c.cur.base.SendFlush(c.now)
		c.drain(c.cur)
	}
	if out != "" {
		c.send(out)
	}
	if err != nil && !errors.Is(err, greeting.ErrNotForThisOperation) {
		c.opFailed(err)
	}
	switch {
	case g.Excluded():
		c.excludedBy() // the D17 backstop runs from the pI
	case slices.Contains(continuing(p), c.cfg.Self):
		// Our group still counts us as a member: an exclusion we thought
		// might have completed did not.
		c.notExcludedAnyMore()
	}
	c.scheduleAbort()
	// IAL: someone excluded but not yet gone is in the new membership.
	var ial []string
	for _, m := range op.members {
		if c.taskLeave[m] {
			ial = append(ial, m)
		}
	}
	c.kick(ial, reasonIAL)
}

// continuing returns the members an initial packet keeps from the previous
// membership: an include's existing members, an exclude's or refresh's
// members. A START keeps nobody (it starts afresh).
func continuing(p *wire.GreetPacket) []string {
	switch p.Type {
	case wire.GreetIncludeAuxInitiatorUp:
		return p.Members[:min(len(p.Nonces), len(p.Members))]
	case wire.GreetExcludeAuxInitiatorDown, wire.GreetRefreshAuxInitiatorDown:
		return p.Members
	}
	return nil
}

// opShape describes an operation for notices.
func opShape(prev, next []string, op wire.Operation) (OpKind, []string, []string) {
	if len(prev) == 0 || op == wire.OpStart {
		var inc []string
		for _, m := range next {
			if !slices.Contains(prev, m) {
				inc = append(inc, m)
			}
		}
		return OpStart, inc, nil
	}
	var inc, exc []string
	for _, m := range next {
		if !slices.Contains(prev, m) {
			inc = append(inc, m)
		}
	}
	for _, m := range prev {
		if !slices.Contains(next, m) {
			exc = append(exc, m)
		}
	}
	switch {
	case len(inc) > 0:
		return OpInclude, inc, nil
	case len(exc) > 0:
		return OpExclude, nil, exc
	}
	return OpRefresh, nil, nil
}

// onFinal handles a final candidate: ServerOrder must accept it, and it must
// pass its signatures (D2 of docs/SESSION.md) before it enters the chain.
func (c *Core) onFinal(p *wire.GreetPacket, ev channel.Event) {
	pid := wire.PacketID(ev.Body, ev.Sender, ev.Members)
	cand := &serverorder.Candidate{PacketID: pid, Final: true, PrevPI: c.op.pi}
	if err := c.so.Check(cand); err != nil {
		return
	}
	out, err := c.op.g.Receive(p)
	if out != "" {
		c.send(out)
	}
	switch {
	case errors.Is(err, greeting.ErrDuplicate), errors.Is(err, greeting.ErrNotForThisOperation):
		return
	case err != nil:
		c.setDiverged() // the others may commit what we refuse
		c.opFailed(err)
		return
	case c.op.g.Result() == nil:
		c.setDiverged()
		c.opFailed(errors.New("session: the final packet did not complete the operation"))
		return
	}
	c.so.Commit(cand)
	c.complete()
}

// deliver passes a non-initial, non-final packet to the running Greeting.
func (c *Core) deliver(p *wire.GreetPacket) {
	out, err := c.op.g.Receive(p)
	if out != "" {
		c.send(out)
	}
	if err != nil && !errors.Is(err, greeting.ErrDuplicate) && !errors.Is(err, greeting.ErrNotForThisOperation) {
		c.opFailed(err)
	}
}

// opFailed records that our Greeting failed: the operation cannot complete
// for us. Everyone who saw the same packet fails the same way; the abort
// (or a member's leave) ends it for all at one position.
func (c *Core) opFailed(err error) {
	if c.op == nil || c.op.failed != nil {
		return
	}
	c.op.failed = err
	if !errors.Is(err, greeting.ErrIdentityRefused) {
		c.warn(c.op.initiator, fmt.Errorf("session: operation by %s failed: %w", c.op.initiator, err))
	}
	// Else our own key directory refused a member (a key we do not trust,
	// or none announced): our decision, not the initiator's doing, so no
	// security warning; the operation's OpFailed notice says why (onAbort).
	c.scheduleAbort()
}

// abortRank returns our position among the members allowed to abort the
// running operation, or -1.
func (c *Core) abortRank() int { return slices.Index(c.op.abortR, c.cfg.Self) }

// opTimeout: every member broadcasts about once per operation, so
// (2 + n)·(BC + 1 s) for n members involved, like a newcomer's join wait.
func (c *Core) opTimeout() time.Duration {
	n := len(c.op.members)
	for _, m := range c.op.prevMembers {
		if !slices.Contains(c.op.members, m) {
			n++
		}
	}
	return time.Duration(2+n) * (c.cfg.Timing.BC + time.Second)
}

// newcomerWait is how long a newcomer lets the operation that syncs it run:
// past the operation timeout and every allowed member's abort, with two
// broadcast rounds to spare.
func (c *Core) newcomerWait() time.Duration {
	return c.opTimeout() + time.Duration(len(c.op.abortR))*c.cfg.Timing.BC/2 + 2*c.cfg.Timing.BC
}

// scheduleAbort sets when we send an abort: after the operation timeout, or
// at once if our Greeting failed, spaced BC/2 apart by rank.
func (c *Core) scheduleAbort() {
	op := c.op
	if op == nil || op.abortSent || !c.so.Synced() {
		return
	}
	rank := c.abortRank()
	if rank < 0 {
		op.abortAt = time.Time{}
		return
	}
	base := op.started.Add(c.opTimeout())
	if op.failed != nil && c.now.Before(base) {
		base = c.now
	}
	op.abortAt = base.Add(time.Duration(rank) * c.cfg.Timing.BC / 2)
}

// sendAbort broadcasts ABORT_DOWN for the running operation.
func (c *Core) sendAbort() {
	op := c.op
	op.abortSent = true
	key := op.g.EphemeralKey()
	if key == nil || op.piKeys[c.cfg.Self] != key.Public() {
		// In a fresh START of our group we abort with the key of the
		// group it renews, the one the others know (abortKeys).
		if c.state == nil {
			return
		}
		if key = c.state.OwnEphemeralKey(); key == nil || op.piKeys[c.cfg.Self] != key.Public() {
			return
		}
	}
	pi := op.pi
	ab := &wire.GreetPacket{
		Type: wire.GreetAbortDown, Source: c.cfg.Self, Members: op.members,
		PubKeys: []crypto.PublicKey{key.Public()}, AbortPI: &pi,
	}
	raw, err := ab.Sign(key)
	if err != nil {
		return
	}
	c.send(wire.Armour(raw))
}

// abortKeys maps the members that may abort the operation an initial
// packet begins to the ephemeral keys their aborts verify under: the keys
// the packet lists, and for a START among members of our group (a fresh
// START for forward secrecy, which lists only the founder's new key) the
// others' keys of our group, which every member of it knows alike. Without
// them only the founder could end a stalled fresh START, and a server
// showing members different STARTs would stall them all unnoticed.
func (c *Core) abortKeys(p *wire.GreetPacket) map[string]crypto.PublicKey {
	keys := initialKeys(p)
	if p.Type != wire.GreetInitInitiatorUp || c.state == nil || c.state.Position(p.Source) < 0 {
		return keys
	}
	for _, m := range p.Members {
		if i := c.state.Position(m); i >= 0 && m != p.Source {
			keys[m] = c.state.EphemeralKeys[i]
		}
	}
	return keys
}

// initialKeys maps the members of an initial packet to the ephemeral keys
// it lists for them.
func initialKeys(p *wire.GreetPacket) map[string]crypto.PublicKey {
	keys := make(map[string]crypto.PublicKey, len(p.PubKeys))
	for i, k := range p.PubKeys {
		if i < len(p.Members) {
			keys[p.Members[i]] = k
		}
	}
	return keys
}

// onAbort handles ABORT_DOWN: ServerOrder takes it like a final packet of
// the running operation if it names it, comes from a member allowed to
// abort, and verifies.
func (c *Core) onAbort(p *wire.GreetPacket, ev channel.Event) {
	if p.AbortPI == nil || len(p.PubKeys) != 1 {
		return
	}
	op := c.op
	if (op == nil || *p.AbortPI != op.pi) && c.abortOfRejected(p) {
		return
	}
	if op == nil || !c.so.Ongoing() || *p.AbortPI != op.pi || !slices.Equal(p.Members, op.members) {
		return
	}
	k, ok := op.piKeys[p.Source]
	if !ok || k != p.PubKeys[0] || !slices.Contains(op.abortR, p.Source) {
		c.warnAbout(p.Source, errors.New("session: abort from a member not allowed to abort"))
		return
	}
	if !p.Verify(k) {
		c.warnAbout(p.Source, errors.New("session: abort with a bad signature"))
		return
	}
	pid := wire.PacketID(ev.Body, ev.Sender, ev.Members)
	cand := &serverorder.Candidate{PacketID: pid, Final: true, PrevPI: op.pi}
	if c.so.Commit(cand) != nil {
		return
	}
	// Members of the session that did not take their turn are excluded
	// next (D5 of docs/SESSION.md): otherwise every later operation would
	// stall behind them.
	reason := fmt.Errorf("%w: ended by %s after a stall", ErrAborted, p.Source)
	if op.failed != nil && errors.Is(op.failed, greeting.ErrIdentityRefused) {
		reason = fmt.Errorf("%w; here: %w", reason, op.failed)
	}
	early := c.now.Before(op.started.Add(c.opTimeout() - c.cfg.Timing.BC))
	var until time.Time // the newcomers' pause, if any (Notice.Until)
	if op.prevMembers == nil && early {
		// We are a newcomer: a member that does not accept our key (yet)
		// ends our inclusion this way; no stall of anyone's.
		reason = fmt.Errorf("%w: ended early by %s, whose part failed (a member that does not trust our key yet ends an inclusion this way)",
			ErrAborted, p.Source)
	}
	if op.prevMembers != nil && early {
		// An abort this early is no stall: the operation's time is not up,
		// so its source aborted because its own part failed (its key
		// directory refused a newcomer's key, say). The members that have
		// not confirmed yet had no time to: excluding them would remove
		// honest members. The newcomers are left out of automatic
		// inclusions for a while, as after a stall, or the same inclusion
		// is proposed again at once and fails the same way, over and over.
		var newcomers []string
		for _, m := range op.members {
			if m != c.cfg.Self && !slices.Contains(op.prevMembers, m) {
				newcomers = append(newcomers, m)
			}
		}
		if len(newcomers) > 0 {
			until = c.pauseStalled(newcomers)
			reason = fmt.Errorf("%w: ended early by %s, whose part failed; %v not proposed again automatically before %s",
				ErrAborted, p.Source, newcomers, until.UTC().Format(time.TimeOnly))
			if op.failed != nil && errors.Is(op.failed, greeting.ErrIdentityRefused) {
				reason = fmt.Errorf("%w; here: %w", reason, op.failed)
			}
		}
	} else if op.prevMembers != nil {
		var newcomers []string
		for _, m := range op.g.Stalled() {
			switch {
			case m == c.cfg.Self || m == p.Source:
			case slices.Contains(op.prevMembers, m):
				c.taskExclude.add(m)
				delete(c.returning, m) // it stalled: not back for good
			default:
				newcomers = append(newcomers, m)
			}
		}
		// Newcomers that did not answer are left out of automatic
		// inclusions for a while, longer at each stall, so that they do
		// not hold up everyone else's inclusion (under the reference's rule
		// EO, which we do not apply, they also got honest newcomers kicked:
		// docs/SESSION.md, "Channel rules").
		if len(newcomers) > 0 {
			until = c.pauseStalled(newcomers)
			reason = fmt.Errorf("%w: ended by %s: %v did not answer; not proposed again automatically before %s",
				ErrAborted, p.Source, newcomers, until.UTC().Format(time.TimeOnly))
		}
	}
	c.endOpUntil(reason, false, until)
	c.statePosition()
}

// endOp ends the running operation without a result: a leave (LOI), an abort,
// or our own leave (LI; docs/SESSION.md, "Channel rules"). ignored: it
// excluded us and we assume it succeeded.
func (c *Core) endOp(reason error, ignored bool) { c.endOpUntil(reason, ignored, time.Time{}) }

// endOpUntil is endOp whose OpFailed notice also says until when the
// operation's newcomers are left out of automatic inclusions (zero: not).
func (c *Core) endOpUntil(reason error, ignored bool, until time.Time) {
	op := c.op
	if op == nil {
		return
	}
	c.op = nil
	op.g.Abandon()
	n := Notice{Kind: OpFailed, Author: op.initiator, Err: reason, Until: until}
	kind, inc, exc := opShape(op.prevMembers, op.members, op.g.Op())
	n.OpKind, n.Include, n.Exclude = kind, inc, exc
	if ignored {
		n.Kind, n.Err = OpSucceeded, nil
	}
	if op.own != nil && op.own.op != nil {
		n.Op = op.own.op
		if ignored {
			c.settle(op.own.op, nil)
		} else {
			c.settle(op.own.op, reason)
		}
	}
	c.notify(n)
	if c.userOp != nil && !c.userOp.done && c.userOp.followsWinner {
		c.settle(c.userOp, fmt.Errorf("%w: the operation it joined failed: %w", ErrRejected, reason))
	}
	if op.prevMembers == nil && c.cur == nil {
		// D10 (docs/SESSION.md): a newcomer whose inclusion failed goes back
		// to waiting, unsynced, keeping its seniors and join timer. Its chain
		// starts again: a refusal on the old one is no reason for doubt.
		c.so.Clear()
		c.suspended = nil
	}
	// An operation that excluded us and now fails (a leave, an abort): we
	// stay passive, sending nothing, waiting for the kick or the backstop,
	// unless a later proposal of our group lists us as a continuing member
	// (acceptInitial); meanwhile ServerOrder follows the order as everyone
	// else's does (the exclusion stays pending).
	c.retryTrial()
}

var errSourceMismatch = errors.New("session: packet whose SOURCE is not its sender")

// pauseStalled leaves stalled newcomers out of automatic inclusions for a
// while (doubling at each stall, up to maxStallPause) and returns until
// when.
func (c *Core) pauseStalled(newcomers []string) time.Time {
	if len(c.stalled) >= maxStalled {
		// Occupants can come and go under many names: forget the pauses
		// that ended, then the ones that end first.
		maps.DeleteFunc(c.stalled, func(_ string, p pause) bool { return !c.now.Before(p.until) })
		for len(c.stalled) >= maxStalled {
			first := ""
			for m, p := range c.stalled {
				if first == "" || p.until.Before(c.stalled[first].until) {
					first = m
				}
			}
			delete(c.stalled, first)
		}
	}
	var until time.Time
	for _, m := range newcomers {
		p := c.stalled[m]
		p.delay = min(max(2*p.delay, minStallPause), maxStallPause)
		p.until = c.now.Add(p.delay)
		c.stalled[m] = p
		if p.until.After(until) {
			until = p.until
		}
	}
	return until
}
