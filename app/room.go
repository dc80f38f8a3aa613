package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/transcript"
	"github.com/mpenc/mpenc/trust"
)

// Room is one room of an App: its channel, its session and its history.
// Its methods are safe for concurrent use. Membership operations
// (Exclude, Refresh, Invite) wait until the operation settles: call them
// from a goroutine of their own in a user interface; their progress also
// arrives as notices.
type Room struct {
	app  *App
	jid  string
	opt  RoomOptions
	self string

	ch     *xmpp.Channel
	events chan channel.Event // ch's events, passed on to the session once their labels are noted
	sess   *session.Session
	dir    *trust.Directory
	// lastDistrusted: the decision of the key observation under way
	// (roomDirectory) was KeyDistrusted.
	lastDistrusted atomic.Bool
	trust          *trust.Store

	rctx     context.Context // the room's life: cancelled by stop
	cancel   context.CancelFunc
	runDone  chan struct{}
	pumpDone chan struct{}
	started  chan struct{} // closed when start returned (sess is set if it succeeded)
	done     chan struct{} // closed when the room is stopped
	stopOnce sync.Once
	stopErr  error

	mu      sync.Mutex
	state   session.State
	expired map[string]bool // members not responding
	absent  map[string]bool // members who left the session on purpose
	invited map[string]bool // bare JIDs to include when they enter
	// held: members whose inclusion failed because their key is not
	// decided here, with until when a decision (the user's, or a trust
	// message's) makes this device propose the inclusion again.
	held   map[string]time.Time
	labels map[string]string // device labels of the members present, as last announced (signed)
	// waiting: this session's messages not yet acknowledged by everyone,
	// as last delivered; their acknowledgement notices update them.
	waiting map[transcript.ID]Entry
	// queued: our messages typed while out of the session that still
	// wait in the session's outbox, by handle, as last delivered.
	queued map[transcript.ID]Entry
	out    outWatch // whether we are out of the room for good (EventOut)
	// channelErr is the channel's Err (tests replace it).
	channelErr func() error
}

// outWatch is what the pump needs to tell a passing absence from the
// room (a lost connection, a server restart: the channel re-enters and
// the session joins again, by themselves) from one that lasts until
// someone calls Join (EventOut).
type outWatch struct {
	parting    bool  // we part on request (stop): whatever follows is expected
	leaveAsked bool  // the session asked the channel to leave since it last entered
	reentering bool  // the session enters again by itself (a removal while joining)
	reported   bool  // EventOut was delivered for this stay
	lastErr    error // the latest reason the session gave: a failed join, a fatal warning
}

// newRoom returns a room of a that is not started.
func newRoom(a *App, jid string, opt RoomOptions) *Room {
	return &Room{app: a, jid: jid, opt: opt, started: make(chan struct{}), done: make(chan struct{}), pumpDone: make(chan struct{}),
		expired: map[string]bool{}, absent: map[string]bool{}, invited: map[string]bool{}, held: map[string]time.Time{}, labels: map[string]string{},
		waiting: map[transcript.ID]Entry{}, queued: map[transcript.ID]Entry{}}
}

// roomChannel is the channel a room's session runs over: the XMPP
// channel, with the session's own requests to enter and leave noted (a
// leave the session asked for ends the stay; see outWatch).
type roomChannel struct {
	*xmpp.Channel
	r *Room
}

// Events are the channel's, with the device labels of identity
// announcements noted on their way to the session.
func (c roomChannel) Events() <-chan channel.Event { return c.r.events }

// tap passes the channel's events on to the session (r.events), noting
// each present member's device label (forgotten when it leaves, so that
// occupants coming and going under new addresses cannot grow the map),
// until the channel closes them or the room stops.
func (r *Room) tap() {
	defer close(r.events)
	for ev := range r.ch.Events() {
		switch ev.Kind {
		case channel.EventIdentity:
			r.mu.Lock()
			if ev.Label == "" {
				delete(r.labels, ev.Sender)
			} else {
				r.labels[ev.Sender] = ev.Label
			}
			r.mu.Unlock()
		case channel.EventOthers:
			r.mu.Lock()
			for _, m := range ev.Leave {
				delete(r.labels, m)
			}
			r.mu.Unlock()
		}
		select {
		case r.events <- ev:
		case <-r.rctx.Done():
			return
		}
	}
}

