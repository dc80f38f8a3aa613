package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/transcript"
	"github.com/mpenc/mpenc/trust"
)

// The view model: what a room shows, built from the history and from the
// App's events, independent of how it is drawn (full screen or lines).

type lineKind uint8

const (
	lineMessage    lineKind = iota + 1 // an encrypted message
	lineQueued                         // our message typed while out of the session: waiting, or never sent
	linePlain                          // an unencrypted message (a client without mpENC)
	lineMembership                     // the session's membership changed
	lineInfo                           // progress and information
	lineWarning                        // something is wrong
)

type ackState uint8

const (
	ackPending ackState = iota // not yet acknowledged by everyone
	ackFull                    // acknowledged by everyone it was sent to
	ackMissing                 // not acknowledged in time (notAcked)
	ackUnknown                 // from an earlier run, never confirmed
)

// line is one line of a room's view.
type line struct {
	kind   lineKind
	at     time.Time
	author string // participant id (full JID), sanitised
	text   string // sanitised
	own    bool

	// Messages and queued messages only.
	id      transcript.ID // a queued message's handle until it is sent
	num     int           // 1-based message number in this view; a queued message's own number (q1, q2...)
	members []string      // who it was sent to (its subsession's members), or is meant for (queued), sorted
	// stale: a message whose members differ from the session's members
	// where it appears (it was sent before a change it is shown after).
	stale    bool
	parents  []int // log parents: how many messages above each one is
	ack      ackState
	notAcked []string
	final    bool // can no longer be acknowledged
	absent   bool // the members who did not acknowledge left on purpose
	// notDelivered: who a message did not reach (queued while we were out
	// of the session, it was sent without them); on a queued line,
	// everyone: never sent (also when unknown: the client stopped first).
	notDelivered []string
	until        time.Time // a queued message waits until then
	resent       bool      // sent again (/resend)
	// archived: a message this device did not see, read from the
	// history service (another of the user's devices saw it).
	archived bool

	// change is a membership line's change: drawn when shown, so that
	// devices are named as the view knows them then (a history's later
	// messages name the devices its earlier membership lines list).
	change *membershipChange
}

// membershipChange is who remains, joined and left in a membership change.
type membershipChange struct {
	remain, include, exclude []string
}

// notSent reports whether a queued line was never sent.
func (l *line) notSent() bool {
	return l.kind == lineQueued && (len(l.notDelivered) > 0 || l.ack == ackUnknown)
}

// label is how a numbered line is named: #N for a message, qN for a
// queued one (/resend takes either).
func (l *line) label() string {
	if l.kind == lineQueued {
		return fmt.Sprintf("q%d", l.num)
	}
	return fmt.Sprintf("#%d", l.num)
}

// roomView is a room's lines and what the marks on them depend on.
type roomView struct {
	jid     string
	self    string
	lines   []*line
	msgs    []*line // message lines, in order (log parents count these)
	byID    map[transcript.ID]*line
	members []string // the session's current members, sorted; nil before the first membership
	state   session.State
	unread  int
	// queued: our queued lines by handle, and how many there were.
	queued  map[transcript.ID]*line
	nqueued int
	// joinUntil: while JOINING and waiting to be included, when the wait
	// ends (zero otherwise).
	joinUntil time.Time
	absent    map[string]bool // members who left the session on purpose
	// distrusted: occupants whose key the room showed as distrusted
	// (not asked to be invited).
	distrusted map[string]bool
	// devices: every device (participant id) seen in the room since the
	// start (member lists, authors), with its label ("" if it announced
	// none); users: each user's devices (bare JID → participant ids).
	devices map[string]string
	users   map[string][]string
}

func newRoomView(jid string) *roomView {
	return &roomView{jid: jid, byID: map[transcript.ID]*line{}, queued: map[transcript.ID]*line{}, absent: map[string]bool{}, distrusted: map[string]bool{},
		devices: map[string]string{}, users: map[string][]string{}}
}

// noteDevice records device id with label (its owner's words, sanitised
// here). A label already known is replaced by a new one when override is
// set, and never by none.
func (v *roomView) noteDevice(id, label string, override bool) {
	label = oneLine(label)
	old, ok := v.devices[id]
	switch {
	case !ok:
		b := trust.Bare(id)
		v.users[b] = append(v.users[b], id)
	case label == "" || old != "" && !override:
		return
	}
	v.devices[id] = label
}

// noteDevices records the devices of a member list: a user with more than
// one device seen in the room is shown with the device's label from then
// on ("bob (laptop)"; deviceName).
func (v *roomView) noteDevices(ms []app.Member) {
	for _, m := range ms {
		v.noteDevice(m.ID, m.Label, true)
	}
}

