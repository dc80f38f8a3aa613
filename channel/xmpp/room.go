package xmpp

import (
	"slices"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/wire"
)

// MUC status codes we act on (XEP-0045 §15.6).
const (
	statusNonAnonymous  = 100 // self-presence: any occupant may see our real JID
	statusSelf          = 110
	statusNowNonAnon    = 172
	statusNowSemiAnon   = 173
	statusNowFullyAnon  = 174
	statusCreated       = 201
	statusNickAssigned  = 210
	statusBanned        = 301
	statusNickChange    = 303
	statusKicked        = 307
	statusAffiliation   = 321
	statusMembersOnly   = 322
	statusShutdown      = 332
	maxPendingOnSettled = 4096
)

type phase uint8

const (
	phaseOut      phase = iota
	phaseJoining        // join presence sent; collecting the roster up to the subject
	phaseSettling       // subject seen; waiting for proof that real JIDs are public; stanzas held
	phaseIn             // EventOwnEnter queued
	phaseLeaving        // in the room, our unavailable presence sent
)

func (p phase) String() string {
	return [...]string{"out", "joining", "settling", "in", "leaving"}[p]
}

// occupant is another occupant of the room, under one nick.
type occupant struct {
	jid    string // real full JID, normalised
	role   string
	affil  string
	key    crypto.PublicKey
	hasKey bool
	label  string           // the device label, verified against key
	sig    crypto.Signature // label's signature
}

// counters are diagnostics kept by the room state machine.
type counters struct {
	ignored     uint64 // stanzas ignored: malformed, unknown sender, hidden JID, over caps
	delayed     uint64 // delayed (history) messages ignored
	tooLong     uint64 // bodies over maxBody
	keyErrors   uint64 // malformed identity announcements, labels with bad signatures
	labelChecks uint64 // label signatures checked
}

// room is the state machine that turns the stanzas of one room, in the
// order the server sent them, into channel events. It is pure data: no I/O,
// no locks, no clock. The Channel owns it under its mutex and acts on the
// flags it leaves (joinErr, needsExit, removed, lossTransient).
//
// Participant ids are real full JIDs from the occupants' muc#user items; an
// occupant whose real JID we cannot see is not a member (we refuse rooms
// that hide real JIDs, so that only happens with a broken or hostile server).
type room struct {
	addr   jid.JID // bare room JID
	self   string  // our real full JID
	maxOcc int

	phase phase
	nick  string               // our nick (the server may change it: 210, 303)
	occ   map[string]*occupant // others, by nick
	count map[string]int       // others' real JIDs → how many nicks they hold
	me    occupant             // our own role, affiliation and key

	// Join progress (phaseJoining, phaseSettling).
	sawSelf, created, nonAnon bool
	hidden                    map[string]bool // nicks seen without a real JID while joining
	enterMembers              []string
	pending                   []*inStanza
	joinErr                   error // the join failed; the Channel reports it

	// Set when we leave the room other than by a lost connection.
	removed       *removedError // removed for good: do not re-enter
	lossTransient bool          // removed for a passing reason (332): re-enter
	needsExit     bool          // we consider ourselves out but the server may not: send unavailable

	stats counters
}

func newRoom(addr jid.JID, self string, maxOcc int) *room {
	return &room{addr: addr, self: self, maxOcc: maxOcc}
}

// startJoin resets the room for a new join attempt under nick.
func (r *room) startJoin(nick string) {
	r.phase = phaseJoining
	r.nick = nick
	r.occ = make(map[string]*occupant)
	r.count = make(map[string]int)
	r.me = occupant{jid: r.self}
	r.sawSelf, r.created, r.nonAnon = false, false, false
	r.hidden = make(map[string]bool)
	r.enterMembers, r.pending, r.joinErr = nil, nil, nil
	r.removed, r.lossTransient, r.needsExit = nil, false, false
}

// inRoom reports whether EventOwnEnter was queued and EventOwnLeave not yet.
func (r *room) inRoom() bool { return r.phase == phaseIn || r.phase == phaseLeaving }

// members returns the membership now, sorted, us included while in.
func (r *room) members() []string {
	m := make([]string, 0, len(r.count)+1)
	for j := range r.count {
		m = append(m, j)
	}
	m = append(m, r.self)
	slices.Sort(m)
	return m
}

