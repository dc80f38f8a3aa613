package session

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/transcript"
)

// proposals is what our own proposals own: the one waiting for its echo,
// those we gave up on but still recognise, and the user's pending
// membership operation (one at a time).
type proposals struct {
	proposal  *proposal   // our proposal waiting for its echo
	withdrawn []*proposal // proposals we gave up on or lost, still recognised if echoed late
	userOp    *Op         // the pending include, exclude or refresh
}

func (c *Core) newOp(kind OpKind, members []string) *Op {
	c.ops++
	return newOp(c.ops, kind, members, c.now)
}

// settle ends an operation (once). Join and part announce it here;
// membership operations are announced by the flow that ends them.
func (c *Core) settle(op *Op, err error) {
	if op == nil || !op.settle(err) {
		return
	}
	if op.Kind == OpJoin || op.Kind == OpPart {
		n := Notice{Kind: OpSucceeded, Op: op, OpKind: op.Kind, Err: err}
		if err != nil {
			n.Kind = OpFailed
		}
		c.notify(n)
	}
	if op == c.userOp {
		c.userOp = nil
	}
}

// randFloat draws a float in [0, 1) from the configured randomness.
func (c *Core) randFloat() float64 {
	b, err := primitive.Random32(c.cfg.Rand)
	if err != nil {
		return 0.5
	}
	var seed [32]byte = b
	return rand.New(rand.NewChaCha8(seed)).Float64()
}

// --- User actions. Each takes the time and returns at once; its outcome
// comes later as a notice and through the Op handle. ---

// Send sends a message to the session, and returns its id. Out of the
// session after a gap (a lost connection, a server restart), the message
// waits for the members of our last subsession instead: a Queued notice
// names it by the returned handle, and it is sent as a Message that
// replaces that handle once they are back, or reported NotDelivered to
// those who are not back within the join window.
func (c *Core) Send(text string, now time.Time) (transcript.ID, error) {
	c.advance(now)
	defer c.after()
	if c.fatal != nil {
		return transcript.ID{}, c.fatal
	}
	if c.cur == nil && c.canQueue() {
		return c.enqueue(text)
	}
	if c.cur == nil || c.parting() || c.isExcluded() {
		// Being excluded: the others have moved on to a subsession without
		// us; a message now could only arrive after their FIN.
		return transcript.ID{}, ErrNotJoined
	}
	id, err := c.cur.base.SendPayload(text, c.now)
	c.drain(c.cur)
	return id, err
}

// Include proposes to bring members into the session. They must be in the
// room.
func (c *Core) Include(members []string, now time.Time) (*Op, error) {
	return c.userOperation(OpInclude, members, now)
}

// Exclude proposes to remove members from the session.
func (c *Core) Exclude(members []string, now time.Time) (*Op, error) {
	return c.userOperation(OpExclude, members, now)
}

// Refresh proposes a new group key.
func (c *Core) Refresh(now time.Time) (*Op, error) {
	return c.userOperation(OpRefresh, nil, now)
}

func (c *Core) userOperation(kind OpKind, members []string, now time.Time) (*Op, error) {
	c.advance(now)
	defer c.after()
	members = slices.Compact(slices.Sorted(slices.Values(members)))
	if c.fatal != nil {
		return nil, c.fatal
	}
	if u := c.userOp; u != nil && !u.done {
		if u.Kind == kind && slices.Equal(u.Members, members) {
			return u, nil // the same action: the same handle (D3, docs/SESSION.md)
		}
		return nil, ErrOperationInProgress
	}
	if !c.stage.inRoom() || !c.so.Synced() || c.parting() || c.isExcluded() {
		return nil, ErrNotJoined
	}
	if c.op != nil || c.proposal != nil {
		return nil, ErrBusy // D8 (docs/SESSION.md): it would carry a doomed parent
	}
	cur := c.sessionMembers()
	var next []string
	switch kind {
	case OpInclude:
		if len(members) == 0 {
			return nil, fmt.Errorf("%w: nobody to include", ErrInvalid)
		}
		for _, m := range members {
			if slices.Contains(cur, m) || m == c.cfg.Self {
				return nil, fmt.Errorf("%w: %s is already a member", ErrInvalid, m)
			}
			if c.taskExclude[m] {
				return nil, fmt.Errorf("%w: %s is being excluded", ErrInvalid, m)
			}
			if c.taskLeave[m] {
				// Excluded but still in the room: it must go before it can
				// come back (so that rule IAL never fires against us:
				// docs/SESSION.md, "Channel rules").
				c.kick([]string{m}, reasonIAL)
				return nil, fmt.Errorf("%w: %s must leave the room first (kicked); include it when it is back", ErrBusy, m)
			}
			if !slices.Contains(c.channel, m) {
				return nil, fmt.Errorf("%w: %s", ErrNotInChannel, m)
			}
		}
		next = append(slices.Clone(cur), members...)
	case OpExclude:
		if len(members) == 0 {
			return nil, fmt.Errorf("%w: nobody to exclude", ErrInvalid)
		}
		for _, m := range members {
			if m == c.cfg.Self {
				return nil, fmt.Errorf("%w: we never exclude ourselves; part instead", ErrInvalid)
			}
			if !slices.Contains(cur, m) {
				return nil, fmt.Errorf("%w: %s is not a member", ErrInvalid, m)
			}
		}
		next = slices.DeleteFunc(slices.Clone(cur), func(m string) bool { return slices.Contains(members, m) })
		for _, m := range members {
			delete(c.returning, m) // excluded on purpose: never included again unasked
		}
	case OpRefresh:
		if c.state == nil {
			return nil, fmt.Errorf("%w: no group key to refresh when alone", ErrInvalid)
		}
		next = slices.Clone(cur)
	}
	op := c.newOp(kind, members)
	if err := c.propose(next, kind, members, op); err != nil {
		return nil, err
	}
	c.userOp = op
	return op, nil
}