// noteAuthor records the device of an entry's author with the label it
// had then (from the history too: a restart names devices apart as they
// were live), unless a member list named it already.
func (v *roomView) noteAuthor(author, label string) { v.noteDevice(author, label, false) }

// deviceName is member's bare JID, with its device when its user has more
// than one device in the room: the label, and the resource too when the
// label is missing or another device of the user has it
// ("bob (laptop, mpenc-1a2b3c4d)"). Not the short fingerprint, which is
// shown only labelled as not for verification (shortFingerprint): names
// tell devices apart, the trust state says which to believe.
func (v *roomView) deviceName(member string) string {
	if tag := v.deviceTag(member); tag != "" {
		return trust.Bare(member) + " (" + tag + ")"
	}
	return trust.Bare(member)
}

// addressed is a participant's full JID (the address /invite and /kick
// take), with its device's label when its user has several devices in
// the room ("bob@example.org/mpenc-1a2b3c4d (laptop)").
func (v *roomView) addressed(member string) string {
	s := oneLine(member)
	if tag := v.deviceTag(member); tag != "" && v.devices[member] != "" {
		s += " (" + oneLine(v.devices[member]) + ")"
	}
	return s
}

// deviceTag is what deviceName adds to the bare JID: "" when the user
// has one device in the room, else the label, the resource, or both.
func (v *roomView) deviceTag(member string) string {
	siblings := v.users[trust.Bare(member)]
	if len(siblings) < 2 {
		return ""
	}
	label := v.devices[member]
	shared := label == ""
	for _, id := range siblings {
		shared = shared || id != member && v.devices[id] == label
	}
	_, res, _ := strings.Cut(member, "/")
	switch {
	case !shared:
		return label
	case label == "":
		return oneLine(res)
	}
	return label + ", " + oneLine(res)
}

func (v *roomView) add(l *line) *line {
	switch l.kind {
	case lineMessage:
		if old, ok := v.byID[l.id]; ok {
			return old
		}
		v.msgs = append(v.msgs, l)
		l.num = len(v.msgs)
		v.byID[l.id] = l
	case lineQueued:
		if old, ok := v.queued[l.id]; ok {
			return old
		}
		v.nqueued++
		l.num = v.nqueued
		v.queued[l.id] = l
	}
	v.lines = append(v.lines, l)
	return l
}

// remove takes a line out of the view (a queued line whose message was
// sent: the message is drawn where it was sent).
func (v *roomView) remove(l *line) {
	if i := slices.Index(v.lines, l); i >= 0 {
		v.lines = slices.Delete(v.lines, i, i+1)
	}
}

// loadHistory adds history entries (oldest first) before anything else.
// They are drawn by entry, as live ones are.
func (v *roomView) loadHistory(es []app.Entry) {
	for _, e := range es {
		v.entry(e)
	}
	if len(es) > 0 {
		v.add(&line{kind: lineInfo, at: es[len(es)-1].At, text: "end of history"})
	}
}

// entry draws a line of the conversation: a message, a queued message,
// an unencrypted message or a membership change, or a line already shown
// again with its new acknowledgement or delivery state, or a message that
// was queued (its queued line goes: the message is drawn where it was
// sent, as the history has it). It is the one way such lines are made,
// from the App's live events and from the history after a restart alike,
// so a conversation looks the same either way. It returns the line added
// or changed and whether the session's members changed.
func (v *roomView) entry(e app.Entry) (*line, bool) {
	if e.Author != "" {
		v.noteAuthor(e.Author, e.AuthorLabel)
	}
	switch e.Kind {
	case session.Message:
		l := &line{kind: lineMessage, at: e.At, author: oneLine(e.Author), text: sanitize(e.Text, true), own: e.Own, id: e.ID,
			members: sortedClean(e.Members), parents: slices.Clone(e.LogParents), notDelivered: sortedClean(e.NotDelivered)}
		switch {
		case e.Ack == session.FullyAcked:
			l.ack = ackFull
		case e.Ack == session.NotFullyAcked:
			l.ack, l.notAcked, l.final, l.absent = ackMissing, sortedClean(e.NotAcked), e.Final, e.Absent
		case e.Unconfirmed:
			l.ack = ackUnknown
		}
		if old, ok := v.byID[e.ID]; ok {
			old.ack, old.notAcked, old.final, old.absent, old.notDelivered = l.ack, l.notAcked, l.final, l.absent, l.notDelivered
			return old, false
		}
		if e.Archived {
			// Read from the history service after the lines around it:
			// a rule says where such a run starts (it is not in time
			// order with the lines above).
			if n := len(v.lines); n == 0 || !v.lines[n-1].archived {
				v.add(&line{kind: lineInfo, at: e.At, text: "from your history: messages your other devices saw", archived: true})
			}
			l.archived = true
			return v.add(l), false
		}
		l.stale = v.members != nil && !slices.Equal(l.members, v.members)
		if q, ok := v.queued[e.Replaces]; ok && e.Replaces != (transcript.ID{}) {
			v.remove(q)
			delete(v.queued, e.Replaces)
		}
		return v.add(l), false
	case session.Queued:
		l := &line{kind: lineQueued, at: e.At, author: oneLine(e.Author), text: sanitize(e.Text, true), own: true, id: e.ID,
			members: sortedClean(e.Members), until: e.Until, notDelivered: sortedClean(e.NotDelivered)}
		if e.Unconfirmed {
			l.ack = ackUnknown
		}
		if old, ok := v.queued[e.ID]; ok {
			old.notDelivered, old.ack = l.notDelivered, l.ack
			return old, false
		}
		return v.add(l), false
	case session.Plain:
		// Never trusted: the line kind marks it unencrypted, always. A
		// long one was cut by the history (its first 4 KiB kept).
		text := sanitize(e.Text, true)
		if e.Cut > 0 {
			text += fmt.Sprintf(" [cut: %d more bytes not kept]", e.Cut)
		}
		return v.add(&line{kind: linePlain, at: e.At, author: oneLine(e.Author), text: text}), false
	case session.Membership:
		v.members = sortedClean(append(slices.Clone(e.Members), e.Include...))
		return v.add(&line{kind: lineMembership, at: e.At, text: v.membershipText(e.Members, e.Include, e.Exclude),
			change: &membershipChange{slices.Clone(e.Members), slices.Clone(e.Include), slices.Clone(e.Exclude)}}), true
	}
	return nil, false
}