// nicksOf returns the nicks under which real JID j is in the room.
func (r *room) nicksOf(j string) []string {
	var nicks []string
	for nick, o := range r.occ {
		if o.jid == j {
			nicks = append(nicks, nick)
		}
	}
	slices.Sort(nicks)
	return nicks
}

// lost ends our presence without the server's word (connection lost, or
// forced): EventOwnLeave if we were in, with the membership before it and
// why.
func (r *room) lost(why error) []channel.Event {
	var evs []channel.Event
	if r.inRoom() {
		evs = append(evs, channel.Event{Kind: channel.EventOwnLeave, Members: r.members(), Err: why})
	}
	r.reset()
	return evs
}

func (r *room) reset() {
	r.phase = phaseOut
	r.occ, r.count, r.hidden = nil, nil, nil
	r.pending, r.enterMembers = nil, nil
}

// handle feeds one stanza and returns the events it causes.
func (r *room) handle(st *inStanza) []channel.Event {
	if r.phase == phaseOut || !st.FromOK || !st.From.Bare().Equal(r.addr) {
		return nil
	}
	if r.phase == phaseSettling {
		r.noteSettling(st)
		if r.phase != phaseSettling { // noteSettling may end the join
			return nil
		}
		if len(r.pending) >= maxPendingOnSettled {
			r.joinErr = errOverflow
			return nil
		}
		r.pending = append(r.pending, st)
		return r.settle()
	}
	switch st.Kind {
	case kindPresence:
		return r.presence(st)
	case kindMessage:
		return r.message(st)
	}
	return nil
}

// noteSettling looks at a held stanza for what decides the join: the room
// turning non-anonymous or semi-anonymous, or our removal.
func (r *room) noteSettling(st *inStanza) {
	if st.Kind == kindMessage && st.Type == "groupchat" && st.From.Resourcepart() == "" && !st.Delayed {
		switch {
		case st.hasStatus(statusNowNonAnon):
			r.nonAnon = true
		case st.hasStatus(statusNowSemiAnon), st.hasStatus(statusNowFullyAnon):
			r.nonAnon = false
		}
	}
	if st.Kind == kindPresence && st.hasStatus(statusSelf) && st.Type == "unavailable" && !st.hasStatus(statusNickChange) {
		r.joinErr = &roomError{Op: "join", Room: r.addr.String(), Condition: "removed while joining"}
		r.reset()
	}
}

// settle completes the join once the room is known to show real JIDs.
func (r *room) settle() []channel.Event {
	if r.phase != phaseSettling || !r.nonAnon {
		return nil
	}
	if len(r.hidden) > 0 {
		// Some occupants were announced while the room still hid real JIDs
		// (we entered while its creator was configuring it), and the room
		// does not announce them again: we cannot name them. Enter again.
		r.joinErr = errHiddenOccupants
		r.reset()
		return nil
	}
	return r.complete()
}

// configured records that we, the room's creator, made it non-anonymous.
func (r *room) configured() []channel.Event {
	r.nonAnon = true
	return r.settle()
}

// complete queues EventOwnEnter with the membership at the subject, the
// identities known then, and replays the stanzas held since.
func (r *room) complete() []channel.Event {
	r.phase = phaseIn
	evs := []channel.Event{{Kind: channel.EventOwnEnter, Members: r.enterMembers}}
	r.enterMembers = nil
	if r.me.hasKey {
		evs = append(evs, channel.Event{Kind: channel.EventIdentity, Sender: r.self, Key: r.me.key, Label: r.me.label, Members: r.members()})
	}
	type ann struct {
		jid   string
		key   crypto.PublicKey
		label string
	}
	var anns []ann
	seen := make(map[ann]bool)
	for _, o := range r.occ {
		a := ann{o.jid, o.key, o.label}
		if o.hasKey && !seen[a] {
			seen[a] = true
			anns = append(anns, a)
		}
	}
	slices.SortFunc(anns, func(a, b ann) int {
		if a.jid != b.jid {
			if a.jid < b.jid {
				return -1
			}
			return 1
		}
		if c := slices.Compare(a.key[:], b.key[:]); c != 0 {
			return c
		}
		return strings.Compare(a.label, b.label)
	})
	if len(anns) > 0 {
		m := r.members()
		for _, a := range anns {
			evs = append(evs, channel.Event{Kind: channel.EventIdentity, Sender: a.jid, Key: a.key, Label: a.label, Members: m})
		}
	}
	held := r.pending
	r.pending = nil
	for _, st := range held {
		if r.phase == phaseOut {
			break
		}
		switch st.Kind {
		case kindPresence:
			evs = append(evs, r.presence(st)...)
		case kindMessage:
			evs = append(evs, r.message(st)...)
		}
	}
	return evs
}