func (c roomChannel) Enter(ctx context.Context) error {
	c.r.mu.Lock()
	c.r.out.leaveAsked = false
	c.r.mu.Unlock()
	return c.Channel.Enter(ctx)
}

func (c roomChannel) Leave(ctx context.Context) error {
	c.r.mu.Lock()
	c.r.out.leaveAsked = true
	c.r.mu.Unlock()
	return c.Channel.Leave(ctx)
}

// includePolicy parses RoomOptions.Include: whether the session includes
// newcomers by itself, and the trust policy its directory applies.
func includePolicy(s string) (auto bool, p trust.Policy, err error) {
	switch s {
	case "", "manual":
		return false, trust.BlindTrustBeforeVerification, nil
	case "trusted":
		return true, trust.AuthenticatedOnly, nil
	case "everyone":
		return true, trust.BlindTrustBeforeVerification, nil
	}
	return false, 0, fmt.Errorf("app: include policy %.40q: want manual, trusted or everyone", s)
}

// isWaiting reports whether message id of this session still waits for
// acknowledgements, or queued message id still waits to be sent.
func (r *Room) isWaiting(id transcript.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.waiting[id]
	_, queued := r.queued[id]
	return ok || queued
}

// fatal reports whether the session is in ERROR.
func (r *Room) fatal() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state == session.StateError
}

// chErr is why the channel stays out of the room for good, or nil.
func (r *Room) chErr() error {
	if r.channelErr != nil {
		return r.channelErr()
	}
	return nil
}

// running reports whether start has completed successfully.
func (r *Room) running() bool {
	select {
	case <-r.started:
		return r.sess != nil
	default:
		return false
	}
}

// JID returns the room's bare JID.
func (r *Room) JID() string { return r.jid }

// Self returns our participant id in the room (our full JID there).
func (r *Room) Self() string { return r.self }

// start opens the room's channel on the account's connection and starts the session, the notice pump and the
// background join.
func (r *Room) start(ctx context.Context) (err error) {
	defer close(r.started)
	a := r.app
	nick := r.opt.Nick
	if nick == "" {
		nick = a.cfg.Nick
	}
	xa, err := a.account(ctx)
	if err != nil {
		return err
	}
	ch, err := xa.Room(r.jid, nick)
	if err != nil {
		return fmt.Errorf("app: %s: %w", r.jid, err)
	}
	r.ch = ch
	r.channelErr = ch.Err
	r.self = ch.Self()
	r.sess, err = session.New(r.sessionConfig(), roomChannel{ch, r})
	if err != nil {
		ch.Close()
		return fmt.Errorf("app: session for %s: %w", r.jid, err)
	}
	r.rctx, r.cancel = context.WithCancel(context.Background())
	r.events = make(chan channel.Event)
	go r.tap()
	r.runDone = make(chan struct{})
	go func() {
		defer close(r.runDone)
		if err := r.sess.Run(r.rctx); err != nil {
			a.log().Warn("session stopped", "room", r.jid, "err", err)
		}
	}()
	go r.pump()
	a.log().Info("room ready", "room", r.jid, "self", r.self)
	go r.join(r.rctx)
	return nil
}

