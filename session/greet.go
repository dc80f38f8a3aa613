package session

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/internal/serverorder"
	"github.com/mpenc/mpenc/internal/subsession"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/transcript"
)

// onGreet handles a greeting packet (SESSION-RULES §3.2 step 2).
func (c *Core) onGreet(p *wire.GreetPacket, ev channel.Event) {
	if p.Source != ev.Sender {
		// D1: the transport sender must be the packet's SOURCE.
		c.warn(ev.Sender, fmt.Errorf("%w (%q)", errSourceMismatch, p.Source))
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

// ownProposal returns our proposal whose bytes the echoed wire string
// carries, if any (the own-pI guard, SESSION-RULES §2.3).
func (c *Core) ownProposal(w string) *proposal {
	raw, err := wire.Dearmour(w)
	if err != nil {
		return nil
	}
	h := crypto.Hash(raw)
	if c.proposal != nil && c.proposal.prop.Hash == h {
		return c.proposal
	}
	for _, p := range c.withdrawn {
		if p.prop.Hash == h {
			return p
		}
	}
	return nil
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
		c.warn(p.Source, errors.New("session: initial packet without proposal metadata"))
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
		c.excludedDone && !slices.Contains(continuing(p), self) {
		return
	}
	if own == nil && !c.verifyInitial(p) {
		c.warn(p.Source, errors.New("session: initial packet with a bad signature"))
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
		if wasSynced && own == nil && !c.diverged {
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

// checkProposalPosition looks, in a proposal ServerOrder refused (for any
// reason), for a position the server cannot have shown its author and us
// alike: a position of our chain with another chain hash, or a parent we
// never had. In one server order neither happens: the proposer sent it
// after the packet that made its parent, which the server therefore
// ordered before the proposal, and a member of our session made the same
// decisions on it as we did; a proposer that had not yet seen our latest
// final names an older position of our chain. Two exceptions: while the
// operation that synced us runs, a proposal may name a position from
// before our first one; and once an operation excludes us, we may not
// recognise its final packet, on which the others build. One warning per
// position.
func (c *Core) checkProposalPosition(p *wire.GreetPacket) {
	pf, ch := p.Metadata.PrevPF, p.Metadata.ChainHash
	var why string
	switch hash, known, complete := c.so.Position(pf); {
	case c.op != nil && c.op.prevMembers == nil, !c.excludedAt.IsZero():
		// While the operation that synced us runs, a proposal may name a
		// position from before our first one; once one excludes us, we
		// may not recognise its final packet, which the others build on.
		return
	case known && hash != ch:
		why = fmt.Sprintf("proposes from chain hash %x at our position %x, where ours is %x", ch[:4], pf[:4], hash[:4])
	case !known && complete:
		why = fmt.Sprintf("proposes from position %x, which the server never showed us", pf[:4])
	default:
		return
	}
	c.warnSplitAt(pf, p.Source, why)
}

// warnSplitAt reports a split found at position pf, once per position.
func (c *Core) warnSplitAt(pf [32]byte, author, why string) {
	if slices.Contains(c.positionsWarned, pf) {
		return
	}
	if len(c.positionsWarned) == maxRejected {
		c.positionsWarned = slices.Delete(c.positionsWarned, 0, 1)
	}
	c.positionsWarned = append(c.positionsWarned, pf)
	c.warn(author, fmt.Errorf("%w: %s %s", ErrServerSplit, author, why))
}

// acceptInitial is the accept-initial hook: build the Greeting, flush the
// current subsession, settle our proposal, apply IAL.
func (c *Core) acceptInitial(p *wire.GreetPacket, ev channel.Event, pid [32]byte, own *proposal, wasSynced bool) {
	kind, inc, exc := opShape(c.sessionMembersIf(wasSynced), p.Members, p.Type)
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
		prevMembers: c.sessionMembers(), started: c.now, own: own, piKeys: initialKeys(p),
	}
	if !wasSynced {
		op.prevMembers = nil // a newcomer knows no previous membership
	}
	// Who may abort it, from the initial packet alone, so that every member
	// agrees: the continuing members whose key the packet lists (an
	// include's existing members, an exclude's remaining ones), or a
	// START's founder.
	switch p.Type {
	case wire.GreetInitInitiatorUp:
		op.abortR = []string{p.Source}
		op.piPrev = []string{p.Source}
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
		c.excludedAt = c.now // the D17 backstop runs from the pI
		c.excludedDone = false
	case slices.Contains(continuing(p), c.cfg.Self):
		// Our group still counts us as a member: an exclusion we thought
		// might have completed did not.
		c.excludedAt, c.excludedDone = time.Time{}, false
	}
	c.scheduleAbort()
	// IAL: someone excluded but not yet gone is in the new membership.
	var ial []string
	for _, m := range op.members {
		if c.taskLeave[m] {
			ial = append(ial, m)
		}
	}
	c.kick(ial)
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
func opShape(prev, next []string, t wire.GreetType) (OpKind, []string, []string) {
	if len(prev) == 0 || t.Op() == wire.OpStart {
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
// pass its signatures (D2) before it enters the chain.
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
	c.warn(c.op.initiator, fmt.Errorf("session: operation by %s failed: %w", c.op.initiator, err))
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
		return
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

// maxRejected bounds the proposals remembered by rememberRejected.
const maxRejected = 16

// rejectedProposal is an initial packet from our group that ServerOrder
// refused: with the same server order, no member of our session at that
// point can have accepted it.
type rejectedProposal struct {
	pi      [32]byte
	members []string // our session's members when we refused it
	keys    map[string]crypto.PublicKey
}

// rememberRejected notes a refused initial packet, so that an abort of it
// by a member of our session shows that the server gave us different
// orders (docs/SESSION.md, "Server-order check").
func (c *Core) rememberRejected(pi [32]byte, p *wire.GreetPacket) {
	if c.diverged || slices.ContainsFunc(c.rejected, func(r rejectedProposal) bool { return r.pi == pi }) {
		return // our refusals prove nothing now; or a replay already noted
	}
	if len(c.rejected) == maxRejected {
		c.rejected = slices.Delete(c.rejected, 0, 1)
	}
	c.rejected = append(c.rejected, rejectedProposal{pi: pi, members: slices.Clone(c.sessionMembers()), keys: initialKeys(p)})
}

// abortOfRejected warns when a member of our session aborts, with a valid
// signature, an operation whose initial packet we refused: it accepted
// what we refused at the same point of the order, which only a server
// showing members different orders can bring about. Reports whether the
// abort named such an operation.
func (c *Core) abortOfRejected(p *wire.GreetPacket) bool {
	i := slices.IndexFunc(c.rejected, func(r rejectedProposal) bool { return r.pi == *p.AbortPI })
	if i < 0 || c.diverged || slices.Contains(c.so.PacketIDs(), *p.AbortPI) {
		return false
	}
	r := c.rejected[i]
	k, ok := r.keys[p.Source]
	if !ok || p.Source == c.cfg.Self || !slices.Contains(r.members, p.Source) || k != p.PubKeys[0] || !p.Verify(k) {
		return false
	}
	c.rejected = slices.Delete(c.rejected, i, i+1) // one warning per operation
	c.warn(p.Source, fmt.Errorf("%w: %s ran an operation (%x) that the server order made us refuse",
		ErrServerSplit, p.Source, p.AbortPI[:4]))
	return true
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
		c.warn(p.Source, errors.New("session: abort from a member not allowed to abort"))
		return
	}
	if !p.Verify(k) {
		c.warn(p.Source, errors.New("session: abort with a bad signature"))
		return
	}
	pid := wire.PacketID(ev.Body, ev.Sender, ev.Members)
	cand := &serverorder.Candidate{PacketID: pid, Final: true, PrevPI: op.pi}
	if c.so.Commit(cand) != nil {
		return
	}
	// Members of the session that did not take their turn are excluded
	// next (D5): otherwise every later operation would stall behind them.
	if op.prevMembers != nil {
		for _, m := range op.g.Stalled() {
			if slices.Contains(op.prevMembers, m) && m != c.cfg.Self && m != p.Source {
				c.taskExclude.add(m)
			}
		}
	}
	c.endOp(fmt.Errorf("%w: ended by %s after a stall", ErrAborted, p.Source), false)
	c.statePosition()
}

// endOp ends the running operation without a result: a leave (LOI), an
// abort, or our own leave (LI). ignored: it excluded us and we assume it
// succeeded.
func (c *Core) endOp(reason error, ignored bool) {
	op := c.op
	if op == nil {
		return
	}
	c.op = nil
	op.g.Abandon()
	n := Notice{Kind: OpFailed, Author: op.initiator, Err: reason}
	kind, inc, exc := opShape(op.prevMembers, op.members, wire.GreetInitInitiatorUp)
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
		// D10: a newcomer whose inclusion failed goes back to waiting,
		// unsynced, keeping its seniors and join timer. Its chain starts
		// again: a refusal on the old one is no reason for doubt.
		c.so.Clear()
		c.diverged, c.divergedIn = false, nil
	}
	// An operation that excluded us and now fails (a leave, an abort): we
	// stay passive, sending nothing, waiting for the kick or the backstop,
	// unless a later proposal of our group lists us as a continuing member
	// (acceptInitial); meanwhile ServerOrder follows the order as everyone
	// else's does (excludedDone stays false).
	c.retryTrial()
}

// complete finishes the running operation at its final packet: rotate the
// subsessions (SESSION-RULES §3.7).
func (c *Core) complete() {
	op := c.op
	res := op.g.Result()
	if res == nil {
		// It excludes us: we keep the old subsession, reading and acking,
		// until we are kicked (or the backstop fires).
		c.op = nil
		c.excludedDone = true
		return
	}
	c.op = nil
	if !subset(res.Members, c.channel) {
		c.setFatal(errors.New("session: operation completed with members outside the room"))
		return
	}
	old := op.prevMembers
	if old == nil {
		old = []string{c.cfg.Self}
	}
	var X, I, R []string
	for _, m := range old {
		if slices.Contains(res.Members, m) {
			R = append(R, m)
		} else {
			X = append(X, m)
		}
	}
	for _, m := range res.Members {
		if !slices.Contains(old, m) {
			I = append(I, m)
		}
	}
	c.taskExclude.del(X...)
	for _, m := range X {
		if slices.Contains(c.channel, m) {
			c.taskLeave.add(m)
		}
	}
	c.justSynced = false
	c.excludedAt, c.excludedDone = time.Time{}, false
	prevRef := causal.NoTranscript
	if old := c.cur; old != nil {
		prevRef = old.ref
		old.excluded = set{}
		old.excluded.add(X...)
		c.prevs = append(c.prevs, old)
		if old.base.State() == subsession.Joined {
			old.base.Fin(c.now)
			c.drain(old)
		}
	}
	for len(c.prevs) > maxPrevs {
		// Too many shutdowns at once: force-stop the oldest; what it had
		// not seen acknowledged is reported. Its FinComplete, translated
		// while draining, already takes it off the list; removing it again
		// must not drop another one.
		oldest := c.prevs[0]
		oldest.base.Stop(c.now)
		c.drainNotices(oldest)
		c.prevs = slices.DeleteFunc(c.prevs, func(p *sub) bool { return p == oldest })
	}
	c.cur = nil
	if len(res.Members) > 1 {
		s, err := c.newSub(res, prevRef, op.latestPM)
		if err != nil {
			c.setFatal(err)
			return
		}
		c.cur = s
		c.replaceState(res)
		c.startChainCheck(s)
	} else {
		c.replaceState(nil) // solo: the next inclusion starts afresh
	}
	kind, _, _ := opShape(op.prevMembers, res.Members, wire.GreetRefreshAuxInitiatorDown)
	done := Notice{Kind: OpSucceeded, Author: op.initiator, OpKind: kind, Include: I, Exclude: X}
	if op.own != nil && op.own.op != nil {
		done.Op = op.own.op
		c.settle(op.own.op, nil)
	}
	c.notify(done)
	c.notify(Notice{Kind: Membership, Remain: R, Include: I, Exclude: X, LogParents: c.logHeads()})
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
		c.joinDeadline, c.rejoins = time.Time{}, 0
	}
	if c.userOp != nil && !c.userOp.done && c.userOp.followsWinner {
		c.settle(c.userOp, nil) // someone else's operation did what we asked
	}
	if lp := c.lastPrev(); lp == nil || lp.base.State().Done() {
		if lp != nil {
			c.prevs = c.prevs[:len(c.prevs)-1]
		}
		c.onPrevSessionFin()
	}
	c.retryTrial()
}

// replaceState makes res our result state and wipes the group key of the
// State it replaces: every subsession holds its own copy, and no later
// operation starts from a replaced State. (The contributions and the
// ephemeral signing key are shared with res and stay.)
func (c *Core) replaceState(res *greeting.State) {
	if old := c.state; old != nil && old != res {
		crypto.Zero(old.GroupKey[:])
	}
	c.state = res
}

// satisfiedBy reports whether an operation that included inc and excluded
// exc does what the pending user operation asked.
func (o *Op) satisfiedBy(inc, exc []string, kind OpKind) bool {
	switch o.Kind {
	case OpInclude:
		return subset(o.Members, inc)
	case OpExclude:
		return subset(o.Members, exc)
	case OpRefresh:
		return kind == OpRefresh
	}
	return false
}

// newSub creates the subsession of a new membership and registers its
// transcript with the message log after the previous one, checking
// LATEST_PM (SESSION-RULES §3.7 step 5).
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
	return &sub{base: base, ref: ref, sid: res.SID}, nil
}

// startChainCheck sends our statement of the position that created s
// (SESSION-RULES §5) and arms the wait for everyone else's.
func (c *Core) startChainCheck(s *sub) {
	if c.cfg.NoChainCheck {
		return
	}
	s.expect = message.ChainPosition{PacketID: c.so.PrevPF(), ChainHash: c.so.PrevCH()}
	s.checked = set{}
	// FA is when the first resend of a lost statement goes out: allow two
	// more broadcast rounds before reporting it missing.
	s.checkDue = c.now.Add(c.cfg.Timing.FA + 2*c.cfg.Timing.BC)
	if _, err := s.base.SendChainCheck(s.expect, c.now); err == nil {
		c.drain(s)
	}
}

// chainCheckReceived compares a member's statement with ours. The first
// statement of each member is the position that created s and must equal
// ours; later ones (statePosition) name positions after it, which must be
// positions of our chain with our chain hash there.
func (c *Core) chainCheckReceived(s *sub, author string, pos *message.ChainPosition) {
	if c.cfg.NoChainCheck || s.checked == nil || pos == nil {
		return
	}
	if *pos == s.expect {
		s.checked.add(author)
		c.maybeResynchronised(s)
		return
	}
	hash, known, complete := c.so.Position(pos.PacketID)
	if !s.checked[author] && (!known || hash != pos.ChainHash || !c.so.After(pos.PacketID, s.expect.PacketID)) {
		// The server showed us and the author different histories (a
		// reordered or altered packet, a forged proposal) before the
		// subsession: we cannot tell which of us it lied to, and nothing
		// built on this chain is safe.
		s.checked.add(author)
		c.setFatalBy(author, fmt.Errorf("%w: %s saw a different server order (packet %x, chain %x) than we did (%x, %x)",
			ErrServerSplit, author, pos.PacketID[:4], pos.ChainHash[:4], s.expect.PacketID[:4], s.expect.ChainHash[:4]))
		return
	}
	// A later position: the author sent it after the packet that made it,
	// so the server ordered that packet before the statement, and a member
	// of our subsession decided on it as we did. The same exceptions as
	// for proposals' positions (checkProposalPosition) apply.
	first := !s.checked[author]
	s.checked.add(author) // (the chain hash is cumulative: it confirms the start too)
	if first {
		c.maybeResynchronised(s) // (checked above: our position, our hash)
	}
	switch {
	case c.diverged, !c.excludedAt.IsZero(), !c.so.Synced():
		return
	case known && hash != pos.ChainHash:
		c.warnSplitAt(pos.PacketID, author, fmt.Sprintf("states chain hash %x at our position %x, where ours is %x",
			pos.ChainHash[:4], pos.PacketID[:4], hash[:4]))
	case !known && complete:
		c.warnSplitAt(pos.PacketID, author, fmt.Sprintf("states position %x, which the server never showed us", pos.PacketID[:4]))
	}
}

// setDiverged notes that our Greeting refused a final packet the others
// may have committed.
func (c *Core) setDiverged() {
	c.diverged, c.divergedAt, c.divergedIn = true, c.so.PrevPF(), c.cur
}

// maybeResynchronised ends the suspension of split inference (diverged)
// once every other member of the current subsession in the room has
// stated the position that created it with our chain hash, and that
// position comes after the refusal that suspended it (or our chain was
// restarted since). The chain hash is cumulative: their chains then equal
// ours, so a later disagreement is not of our making. Without this a
// single refusal would turn the check off for the rest of our stay in the
// room (hostile seed 11764: both sides of a split had once refused a
// final, and a later split went unreported).
func (c *Core) maybeResynchronised(s *sub) {
	if !c.diverged || s != c.cur || s == c.divergedIn {
		return // (statements of the subsession we refused in predate the refusal)
	}
	if _, known, _ := c.so.Position(c.divergedAt); known && !c.so.After(s.expect.PacketID, c.divergedAt) {
		return // the statements may predate our refusal
	}
	stated := 0
	for _, m := range s.base.Members() {
		switch {
		case m == c.cfg.Self || !slices.Contains(c.channel, m),
			s.base.Presence(m) == subsession.IntentAbsent, s.base.Presence(m) == subsession.MemberParting:
		case !s.checked[m]:
			return
		default:
			stated++
		}
	}
	if stated > 0 {
		c.diverged = false
	}
}

// statePosition states our chain position in the current subsession after
// an operation ended without creating a subsession (a leave, an abort, a
// one-packet operation that failed for us). A subsession's first statement
// covers the order up to its creation only: a split in an operation that
// never completes would otherwise show only at the next proposal, if one
// ever comes (hostile seed 4206).
func (c *Core) statePosition() {
	s := c.cur
	if c.cfg.NoChainCheck || s == nil || s.checked == nil || !c.so.Synced() ||
		!c.excludedAt.IsZero() || s.base.State() != subsession.Joined {
		return
	}
	pos := message.ChainPosition{PacketID: c.so.PrevPF(), ChainHash: c.so.PrevCH()}
	if _, err := s.base.SendChainCheck(pos, c.now); err == nil {
		c.drain(s)
	}
}

// chainCheckDue reports the members of the current subsession that did
// not state their position within FA (once).
func (c *Core) chainCheckDue() {
	// Only the current subsession: a newer one's statement covers the
	// older positions too (the chain hash is cumulative).
	s := c.cur
	if s == nil || s.checkDone || s.checked == nil || !due(s.checkDue, c.now) {
		return
	}
	s.checkDone = true // (a deadline left pending would fire for ever)
	if s.finished || c.fatal != nil {
		return
	}
	for _, m := range s.base.Members() {
		if m != c.cfg.Self && !s.checked[m] && slices.Contains(c.channel, m) &&
			s.base.Presence(m) != subsession.IntentAbsent && s.base.Presence(m) != subsession.MemberParting {
			c.warn(m, fmt.Errorf("%w: %s, in this subsession", ErrOrderUnconfirmed, m))
		}
	}
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
// (or at once if there is none): kick who was excluded, and leave if no
// session is left for us.
func (c *Core) onPrevSessionFin() {
	if !c.inChannel {
		return
	}
	kicked := []string{}
	for _, m := range c.taskLeave.sorted() {
		if slices.Contains(c.channel, m) {
			kicked = append(kicked, m)
		}
	}
	c.kick(kicked)
	if c.cur != nil || !c.so.Synced() || c.op != nil || c.justSynced {
		return
	}
	rest := 0
	for _, m := range c.channel {
		if m != c.cfg.Self && !slices.Contains(kicked, m) {
			rest++
		}
	}
	if c.cfg.StayIfLastMember && rest == 0 && !c.parting {
		c.justSynced = true // stay, keeping the chain (COsJ)
		return
	}
	c.leaveAt = c.now
}
