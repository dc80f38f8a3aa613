package session

import (
	"context"
	"errors"
	"io"
	"slices"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/greeter"
	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/internal/sessionpeek"
	"github.com/mpenc/mpenc/internal/subsession"
)

// Config configures a session. It is never modified and may be shared.
type Config struct {
	// Self is our participant id (our full JID on XMPP).
	Self string
	// Identity is our static identity key; Directory gives the others'.
	Identity  *crypto.SigningKey
	Directory greeter.Directory
	// OnOccupants, if set, is told the room's occupants (us included;
	// none once we are out) at every change, synchronously on the
	// session's goroutine and in the channel's order, before the event's
	// other effects: so between the same announcements the session passes
	// to Directory (KeyObserver), and before any later one. The app hands
	// them to its trust.Directory (SetPresent), which judges an identity
	// announcement by who else is in the room then. It must not keep the
	// slice, nor call the session.
	OnOccupants func(members []string)
	// Timing holds every timer (LoopbackTiming for tests on
	// loopback, InternetTiming for real rooms).
	Timing Timing
	// Rand is the source of every random value; nil means crypto/rand.
	Rand io.Reader
	// AutoInclude makes us propose to include whoever enters the room
	// (autoIncludeExtra of the reference). Off: a JoinRequest notice.
	AutoInclude bool
	// AskFirst, when set, names the newcomers AutoInclude must leave to
	// the user: they get a JoinRequest notice, as without AutoInclude.
	// The app asks about devices of our own account that are not known to
	// be ours (docs/USAGE.md, "Several devices"). It is called on the
	// session's goroutine, after the member's key reached the Directory,
	// and must not call the session.
	AskFirst func(member string) bool
	// StayIfLastMember keeps us in the room, keeping the chain, when
	// everyone else has been excluded (stayIfLastMember of the reference).
	StayIfLastMember bool
	// NoChainCheck turns off the server-order check (docs/PROTOCOL.md §8):
	// after each operation every member states the ServerOrder position
	// that created the new subsession, as a message of body type 4, and
	// members compare. Reference (mpenc_js) peers cannot decode it: set
	// this only in rooms with such peers.
	NoChainCheck bool
	// JoinWindow is a period for people, long enough to read a notice and
	// type a command: how long a member waiting to be included waits
	// before giving up (JOIN_FAILED, re-entering by itself meanwhile if
	// the others kick it), how long the members of our last subsession
	// who lost the room (a server restart, a lost connection) are included
	// again automatically when they come back, whatever AutoInclude says,
	// and how long a message typed while we were out of the session waits
	// for the members it was meant for. 0 means 5 minutes.
	JoinWindow time.Duration
	// RekeyOps and RekeyAfter bound what a stolen memory image reveals:
	// every member keeps its CLIQUES contributions since the last START,
	// and with them and the recorded traffic every group key since then
	// can be recomputed. After RekeyOps membership operations, or
	// RekeyAfter, since the last START, the members run a fresh START
	// among themselves (new contributions from everyone; the old ones are
	// zeroed). 0 means 8 operations and one hour (docs/PERFORMANCE.md,
	// "Forward secrecy", weighs them against what a START costs); a
	// negative value turns that bound off. Never with NoChainCheck (rooms with
	// reference peers, which may not take a START in a running session).
	RekeyOps   int
	RekeyAfter time.Duration
}

// Defaults of Config.RekeyOps, Config.RekeyAfter and Config.JoinWindow.
const (
	defaultRekeyOps   = 8
	defaultRekeyAfter = time.Hour
	defaultJoinWindow = 5 * time.Minute
)

// ActionKind says what an Action asks of the channel: enter the room, leave
// it, broadcast Action.Wire, or remove Action.Members from it.
type ActionKind uint8

// Channel actions.
const (
	ActEnter ActionKind = iota + 1 // enter
	ActLeave                       // leave
	ActSend                        // send
	ActKick                        // kick
)