// sessionConfig makes the room's trust store view and key directory
// (r.self must be set), and returns its session's configuration over
// them. The session tells the directory who is in the room
// (OnOccupants), in order with the identity announcements it passes on,
// so that a key announced twice in the room at once is a warning
// (trust.Directory.SetPresent).
func (r *Room) sessionConfig() session.Config {
	a := r.app
	auto, policy, _ := includePolicy(r.opt.Include) // checked by Join
	r.trust = a.st.Trust(a.acct.ID, trust.Config{Policy: policy})
	r.dir = &trust.Directory{Store: r.trust, Self: r.self, SelfKey: a.key.Public(),
		OnDecision: func(d trust.Decision) {
			r.mu.Lock()
			label := r.labels[d.Member]
			r.mu.Unlock()
			// The device's signed label is kept with its key (a claimed
			// key's is not: its holder is somebody else), so that the
			// device list names devices in none of our rooms.
			if label != "" && d.Kind != trust.KeyClaimed {
				if err := r.trust.SetLabel(d.JID, d.Key, label); err != nil {
					a.log().Warn("recording a device label", "room", r.jid, "err", err)
				}
			}
			if d.Kind != trust.KeyKnown {
				a.q.push(Event{Room: r.jid, Kind: EventDecision, Decision: d, Label: label})
			}
			r.lastDistrusted.Store(d.Kind == trust.KeyDistrusted)
		}}
	return session.Config{
		Self:             r.self,
		Identity:         a.key,
		Directory:        roomDirectory{r.dir, r},
		OnOccupants:      r.dir.SetPresent,
		Timing:           a.cfg.Timing,
		AutoInclude:      auto,
		AskFirst:         r.askFirst,
		StayIfLastMember: r.opt.StayIfLastMember,
		JoinWindow:       a.cfg.JoinWindow,
	}
}

// roomDirectory is the room's trust directory as the session sees it: a
// member announcing a key that is distrusted here (the user's decision,
// a trust message's, a removed or departed own device) is shown as that
// decision (EventDecision) and its key is refused, but it is no
// security warning: nothing is wrong, the decision is being applied.
// Changed and claimed keys are still warnings.
type roomDirectory struct {
	*trust.Directory
	r *Room
}

// ObserveKey implements session.KeyObserver.
func (d roomDirectory) ObserveKey(member string, key crypto.PublicKey) error {
	d.r.lastDistrusted.Store(false)
	err := d.Directory.ObserveKey(member, key)
	if err != nil && d.r.lastDistrusted.Load() {
		return nil // OnDecision saw KeyDistrusted: shown, refused, not a warning
	}
	return err
}

// askFirst names the newcomers an automatic inclusion leaves to the user:
// devices of our own account whose keys we have not verified. Until
// devices vouch for each other (XEP-0450, issue [L]), a device of our
// account we do not know as ours may be someone holding our password.
func (r *Room) askFirst(member string) bool {
	if trust.Bare(member) != trust.Bare(r.self) {
		return false
	}
	rec, _, ok := r.memberTrust(member)
	return !ok || rec.State != trust.Authenticated
}

// join enters the room (so that a refusal is reported clearly: nick in
// use, room not anonymous...) and waits to be in the session.
func (r *Room) join(ctx context.Context) {
	a := r.app
	ectx, cancel := context.WithTimeout(ctx, a.cfg.JoinTimeout)
	err := roomChannel{r.ch, r}.Enter(ectx)
	cancel()
	if err == nil {
		err = r.sess.Join(ctx)
	}
	if err != nil && ctx.Err() != nil {
		return // stopped meanwhile
	}
	if err != nil {
		if cerr := r.ch.Err(); cerr != nil {
			err = cerr
		}
		a.log().Warn("join failed", "room", r.jid, "err", err)
	} else {
		a.log().Info("joined", "room", r.jid)
	}
	a.q.push(Event{Room: r.jid, Kind: EventJoined, Err: err})
}

// pump keeps the room's view of its members from each notice, turns the
// notices that are history into entries (recorded, then delivered as
// EventEntry) and hands the others on as EventNotice.
func (r *Room) pump() {
	defer close(r.pumpDone)
	a := r.app
	for n := range r.sess.Notices() {
		r.observe(n)
		if !isHistory(n.Kind) {
			ev := Event{Room: r.jid, Kind: EventNotice, Notice: n}
			if n.Kind == session.Gap {
				ev.Err = r.chErr() // set: removed for good (EventOut follows), not a passing loss
			}
			a.q.push(ev)
		} else if e, ok := r.entry(n); ok {
			a.q.push(Event{Room: r.jid, Kind: EventEntry, Entry: e})
		}
		if err := r.outForGood(n); err != nil {
			a.log().Warn("out of the room for good", "room", r.jid, "err", err)
			a.q.push(Event{Room: r.jid, Kind: EventOut, Err: err})
		}
	}
}

// errLeftByItself is why we are out when the session left the room by
// itself without a failed join: the others excluded us (and nobody
// kicked us), or an operation left us alone in the session.
var errLeftByItself = errors.New("app: the session ended and left the room (excluded by the others, or left alone in it)")