func sortedClean(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = oneLine(s)
	}
	slices.Sort(out)
	return out
}

// name is how a participant is shown: "you", or the bare JID, with the
// device when the user has several in the room (deviceName).
func (v *roomView) name(member string) string {
	if member == v.self && v.self != "" {
		return "you"
	}
	return v.deviceName(member)
}

// author is how a line's author is shown: "you" for our own messages,
// which the line itself says (a history loaded before the room's
// connection tells us our participant id shows them the same way).
func (v *roomView) author(l *line) string {
	if l.own {
		return "you"
	}
	return v.name(l.author)
}

func (v *roomView) names(ms []string) string {
	var out []string
	for _, m := range ms {
		out = append(out, v.name(m))
	}
	return strings.Join(out, ", ")
}

// alone reports whether we hold the session by ourselves: JOINING with no
// wait to be included, and no other member in it (a founder before anyone
// came, or the last member after the others left). The session calls it
// JOINING; the header says ALONE.
func (v *roomView) alone(members []app.Member) bool {
	if v.state != session.StateJoining || !v.joinUntil.IsZero() || v.self == "" {
		return false
	}
	in := false
	for _, m := range members {
		switch {
		case m.Self:
			in = m.InSession
		case m.InSession:
			return false
		}
	}
	return in
}

// membershipText is a membership change's line: who the members are, who
// joined (+) and who left (−), each named as deviceName names them. Our
// own departure (app records it with us excluded) reads as that.
func (v *roomView) membershipText(remain, include, exclude []string) string {
	if v.self != "" && slices.Contains(exclude, v.self) {
		s := "you left the session"
		if len(remain) > 0 {
			s += "; it goes on with " + strings.Join(v.devicesAll(remain), ", ")
		}
		return s
	}
	s := "members: " + strings.Join(v.devicesAll(remain, include), ", ")
	if len(include) > 0 {
		s += " (+" + strings.Join(v.devicesAll(include), ", +") + ")"
	}
	if len(exclude) > 0 {
		s += " (−" + strings.Join(v.devicesAll(exclude), ", −") + ")"
	}
	return s
}

// lineText is the text a line shows now: a membership line's is drawn
// again with the devices as the view knows them now.
func (v *roomView) lineText(l *line) string {
	if l.kind == lineMembership && l.change != nil {
		return v.membershipText(l.change.remain, l.change.include, l.change.exclude)
	}
	return l.text
}

// devicesAll names the members of lists as deviceName does, sorted.
func (v *roomView) devicesAll(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, m := range l {
			out = append(out, oneLine(v.deviceName(m)))
		}
	}
	slices.Sort(out)
	return out
}