// Action is something the core asks its owner to do on the channel.
type Action struct {
	Kind    ActionKind
	Wire    string
	Members []string
	// Reason says why we kick (ActKick): a sentence for the kicked member
	// and the room.
	Reason string
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
	ops uint64 // user operations numbered so far

	// Each concern owns its fields, declared in its file.
	lifecycle  // lifecycle.go: our stage, the group's verdict on us, their deadlines
	room       // events.go: the room as the channel shows it
	membership // operation.go: ServerOrder, our group state, the running operation, the rule-driven tasks
	proposals  // proposals.go: our proposals and the user's pending operation
	rotation   // rotation.go: the subsessions, the message log, the trial buffer
	orderCheck // ordercheck.go: what the server-order check remembers
	outbox     // outbox.go: messages typed while out of the session
	noise      // noise.go: how many warnings each sender's packets caused lately

	public State // the public state last announced
	fatal  error // set once: the session is in ERROR

	actions []Action
	notices []Notice
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
	if cfg.JoinWindow == 0 {
		cfg.JoinWindow = defaultJoinWindow
	}
	if cfg.JoinWindow < 0 {
		return nil, errors.New("session: negative JoinWindow")
	}
	if cfg.RekeyOps == 0 {
		cfg.RekeyOps = defaultRekeyOps
	}
	if cfg.RekeyAfter == 0 {
		cfg.RekeyAfter = defaultRekeyAfter
	}
	c := &Core{
		cfg:        cfg,
		gr:         &greeting.Greeter{Self: cfg.Self, Identity: cfg.Identity, Directory: cfg.Directory, Rand: cfg.Rand},
		now:        now,
		lifecycle:  lifecycle{stage: stageOutside, outcome: StateParted},
		room:       room{seniors: set{}, announced: set{}},
		membership: membership{taskExclude: set{}, taskLeave: set{}, excludedLast: set{}, returning: map[string]time.Time{}, stalled: map[string]pause{}},
		rotation: rotation{
			log:        causal.NewMessageLog(),
			trial:      subsession.NewTrialBuffer(cfg.Timing),
			oldSenders: map[string]time.Time{},
		},
		public: StateParted,
	}
	return c, nil
}

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

// warnAbout is warn for a packet's doing, rate-limited per sender (noise.go).
func (c *Core) warnAbout(author string, err error) {
	c.limited(Notice{Kind: SecurityWarning, Author: author, Err: err})
}

func (c *Core) warn(author string, err error) {
	c.notify(Notice{Kind: SecurityWarning, Author: author, Err: err})
}

func (c *Core) send(w string) { c.actions = append(c.actions, Action{Kind: ActSend, Wire: w}) }

// Why we kick, in words the kicked member and the room read (the rules are
// in docs/SESSION.md, "Channel rules").
const (
	reasonEAL      = "left the session and came back before the others finished excluding it; it can enter again once that is done"
	reasonIAL      = "was excluded from the session and must leave the room before it is included again"
	reasonExcluded = "was excluded from the session"
)

// kick asks the channel to remove members from the room, telling them why,
// and tells the user.
func (c *Core) kick(members []string, reason string) {
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
	c.actions = append(c.actions, Action{Kind: ActKick, Members: ms, Reason: reason})
	c.notify(Notice{Kind: Kicked, Members: ms, Text: reason})
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

// letters returns the internal state as the design's four letters
// (docs/SESSION.md, "States"): C/c in the room, O/o synced to the chain,
// S/s a current subsession, J/j alone with the chain ("cos_", "Cos_",
// "COsJ", "COsj", "COS_").
func (c *Core) letters() string {
	l := []byte("cos_")
	if c.stage.inRoom() {
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
	case c.stage == stageAlone:
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

// SessionID returns the current subsession's id, if any.
func (c *Core) SessionID() ([32]byte, bool) {
	if c.cur == nil {
		return [32]byte{}, false
	}
	return c.cur.sid, true
}

// UnsafeGroupKey returns the current subsession's group key, if any: the
// value every member of the subsession derived, which a test harness
// compares across members and implementations. It is secret: never log it,
// never keep it.
func (c *Core) UnsafeGroupKey() ([32]byte, bool) {
	if c.cur == nil || c.state == nil {
		return [32]byte{}, false
	}
	return c.state.GroupKey, true
}

// Chain returns ServerOrder's chain as we hold it, oldest kept first: the
// ids of the packets it accepted and the chain hash after each, values
// every member of a session computes identically.
func (c *Core) Chain() (ids, hashes [][32]byte) { return c.so.PacketIDs(), c.so.ChainHashes() }

// Err returns the fatal error that put the session in ERROR, if any.
func (c *Core) Err() error { return c.fatal }

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
	if c.stage.inRoom() {
		c.leaveChannel()
	}
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

func init() {
	sessionpeek.MessageLog = func(c any) *causal.MessageLog { return c.(*Core).log }
	sessionpeek.Query = func(ctx context.Context, s any, f func(core any)) error {
		return s.(*Session).do(ctx, func(c *Core) { f(c) })
	}
}