// outForGood reports, for a notice that takes us out of the room, why we
// stay out until Join is called: the room removed us (kicked, banned,
// destroyed: the channel does not re-enter), the session gave up (a join
// that failed, a fatal error) or left the room by itself. A lost
// connection or a server restart is not: the channel re-enters and the
// session joins again by themselves. nil otherwise, and once per stay.
func (r *Room) outForGood(n session.Notice) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := &r.out
	switch n.Kind {
	case session.OpFailed:
		if n.OpKind == session.OpJoin {
			o.lastErr = n.Err
		}
	case session.SecurityWarning:
		if n.Terminal {
			o.lastErr = n.Err
		}
	case session.Kicked:
		if len(n.Members) == 1 && n.Members[0] == r.self {
			o.reentering = !n.Until.IsZero()
		}
	case session.StateChanged:
		var why error
		switch n.State {
		case session.StateJoined:
			o.reentering, o.reported, o.lastErr = false, false, nil
			return nil
		case session.StateJoining:
			o.reentering, o.reported = false, false
			return nil
		case session.StateError:
			why = errors.New("app: the session stopped on an error")
			if o.lastErr != nil {
				why = fmt.Errorf("app: the session stopped: %w", o.lastErr)
			}
		case session.StateJoinFailed:
			why = o.lastErr
			if why == nil {
				why = errors.New("app: the join failed")
			}
		case session.StateParted, session.StatePartFailed:
			if err := r.chErr(); err != nil && !o.reentering {
				why = err
			} else if o.leaveAsked {
				why = errLeftByItself
			}
		}
		if why == nil || o.parting || o.reported {
			return nil
		}
		o.reported = true
		return why
	}
	return nil
}

// observe updates the room's view from a notice, and carries out
// remembered invitations.
func (r *Room) observe(n session.Notice) {
	a := r.app
	lvl := slog.LevelDebug
	if n.IsWarning() {
		lvl = slog.LevelWarn
	}
	kv := []any{"room", r.jid, "kind", n.Kind.String()}
	if n.Author != "" {
		kv = append(kv, "author", n.Author)
	}
	if n.Err != nil {
		kv = append(kv, "err", n.Err)
	}
	a.log().Log(context.Background(), lvl, "notice", kv...)
	if n.Kind == session.OpFailed {
		r.holdRefused(n)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	switch n.Kind {
	case session.StateChanged:
		r.state = n.State
	case session.MemberExpired:
		r.expired[n.Author] = true
	case session.MemberPresent:
		delete(r.expired, n.Author)
	case session.MemberAbsent:
		r.absent[n.Author] = true
	case session.Membership:
		for _, m := range n.Exclude {
			delete(r.expired, m)
			delete(r.absent, m)
		}
		for _, m := range n.Include {
			delete(r.invited, trust.Bare(m))
			delete(r.absent, m)
		}
	case session.JoinRequest:
		// Invited, or one of our own devices whose key is verified
		// here (a device of our group): included whatever the room's
		// policy, which is about other people.
		own := trust.Bare(n.Author) == trust.Bare(r.self) && !r.askFirst(n.Author)
		if r.invited[trust.Bare(n.Author)] || own {
			who := n.Author
			reason := "(invited)"
			if own && !r.invited[trust.Bare(n.Author)] {
				reason = "(your verified device)"
			}
			go func() {
				if why := r.notIncludable(who); why != "" {
					a.q.push(Event{Room: r.jid, Kind: EventInfo, Text: who + " entered (you invited " + trust.Bare(who) + "), but " + why})
					return
				}
				a.q.push(Event{Room: r.jid, Kind: EventInfo, Text: "including " + who + " " + reason})
				if err := r.sess.Include(context.Background(), []string{who}); err != nil {
					a.q.push(Event{Room: r.jid, Kind: EventInfo, Text: "could not include " + who, Err: err})
				}
			}()
		}
	}
}

// holdRefused notes the newcomers of an inclusion that failed because
// our directory refused their keys while undecided here (new, or no
// longer trusted blindly): the operation ended at once, as the
// protocol's timing needs, and a decision within heldFor (the user's, or
// a trust message's) makes this device propose it again (retryHeld;
// docs/USAGE.md "Verified once, trusted everywhere").
func (r *Room) holdRefused(n session.Notice) {
	if n.OpKind != session.OpInclude || !errors.Is(n.Err, greeting.ErrIdentityRefused) {
		return
	}
	a := r.app
	until := time.Now().Add(heldFor)
	for _, m := range n.Include {
		rec, _, ok := r.memberTrust(m)
		if !ok || rec.Trusted || rec.State == trust.Distrusted || rec.Claimed {
			continue
		}
		r.mu.Lock()
		_, already := r.held[m]
		r.held[m] = until
		r.mu.Unlock()
		if !already {
			a.q.push(Event{Room: r.jid, Kind: EventInfo, Text: fmt.Sprintf(
				"%s's key %s is not decided here (%v), so its inclusion by %s was refused: /verify %s (or /trust %s) in the next %d minutes, and this device proposes it again",
				m, trust.FingerprintOf(rec.Key), rec.State, n.Author, m, m, int(heldFor/time.Minute))})
		}
	}
}

// heldFor is how long a refused inclusion waits for a decision about the
// newcomer's key (Room.held).
const heldFor = 10 * time.Minute

// retryHeld proposes again the inclusions refused for a key not decided
// then, whose key is trusted now; expired ones are forgotten.
func (r *Room) retryHeld() {
	r.mu.Lock()
	held := maps.Clone(r.held)
	r.mu.Unlock()
	var now []string
	for m, until := range held {
		rec, _, ok := r.memberTrust(m)
		switch {
		case time.Now().After(until):
		case ok && rec.Trusted:
			now = append(now, m)
		default:
			continue
		}
		r.mu.Lock()
		delete(r.held, m)
		r.mu.Unlock()
	}
	if len(now) == 0 {
		return
	}
	a := r.app
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		a.q.push(Event{Room: r.jid, Kind: EventInfo, Text: "including " + strings.Join(now, ", ") + " again: its key is trusted now"})
		if err := r.sess.Include(ctx, now); err != nil {
			a.q.push(Event{Room: r.jid, Kind: EventInfo, Text: "could not include " + strings.Join(now, ", "), Err: err})
		}
	}()
}