// apply turns an App event into view changes. It returns the line it
// added or changed (nil if none) and whether the room's members may have
// changed (the member list needs a refresh).
func (v *roomView) apply(ev app.Event) (changed *line, membersChanged bool) {
	switch ev.Kind {
	case app.EventEntry:
		if e := ev.Entry; e.Kind == session.Message && !e.Own && v.byID[e.ID] == nil {
			v.unread++
		}
		return v.entry(ev.Entry)
	case app.EventNotice:
		return v.applyNotice(ev.Notice)
	case app.EventDecision:
		// A distrusted occupant is not offered for /invite; a later
		// decision about it (trusted again) lifts that.
		v.distrusted[ev.Decision.Member] = ev.Decision.Kind == trust.KeyDistrusted
		return v.add(decisionLine(ev.Decision, v.self, ev.Label)), true
	case app.EventJoined:
		if ev.Err != nil {
			return v.add(&line{kind: lineWarning, at: time.Now(), text: "could not join: " + oneLine(ev.Err.Error()) + " (/join to try again)"}), true
		}
		return v.add(&line{kind: lineInfo, at: time.Now(), text: "joined the session: messages are end-to-end encrypted"}), true
	case app.EventInfo:
		t := oneLine(ev.Text)
		if ev.Err != nil {
			return v.add(&line{kind: lineWarning, at: time.Now(), text: t + ": " + oneLine(ev.Err.Error())}), false
		}
		return v.add(&line{kind: lineInfo, at: time.Now(), text: t}), false
	case app.EventClosed:
		t := "left the room"
		if ev.Err != nil {
			return v.add(&line{kind: lineWarning, at: time.Now(), text: t + ": " + oneLine(ev.Err.Error())}), true
		}
		return v.add(&line{kind: lineInfo, at: time.Now(), text: t}), true
	case app.EventOut:
		v.joinUntil = time.Time{}
		why := "unknown"
		if ev.Err != nil {
			why = oneLine(ev.Err.Error())
		}
		return v.add(&line{kind: lineWarning, at: time.Now(),
			text: fmt.Sprintf("out of the room, and not entering again by ourselves (“%s”): /join %s to enter again", why, oneLine(v.jid))}), true
	}
	return nil, false
}

// decisionLine draws a trust decision; self (our participant id, "" if
// not known yet) tells our own key from another account's in a claimed
// key's Previous; label is the device label the member announced with the
// key ("" if none).
func decisionLine(d trust.Decision, self, label string) *line {
	who := oneLine(d.Member)
	named := "" // the device's label, quoted, with a leading space
	if l := oneLine(label); l != "" {
		named = " “" + l + "”"
	}
	fp := trust.FingerprintOf(d.Key).String()
	l := &line{kind: lineInfo, at: time.Now()}
	trusted := "unverified: trusted until you verify it"
	if !d.Trusted {
		trusted = "NOT trusted: /verify " + who + " after comparing fingerprints"
	}
	switch {
	case d.Kind == trust.KeyChanged:
		l.kind = lineWarning
		l.text = fmt.Sprintf("%s CHANGED its identity key to %s: someone may be impersonating it, or it reinstalled. "+
			"It is not used until you /verify %s (compare fingerprints in person) or /trust %s", who, fp, who, who)
		if d.Own {
			l.text = "your own account's device " + l.text
		}
	case d.Kind == trust.KeyClaimed:
		// Every device has its own key for each account: two accounts
		// with one key means one is posing as the other; one device has
		// one full JID per room, so two members of one account in the
		// room with one key means one is posing as the device
		// (docs/STORE.md).
		l.kind = lineWarning
		var others []string
		ours := false
		here := ""
		for _, p := range d.Previous {
			switch {
			case p.JID == d.JID: // another member of its account, in the room
				if here == "" {
					here = p.Member
				}
			case self != "" && p.JID == trust.Bare(self):
				ours = true
			default:
				others = append(others, oneLine(p.JID))
			}
		}
		if here != "" && here == self {
			l.text = fmt.Sprintf("%s announced YOUR OWN identity key %s, which this device uses in this room: someone is posing as this device. "+
				"It is never used for %s", who, fp, who)
			break
		}
		if here != "" {
			also := ""
			if len(others) > 0 {
				also = " (it is also the key of " + strings.Join(others, ", ") + ")"
			}
			l.text = fmt.Sprintf("%s announced key %s, which %s, also in this room, announces too%s: one of them is not the device it claims to be. "+
				"It is not used for %s while both are here", who, fp, oneLine(here), also, who)
			break
		}
		if ours {
			l.text = fmt.Sprintf("%s announced YOUR OWN identity key %s: someone is posing as you. It is never used for %s", who, fp, who)
			break
		}
		names := strings.Join(others, ", ")
		account := "another account) uses"
		if len(others) > 1 {
			account = "other accounts) use"
		}
		l.text = fmt.Sprintf("%s announced key %s, which %s (%s too: someone may be posing as %s. "+
			"It is not used for %s until you /verify %s (compare fingerprints in person) or /trust %s",
			who, fp, names, account, strings.Join(others, " or "), who, who, who)
	case d.Kind == trust.KeyDistrusted:
		// Information: the decision is being applied (by the user, a
		// trust message, a removal or a device leaving its group: /why
		// says which), nothing is wrong.
		whose := ""
		if d.Own {
			whose = "your device "
		}
		l.text = fmt.Sprintf("%s%s is here with key %s, which is distrusted (/why %s): it is not used", whose, who, fp, oneLine(d.Member))
	case d.Own:
		// Another device of our account: we should know it. Shown
		// always, trusted only as the policy says, as a notice: a new
		// device of one's own is usually just that (a warning would
		// cry wolf), and the line says what to do if it is not.
		l.text = fmt.Sprintf("your other device%s, %s, announced key %s (%s). If it is not yours, someone else holds your account: /distrust %s",
			named, who, fp, trusted, who)
	case d.Kind == trust.KeyNew:
		l.text = fmt.Sprintf("%s announced key %s (%s)", who, fp, trusted)
	case d.Kind == trust.KeyNewDevice:
		l.text = fmt.Sprintf("%s has a new device%s: %s, key %s (%s)", oneLine(trust.Bare(d.Member)), named, who, fp, trusted)
	default:
		l.text = fmt.Sprintf("%s: key %s", who, fp)
	}
	return l
}

