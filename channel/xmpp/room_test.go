package xmpp

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/channel"
)

const (
	tRoom = "r@muc.example"
	tSelf = "me@example.org/dev"
	tNick = "me"
)

// Stanza builders for the room's side of the conversation.

func xUser(item string, codes ...int) string {
	var b strings.Builder
	b.WriteString(`<x xmlns='http://jabber.org/protocol/muc#user'>` + item)
	for _, c := range codes {
		fmt.Fprintf(&b, `<status code='%d'/>`, c)
	}
	b.WriteString(`</x>`)
	return b.String()
}

func pres(nick, real, extra string, codes ...int) string {
	return fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s'>%s%s</presence>`, tRoom, nick,
		xUser(fmt.Sprintf(`<item jid='%s' affiliation='none' role='participant'/>`, real), codes...), extra)
}

func unavail(nick, real string, codes ...int) string {
	return fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s' type='unavailable'>%s</presence>`, tRoom, nick,
		xUser(fmt.Sprintf(`<item jid='%s' affiliation='none' role='none'/>`, real), codes...))
}

func selfPres(role string, extra string, codes ...int) string {
	return fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s'>%s%s</presence>`, tRoom, tNick,
		xUser(fmt.Sprintf(`<item jid='%s' affiliation='owner' role='%s'/>`, tSelf, role), append([]int{110}, codes...)...), extra)
}

func msg(nick, body string) string {
	return fmt.Sprintf(`<message xmlns='jabber:client' from='%s/%s' type='groupchat'><body>%s</body></message>`, tRoom, nick, body)
}

const subjectMsg = `<message xmlns='jabber:client' from='` + tRoom + `/someone' type='groupchat'><subject>topic</subject></message>`

func roomStatus(codes ...int) string {
	return fmt.Sprintf(`<message xmlns='jabber:client' from='%s' type='groupchat'>%s</message>`, tRoom, xUser("", codes...))
}

// contract checks a stream of events against the GroupChannel contract
// (channel package documentation).
type contract struct {
	self    string
	in      bool
	members []string
	started bool
}

func (c *contract) check(ev channel.Event) error {
	if !slices.IsSorted(ev.Members) || len(slices.Compact(slices.Clone(ev.Members))) != len(ev.Members) {
		return fmt.Errorf("%v: members not sorted and unique: %v", ev.Kind, ev.Members)
	}
	if !c.started && ev.Kind != channel.EventOwnEnter {
		return fmt.Errorf("first event %v", ev.Kind)
	}
	c.started = true
	switch ev.Kind {
	case channel.EventOwnEnter:
		if c.in {
			return errors.New("own enter while in")
		}
		if !slices.Contains(ev.Members, c.self) {
			return fmt.Errorf("own enter without us: %v", ev.Members)
		}
		c.in = true
	case channel.EventOwnLeave:
		if !c.in {
			return errors.New("own leave while out")
		}
		if !slices.Equal(ev.Members, c.members) {
			return fmt.Errorf("own leave stamped %v, membership was %v", ev.Members, c.members)
		}
		c.in = false
		c.members = nil
		return nil
	case channel.EventOthers:
		if !c.in {
			return errors.New("others while out")
		}
		if len(ev.Enter) == 0 && len(ev.Leave) == 0 {
			return errors.New("empty others event")
		}
		want := slices.Clone(c.members)
		for _, l := range ev.Leave {
			i := slices.Index(want, l)
			if i < 0 || l == c.self || slices.Contains(ev.Enter, l) {
				return fmt.Errorf("bad leave %q (members %v, enter %v)", l, c.members, ev.Enter)
			}
			want = slices.Delete(want, i, i+1)
		}
		for _, e := range ev.Enter {
			if slices.Contains(want, e) || e == c.self {
				return fmt.Errorf("bad enter %q (members %v)", e, c.members)
			}
			want = append(want, e)
		}
		slices.Sort(want)
		if !slices.Equal(want, ev.Members) {
			return fmt.Errorf("others stamped %v, want %v", ev.Members, want)
		}
	case channel.EventPacket, channel.EventPlain, channel.EventIdentity:
		if !c.in {
			return fmt.Errorf("%v while out", ev.Kind)
		}
		if !slices.Equal(ev.Members, c.members) {
			return fmt.Errorf("%v stamped %v, membership is %v", ev.Kind, ev.Members, c.members)
		}
		if !slices.Contains(ev.Members, ev.Sender) {
			return fmt.Errorf("%v from %q, not a member %v", ev.Kind, ev.Sender, ev.Members)
		}
	default:
		return fmt.Errorf("unknown kind %v", ev.Kind)
	}
	c.members = ev.Members
	return nil
}

