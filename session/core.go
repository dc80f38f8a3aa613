package session

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/greeter"
	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/internal/serverorder"
	"github.com/mpenc/mpenc/internal/subsession"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/transcript"
)

// Config configures a session. It is never modified and may be shared.
type Config struct {
	// Self is our participant id (our full JID on XMPP).
	Self string
	// Identity is our static identity key; Directory gives the others'.
	Identity  *crypto.SigningKey
	Directory greeter.Directory
	// Timing holds every timer (subsession.LoopbackTiming for tests on
	// loopback, session.InternetTiming for real rooms).
	Timing subsession.Timing
	// Rand is the source of every random value; nil means crypto/rand.
	Rand io.Reader
	// AutoInclude makes us propose to include whoever enters the room
	// (autoIncludeExtra of the reference). Off: a JoinRequest notice.
	AutoInclude bool
	// StayIfLastMember keeps us in the room, keeping the chain, when
	// everyone else has been excluded (stayIfLastMember of the reference).
	StayIfLastMember bool
	// NoChainCheck turns off the server-order check (docs/PROTOCOL.md §8):
	// after each operation every member states the ServerOrder position
	// that created the new subsession, as a message of body type 4, and
	// members compare. Reference (mpenc_js) peers cannot decode it: set
	// this only in rooms with such peers.
	NoChainCheck bool
	// MaxRejoins is how many times a joining member kicked by the others
	// (rule EO or EAL) re-enters by itself before giving up; 0 means 2.
	MaxRejoins int
}

// ActionKind says what an Action asks of the channel.
type ActionKind uint8

// Channel actions.
const (
	ActEnter ActionKind = iota + 1 // enter the room
	ActLeave                       // leave the room
	ActSend                        // broadcast Wire
	ActKick                        // remove Members from the room
)

func (k ActionKind) String() string {
	return [...]string{"?", "enter", "leave", "send", "kick"}[k]
}

// Action is something the core asks its owner to do on the channel.
type Action struct {
	Kind    ActionKind
	Wire    string
	Members []string
	// Seq numbers our enters: a failure reported for an enter that is no
	// longer the latest is ignored ([Core.EnterFailed]).
	Seq uint64
}

// Core is the HybridSession of one member in one room: a deterministic
// state machine. Channel events ([Core.HandleEvent]), user actions and
// timer ticks ([Core.Tick]) go in, with the time; channel actions
// ([Core.TakeActions]) and notices ([Core.TakeNotices]) come out. It has no
// goroutines and never reads the clock, so the simulator can drive many
// members through seeded scenarios and replay them exactly. [Session] runs
// a Core over a real channel.
//
// Not safe for concurrent use.
type Core struct {
	cfg Config
	gr  *greeting.Greeter
	now time.Time
	ops uint64

	inChannel bool
	channel   []string // sorted membership of the room as the last event stamped it
	wantIn    bool     // the user wants to be in the session

	so    serverorder.Resolver
	state *greeting.State // our membership's result state; nil when solo or outside
	op    *running        // the operation under way, accepted by ServerOrder

	// cur is the current subsession; prevs are older ones still finishing
	// their shutdown, oldest first (at most maxPrevs: a quick succession of
	// operations must not force-stop a shutdown in progress, which would
	// report its unacknowledged messages for no fault of anyone's).
	cur   *sub
	prevs []*sub
	log   *causal.MessageLog
	trial *subsession.TrialBuffer

	// oldSenders: members known to be finishing an older subsession we
	// were not part of (we were just included); their undecryptable
	// packets are that subsession's, not warnings, until the time given.
	oldSenders map[string]time.Time

	// announced: members that announced an identity key in the room (they
	// speak mpENC), whether or not the directory trusts it yet.
	announced set

	seniors     set
	taskExclude set
	taskLeave   set
	justSynced  bool

	proposal *proposal          // our proposal waiting for its echo
	rejected []rejectedProposal // initial packets ServerOrder refused, newest last
	// diverged: our Greeting refused a final packet the others may have
	// committed, so our chain may honestly differ from theirs until we
	// resynchronise: no split is inferred from refusals meanwhile.
	// divergedAt is our latest final then, divergedIn our subsession then;
	// the flag clears once every member of a later subsession stated our
	// chain (maybeResynchronised).
	diverged   bool
	divergedAt [32]byte
	divergedIn *sub
	// positionsWarned: proposal parents already reported as a split
	// (checkProposalPosition), newest last, bounded like rejected.
	positionsWarned [][32]byte
	enterSeq        uint64       // the latest enter we asked for
	retired         []retiredSub // finished subsessions whose late packets we still recognise
	withdrawn       []*proposal  // proposals we gave up on or lost, still recognised if echoed late
	userOp          *Op          // the pending include/exclude/refresh (one at a time, D3)
	joinOp          *Op
	partOp          *Op
	parting         bool

	joinDeadline time.Time // while joining: give up then (D16)
	rejoins      int
	reenterAt    time.Time // a kicked joiner re-enters then
	excludedAt   time.Time // an accepted operation excludes us: the D17 backstop runs from here
	// excludedDone: the operation that excludes us completed (we saw its
	// final packet): we are out of the group and only wait to be kicked.
	// Until then, after an exclusion that failed, we follow the order.
	excludedDone bool
	leaveAt      time.Time // leave the room then (after a part completes, or by the backstop)

	lastOutcome State // PARTED, PART_FAILED or JOIN_FAILED once out of the room
	public      State
	fatal       error

	actions []Action
	notices []Notice
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
}