// realJID returns the normalised real full JID of an item, or "" when the
// item does not carry one.
func realJID(it *mucItem) string {
	if it == nil || it.JID == "" {
		return ""
	}
	j, err := jid.Parse(it.JID)
	if err != nil || j.Localpart() == "" || j.Resourcepart() == "" {
		return ""
	}
	return j.String()
}

func (r *room) presence(st *inStanza) []channel.Event {
	nick := st.From.Resourcepart()
	if st.Type == "error" {
		// An error answering our join presence comes from our occupant JID
		// (or the room's). Later presence errors change nothing.
		if r.phase == phaseJoining && (nick == r.nick || nick == "") {
			r.joinErr = &roomError{Op: "join", Room: r.addr.String(), Condition: orUnknown(st.ErrCondition), Text: st.ErrText}
			r.reset()
		}
		return nil
	}
	if nick == "" {
		return nil // the room's own presence (ejabberd sends caps): not an occupant
	}
	if st.Type != "" && st.Type != "unavailable" {
		return nil // subscription presences and the like are not occupancy
	}
	if st.hasStatus(statusSelf) || nick == r.nick && st.Type == "unavailable" && st.Destroyed {
		// ejabberd tells the occupants of a destroyed room without status
		// 110 (Prosody with it). The destruction ends the room for every
		// session under our nick, ours included.
		return r.selfPresence(st, nick)
	}
	if nick == r.nick {
		// Another session sharing our nick (same account, other device):
		// indistinguishable from us by nick, so not tracked. Prosody and
		// ejabberd merge two sessions of one account under one nick into
		// one occupant, which the others see as one device replacing the
		// other: while we are entering, give the nick up and try the next
		// one, as for a nick in use.
		if j := realJID(st.Item); r.phase == phaseJoining && j != "" && j != r.self && sameAccount(j, r.self) {
			r.joinErr = &roomError{Op: "join", Room: r.addr.String(), Condition: "conflict", Text: sharedNick}
			r.reset()
			return nil
		}
		r.stats.ignored++
		return nil
	}
	if st.Type == "unavailable" {
		return r.otherLeft(st, nick)
	}
	return r.otherAvailable(st, nick)
}