// applyNotice draws a session notice that is not history (progress,
// state, warnings): live only, never stored.
func (v *roomView) applyNotice(n session.Notice) (*line, bool) {
	at := n.At
	if at.IsZero() {
		at = time.Now()
	}
	who := oneLine(n.Author)
	info := func(format string, args ...any) *line {
		return v.add(&line{kind: lineInfo, at: at, text: fmt.Sprintf(format, args...)})
	}
	warn := func(format string, args ...any) *line {
		return v.add(&line{kind: lineWarning, at: at, text: fmt.Sprintf(format, args...)})
	}
	errText := ""
	if n.Err != nil {
		errText = oneLine(n.Err.Error())
	}
	switch n.Kind {
	case session.OpProposed:
		return info("%s proposed: %s", v.name(n.Author), v.opText(n)), false
	case session.OpAccepted:
		if n.OpKind == session.OpInclude || n.OpKind == session.OpExclude {
			return info("%s: started (messages sent until it is done still go to the current members)", v.opText(n)), false
		}
		return info("%s: started", v.opText(n)), false
	case session.OpRejected:
		return warn("%s: rejected (%s)", v.opText(n), errText), false
	case session.OpFailed:
		if n.OpKind == session.OpJoin || n.OpKind == session.OpPart {
			return warn("%s failed (%s)", n.OpKind, errText), true
		}
		if !n.Until.IsZero() {
			return warn("%s: failed (%s); not proposed again automatically before %s",
				v.opText(n), errText, n.Until.Local().Format("15:04:05")), true
		}
		return warn("%s: failed (%s)", v.opText(n), errText), true
	case session.OpSucceeded:
		if n.OpKind == session.OpJoin || n.OpKind == session.OpPart {
			return nil, true // the state change and the membership say it
		}
		return info("%s: done", v.opText(n)), true
	case session.StateChanged:
		v.state = n.State
		v.joinUntil = time.Time{}
		switch n.State {
		case session.StateJoining:
			if n.Until.IsZero() {
				return nil, true // alone with the session, or being included
			}
			v.joinUntil = n.Until
			you := v.self
			if you == "" {
				you = "your JID"
			}
			return info("waiting to be included (%s left, until %s); a member can include you with /invite %s",
				countdown(n.Until, at), n.Until.Local().Format("15:04:05"), oneLine(you)), true
		case session.StateJoined:
			return nil, true
		case session.StateParted:
			v.members = nil
			return info("out of the session"), true
		case session.StateParting:
			// Our own /part or /quit says so already; otherwise the
			// others left and the session winds their subsession down
			// (the membership line said who left): nothing to add.
			return nil, true
		case session.StateJoinFailed:
			v.members = nil
			return warn("nobody included you in time: you are out of the session (/join to try again)"), true
		case session.StatePartFailed:
			v.members = nil
			return warn("out of the session, without every member confirming that you left"), true
		case session.StateError:
			return warn("the session stopped after the security warning above"), true
		}
		return info("session state: %s", n.State), true
	case session.JoinRequest:
		if v.distrusted[n.Author] {
			// Its key's line said it is distrusted: nothing to invite.
			return nil, true
		}
		invite := trust.Bare(who)
		if len(v.users[invite]) > 1 {
			invite = who // one device of several: name it
		}
		return info("%s waits to be included: /invite %s", who, invite), true
	case session.ChannelEnter:
		return info("%s entered the room", v.addressed(n.Author)), true
	case session.ChannelLeave:
		if slices.Contains(v.members, who) && !v.absent[who] {
			// A member of the session that did not leave it on purpose
			// (a lost connection, a server restart): the session
			// includes it again if it comes back in time.
			return info("%s left the room without leaving the session: it is included again if it comes back soon", who), true
		}
		delete(v.absent, who)
		return info("%s left the room", v.addressed(n.Author)), true
	case session.Kicked:
		if len(n.Members) == 1 && n.Members[0] == v.self && v.self != "" {
			// The room's words, not ours: quoted, never a warning of ours.
			t := "the room removed you"
			if errText != "" {
				t += ": “" + errText + "”"
			}
			if n.Until.IsZero() {
				return info("%s; not entering again by ourselves (/join %s)", t, oneLine(v.jid)), true
			}
			return info("%s; entering again at %s", t, n.Until.Local().Format("15:04:05")), true
		}
		t := "removed " + v.names(sortedClean(n.Members)) + " from the room"
		if n.Text != "" {
			t += " (" + oneLine(n.Text) + ")"
		}
		return info("%s", t), true
	case session.MemberExpired:
		return warn("%s is not responding (no acknowledgement for a long time)", who), true
	case session.MemberPresent:
		return info("%s responds again", who), true
	case session.MemberAbsent:
		v.absent[who] = true
		return nil, true
	case session.Waiting:
		return warn("a message from %s waits for older messages that have not arrived", who), false
	case session.Dropped:
		return warn("a message from %s was dropped: older messages it follows never arrived", who), false
	case session.NotDecrypted:
		return warn("a packet from %s could not be decrypted", who), false
	case session.SecurityWarning:
		t := "SECURITY WARNING"
		if who != "" {
			t += " about " + who
		}
		if n.Terminal {
			t += " (the session stopped)"
		}
		return warn("%s: %s", t, errText), true
	case session.Gap:
		t := "we were out of the room"
		if errText != "" {
			t += " (“" + errText + "”)"
		}
		return warn("%s: messages sent meanwhile may be lost; what you type now waits until the others are back", t), true
	case session.ErrorReport:
		// Its sender's claim, in its words: shown as such, never as our
		// warning.
		how := oneLine(n.Severity)
		if !n.Signed {
			how += ", unsigned"
		}
		return info("%s reports an error (%s): “%s”", who, how, oneLine(n.Text)), false
	}
	return nil, false
}