type roomHarness struct {
	t   *testing.T
	r   *room
	c   contract
	all []channel.Event
}

func newHarness(t *testing.T) *roomHarness {
	h := &roomHarness{t: t, r: newRoom(jid.MustParse(tRoom), tSelf, 100), c: contract{self: tSelf}}
	h.r.startJoin(tNick)
	return h
}

func (h *roomHarness) feed(stanzas ...string) []channel.Event {
	h.t.Helper()
	var out []channel.Event
	for _, s := range stanzas {
		out = append(out, h.r.handle(mustDecode(h.t, s))...)
	}
	h.accept(out)
	return out
}

func (h *roomHarness) accept(evs []channel.Event) {
	h.t.Helper()
	for _, ev := range evs {
		if err := h.c.check(ev); err != nil {
			h.t.Fatalf("contract: %v\nevents so far:\n%s", err, fmtEvents(append(h.all, evs...)))
		}
	}
	h.all = append(h.all, evs...)
}

func fmtEvents(evs []channel.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %v sender=%s body=%q enter=%v leave=%v members=%v\n", e.Kind, e.Sender, e.Body, e.Enter, e.Leave, e.Members)
	}
	return b.String()
}

func kinds(evs []channel.Event) []channel.EventKind {
	var k []channel.EventKind
	for _, e := range evs {
		k = append(k, e.Kind)
	}
	return k
}

const (
	alice = "alice@example.org/phone"
	bob   = "bob@example.org/laptop"
)

// join runs the usual join: others, us (non-anonymous room), subject.
func (h *roomHarness) join() []channel.Event {
	h.t.Helper()
	evs := h.feed(
		pres("alice", alice, identityEl(testKeyA)),
		pres("bob", bob, ""),
		selfPres("participant", identityEl(testKey(7)), 100),
	)
	if len(evs) != 0 {
		h.t.Fatalf("events before the subject: %v", kinds(evs))
	}
	return h.feed(subjectMsg)
}

func TestRoomJoin(t *testing.T) {
	h := newHarness(t)
	evs := h.join()
	if !slices.Equal(kinds(evs), []channel.EventKind{channel.EventOwnEnter, channel.EventIdentity, channel.EventIdentity}) {
		t.Fatalf("join events:\n%s", fmtEvents(evs))
	}
	if want := []string{alice, bob, tSelf}; !slices.Equal(evs[0].Members, want) {
		t.Fatalf("own enter members %v, want %v", evs[0].Members, want)
	}
	if evs[1].Sender != tSelf || evs[1].Key != (testKey(7)) || evs[2].Sender != alice || evs[2].Key != testKeyA {
		t.Fatalf("identities:\n%s", fmtEvents(evs))
	}
	if h.r.phase != phaseIn || h.r.joinErr != nil {
		t.Fatalf("phase %v err %v", h.r.phase, h.r.joinErr)
	}
}