// notIncludable says why we do not include member on an invitation of its
// account (a bare JID: "every device of alice"): its key is not trusted
// (new and undecided, changed, claimed or distrusted), or it announced
// none. "" if it may be included. A device named in full is refused
// the same way (a key agreement with it would fail); a device of our own
// account is told to pair first (docs/PROTOCOL.md "KeySync").
func (r *Room) notIncludable(member string) string {
	rec, _, ok := r.memberTrust(member)
	switch {
	case !ok:
		return "it announced no identity key"
	case !rec.Trusted && trust.Bare(member) == r.app.acct.JID && rec.State != trust.Distrusted:
		return fmt.Sprintf("its key %s is not trusted (%s): pair it with your devices first (/devices pair on it, then accept the words), then /invite %s", trust.FingerprintOf(rec.Key), rec.State, member)
	case !rec.Trusted:
		return fmt.Sprintf("its key %s is not trusted (%s): /verify it (compare fingerprints), then /invite %s", trust.FingerprintOf(rec.Key), rec.State, member)
	}
	return ""
}

// Send sends a message to the session's members. It arrives back as an
// EventEntry like everyone's, and again when its acknowledgement state
// changes. While we are out of the session after a gap (a lost
// connection, a server restart) the message waits for the members of our
// last session: Send returns a handle for it, a Queued entry with that ID
// follows, and the Message entry it becomes when sent has Replaces set to
// it (or the Queued entry comes again with NotDelivered: it was never
// sent). Before we were ever in the session it fails
// (session.ErrNotJoined): nobody to send it to yet.
func (r *Room) Send(ctx context.Context, text string) (transcript.ID, error) {
	return r.sess.Send(ctx, text)
}

// Exclude removes members from the session; once the old subsession has
// shut down, the session kicks them from the room if we are a moderator
// (otherwise they leave by themselves when they see they are excluded).
func (r *Room) Exclude(ctx context.Context, members []string) error {
	return r.sess.Exclude(ctx, members)
}