// opText names a membership operation: what it does, and who started it
// when it was not us.
func (v *roomView) opText(n session.Notice) string {
	others := func(l []string) string {
		var out []string
		for _, m := range l {
			if m != v.self {
				out = append(out, oneLine(v.deviceName(m)))
			}
		}
		if len(out) == 0 && len(l) > 0 {
			return "you" // only us: never a blank name
		}
		slices.Sort(out)
		return strings.Join(slices.Compact(out), ", ")
	}
	byOther := n.Author != "" && n.Author != v.self
	if byOther && v.self != "" && slices.Contains(n.Include, v.self) {
		return oneLine(v.deviceName(n.Author)) + " including you"
	}
	var s string
	switch n.OpKind {
	case session.OpStart:
		s = "forming a session with " + others(n.Include)
	case session.OpInclude:
		s = "including " + others(n.Include)
	case session.OpExclude:
		s = "excluding " + others(n.Exclude)
	case session.OpRefresh:
		s = "renewing the group key"
	default:
		s = n.OpKind.String()
	}
	if byOther && n.Kind != session.OpProposed {
		s += " (by " + oneLine(v.deviceName(n.Author)) + ")"
	}
	return s
}

// parentsOf returns the message lines a message answers (nil for unknown
// ones: older than what the view holds).
func (v *roomView) parentsOf(l *line) []*line {
	var out []*line
	for _, p := range l.parents {
		k := l.num - 1 - p
		if k >= 0 && k < len(v.msgs) {
			out = append(out, v.msgs[k])
		} else {
			out = append(out, nil)
		}
	}
	return out
}

// highlight reports whether a message's log parents are not just the
// message above it (docs/MESSAGE-LAYER.md §3.5): the UI must mark it.
func highlight(l *line) bool {
	return l.kind == lineMessage && !(len(l.parents) == 0 || len(l.parents) == 1 && l.parents[0] == 1)
}

// oldMembers reports whether a message went to another membership than
// the one in effect where it is shown: sent before a change that it
// arrived after ("sent to the old members", docs/USAGE.md). Messages from
// before a change are not marked: the membership line above them says
// whom they went to.
func (v *roomView) oldMembers(l *line) bool {
	return l.kind == lineMessage && l.stale
}