// propose builds and sends an initial packet (docs/SESSION.md, "Own
// proposals and rejection").
func (c *Core) propose(next []string, kind OpKind, members []string, op *Op) error {
	if c.so.Ongoing() || c.op != nil || c.proposal != nil || !c.so.Synced() {
		return ErrBusy
	}
	if !subset(next, c.channel) {
		return ErrNotInChannel // an advisory XP (docs/SESSION.md): rejected anyway
	}
	meta := &wire.Metadata{PrevPF: c.so.PrevPF(), ChainHash: c.so.PrevCH(), LatestPM: c.heads()}
	from := c.state
	if kind == OpStart {
		from = nil // a START: fresh contributions from everyone
	}
	prop, err := c.gr.Propose(from, next, meta)
	if err != nil {
		if errors.Is(err, greeting.ErrInvalidProposal) {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return err
	}
	c.proposal = &proposal{prop: prop, op: op, kind: kind, members: slices.Clone(members), sentAt: c.now}
	c.send(prop.Wire)
	c.notify(Notice{Kind: OpProposed, Op: op, OpKind: kind, Author: c.cfg.Self, Include: includes(kind, members), Exclude: excludes(kind, members)})
	return nil
}

func includes(k OpKind, m []string) []string {
	if k == OpInclude || k == OpStart {
		return m
	}
	return nil
}

func excludes(k OpKind, m []string) []string {
	if k == OpExclude {
		return m
	}
	return nil
}

// rejectProposal settles a proposal that lost. Rule-driven proposals lose
// quietly (all propose, one wins); a user's is reported.
func (c *Core) rejectProposal(p *proposal, err error) {
	c.dropProposal(p)
	if p.op != nil {
		c.notify(Notice{Kind: OpRejected, Op: p.op, OpKind: p.kind, Err: err})
		c.settle(p.op, err)
	}
}

// settleProposal rejects our outstanding proposal, if any.
func (c *Core) settleProposal(err error) {
	if c.proposal != nil {
		c.rejectProposal(c.proposal, err)
	}
	c.withdrawn = nil
}

// echoWait is how long we wait for our proposal's echo before giving it up:
// a server that dropped it would otherwise block every later proposal of
// ours (D8, docs/SESSION.md). Generous: a withdrawn proposal echoed late
// still runs.
func (c *Core) echoWait() time.Duration { return 4*c.cfg.Timing.BC + 2*time.Second }

// maxWithdrawn bounds the withdrawn or lost proposals we still recognise.
const maxWithdrawn = 4

// withdrawProposal gives up our proposal whose echo did not come: we may
// propose again. It stays recognisable (ownProposal) so that a late echo
// accepted by ServerOrder still runs as ours. A user's operation is
// settled as failed.
func (c *Core) withdrawProposal() {
	p := c.proposal
	c.proposal = nil
	c.keepRecognisable(p)
	if p.op != nil {
		c.notify(Notice{Kind: OpRejected, Op: p.op, OpKind: p.kind, Err: ErrNoEcho})
		c.settle(p.op, ErrNoEcho)
	}
}

// keepRecognisable keeps a proposal we no longer wait for (withdrawn, or
// lost to another) recognisable by ownProposal until its echo comes.
func (c *Core) keepRecognisable(p *proposal) {
	if len(c.withdrawn) == maxWithdrawn {
		c.withdrawn = slices.Delete(c.withdrawn, 0, 1)
	}
	c.withdrawn = append(c.withdrawn, p)
}

func (c *Core) dropProposal(p *proposal) {
	if c.proposal == p {
		c.proposal = nil
	}
	c.withdrawn = slices.DeleteFunc(c.withdrawn, func(q *proposal) bool { return q == p })
}

// keyed reports whether the directory gives an identity key for m: it can
// take part in an operation now. Including anyone else (a client that does
// not speak mpENC, or a key the trust policy refuses) would stall the
// operation until the abort, so auto-inclusion asks only keyed members.
func (c *Core) keyed(m string) bool {
	_, err := c.cfg.Directory.IdentityKey(m)
	return err == nil
}

// autoIncludes reports whether we include m by ourselves when it enters:
// AutoInclude, unless AskFirst leaves m to the user.
func (c *Core) autoIncludes(m string) bool {
	return c.cfg.AutoInclude && (c.cfg.AskFirst == nil || !c.cfg.AskFirst(m))
}

// speaksMpENC reports whether m announced an identity key in the room or
// the directory knows one: a join request is worth showing, even when the
// key still needs the user's trust.
func (c *Core) speaksMpENC(m string) bool { return c.announced[m] || c.keyed(m) }

// handleTasks proposes what the rules call for when the session is idle
// (docs/SESSION.md, "Tasks"): exclusions first, then inclusions.
// Rule-driven proposals are re-derived from the state each time, never
// retried as such.
func (c *Core) handleTasks() {
	if c.fatal != nil || !c.stage.inRoom() || !c.so.Synced() || c.so.Ongoing() || c.op != nil ||
		c.proposal != nil || c.parting() || c.isExcluded() || (c.userOp != nil && !c.userOp.done) {
		return
	}
	if c.cur == nil && c.stage != stageAlone {
		return // COsj: being included, or waiting to leave
	}
	members := c.sessionMembers()
	if len(c.taskExclude) > 0 {
		var next []string
		for _, m := range members {
			if !c.taskExclude[m] {
				next = append(next, m)
			}
		}
		c.taskExclude = set{}
		for _, m := range members {
			if m != c.cfg.Self && !slices.Contains(next, m) {
				c.taskExclude.add(m)
			}
		}
		if len(next) < len(members) && len(c.taskExclude) > 0 {
			c.propose(next, OpExclude, c.taskExclude.sorted(), nil)
		}
		return
	}
	// Inclusions: with AutoInclude whoever is in the room and speaks
	// mpENC with a key the directory accepts; always the members of our
	// last subsession coming back (returning); never a newcomer whose
	// inclusion stalled before, until its pause ends.
	var inc []string
	for _, m := range c.channel {
		if m == c.cfg.Self || slices.Contains(members, m) || c.taskLeave[m] || c.taskExclude[m] ||
			c.pausedStall(m) || !(c.autoIncludes(m) || c.isReturning(m)) || !c.keyed(m) {
			continue
		}
		inc = append(inc, m)
	}
	if len(inc) > 0 {
		c.propose(append(slices.Clone(members), inc...), OpInclude, inc, nil)
		return
	}
	if c.rekeyDue() {
		c.propose(members, OpStart, nil, nil) // fresh keys from everyone: forward secrecy
	}
}

// rekeyDue reports whether our group has run RekeyOps operations or
// RekeyAfter since its keys were last made afresh.
func (c *Core) rekeyDue() bool {
	if c.cur == nil || c.cfg.NoChainCheck || c.keyedAt.IsZero() {
		return false
	}
	return c.cfg.RekeyOps > 0 && c.opsSinceStart >= c.cfg.RekeyOps ||
		c.cfg.RekeyAfter > 0 && !c.now.Before(c.keyedAt.Add(c.cfg.RekeyAfter))
}

// isReturning reports whether m is of our last subsession and lost the
// room without leaving on purpose, recently enough to be included again
// without being asked.
func (c *Core) isReturning(m string) bool {
	until, ok := c.returning[m]
	if ok && !c.now.Before(until) {
		delete(c.returning, m)
		return false
	}
	return ok
}

// pausedStall reports whether m's inclusion stalled and its pause has not
// ended.
func (c *Core) pausedStall(m string) bool {
	p, ok := c.stalled[m]
	return ok && c.now.Before(p.until)
}

// proposal is a proposal we sent.
type proposal struct {
	prop    *greeting.Proposal
	op      *Op // the user operation it serves; nil for a rule-driven one
	kind    OpKind
	members []string // included or excluded
	sentAt  time.Time
}

// ownProposal returns our proposal whose bytes the echoed wire string
// carries, if any (the own-pI guard, docs/SESSION.md, "ServerOrder").
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