func (r *room) selfPresence(st *inStanza, nick string) []channel.Event {
	if st.Type == "unavailable" {
		if st.hasStatus(statusNickChange) && st.Item != nil && st.Item.Nick != "" {
			r.nick = st.Item.Nick
			return nil
		}
		switch r.phase {
		case phaseJoining:
			r.joinErr = &roomError{Op: "join", Room: r.addr.String(), Condition: "removed while joining"}
			r.reset()
			return nil
		case phaseIn, phaseLeaving:
			evs := []channel.Event{{Kind: channel.EventOwnLeave, Members: r.members()}}
			reason := leaveReason(0)
			switch {
			case r.phase == phaseLeaving:
				reason = leftByRequest
			case st.Destroyed:
				reason = leftDestroyed
			case st.hasStatus(statusBanned):
				reason = leftBanned
			case st.hasStatus(statusKicked):
				reason = leftKicked
			case st.hasStatus(statusAffiliation):
				reason = leftAffiliation
			case st.hasStatus(statusMembersOnly):
				reason = leftMembersOnly
			}
			if reason != 0 && reason != leftByRequest {
				r.removed = &removedError{Room: r.addr.String(), Reason: reason}
				// The room's words: the moderator's reason for a kick or a
				// ban, the owner's for destroying the room.
				if reason == leftDestroyed {
					r.removed.Text = st.DestroyReason
				} else if st.Item != nil {
					r.removed.Text = st.Item.Reason
				}
				evs[0].Err = r.removed
			} else if reason == leftByRequest {
				r.removed = &removedError{Room: r.addr.String(), Reason: reason}
			} else {
				// 332 (service shutting down) or no reason given: a passing
				// condition; the Channel re-enters.
				r.lossTransient = true
			}
			r.reset()
			return evs
		}
		return nil
	}
	// Available.
	if it := st.Item; it != nil {
		r.me.role, r.me.affil = it.Role, it.Affiliation
		if j := realJID(it); j != "" && j != r.self {
			// The room reports another real JID for us: a broken or hostile
			// server. Keep our own notion; it is what others must see too.
			r.stats.ignored++
		}
	}
	switch r.phase {
	case phaseJoining:
		r.nick = nick // status 210: the server may have changed our nick
		r.sawSelf = true
		r.created = r.created || st.hasStatus(statusCreated)
		r.nonAnon = r.nonAnon || st.hasStatus(statusNonAnonymous)
		if st.HasIdentity && st.IdentityOK {
			r.me.key, r.me.hasKey = st.Identity, true
			r.me.label = r.label(&r.me, st)
		}
	case phaseIn, phaseLeaving:
		if nick != r.nick && st.hasStatus(statusNickAssigned) {
			r.nick = nick
		}
	}
	return nil
}

func (r *room) otherAvailable(st *inStanza, nick string) []channel.Event {
	j := realJID(st.Item)
	if j == "" || j == r.self {
		// No real JID (hidden, or malformed), or our own JID under another
		// nick: not a member we can name.
		r.stats.ignored++
		if r.phase == phaseJoining && j == "" && len(r.hidden) < r.maxOcc {
			r.hidden[nick] = true
		}
		return nil
	}
	delete(r.hidden, nick)
	if st.HasIdentity && !st.IdentityOK {
		r.stats.keyErrors++
	}
	var leave, enter []string
	o := r.occ[nick]
	switch {
	case o != nil && o.jid == j:
		// A presence update.
	case o != nil:
		// The nick now names someone else: the old one left, the new entered.
		if r.drop(nick) {
			leave = append(leave, o.jid)
		}
		o = nil
	}
	if o == nil {
		if len(r.occ) >= r.maxOcc {
			r.stats.ignored++
			return r.othersEvent(leave, nil)
		}
		o = &occupant{jid: j}
		r.occ[nick] = o
		r.count[j]++
		if r.count[j] == 1 {
			if i := slices.Index(leave, j); i >= 0 {
				leave = slices.Delete(leave, i, i+1) // left and re-entered in one step: no change
			} else {
				enter = append(enter, j)
			}
		}
	}
	if st.Item != nil {
		o.role, o.affil = st.Item.Role, st.Item.Affiliation
	}
	var evs []channel.Event
	if r.phase != phaseJoining {
		evs = r.othersEvent(leave, enter)
	}
	if st.HasIdentity && st.IdentityOK {
		label := r.label(o, st)
		if !o.hasKey || o.key != st.Identity || o.label != label {
			o.key, o.hasKey, o.label = st.Identity, true, label
			if r.phase != phaseJoining {
				evs = append(evs, channel.Event{Kind: channel.EventIdentity, Sender: j, Key: st.Identity, Label: label, Members: r.members()})
			}
		}
	}
	return evs
}

// label is the device label a presence with a valid identity announces for
// occupant o: its label if signed by the announced key, else "". The
// signature is checked only when the key, label or signature differs from
// what o has verified, so that repeated presences cost no signature
// checks. It records the verified signature in o.
func (r *room) label(o *occupant, st *inStanza) string {
	if st.Label == "" {
		return ""
	}
	if o.hasKey && o.key == st.Identity && o.label == st.Label && o.sig == st.LabelSig {
		return o.label
	}
	r.stats.labelChecks++
	if !checkLabel(st.Identity, st.Label, &st.LabelSig) {
		r.stats.keyErrors++
		return ""
	}
	o.sig = st.LabelSig
	return st.Label
}