// ancestors returns the set of message numbers l descends from.
func (v *roomView) ancestors(l *line) map[int]bool {
	seen := map[int]bool{}
	stack := []*line{l}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, p := range v.parentsOf(x) {
			if p != nil && !seen[p.num] {
				seen[p.num] = true
				stack = append(stack, p)
			}
		}
	}
	return seen
}

// message returns message number num, or nil.
func (v *roomView) message(num int) *line {
	if num < 1 || num > len(v.msgs) {
		return nil
	}
	return v.msgs[num-1]
}

// countdown is what is left until t, as minutes:seconds.
func countdown(t, now time.Time) string {
	d := max(t.Sub(now).Round(time.Second), 0)
	return fmt.Sprintf("%d:%02d", int(d/time.Minute), int(d%time.Minute/time.Second))
}

// queuedMark says what became of a queued line, in words: waiting, not
// sent (and how to send it again), sent again.
func (v *roomView) queuedMark(l *line) string {
	switch {
	case l.resent:
		return "[not sent then; sent again]"
	case len(l.notDelivered) > 0:
		return fmt.Sprintf("[NOT SENT: %s did not come back in time; /resend %s]", v.names(l.notDelivered), l.label())
	case l.ack == ackUnknown:
		return fmt.Sprintf("[NOT SENT: the client stopped while it waited; /resend %s]", l.label())
	}
	return fmt.Sprintf("[queued — waiting for %s (until %s)]", v.names(l.members), l.until.Local().Format("15:04"))
}

// marks returns the annotations of a message, in words: the unacked
// marker, who did not acknowledge it, who it did not reach, the reply
// hint, the old membership.
func (v *roomView) marks(l *line) (prefix, suffix string) {
	if l.kind == lineQueued {
		return "", " " + v.queuedMark(l)
	}
	if l.kind != lineMessage {
		return "", ""
	}
	if l.archived {
		return "", " (from your history: seen by another of your devices, not here)"
	}
	if highlight(l) {
		var refs []string
		ps := v.parentsOf(l)
		for i := len(ps) - 1; i >= 0; i-- { // oldest first
			if ps[i] == nil {
				refs = append(refs, fmt.Sprintf("↑%d", l.parents[i]))
			} else {
				refs = append(refs, fmt.Sprintf("#%d", ps[i].num))
			}
		}
		prefix = "[re " + strings.Join(refs, ",") + "] "
	}
	var s []string
	if len(l.notDelivered) > 0 {
		// Never "seen by everyone": it did not reach them.
		nd := "⚠ NOT DELIVERED TO " + v.names(l.notDelivered)
		if l.resent {
			nd += " (sent again)"
		} else if l.own {
			nd += " (/resend " + strconv.Itoa(l.num) + ")"
		}
		s = append(s, nd)
	}
	switch l.ack {
	case ackPending:
		if l.own {
			s = append(s, "…unacked")
		}
	case ackMissing:
		if l.absent {
			s = append(s, "(not seen by "+v.names(l.notAcked)+", who left)")
		} else {
			s = append(s, "⚠ NOT SEEN BY "+v.names(l.notAcked))
		}
	case ackUnknown:
		if l.own {
			s = append(s, "?unconfirmed")
		}
	}
	if v.oldMembers(l) {
		s = append(s, "(sent to the earlier members: "+v.names(l.members)+")")
	}
	if len(s) > 0 {
		suffix = " " + strings.Join(s, " ")
	}
	return prefix, suffix
}

// plainText renders a line without styles (line mode, tests).
func (v *roomView) plainText(l *line) string {
	ts := l.at.Local().Format("15:04")
	switch l.kind {
	case lineMessage:
		pre, suf := v.marks(l)
		return fmt.Sprintf("%s #%d %s%s: %s%s", ts, l.num, pre, v.author(l), indent(l.text), suf)
	case lineQueued:
		_, suf := v.marks(l)
		return fmt.Sprintf("%s %s %s: %s%s", ts, l.label(), v.author(l), indent(l.text), suf)
	case linePlain:
		return fmt.Sprintf("%s [UNENCRYPTED] %s: %s", ts, v.author(l), indent(l.text))
	case lineMembership:
		return fmt.Sprintf("%s -- %s", ts, v.lineText(l))
	case lineWarning:
		return fmt.Sprintf("%s !! %s", ts, l.text)
	default:
		return fmt.Sprintf("%s -- %s", ts, l.text)
	}
}

// indent continues a multi-line text under its first line.
func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n      ") }