// Refresh renews the group key.
func (r *Room) Refresh(ctx context.Context) error { return r.sess.Refresh(ctx) }

// Invite brings who (a full or bare JID) into the session. The devices of
// that account present in the room and not in the session whose keys we
// trust are included (the call waits for the operation), and those we do
// not are named with the reason; a device named in full is included if
// present. If none is present, the invitation is remembered (the
// account's devices are included as they enter, if their keys are
// trusted; the others are named) and sent as an XMPP mediated invitation
// (XEP-0045 §7.8.2), which any XMPP client shows: to the account's bare
// JID, or to who itself if it is a full JID. The returned text says what
// happened, including an invitation that could not be sent (the
// remembered one still holds).
func (r *Room) Invite(ctx context.Context, who string) (string, error) {
	ro, err := r.sess.Roster(ctx)
	if err != nil {
		return "", err
	}
	channel, members := ro.Occupants, ro.Members
	var in, skipped []string
	for _, m := range channel {
		if m == r.self || slices.Contains(members, m) {
			continue
		}
		switch {
		case m == who:
			if why := r.notIncludable(m); why != "" {
				skipped = append(skipped, m+": "+why)
				continue
			}
			in = append(in, m)
		case trust.Bare(m) == trust.Bare(who) && !strings.Contains(who, "/"):
			if why := r.notIncludable(m); why != "" {
				skipped = append(skipped, m+": "+why)
				continue
			}
			in = append(in, m)
		}
	}
	if len(in) > 0 || len(skipped) > 0 {
		var parts []string
		if len(in) > 0 {
			if err := r.sess.Include(ctx, in); err != nil {
				return "", err
			}
			parts = append(parts, "included "+strings.Join(in, ", "))
		}
		if len(skipped) > 0 {
			parts = append(parts, "not included "+strings.Join(skipped, "; "))
		}
		return strings.Join(parts, "; "), nil
	}
	for _, m := range members {
		if m == who || trust.Bare(m) == who {
			return who + " is already a member of the session", nil
		}
	}
	if err := trust.CheckJID(who); err != nil {
		return "", fmt.Errorf("app: invite %q: %w", who, err)
	}
	r.mu.Lock()
	r.invited[trust.Bare(who)] = true
	r.mu.Unlock()
	// A bare JID reaches the account's available clients; a full JID
	// (a device seen in another room, say) reaches that device, our own
	// client included.
	to := trust.Bare(who)
	if strings.Contains(who, "/") {
		to = who
	}
	if err := r.ch.Invite(ctx, to, "mpENC encrypted room"); err != nil {
		return fmt.Sprintf("%s will be included when they enter; the XMPP invitation could not be sent (%v): ask them to join %s",
			who, err, r.jid), nil
	}
	return "invitation sent to " + who + "; they will be included when they enter", nil
}

// Member is one participant as the room sees it.
type Member struct {
	ID        string // participant id (full JID)
	InSession bool   // a member of our current subsession
	InRoom    bool   // an occupant of the room
	Expired   bool   // not responding (no acknowledgement for a long time)
	Absent    bool   // left the session on purpose
	Self      bool
	// Status is a short word for all that: "member", "expired" (not
	// responding), "leaving", "member, gone", "waiting" (in the room, to
	// be included), "no mpENC" (announced no identity key) or "gone".
	Status string
	// LastSeen is when the member was last known alive (the send time of
	// our latest message it acknowledged); zero if unknown.
	LastSeen time.Time
	// Label is the name the member's device gave itself ("laptop"),
	// signed by its key; empty if none. Its owner's words: sanitise them.
	Label string
	// Trust: the key it announced last and what we think of it, as the
	// room's key directory judges it; HasKey is false if it announced none
	// (a client that does not speak mpENC).
	HasKey bool
	Trust  trust.Record
	// ClaimedBy: when Trust.Claimed, the records that make the key claimed,
	// as trust.Decision.Previous for KeyClaimed: other accounts' (ours
	// among them, for our own key), or, with JID the member's own bare
	// JID, that of another member of its account in the room, named by
	// Member, that announced the key there first (ours, Member our id, for
	// our own key): one of the two is not the device it claims to be.
	ClaimedBy []trust.Record
}