func (r *room) otherLeft(st *inStanza, nick string) []channel.Event {
	delete(r.hidden, nick)
	o := r.occ[nick]
	if o == nil {
		return nil
	}
	if st.hasStatus(statusNickChange) && st.Item != nil && st.Item.Nick != "" && st.Item.Nick != r.nick {
		if _, taken := r.occ[st.Item.Nick]; !taken {
			// A nick change: same occupant, new name, no membership change.
			delete(r.occ, nick)
			r.occ[st.Item.Nick] = o
			return nil
		}
	}
	if !r.drop(nick) || r.phase == phaseJoining {
		return nil
	}
	return r.othersEvent([]string{o.jid}, nil)
}

// drop removes nick and reports whether its real JID left the membership.
func (r *room) drop(nick string) bool {
	o := r.occ[nick]
	delete(r.occ, nick)
	r.count[o.jid]--
	if r.count[o.jid] > 0 {
		return false
	}
	delete(r.count, o.jid)
	return true
}

func (r *room) othersEvent(leave, enter []string) []channel.Event {
	if len(leave) == 0 && len(enter) == 0 {
		return nil
	}
	return []channel.Event{{Kind: channel.EventOthers, Leave: leave, Enter: enter, Members: r.members()}}
}

func (r *room) message(st *inStanza) []channel.Event {
	if st.Type != "groupchat" {
		// Private messages, invitations, errors: not part of the room's order.
		r.stats.ignored++
		return nil
	}
	if st.Delayed {
		// History (we ask for none) or anything the server marks as old:
		// never part of the live order.
		r.stats.delayed++
		return nil
	}
	nick := st.From.Resourcepart()
	if nick == "" {
		return r.roomMessage(st)
	}
	if st.HasSubject && !st.HasBody {
		if r.phase == phaseJoining && r.sawSelf {
			return r.subject()
		}
		return nil // a later subject change
	}
	if r.phase == phaseJoining {
		r.stats.ignored++ // nothing live comes before the subject
		return nil
	}
	if !st.HasBody {
		return nil // chat states and other body-less messages
	}
	if st.BodyTooLong {
		r.stats.tooLong++
		return nil
	}
	var sender string
	if nick == r.nick {
		sender = r.self
	} else if o := r.occ[nick]; o != nil {
		sender = o.jid
	} else {
		r.stats.ignored++
		return nil
	}
	if st.Body == "" {
		return nil
	}
	kind := channel.EventPlain
	if wire.IsMpENC(st.Body) {
		kind = channel.EventPacket
	}
	return []channel.Event{{Kind: kind, Sender: sender, Body: st.Body, Members: r.members()}}
}

// roomMessage handles a groupchat message from the room itself: the
// subject (some servers send it from the room's bare JID) and
// configuration-change status codes.
func (r *room) roomMessage(st *inStanza) []channel.Event {
	if st.HasSubject && !st.HasBody && r.phase == phaseJoining && r.sawSelf {
		return r.subject()
	}
	if st.hasStatus(statusNowSemiAnon) || st.hasStatus(statusNowFullyAnon) {
		if r.inRoom() {
			r.removed = &removedError{Room: r.addr.String(), Reason: leftAnonymous}
			evs := []channel.Event{{Kind: channel.EventOwnLeave, Members: r.members(), Err: r.removed}}
			r.needsExit = true
			r.reset()
			return evs
		}
	}
	return nil
}

// subject marks the end of the join's roster: the membership now is the one
// EventOwnEnter carries.
func (r *room) subject() []channel.Event {
	r.phase = phaseSettling
	r.enterMembers = r.members()
	return r.settle()
}

func orUnknown(s string) string {
	if s == "" {
		return "undefined-condition"
	}
	return s
}

// sharedNick is the text of the conflict a join ends in when another
// device of our account holds the nick (the server merged us with it).
const sharedNick = "another device of this account has this nick"

// sameAccount reports whether full JIDs a and b are of one account.
func sameAccount(a, b string) bool {
	ja, err1 := jid.Parse(a)
	jb, err2 := jid.Parse(b)
	return err1 == nil && err2 == nil && ja.Bare().Equal(jb.Bare())
}