// details describes a message for the selection view and /info: author,
// time, who it was sent to, what it answers, who has not acknowledged it.
// unacked is the live list from the session when known.
func (v *roomView) details(l *line, unacked []string, live bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d by %s at %s\n", l.num, l.author, l.at.Local().Format("2006-01-02 15:04:05"))
	fmt.Fprintf(&b, "sent to: %s", v.names(l.members))
	if l.kind == lineMessage && v.members != nil && !slices.Equal(l.members, v.members) {
		fmt.Fprintf(&b, " (the session's members are now: %s)", v.names(v.members))
	}
	b.WriteString("\n")
	ps := v.parentsOf(l)
	switch {
	case len(ps) == 0:
		b.WriteString("answers: nothing (first message of the session)\n")
	default:
		var refs []string
		for i, p := range ps {
			if p == nil {
				refs = append(refs, fmt.Sprintf("a message %d above (not shown)", l.parents[i]))
				continue
			}
			refs = append(refs, fmt.Sprintf("#%d %s: %q", p.num, v.author(p), clip(p.text, 40)))
		}
		b.WriteString("answers: " + strings.Join(refs, "; ") + "\n")
	}
	if len(l.notDelivered) > 0 {
		fmt.Fprintf(&b, "NOT delivered to: %s (typed while we were out of the session, sent without them)\n", v.names(l.notDelivered))
	}
	switch {
	case l.ack == ackFull && len(l.notDelivered) > 0:
		b.WriteString("acknowledged by everyone it reached")
	case l.ack == ackFull:
		b.WriteString("acknowledged by everyone it was sent to")
	case l.ack == ackMissing:
		fmt.Fprintf(&b, "NOT acknowledged in time by: %s", v.names(l.notAcked))
		if l.final {
			b.WriteString(" (final: it can no longer be confirmed)")
		}
		if l.absent {
			b.WriteString(" (they left on purpose)")
		}
	case live && len(unacked) > 0:
		fmt.Fprintf(&b, "waiting for acknowledgement from: %s", v.names(sortedClean(unacked)))
	case live && len(l.notDelivered) > 0:
		b.WriteString("acknowledged by everyone it reached")
	case live:
		b.WriteString("acknowledged by everyone it was sent to")
	case l.ack == ackUnknown:
		b.WriteString("acknowledgement unknown (from an earlier run, never confirmed)")
	default:
		b.WriteString("waiting for acknowledgements")
	}
	return b.String()
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// shortFingerprint is the first group of a key's fingerprint, to tell
// keys apart in lists, labelled so that nobody compares it instead of
// the whole fingerprint: 16 bits, which anyone can match with another
// key in a moment.
func shortFingerprint(f trust.Fingerprint) string {
	return "key " + f.Short() + "… (not for verification)"
}

// claimedHere returns the member of m's account in the room whose
// announcement of m's key makes it claimed ("" if none: see
// app.Member.ClaimedBy).
func claimedHere(m app.Member) string {
	for _, p := range m.ClaimedBy {
		if p.JID == trust.Bare(m.ID) {
			return p.Member
		}
	}
	return ""
}

// stateName is the one name the client gives a trust state, everywhere
// (member list, /who, /devices, key announcements): a blindly trusted
// key is "unverified" (trusted until the user verifies it, docs/USAGE.md).
func stateName(s trust.State) string {
	switch s {
	case trust.Authenticated:
		return "verified"
	case trust.BlindlyTrusted:
		return "unverified"
	case trust.Distrusted:
		return "distrusted"
	case trust.AutoDistrusted:
		return "auto-distrusted"
	}
	return "undecided"
}

// memberLine describes one member for the member list and /who; self is
// our participant id in the room.
func memberLine(m app.Member, self string) string {
	t := "no identity key"
	if m.HasKey {
		t = stateName(m.Trust.State)
		if m.Trust.Changed {
			t += ", CHANGED its key"
		}
		switch here := claimedHere(m); {
		case !m.Trust.Claimed:
		case here != "" && here == self:
			t += ", it announces YOUR OWN key, which this device uses here: someone is posing as this device"
		case here != "":
			t += ", " + oneLine(here) + " IN THIS ROOM ANNOUNCES ITS KEY TOO: one of them is not the device it claims to be"
		default:
			t += ", its key is ANOTHER ACCOUNT's too"
		}
		if !m.Trust.Trusted {
			t += ", not trusted"
		}
		t += ", " + shortFingerprint(trust.FingerprintOf(m.Trust.Key))
	}
	if m.Self {
		t = "you"
	}
	st := m.Status
	if m.Expired && !m.LastSeen.IsZero() {
		st += fmt.Sprintf(" (no response since %s ago)", time.Since(m.LastSeen).Round(time.Second))
	}
	name := oneLine(m.ID)
	if l := oneLine(m.Label); l != "" {
		name += " “" + l + "”"
	}
	return fmt.Sprintf("%s: %s (%s)", name, st, t)
}