// status is a short word for the member's session status.
func (m Member) status() string {
	switch {
	case m.InSession && m.Expired:
		return "expired"
	case m.InSession && m.Absent:
		return "leaving"
	case m.InSession && !m.InRoom:
		return "member, gone"
	case m.InSession:
		return "member"
	case m.InRoom && !m.HasKey:
		return "no mpENC"
	case m.InRoom:
		return "waiting"
	}
	return "gone"
}

// memberTrust is the record of the key member announced last, as the
// room's key directory judges it (which knows our own key and who is in
// the room, as the store does not), with the records that make it
// claimed; ok is false if it announced none (or the store could not be
// read).
func (r *Room) memberTrust(member string) (rec trust.Record, claimedBy []trust.Record, ok bool) {
	rec, claimedBy, ok, err := r.dir.Current(member)
	if err != nil || !ok {
		return trust.Record{}, nil, false
	}
	return rec, claimedBy, true
}

// Members lists the session's members and the room's occupants with their
// status and trust, self first, then by id.
func (r *Room) Members(ctx context.Context) ([]Member, error) {
	ro, err := r.sess.Roster(ctx)
	if err != nil {
		return nil, err
	}
	channel, members, seen := ro.Occupants, ro.Members, ro.LastSeen
	all := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(channel), members...))))
	r.mu.Lock()
	var out []Member
	for _, id := range all {
		out = append(out, Member{ID: id, InSession: slices.Contains(members, id), InRoom: slices.Contains(channel, id),
			Expired: r.expired[id], Absent: r.absent[id], Self: id == r.self, LastSeen: seen[id], Label: r.labels[id]})
	}
	r.mu.Unlock()
	for i := range out {
		if out[i].Self {
			out[i].HasKey, out[i].Label = true, r.app.cfg.Label
			out[i].Trust = trust.Record{JID: trust.Bare(r.self), Key: r.app.key.Public(), State: trust.Authenticated, Trusted: true, Member: r.self}
			continue
		}
		out[i].Trust, out[i].ClaimedBy, out[i].HasKey = r.memberTrust(out[i].ID)
	}
	for i := range out {
		out[i].Status = out[i].status()
	}
	slices.SortStableFunc(out, func(x, y Member) int {
		switch {
		case x.Self && !y.Self:
			return -1
		case y.Self && !x.Self:
			return 1
		}
		return 0
	})
	return out, nil
}

// Unacked returns the members that have not acknowledged message id yet,
// if the message is in the running session's log (ok false otherwise:
// a message from an earlier run, whose state is in the history).
func (r *Room) Unacked(ctx context.Context, id transcript.ID) (members []string, ok bool, err error) {
	return r.sess.Unacked(ctx, id)
}

// stop parts the session properly if part is set (bounded by
// Config.PartTimeout), stops the session and closes the channel. The room
// is removed from the App and EventClosed is sent.
func (r *Room) stop(ctx context.Context, part bool) error {
	<-r.started
	if r.sess == nil {
		return nil // start failed: nothing runs
	}
	r.stopOnce.Do(func() {
		a := r.app
		r.mu.Lock()
		r.out.parting = true
		r.mu.Unlock()
		if part {
			pctx, cancel := context.WithTimeout(ctx, a.cfg.PartTimeout)
			err := r.sess.Part(pctx)
			cancel()
			if err != nil && !errors.Is(err, session.ErrClosed) {
				r.stopErr = fmt.Errorf("app: parting %s: %w", r.jid, err)
			}
		}
		r.sess.Close()
		r.cancel()
		<-r.runDone
		<-r.pumpDone
		if err := r.ch.Close(); err != nil && r.stopErr == nil {
			r.stopErr = err
		}
		a.mu.Lock()
		if a.rooms[r.jid] == r {
			delete(a.rooms, r.jid)
		}
		a.mu.Unlock()
		kv := []any{"room", r.jid}
		if r.stopErr != nil { // no "err" when we left on request
			kv = append(kv, "err", r.stopErr)
		}
		a.log().Info("left", kv...)
		a.q.push(Event{Room: r.jid, Kind: EventClosed, Err: r.stopErr})
		close(r.done)
	})
	return r.stopErr
}