func TestRoomMessages(t *testing.T) {
	h := newHarness(t)
	h.join()
	evs := h.feed(
		msg("alice", "?mpENC:AAAA."),
		msg(tNick, "?mpENC:BBBB."), // our echo
		msg("bob", "hello"),
		msg("stranger", "?mpENC:CCCC."), // not an occupant
		`<message xmlns='jabber:client' from='`+tRoom+`/alice' type='groupchat'><body>?mpENC:old.</body><delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/></message>`,
		`<message xmlns='jabber:client' from='`+tRoom+`/alice' type='chat'><body>private</body></message>`,
		`<message xmlns='jabber:client' from='`+tRoom+`/alice' type='groupchat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
		`<message xmlns='jabber:client' from='other@muc.example/alice' type='groupchat'><body>other room</body></message>`,
		subjectMsg, // a later subject change
	)
	want := []channel.Event{
		{Kind: channel.EventPacket, Sender: alice, Body: "?mpENC:AAAA.", Members: []string{alice, bob, tSelf}},
		{Kind: channel.EventPacket, Sender: tSelf, Body: "?mpENC:BBBB.", Members: []string{alice, bob, tSelf}},
		{Kind: channel.EventPlain, Sender: bob, Body: "hello", Members: []string{alice, bob, tSelf}},
	}
	if !slices.EqualFunc(evs, want, eventEqual) {
		t.Fatalf("got\n%swant\n%s", fmtEvents(evs), fmtEvents(want))
	}
	if h.r.stats.delayed != 1 || h.r.stats.ignored < 2 {
		t.Fatalf("stats %+v", h.r.stats)
	}
}

func eventEqual(a, b channel.Event) bool {
	return a.Kind == b.Kind && a.Sender == b.Sender && a.Body == b.Body && a.Key == b.Key && a.Label == b.Label &&
		slices.Equal(a.Enter, b.Enter) && slices.Equal(a.Leave, b.Leave) && slices.Equal(a.Members, b.Members)
}

func TestRoomOthers(t *testing.T) {
	h := newHarness(t)
	h.join()
	carol := "carol@example.org/x"
	check := func(what string, evs []channel.Event, want ...channel.Event) {
		t.Helper()
		if !slices.EqualFunc(evs, want, eventEqual) {
			t.Fatalf("%s: got\n%swant\n%s", what, fmtEvents(evs), fmtEvents(want))
		}
	}
	check("enter with a key", h.feed(pres("carol", carol, identityEl(testKeyA))),
		channel.Event{Kind: channel.EventOthers, Enter: []string{carol}, Members: []string{alice, bob, carol, tSelf}},
		channel.Event{Kind: channel.EventIdentity, Sender: carol, Key: testKeyA, Members: []string{alice, bob, carol, tSelf}})
	check("presence update, same key", h.feed(pres("carol", carol, identityEl(testKeyA))))
	check("key change", h.feed(pres("carol", carol, identityEl(testKey(3)))),
		channel.Event{Kind: channel.EventIdentity, Sender: carol, Key: testKey(3), Members: []string{alice, bob, carol, tSelf}})
	check("malformed key", h.feed(pres("carol", carol, `<identity xmlns='`+nsIdentity+`' alg='ed25519'>AAAA</identity>`)))
	check("nick change", h.feed(
		fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/carol' type='unavailable'>%s</presence>`, tRoom,
			xUser(fmt.Sprintf(`<item jid='%s' nick='caroline'/>`, carol), 303)),
		pres("caroline", carol, "")))
	check("message under the new nick", h.feed(msg("caroline", "hi")),
		channel.Event{Kind: channel.EventPlain, Sender: carol, Body: "hi", Members: []string{alice, bob, carol, tSelf}})
	check("leave", h.feed(unavail("caroline", carol)),
		channel.Event{Kind: channel.EventOthers, Leave: []string{carol}, Members: []string{alice, bob, tSelf}})
	check("unknown nick leaves", h.feed(unavail("nobody", "x@y/z")))
	check("hidden real JID", h.feed(fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/hidden'>%s</presence>`, tRoom, xUser(`<item role='participant'/>`))))
	check("our own JID under another nick", h.feed(pres("ghost", tSelf, "")))
	check("bare JID item", h.feed(pres("bare", "dave@example.org", "")))
	check("a nick taken over by someone else", h.feed(pres("bob", "eve@example.org/e", "")),
		channel.Event{Kind: channel.EventOthers, Leave: []string{bob}, Enter: []string{"eve@example.org/e"}, Members: []string{alice, "eve@example.org/e", tSelf}})
	check("a second nick of the same JID", h.feed(pres("alice2", alice, "")))
	check("first of two nicks leaves", h.feed(unavail("alice", alice)))
	check("last of two nicks leaves", h.feed(unavail("alice2", alice)),
		channel.Event{Kind: channel.EventOthers, Leave: []string{alice}, Members: []string{"eve@example.org/e", tSelf}})
	check("room presence (caps) is not an occupant", h.feed(fmt.Sprintf(`<presence xmlns='jabber:client' from='%s'/>`, tRoom)))
	check("subscription presence", h.feed(fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/zed' type='subscribe'/>`, tRoom)))
}

func TestRoomSemiAnonymousJoin(t *testing.T) {
	// Without status 100 the join waits; messages meanwhile are held.
	h := newHarness(t)
	h.feed(pres("alice", alice, ""), selfPres("participant", ""))
	if evs := h.feed(subjectMsg, msg("alice", "early"), pres("bob", bob, "")); len(evs) != 0 {
		t.Fatalf("events before the room is known non-anonymous:\n%s", fmtEvents(evs))
	}
	if h.r.phase != phaseSettling {
		t.Fatalf("phase %v", h.r.phase)
	}
	evs := h.feed(roomStatus(172))
	if !slices.Equal(kinds(evs), []channel.EventKind{channel.EventOwnEnter, channel.EventPlain, channel.EventOthers}) {
		t.Fatalf("after 172:\n%s", fmtEvents(evs))
	}
	if !slices.Equal(evs[0].Members, []string{alice, tSelf}) {
		t.Fatalf("own enter stamped at the subject: %v", evs[0].Members)
	}
}

func TestRoomCreated(t *testing.T) {
	h := newHarness(t)
	h.feed(selfPres("moderator", "", 201), subjectMsg)
	if !h.r.created || h.r.phase != phaseSettling {
		t.Fatalf("created %v phase %v", h.r.created, h.r.phase)
	}
	evs := h.r.configured()
	h.accept(evs)
	if len(evs) != 1 || evs[0].Kind != channel.EventOwnEnter || !slices.Equal(evs[0].Members, []string{tSelf}) {
		t.Fatalf("after configuring:\n%s", fmtEvents(evs))
	}
	if h.r.me.role != "moderator" {
		t.Fatalf("role %q", h.r.me.role)
	}
	// The 172 broadcast that follows changes nothing.
	if evs := h.feed(roomStatus(104, 172)); len(evs) != 0 {
		t.Fatalf("172 after configuring: %v", kinds(evs))
	}
}

func TestRoomJoinErrors(t *testing.T) {
	h := newHarness(t)
	h.feed(fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s' type='error'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`, tRoom, tNick))
	var re *roomError
	if !errors.As(h.r.joinErr, &re) || re.Condition != "conflict" || !re.permanent() || h.r.phase != phaseOut {
		t.Fatalf("joinErr %v phase %v", h.r.joinErr, h.r.phase)
	}
	// Another device of our account under our nick while we enter: the
	// server merged us with it; a conflict we resolve with another nick.
	h = newHarness(t)
	h.feed(pres(tNick, "me@example.org/phone", ""))
	if !errors.As(h.r.joinErr, &re) || re.Condition != "conflict" || re.Text != sharedNick || h.r.phase != phaseOut {
		t.Fatalf("shared nick: joinErr %v phase %v", h.r.joinErr, h.r.phase)
	}
	// Once in, such a presence is ignored (the other device must give way).
	h = newHarness(t)
	h.join()
	if evs := h.feed(pres(tNick, "me@example.org/phone", "")); len(evs) != 0 || h.r.phase != phaseIn {
		t.Fatalf("shared nick once in: %v, phase %v", kinds(evs), h.r.phase)
	}
	// Removed while settling.
	h = newHarness(t)
	h.feed(selfPres("participant", ""), subjectMsg, fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s' type='unavailable'>%s</presence>`, tRoom, tNick, xUser("", 110, 307)))
	if h.r.joinErr == nil || h.r.phase != phaseOut {
		t.Fatalf("removed while settling: joinErr %v phase %v", h.r.joinErr, h.r.phase)
	}
}

func TestRoomRemoved(t *testing.T) {
	for _, tc := range []struct {
		codes     []int
		destroy   bool
		reason    leaveReason
		transient bool
	}{
		{codes: []int{307}, reason: leftKicked},
		{codes: []int{301}, reason: leftBanned},
		{codes: []int{321}, reason: leftAffiliation},
		{codes: []int{322}, reason: leftMembersOnly},
		{destroy: true, reason: leftDestroyed},
		{codes: []int{332}, transient: true},
		{transient: true},
	} {
		h := newHarness(t)
		h.join()
		extra := ""
		if tc.destroy {
			extra = "<destroy/>"
		}
		evs := h.feed(fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s' type='unavailable'>%s</presence>`, tRoom, tNick,
			xUser(extra, append([]int{110}, tc.codes...)...)))
		if len(evs) != 1 || evs[0].Kind != channel.EventOwnLeave || len(evs[0].Members) != 3 {
			t.Fatalf("%v: events\n%s", tc.codes, fmtEvents(evs))
		}
		if tc.transient != h.r.lossTransient || (tc.reason != 0) != (h.r.removed != nil) ||
			(h.r.removed != nil && h.r.removed.Reason != tc.reason) {
			t.Fatalf("%v: transient %v removed %v", tc.codes, h.r.lossTransient, h.r.removed)
		}
		// After leaving, nothing is reported until the next join.
		if evs := h.feed(msg("alice", "x"), pres("carol", "c@d/e", "")); len(evs) != 0 {
			t.Fatalf("events while out: %v", kinds(evs))
		}
	}
}

func TestRoomLeaveAndLoss(t *testing.T) {
	h := newHarness(t)
	h.join()
	h.r.phase = phaseLeaving
	evs := h.feed(msg("bob", "still in"), fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s' type='unavailable'>%s</presence>`, tRoom, tNick, xUser("", 110)))
	if !slices.Equal(kinds(evs), []channel.EventKind{channel.EventPlain, channel.EventOwnLeave}) || h.r.removed.Reason != leftByRequest {
		t.Fatalf("leave:\n%s removed %v", fmtEvents(evs), h.r.removed)
	}
	// Rejoin and lose the connection.
	h.r.startJoin(tNick)
	h.join()
	evs = h.r.lost(errors.New("test: connection lost"))
	h.accept(evs)
	if len(evs) != 1 || evs[0].Kind != channel.EventOwnLeave {
		t.Fatalf("lost: %v", kinds(evs))
	}
	if evs := h.r.lost(errors.New("test: connection lost")); len(evs) != 0 {
		t.Fatalf("lost twice: %v", kinds(evs))
	}
}

func TestRoomTurnsSemiAnonymous(t *testing.T) {
	h := newHarness(t)
	h.join()
	evs := h.feed(roomStatus(104, 173))
	if len(evs) != 1 || evs[0].Kind != channel.EventOwnLeave || !h.r.needsExit || h.r.removed.Reason != leftAnonymous {
		t.Fatalf("173: %v needsExit %v removed %v", kinds(evs), h.r.needsExit, h.r.removed)
	}
	if !errors.Is(h.r.removed, errRoomAnonymous) {
		t.Fatal("RemovedError for an anonymous room does not match ErrRoomAnonymous")
	}
}

func TestRoomOccupantCap(t *testing.T) {
	h := newHarness(t)
	h.r.maxOcc = 3
	h.join()
	evs := h.feed(pres("c", "c@x/1", ""), pres("d", "d@x/1", ""))
	if len(evs) != 1 || h.r.stats.ignored == 0 {
		t.Fatalf("over the cap: %v", kinds(evs))
	}
}

func TestRoomNickChangeOfSelf(t *testing.T) {
	h := newHarness(t)
	h.join()
	h.feed(fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s' type='unavailable'>%s</presence>`, tRoom, tNick,
		xUser(`<item nick='me2'/>`, 110, 303)))
	if h.r.nick != "me2" || h.r.phase != phaseIn {
		t.Fatalf("nick %q phase %v", h.r.nick, h.r.phase)
	}
	evs := h.feed(msg("me2", "?mpENC:echo."))
	if len(evs) != 1 || evs[0].Sender != tSelf {
		t.Fatalf("echo under the new nick: %s", fmtEvents(evs))
	}
}

func TestRoomHiddenOccupantsRetry(t *testing.T) {
	// We enter while the room is still semi-anonymous: one occupant comes
	// without a real JID. When the room turns non-anonymous we cannot name
	// it, so the join fails (to be retried) instead of hiding a member.
	h := newHarness(t)
	h.feed(fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/creator'>%s</presence>`, tRoom, xUser(`<item affiliation='owner' role='moderator'/>`)),
		selfPres("participant", ""), subjectMsg)
	if evs := h.feed(roomStatus(104, 172)); len(evs) != 0 {
		t.Fatalf("events: %v", kinds(evs))
	}
	if !errors.Is(h.r.joinErr, errHiddenOccupants) || h.r.phase != phaseOut {
		t.Fatalf("joinErr %v phase %v", h.r.joinErr, h.r.phase)
	}
	// A hidden occupant that left before the room settled does not count.
	h = newHarness(t)
	h.feed(fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/creator'>%s</presence>`, tRoom, xUser(`<item role='moderator'/>`)),
		fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/creator' type='unavailable'>%s</presence>`, tRoom, xUser(`<item role='none'/>`)),
		selfPres("participant", ""), subjectMsg)
	if evs := h.feed(roomStatus(172)); len(evs) != 1 || evs[0].Kind != channel.EventOwnEnter {
		t.Fatalf("events: %v, joinErr %v", kinds(evs), h.r.joinErr)
	}
}

// labelEl is testKey(n)'s identity element with a signed label.
func labelEl(t *testing.T, n byte, label string) string {
	return encode(t, identityElement(signedLabel(n, label)))
}

// TestRoomLabels: a signed label comes with the identity; a changed label
// is announced again; a label whose signature does not match the key is
// dropped; the same presence again costs no signature check.
func TestRoomLabels(t *testing.T) {
	h := newHarness(t)
	h.join()
	carol := "carol@example.org/x"
	k := testKey(9)
	all := []string{alice, bob, carol, tSelf}
	check := func(what string, evs []channel.Event, want ...channel.Event) {
		t.Helper()
		if !slices.EqualFunc(evs, want, eventEqual) {
			t.Fatalf("%s: got\n%swant\n%s", what, fmtEvents(evs), fmtEvents(want))
		}
	}
	check("enter with a label", h.feed(pres("carol", carol, labelEl(t, 9, "phone"))),
		channel.Event{Kind: channel.EventOthers, Enter: []string{carol}, Members: all},
		channel.Event{Kind: channel.EventIdentity, Sender: carol, Key: k, Label: "phone", Members: all})
	checks := h.r.stats.labelChecks
	check("same presence", h.feed(pres("carol", carol, labelEl(t, 9, "phone"))))
	if h.r.stats.labelChecks != checks {
		t.Fatal("an unchanged label was checked again")
	}
	check("new label", h.feed(pres("carol", carol, labelEl(t, 9, "tablet"))),
		channel.Event{Kind: channel.EventIdentity, Sender: carol, Key: k, Label: "tablet", Members: all})
	// Another key's signature over the same label: the label is dropped,
	// the key (the server's word, as every key) is still announced.
	k8 := testKey(8)
	forged := strings.Replace(labelEl(t, 8, "tablet"), base64.StdEncoding.EncodeToString(k8[:]), base64.StdEncoding.EncodeToString(k[:]), 1)
	check("forged label", h.feed(pres("carol", carol, forged)),
		channel.Event{Kind: channel.EventIdentity, Sender: carol, Key: k, Label: "", Members: all})
	check("no label", h.feed(pres("carol", carol, identityEl(k))))
}