// lateForRetired reports whether a data packet no live subsession took is
// a late packet of a finished one.
func (c *Core) lateForRetired(p *wire.DataPacket, sender string) bool {
	c.retired = slices.DeleteFunc(c.retired, func(r retiredSub) bool { return !c.now.Before(r.until) })
	for _, r := range c.retired {
		if _, err := r.v.Identify(p, sender); err == nil {
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
	finished bool // its FinComplete was seen
	excluded set  // members the operation that retired it excluded

	// The server-order check: the position that created the subsession,
	// who has stated the same, and when to report those who did not.
	expect    message.ChainPosition
	checked   set
	checkDue  time.Time
	checkDone bool
}

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

// proposal is a proposal we sent.
type proposal struct {
	prop    *greeting.Proposal
	op      *Op // the user operation it serves; nil for a rule-driven one
	kind    OpKind
	members []string // included or excluded
	sentAt  time.Time
}

type set map[string]bool

func (s set) add(xs ...string) {
	for _, x := range xs {
		s[x] = true
	}
}

func (s set) del(xs ...string) {
	for _, x := range xs {
		delete(s, x)
	}
}

func (s set) sorted() []string {
	out := make([]string, 0, len(s))
	for x := range s {
		out = append(out, x)
	}
	slices.Sort(out)
	return out
}

// NewCore returns the session core of cfg.Self, out of the room, at now.
func NewCore(cfg Config, now time.Time) (*Core, error) {
	if cfg.Self == "" || cfg.Identity == nil || cfg.Directory == nil {
		return nil, errors.New("session: Config needs Self, Identity and Directory")
	}
	if err := cfg.Timing.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxRejoins == 0 {
		cfg.MaxRejoins = 2
	}
	c := &Core{
		cfg:         cfg,
		gr:          &greeting.Greeter{Self: cfg.Self, Identity: cfg.Identity, Directory: cfg.Directory, Rand: cfg.Rand},
		now:         now,
		log:         causal.NewMessageLog(),
		trial:       subsession.NewTrialBuffer(cfg.Timing),
		seniors:     set{},
		taskExclude: set{},
		taskLeave:   set{},
		oldSenders:  map[string]time.Time{},
		announced:   set{},
		lastOutcome: StateParted,
		public:      StateParted,
	}
	return c, nil
}

// Self returns our participant id.
func (c *Core) Self() string { return c.cfg.Self }

// TakeActions returns and clears the channel actions to perform, in order.
func (c *Core) TakeActions() []Action {
	a := c.actions
	c.actions = nil
	return a
}

// TakeNotices returns and clears the notices, in order.
func (c *Core) TakeNotices() []Notice {
	n := c.notices
	c.notices = nil
	return n
}

func (c *Core) notify(n Notice) {
	n.At = c.now
	c.notices = append(c.notices, n)
}

func (c *Core) warn(author string, err error) {
	c.notify(Notice{Kind: SecurityWarning, Author: author, Err: err})
}

func (c *Core) send(w string) { c.actions = append(c.actions, Action{Kind: ActSend, Wire: w}) }

func (c *Core) kick(members []string) {
	var ms []string
	for _, m := range members {
		if m != c.cfg.Self && slices.Contains(c.channel, m) {
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		return
	}
	// Ack first what we accepted and have not acked yet (a message sent
	// as we excluded its author): once kicked, it could never learn that
	// we read it, and would warn its user that we did not.
	for _, s := range append(slices.Clone(c.prevs), c.cur) {
		if s != nil && s.base.AckNow(c.now) {
			c.drain(s)
		}
	}
	c.actions = append(c.actions, Action{Kind: ActKick, Members: ms})
}

func (c *Core) enterChannel() {
	c.enterSeq++
	c.actions = append(c.actions, Action{Kind: ActEnter, Seq: c.enterSeq})
}
func (c *Core) leaveChannel() { c.actions = append(c.actions, Action{Kind: ActLeave}) }

// advance records the time of an input.
func (c *Core) advance(now time.Time) {
	if now.After(c.now) {
		c.now = now
	}
}

// --- Queries ---

// State returns the public state.
func (c *Core) State() State { return c.public }

// Letters returns the internal state of SESSION-RULES §3.1: C/c in the
// channel, O/o synced, S/s a current subsession, J/j justSynced ("cos_",
// "Cos_", "COsJ", "COsj", "COS_").
func (c *Core) Letters() string {
	l := []byte("cos_")
	if c.inChannel {
		l[0] = 'C'
	}
	if c.so.Synced() {
		l[1] = 'O'
	}
	if c.cur != nil {
		l[2] = 'S'
	}
	switch {
	case !c.so.Synced():
	case c.justSynced:
		l[3] = 'J'
	case c.cur == nil:
		l[3] = 'j'
	}
	return string(l)
}

// Members returns the session's members (sorted): the current
// subsession's, or just us when solo, or nil outside a session.
func (c *Core) Members() []string {
	if c.cur != nil {
		return c.cur.base.Members()
	}
	if c.so.Synced() {
		return []string{c.cfg.Self}
	}
	return nil
}

// ChannelMembers returns the room's membership as last seen.
func (c *Core) ChannelMembers() []string { return slices.Clone(c.channel) }

// SessionID returns the current subsession's id, if any.
func (c *Core) SessionID() ([32]byte, bool) {
	if c.cur == nil {
		return [32]byte{}, false
	}
	return c.cur.sid, true
}

// Subsession returns the current subsession (nil if none). Read-only use:
// queries such as Presence, Heads, Graph.
func (c *Core) Subsession() *subsession.SessionBase {
	if c.cur == nil {
		return nil
	}
	return c.cur.base
}

// GroupState returns the greeter's result state of the current membership
// (nil when solo or outside). Read-only: it holds key material.
func (c *Core) GroupState() *greeting.State { return c.state }

// Chain returns ServerOrder's packet ids and chain hashes.
func (c *Core) Chain() (ids, hashes [][32]byte) { return c.so.PacketIDs(), c.so.ChainHashes() }

// Log returns the message log (read-only use).
func (c *Core) Log() *causal.MessageLog { return c.log }

// Finishing returns how many previous subsessions are still shutting down
// (waiting for the acks of their FINs).
func (c *Core) Finishing() int { return len(c.prevs) }

// OperationRunning reports whether a membership operation is under way.
func (c *Core) OperationRunning() bool { return c.op != nil }

// Err returns the fatal error that put the session in ERROR, if any.
func (c *Core) Err() error { return c.fatal }

// updateState recomputes the public state and announces a change.
func (c *Core) updateState() {
	var s State
	switch {
	case c.fatal != nil:
		s = StateError
	case !c.inChannel:
		s = c.lastOutcome
	case !c.so.Synced():
		s = StateJoining
	case c.cur == nil:
		if c.justSynced || c.op != nil || c.joinOp != nil && !c.joinOp.done {
			s = StateJoining
		} else {
			s = StateParting
		}
	case c.parting || !c.excludedAt.IsZero():
		s = StateParting
	default:
		s = StateJoined
	}
	if s != c.public {
		c.public = s
		c.notify(Notice{Kind: StateChanged, State: s})
	}
}

// setFatal puts the session in ERROR (a protocol failure we cannot
// recover from in place, such as a dodgy transport): it leaves the room.
func (c *Core) setFatal(err error) { c.setFatalBy("", err) }

// setFatalBy is setFatal naming the member whose packet showed the error.
func (c *Core) setFatalBy(author string, err error) {
	if c.fatal != nil {
		return
	}
	c.fatal = err
	c.notify(Notice{Kind: SecurityWarning, Author: author, Err: err, Terminal: true})
	if c.inChannel {
		c.leaveChannel()
	}
}

func (c *Core) String() string {
	return fmt.Sprintf("Core(%s %s %v)", c.cfg.Self, c.Letters(), c.public)
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
