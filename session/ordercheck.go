package session

import (
	"fmt"
	"slices"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/internal/subsession"
	"github.com/mpenc/mpenc/internal/wire"
)

// orderCheck is what the server-order check remembers (docs/SESSION.md,
// "Server-order check").
type orderCheck struct {
	rejected []rejectedProposal // initial packets ServerOrder refused, newest last
	// suspended: our Greeting refused a final packet the others may have
	// committed, so our chain may honestly differ from theirs until we
	// resynchronise: no split is inferred from refusals meanwhile. It ends
	// once every member of a later subsession stated our chain
	// (maybeResynchronised).
	suspended *suspension
	// positionsWarned: proposal parents already reported as a split
	// (checkProposalPosition), newest last, bounded like rejected.
	positionsWarned [][32]byte
}

// suspension records where split inference was suspended: our latest
// final then, and our subsession then.
type suspension struct {
	at [32]byte
	in *sub
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
	case c.op != nil && c.op.prevMembers == nil, c.isExcluded():
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
	if c.suspended != nil || slices.ContainsFunc(c.rejected, func(r rejectedProposal) bool { return r.pi == pi }) {
		return // our refusals prove nothing now; or a replay already noted
	}
	if len(c.rejected) == maxRejected {
		c.rejected = slices.Delete(c.rejected, 0, 1)
	}
	c.rejected = append(c.rejected, rejectedProposal{pi: pi, members: slices.Clone(c.sessionMembers()), keys: c.abortKeys(p)})
}

// abortOfRejected warns when a member of our session aborts, with a valid
// signature, an operation whose initial packet we refused: it accepted
// what we refused at the same point of the order, which only a server
// showing members different orders can bring about. Reports whether the
// abort named such an operation.
func (c *Core) abortOfRejected(p *wire.GreetPacket) bool {
	i := slices.IndexFunc(c.rejected, func(r rejectedProposal) bool { return r.pi == *p.AbortPI })
	if i < 0 || c.suspended != nil || slices.Contains(c.so.PacketIDs(), *p.AbortPI) {
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

// startChainCheck sends our statement of the position that created s
// (docs/SESSION.md, "Server-order check") and arms the wait for everyone
// else's.
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
	case c.suspended != nil, c.isExcluded(), !c.so.Synced():
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
	c.suspended = &suspension{at: c.so.PrevPF(), in: c.cur}
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
	if c.suspended == nil || s != c.cur || s == c.suspended.in {
		return // (statements of the subsession we refused in predate the refusal)
	}
	if _, known, _ := c.so.Position(c.suspended.at); known && !c.so.After(s.expect.PacketID, c.suspended.at) {
		return // the statements may predate our refusal
	}
	stated := 0
	for _, m := range s.base.Members() {
		switch {
		case m == c.cfg.Self || !slices.Contains(c.channel, m),
			leftOnPurpose(s.base.Presence(m)):
		case !s.checked[m]:
			return
		default:
			stated++
		}
	}
	if stated > 0 {
		c.suspended = nil
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
		c.isExcluded() || s.base.State() != subsession.Joined {
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
			!leftOnPurpose(s.base.Presence(m)) {
			c.warn(m, fmt.Errorf("%w: %s, in this subsession", ErrOrderUnconfirmed, m))
		}
	}
}
