//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/internal/wire"
)

// nsIdentity is the namespace of the identity announcement (docs/XMPP.md).
const nsIdentity = "https://github.com/mpenc/mpenc/ns/identity/1"

// The channel's errors are not exported values: the tests read their texts.
var (
	// tooLarge is Send's refusal of a stanza over the size limit.
	tooLarge = regexp.MustCompile(`^xmpp: stanza of \d+ bytes over the \d+-byte limit$`)
)

// errorSays reports whether err's text contains text: the channel's errors
// wrap their kind's sentinel, whose text they carry.
func errorSays(err error, text string) bool {
	return err != nil && strings.Contains(err.Error(), text)
}

// The channel's diagnostics (Config.Logf) that mark the events the tests
// count: one line each.
const (
	forgotLog    = "the room forgot us (self-ping answered"         // the room forgot us; entering again
	goneLog      = "the room no longer exists (self-ping and disco" // the room vanished; entering again creates it
	reconnectLog = "xmpp: reconnected as"                           // a connection after the first
	overflowLog  = "xmpp: event queue full"                         // the queue overflowed; the channel leaves the room
)

// logCount counts a channel's diagnostics that contain given phrases.
type logCount struct {
	mu sync.Mutex
	n  map[string]int
}

// counting returns a dial tweak that counts the diagnostics containing each
// phrase, and passes every line on to the logger set before it.
func (lc *logCount) counting(phrases ...string) func(*xmpp.Config) {
	return func(c *xmpp.Config) {
		next := c.Logf
		c.Logf = func(format string, args ...any) {
			line := fmt.Sprintf(format, args...)
			lc.mu.Lock()
			for _, p := range phrases {
				if strings.Contains(line, p) {
					if lc.n == nil {
						lc.n = map[string]int{}
					}
					lc.n[p]++
				}
			}
			lc.mu.Unlock()
			if next != nil {
				next(format, args...)
			}
		}
	}
}

func (lc *logCount) get(phrase string) int {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.n[phrase]
}

// enterAll dials and enters n devices one after the other.
func enterAll(t *testing.T, s *server, room string, n int) []*client {
	t.Helper()
	var cs []*client
	for i := range n {
		c := s.dial(t, i, room)
		c.enter()
		cs = append(cs, c)
	}
	return cs
}

// sinceEntered returns c's events after the point where who entered: after
// its own EventOwnEnter (and the identity burst that follows it) if c is who,
// else after the EventOthers that brought who in.
func sinceEntered(c *client, who string) []channel.Event {
	evs := c.events()
	if c.ch.Self() == who {
		out := afterEnter(evs)
		for len(out) > 0 && out[0].Kind == channel.EventIdentity {
			out = out[1:]
		}
		return out
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == channel.EventOthers && slices.Contains(evs[i].Enter, who) {
			out := evs[i+1:]
			// The identity the entrant announced follows its enter for everyone
			// else; the entrant reports it in its own burst.
			for len(out) > 0 && out[0].Kind == channel.EventIdentity && out[0].Sender == who {
				out = out[1:]
			}
			return out
		}
	}
	return nil
}

// checkSameOrder checks that every client saw the same events since the
// last client entered, members stamps included.
func checkSameOrder(t *testing.T, cs []*client, last string) {
	t.Helper()
	ref := sinceEntered(cs[0], last)
	for _, c := range cs[1:] {
		got := sinceEntered(c, last)
		if !reflect.DeepEqual(got, ref) {
			t.Fatalf("%s and %s disagree on the order:\n%s\nversus\n%s", cs[0].ch.Self(), c.ch.Self(), dump(ref), dump(got))
		}
	}
}

func TestIntegrationSameOrderForAll(t *testing.T) {
	s := serverFromEnv(t)
	room := s.newRoom(t)
	const n, per = 5, 40
	cs := enterAll(t, s, room, n)
	last := cs[n-1].ch.Self()
	// Everyone must have seen the last entrant before the flood starts, so
	// that the sequences are comparable from that point on.
	for _, c := range cs[:n-1] {
		c.waitFor("the last entrant", func(evs []channel.Event) bool { return sinceEntered(c, last) != nil })
	}
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			for k := range per {
				if err := c.ch.Send(context.Background(), fmt.Sprintf("?mpENC:%d-%d.", i, k)); err != nil {
					t.Errorf("send: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, c := range cs {
		c.waitFor("every packet", atLeast(n*per, channel.EventPacket))
	}
	checkSameOrder(t, cs, last)
	// Each sender's packets keep their order, and every member is in every
	// stamp, the sender included.
	ref := sinceEntered(cs[0], last)
	next := make(map[string]int)
	for _, e := range ref {
		if e.Kind != channel.EventPacket {
			continue
		}
		var i, k int
		if _, err := fmt.Sscanf(e.Body, "?mpENC:%d-%d.", &i, &k); err != nil {
			t.Fatalf("unexpected body %q", e.Body)
		}
		if want := cs[i].ch.Self(); e.Sender != want {
			t.Fatalf("packet %q from %s, want %s", e.Body, e.Sender, want)
		}
		if k != next[e.Sender] {
			t.Fatalf("%s: packet %d after %d", e.Sender, k, next[e.Sender]-1)
		}
		next[e.Sender]++
		if len(e.Members) != n || !slices.Contains(e.Members, e.Sender) {
			t.Fatalf("packet stamped %v", e.Members)
		}
	}
}

func TestIntegrationEnterLeave(t *testing.T) {
	s := serverFromEnv(t)
	room := s.newRoom(t)
	cs := enterAll(t, s, room, 3)
	a, b, c := cs[0], cs[1], cs[2]
	// The first event of every client is its own enter, with the members
	// present then, itself included.
	for i, x := range cs {
		evs := x.waitFor("own enter", atLeast(1, channel.EventOwnEnter))
		if evs[0].Kind != channel.EventOwnEnter || len(evs[0].Members) != i+1 || !slices.Contains(evs[0].Members, x.ch.Self()) {
			t.Fatalf("%s: first event %s", x.ch.Self(), fmtEvent(evs[0]))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := c.ch.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	evs := c.waitFor("own leave", atLeast(1, channel.EventOwnLeave))
	if e := tail(evs); e.Kind != channel.EventOwnLeave || len(e.Members) != 3 {
		t.Fatalf("leaver's last event: %s", fmtEvent(e))
	}
	if err := c.ch.Send(ctx, "?mpENC:x."); !errorSays(err, "xmpp: not in the room") {
		t.Fatalf("send after leave: %v, want not in the room", err)
	}
	for _, x := range []*client{a, b} {
		x.waitFor("the leave", func(evs []channel.Event) bool {
			e := tail(evs)
			return e.Kind == channel.EventOthers && slices.Equal(e.Leave, []string{c.ch.Self()}) && len(e.Enter) == 0 && len(e.Members) == 2
		})
	}
	// Entering again is seen as an enter; leaving is idempotent.
	if err := c.ch.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	c.enter()
	c.enter() // a no-op while in the room
	for _, x := range []*client{a, b} {
		x.waitFor("the re-enter", func(evs []channel.Event) bool {
			for _, e := range evs {
				if e.Kind == channel.EventOthers && slices.Equal(e.Enter, []string{c.ch.Self()}) && len(e.Members) == 3 && count(channel.EventOthers)(evs) >= 3 {
					return true
				}
			}
			return false
		})
	}
	c.waitFor("the second own enter", atLeast(2, channel.EventOwnEnter))
}

func TestIntegrationPlainClient(t *testing.T) {
	s := serverFromEnv(t)
	room := s.newRoom(t)
	cs := enterAll(t, s, room, 2)
	r := s.rawDial(t, 2)
	r.join(room, "plain-client", "")
	r.mustWrite(fmt.Sprintf(`<message to='%s' type='groupchat' id='p1'><body>hello &amp; &lt;welcome&gt; ☃</body></message>`, room))
	for _, c := range cs {
		evs := c.waitFor("the plain message", atLeast(1, channel.EventPlain))
		for _, e := range evs {
			if e.Kind == channel.EventPlain {
				if e.Sender != r.jid.String() || e.Body != "hello & <welcome> ☃" {
					t.Fatalf("plain event %s", fmtEvent(e))
				}
			}
		}
		if count(channel.EventPacket)(evs) != 0 {
			t.Fatal("a plain message became a packet")
		}
	}
}

func TestIntegrationIdentity(t *testing.T) {
	s := serverFromEnv(t)
	room := s.newRoom(t)
	cs := enterAll(t, s, room, 3)
	// Everyone collected everyone's key, its own included.
	for _, c := range cs {
		c.waitFor("all three keys", func(evs []channel.Event) bool {
			keys := make(map[string]bool)
			for _, e := range evs {
				if e.Kind == channel.EventIdentity {
					keys[e.Sender] = true
				}
			}
			for _, x := range cs {
				if !keys[x.ch.Self()] {
					return false
				}
			}
			return true
		})
		for _, e := range c.events() {
			if e.Kind != channel.EventIdentity {
				continue
			}
			var want []byte
			for _, x := range cs {
				if x.ch.Self() == e.Sender {
					want = x.key[:]
				}
			}
			if !slices.Equal(e.Key[:], want) {
				t.Fatalf("%s reports key %x for %s, want %x", c.ch.Self(), e.Key, e.Sender, want)
			}
		}
	}

	// The same device (full JID) comes back with another key: reported again.
	old := cs[2]
	self := old.ch.Self()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := old.ch.Close(); err != nil {
		t.Fatal(err)
	}
	newKey := testKey(t, 99)
	res := self[strings.Index(self, "/")+1:]
	again := s.dial(t, 2, room, func(cfg *xmpp.Config) {
		cfg.Identity = newKey
		cfg.JID = self[:strings.Index(self, "/")] + "/" + res
	})
	if again.ch.Self() != self {
		t.Fatalf("re-dialled as %s, want %s", again.ch.Self(), self)
	}
	if err := again.ch.Enter(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs[:2] {
		c.waitFor("the new key", func(evs []channel.Event) bool {
			e := tail(evs)
			return e.Kind == channel.EventIdentity && e.Sender == self && e.Key == newKey
		})
	}

	// A presence update with another key, without leaving, from a raw client.
	r := s.rawDial(t, 3)
	k1, k2 := testKey(t, 50), testKey(t, 51)
	r.join(room, "raw-keys", identityXML(k1))
	r.mustWrite(fmt.Sprintf(`<presence to='%s/raw-keys'>%s</presence>`, room, identityXML(k2)))
	for _, c := range cs[:2] {
		evs := c.waitFor("the changed key", func(evs []channel.Event) bool {
			e := tail(evs)
			return e.Kind == channel.EventIdentity && e.Sender == r.jid.String() && e.Key == k2
		})
		var seen []string
		for _, e := range evs {
			if e.Sender == r.jid.String() {
				seen = append(seen, fmtEvent(e))
			}
		}
		n := 0
		for _, e := range evs {
			if e.Kind == channel.EventOthers && slices.Contains(e.Enter, r.jid.String()) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("the key change was seen as %d enters", n)
		}
	}
}

func TestIntegrationKick(t *testing.T) {
	s := serverFromEnv(t)
	room := s.newRoom(t)
	cs := enterAll(t, s, room, 3)
	owner, member, victim := cs[0], cs[1], cs[2]
	// Kick names members the kicker has seen; wait until it has.
	owner.waitFor("the victim", func(evs []channel.Event) bool { return len(tail(evs).Members) == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := member.ch.Kick(ctx, []string{victim.ch.Self()}, "test"); !errorSays(err, "xmpp: kicking needs the moderator role in the room") {
		t.Fatalf("kick by a participant: %v, want the moderator role refusal", err)
	}
	// The reason reaches the victim as the room's words (XML escapes
	// undone).
	const reason = "off-topic & rude"
	if err := owner.ch.Kick(ctx, []string{victim.ch.Self(), "nobody@" + s.domain + "/gone"}, reason); err != nil {
		t.Fatalf("kick by the owner: %v", err)
	}
	evs := victim.waitFor("own leave", func(evs []channel.Event) bool {
		e := tail(evs)
		return e.Kind == channel.EventOwnLeave && len(e.Members) == 3
	})
	wantErr := fmt.Sprintf("xmpp: removed from %s: kicked (%q)", room, reason)
	if e := tail(evs); e.Err == nil || e.Err.Error() != wantErr {
		t.Fatalf("kicked client's own leave says %v, want %s", e.Err, wantErr)
	}
	if err := victim.ch.Err(); err == nil || !strings.HasPrefix(err.Error(), "xmpp: removed from ") || err.Error() != wantErr {
		t.Fatalf("kicked client's Err: %v, want removed: kicked, with the reason", err)
	}
	for _, x := range []*client{owner, member} {
		x.waitFor("the victim's leave", func(evs []channel.Event) bool {
			e := tail(evs)
			return e.Kind == channel.EventOthers && slices.Equal(e.Leave, []string{victim.ch.Self()}) && len(e.Members) == 2
		})
	}
	// The kicked client does not come back by itself.
	member.send("?mpENC:after-kick.")
	owner.waitFor("the packet after the kick", atLeast(1, channel.EventPacket))
	if n := count(channel.EventOwnEnter)(victim.events()); n != 1 {
		t.Fatalf("kicked client entered %d times", n)
	}
}

func TestIntegrationOversizeSend(t *testing.T) {
	s := serverFromEnv(t)
	room := s.newRoom(t)
	cs := enterAll(t, s, room, 2)
	a, b := cs[0], cs[1]
	ctx := context.Background()
	huge := "?mpENC:" + strings.Repeat("A", 300<<10) + "."
	if err := a.ch.Send(ctx, huge); err == nil || !tooLarge.MatchString(err.Error()) {
		t.Fatalf("300 KiB send: %v, want stanza too large", err)
	}
	escaped := strings.Repeat("<&", 70<<10) // 140 KiB that escape to 630 KiB
	if err := a.ch.Send(ctx, escaped); err == nil || !tooLarge.MatchString(err.Error()) {
		t.Fatalf("escaped send: %v, want stanza too large", err)
	}
	if err := a.ch.Send(ctx, "bad \x00 byte"); !errorSays(err, "xmpp: body not representable in XML") {
		t.Fatalf("NUL send: %v, want body not representable", err)
	}
	// The largest packet the wire codec allows goes through.
	biggest := "?mpENC:" + strings.Repeat("QUFB", (wire.MaxArmouredSize-8)/4) + "."
	a.send(biggest)
	a.send("?mpENC:small.")
	for _, c := range cs {
		evs := c.waitFor("both packets", atLeast(2, channel.EventPacket))
		if count(channel.EventOwnLeave)(evs) != 0 {
			t.Fatalf("%s lost the room:\n%s", c.ch.Self(), dump(evs))
		}
		var got []int
		for _, e := range evs {
			if e.Kind == channel.EventPacket {
				got = append(got, len(e.Body))
			}
		}
		if !slices.Equal(got, []int{len(biggest), len("?mpENC:small.")}) {
			t.Fatalf("packet sizes %v", got)
		}
	}
	_ = b
}

func TestIntegrationHostilePeer(t *testing.T) {
	s := serverFromEnv(t)
	room := s.newRoom(t)
	cs := enterAll(t, s, room, 3)
	r := s.rawDial(t, 3)
	r.join(room, "mallory", `<identity xmlns='`+nsIdentity+`' alg='ed25519'>not base64</identity>`)
	msg := func(id, inner string) string {
		return fmt.Sprintf(`<message to='%s' type='groupchat' id='%s'>%s</message>`, room, id, inner)
	}
	valid := "?mpENC:" + strings.Repeat("QUFB", 50) + "."
	junk := []string{
		msg("g1", `<body>?mpENC:!!!garbage!!!</body>`),
		msg("g2", `<body>?mpENC:QUFB</body>`), // truncated
		msg("g3", `<body>`+valid+`</body>`),
		msg("g4", `<body>`+valid+`</body>`),                                  // replayed
		msg("g5", `<body>?mpENC:`+strings.Repeat("QUFB", 60<<10)+`.</body>`), // 240 KiB
		msg("g6", `<body>first</body><body>second</body>`),
		msg("g7", `<body>?mpENC:old.</body><delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:08:25Z'/>`),
		msg("g8", `<subject>new subject</subject>`),
		msg("g9", strings.Repeat("<a>", 200)+"deep"+strings.Repeat("</a>", 200)),
		msg("g10", `<x xmlns='http://jabber.org/protocol/muc#user'><status code='173'/><item jid='evil@`+s.domain+`/x'/></x><body>spoofed status</body>`),
		fmt.Sprintf(`<presence to='%s/mallory'><x xmlns='http://jabber.org/protocol/muc#user'><item jid='admin@%s/fake' role='moderator'/><status code='110'/></x></presence>`, room, s.domain),
		fmt.Sprintf(`<presence to='%s/mallory'>%s%s</presence>`, room, identityXML(testKey(t, 7)), identityXML(testKey(t, 8))),
		fmt.Sprintf(`<message to='%s/dev0' type='chat'><body>private</body></message>`, room),
	}
	for _, j := range junk {
		r.mustWrite(j)
	}
	// A stanza over the server's limit ends the sender's session, not ours.
	_ = r.write(msg("huge", `<body>`+strings.Repeat("B", 300<<10)+`</body>`))
	select {
	case <-r.dead:
	case <-time.After(waitBound):
		t.Fatal("the server kept a client that sent a 300 KiB stanza")
	}
	// Everyone is still there and in the same order.
	cs[0].send("?mpENC:still-alive.")
	for _, c := range cs {
		evs := c.waitFor("the packet after the junk", func(evs []channel.Event) bool {
			for _, e := range evs {
				if e.Body == "?mpENC:still-alive." {
					return true
				}
			}
			return false
		})
		if count(channel.EventOwnLeave)(evs) != 0 {
			t.Fatalf("%s left:\n%s", c.ch.Self(), dump(evs))
		}
		var bodies []string
		for _, e := range evs {
			if (e.Kind == channel.EventPacket || e.Kind == channel.EventPlain) && e.Sender == r.jid.String() {
				if e.Kind == channel.EventPacket != wire.IsMpENC(e.Body) {
					t.Fatalf("misclassified %q", e.Body)
				}
				bodies = append(bodies, e.Body[:min(len(e.Body), 20)])
			}
			if e.Kind == channel.EventIdentity && e.Sender == r.jid.String() {
				t.Fatalf("a malformed or doubled key was reported: %s", fmtEvent(e))
			}
			if e.Body == "?mpENC:old." || e.Body == "second" || e.Body == "private" {
				t.Fatalf("delivered %q", e.Body)
			}
		}
		want := []string{"?mpENC:!!!garbage!!!", "?mpENC:QUFB", valid[:20], valid[:20], "?mpENC:QUFBQUFBQUFBQ", "first", "spoofed status"}
		if !slices.Equal(bodies, want) {
			t.Fatalf("%s delivered %q, want %q", c.ch.Self(), bodies, want)
		}
	}
	last := cs[2].ch.Self()
	checkSameOrder(t, cs, last)
}

func TestIntegrationServerRestart(t *testing.T) {
	s := serverFromEnv(t)
	if s.restartCmd == "" {
		t.Skip("MPENC_XMPP_RESTART_CMD is not set: the server under test cannot be restarted from here")
	}
	room := s.newRoom(t)
	cs := enterAll(t, s, room, 3)
	cs[0].send("?mpENC:before.")
	for _, c := range cs {
		c.waitFor("the packet before", atLeast(1, channel.EventPacket))
	}
	s.restart(t)
	for _, c := range cs {
		c.waitFor("leave then enter", func(evs []channel.Event) bool {
			return count(channel.EventOwnLeave)(evs) == 1 && count(channel.EventOwnEnter)(evs) == 2 &&
				slices.IndexFunc(evs, func(e channel.Event) bool { return e.Kind == channel.EventOwnLeave }) <
					slices.IndexFunc(evs[1:], func(e channel.Event) bool { return e.Kind == channel.EventOwnEnter })+1
		})
	}
	// Wait until everyone sees everyone again, then talk.
	for _, c := range cs {
		c.waitFor("all three back", func(evs []channel.Event) bool {
			var e channel.Event
			for _, x := range evs {
				if x.Members != nil {
					e = x
				}
			}
			return len(e.Members) == 3 && e.Kind != channel.EventOwnLeave
		})
	}
	cs[1].send("?mpENC:after.")
	for _, c := range cs {
		c.waitFor("the packet after", atLeast(2, channel.EventPacket))
		if c.ch.Err() != nil {
			t.Fatalf("%s: Err %v", c.ch.Self(), c.ch.Err())
		}
	}
}

// TestIntegrationSilentRemoval: the room forgets an occupant without a
// word, as a restarted MUC service does. Its self-ping (XEP-0410) finds out
// within a keep-alive period: EventOwnLeave saying the room no longer has
// us, then a new enter on the same connection, after which the others'
// packets reach it again. The device that was not forgotten sees no leave
// and no error.
func TestIntegrationSilentRemoval(t *testing.T) {
	s := serverFromEnv(t)
	if s.forgetCmd == "" {
		t.Skip("MPENC_XMPP_FORGET_CMD is not set: the server under test cannot forget an occupant from here")
	}
	room := s.newRoom(t)
	logs := &logCount{}
	a := s.dial(t, 0, room, func(c *xmpp.Config) { c.KeepAlive = time.Second }, logs.counting(forgotLog, reconnectLog))
	a.enter()
	b := s.dial(t, 1, room)
	b.enter()
	a.waitFor("b in the room", func(evs []channel.Event) bool { return count(channel.EventOthers)(evs) >= 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "sh", "-c", s.forgetCmd+" "+room+" "+a.ch.Self()).CombinedOutput(); err != nil {
		t.Fatalf("making the room forget a: %v\n%s", err, out)
	}
	evs := a.waitFor("the forgotten occupant's leave and new enter", func(evs []channel.Event) bool {
		return count(channel.EventOwnLeave)(evs) == 1 && count(channel.EventOwnEnter)(evs) == 2
	})
	for _, e := range evs {
		if e.Kind == channel.EventOwnLeave && !errorSays(e.Err, "xmpp: the room forgot us") {
			t.Errorf("the leave says %v, want the room forgot us", e.Err)
		}
	}
	if f, r := logs.get(forgotLog), logs.get(reconnectLog); f != 1 || r != 0 {
		t.Errorf("%d forgotten entries, %d reconnections: want one forgotten entry, on the first connection", f, r)
	}
	b.send("?mpENC:after.")
	a.waitFor("b's packet after the new enter", atLeast(1, channel.EventPacket))
	if n := count(channel.EventOwnLeave)(b.events()); n != 0 || b.ch.Err() != nil || a.ch.Err() != nil {
		t.Errorf("b saw %d own leaves; Err a %v, b %v", n, a.ch.Err(), b.ch.Err())
	}
}

// TestIntegrationRoomVanished: the room disappears without a word to its
// occupants (MPENC_XMPP_FORGET_ROOM_CMD: Prosody's MUC forgets it, or
// ejabberd's room process dies). The first device to self-ping (XEP-0410)
// is answered item-not-found, and a disco#info query confirms the room is
// gone: EventOwnLeave saying so, then a new enter on the same connection,
// which creates the room anew, non-anonymous again. A device that pings
// after that finds the new room without it: the room forgot it. Each
// device leaves once and comes back; they then hear each other.
func TestIntegrationRoomVanished(t *testing.T) {
	s := serverFromEnv(t)
	if s.forgetRoomCmd == "" {
		t.Skip("MPENC_XMPP_FORGET_ROOM_CMD is not set: the server under test cannot lose a room from here")
	}
	room := s.newRoom(t)
	var logs [2]logCount
	var cs []*client
	for i := range 2 {
		c := s.dial(t, i, room, func(c *xmpp.Config) { c.KeepAlive = time.Second }, logs[i].counting(goneLog, forgotLog, reconnectLog))
		c.enter()
		cs = append(cs, c)
	}
	cs[0].waitFor("the other device", func(evs []channel.Event) bool { return len(tail(evs).Members) == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "sh", "-c", s.forgetRoomCmd+" "+room).CombinedOutput(); err != nil {
		t.Fatalf("making the room vanish: %v\n%s", err, out)
	}
	gone := 0
	for i, c := range cs {
		evs := c.waitFor("the leave and the new enter", func(evs []channel.Event) bool {
			return count(channel.EventOwnLeave)(evs) == 1 && count(channel.EventOwnEnter)(evs) == 2
		})
		for _, e := range evs {
			switch {
			case e.Kind != channel.EventOwnLeave:
			case errorSays(e.Err, "xmpp: the room no longer exists"):
				gone++
			case !errorSays(e.Err, "xmpp: the room forgot us"):
				t.Errorf("%s: the leave says %v, want the room no longer exists (or, once re-created, forgot us)", c.ch.Self(), e.Err)
			}
		}
		if g, f, r := logs[i].get(goneLog), logs[i].get(forgotLog), logs[i].get(reconnectLog); g+f != 1 || r != 0 {
			t.Errorf("%s: %d rooms gone, %d forgotten, %d reconnections: want one, on the first connection", c.ch.Self(), g, f, r)
		}
		if c.ch.Err() != nil {
			t.Errorf("%s: Err %v", c.ch.Self(), c.ch.Err())
		}
	}
	if gone == 0 {
		t.Error("nobody found the room gone")
	}
	for _, c := range cs {
		c.waitFor("both back", func(evs []channel.Event) bool {
			e := tail(evs)
			return len(e.Members) == 2 && e.Kind != channel.EventOwnLeave
		})
	}
	// The new room shows real JIDs, as any room we create.
	r := s.rawDial(t, 2)
	r.join(room, "observer", "")
	r.waitFor("status 100", func(st string) bool {
		return strings.HasPrefix(st, "<presence") && strings.Contains(st, `code="110"`) && strings.Contains(st, `code="100"`)
	})
	cs[1].send("?mpENC:after.")
	cs[0].waitFor("the packet after", atLeast(1, channel.EventPacket))
}

// TestIntegrationRoomDestroyed: the room's owner destroys it (XEP-0045
// §10.9) with a reason. Every device leaves with the room's words, stays
// out (Err says why) and does not create the room again. ejabberd tells
// the occupants without status 110.
func TestIntegrationRoomDestroyed(t *testing.T) {
	s := serverFromEnv(t)
	room := s.newRoom(t)
	// A plain client creates the room, non-anonymous, and owns it.
	r := s.rawDial(t, 4)
	r.join(room, "owner", "")
	ans := r.iq("cfg3", fmt.Sprintf(`<iq type='set' to='%s' id='cfg3'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var='muc#roomconfig_whois'><value>anyone</value></field></x></query></iq>`, room))
	if !strings.Contains(ans, `type="result"`) {
		t.Fatalf("configuring the room: %s", ans)
	}
	var cs []*client
	for i := range 2 {
		// Pinging every second: a device that missed the destruction
		// would find the room gone and create it again.
		c := s.dial(t, i, room, func(c *xmpp.Config) { c.KeepAlive = time.Second })
		c.enter()
		cs = append(cs, c)
	}
	cs[0].waitFor("the other device", func(evs []channel.Event) bool { return len(tail(evs).Members) == 3 })
	ans = r.iq("destroy1", fmt.Sprintf(`<iq type='set' to='%s' id='destroy1'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy><reason>closing &amp; down</reason></destroy></query></iq>`, room))
	if !strings.Contains(ans, `type="result"`) {
		t.Fatalf("destroying the room: %s", ans)
	}
	want := fmt.Sprintf("xmpp: removed from %s: room destroyed (%q)", room, "closing & down")
	for _, c := range cs {
		evs := c.waitFor("own leave", func(evs []channel.Event) bool { return tail(evs).Kind == channel.EventOwnLeave })
		if e := tail(evs); e.Err == nil || e.Err.Error() != want {
			t.Errorf("%s: the leave says %v, want %s", c.ch.Self(), e.Err, want)
		}
		if err := c.ch.Err(); err == nil || err.Error() != want {
			t.Errorf("%s: Err %v, want %s", c.ch.Self(), err, want)
		}
	}
	// Three keep-alive periods later nobody came back, and the room was
	// not created again.
	time.Sleep(3 * time.Second)
	for _, c := range cs {
		if n := count(channel.EventOwnEnter)(c.events()); n != 1 {
			t.Errorf("%s entered %d times", c.ch.Self(), n)
		}
	}
	ans = r.iq("disco3", fmt.Sprintf(`<iq type='get' to='%s' id='disco3'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, room))
	if !strings.Contains(ans, "item-not-found") {
		t.Errorf("disco#info of the destroyed room: %s", ans)
	}
}

func TestIntegrationSemiAnonymousRoomRefused(t *testing.T) {
	s := serverFromEnv(t)
	room := s.newRoom(t)
	// A plain client creates the room and makes it semi-anonymous
	// explicitly (the default differs between servers).
	r := s.rawDial(t, 4)
	r.join(room, "owner", "")
	ans := r.iq("cfg1", fmt.Sprintf(`<iq type='set' to='%s' id='cfg1'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var='muc#roomconfig_whois'><value>moderators</value></field></x></query></iq>`, room))
	if !strings.Contains(ans, `type="result"`) {
		t.Fatalf("configuring the room: %s", ans)
	}
	c := s.dial(t, 0, room)
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	err := c.ch.Enter(ctx)
	if !errorSays(err, "xmpp: the room hides occupants' real JIDs") {
		t.Fatalf("enter a semi-anonymous room: %v, want the room hides real JIDs", err)
	}
	t.Logf("refused as expected: %v", err)
	if evs := c.events(); len(evs) != 0 {
		t.Fatalf("events from a refused room:\n%s", dump(evs))
	}
	// We did not stay in the room.
	r.waitFor("our prober's leave", func(st string) bool {
		return strings.HasPrefix(st, "<presence") && strings.Contains(st, `type="unavailable"`) && strings.Contains(st, "/dev0")
	})
}

func TestIntegrationCreatedRoomIsNonAnonymous(t *testing.T) {
	s := serverFromEnv(t)
	room := s.newRoom(t)
	c := s.dial(t, 0, room)
	c.enter() // creates the room
	// A plain client that is not a moderator sees real JIDs (status 100 in
	// its own presence, and the creator's real JID in the creator's item).
	r := s.rawDial(t, 1)
	r.join(room, "observer", "")
	r.waitFor("status 100", func(st string) bool {
		return strings.HasPrefix(st, "<presence") && strings.Contains(st, `code="110"`) && strings.Contains(st, `code="100"`)
	})
	r.waitFor("the creator's real JID", func(st string) bool {
		return strings.HasPrefix(st, "<presence") && strings.Contains(st, `jid="`+c.ch.Self()+`"`)
	})
	ans := r.iq("disco1", fmt.Sprintf(`<iq type='get' to='%s' id='disco1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, room))
	if !strings.Contains(ans, "muc_nonanonymous") {
		t.Fatalf("disco#info of the room: %s", ans)
	}
	c.waitFor("the observer", func(evs []channel.Event) bool {
		e := tail(evs)
		return e.Kind == channel.EventOthers && slices.Equal(e.Enter, []string{r.jid.String()})
	})
}

func TestIntegrationSecurityModes(t *testing.T) {
	s := serverFromEnv(t)
	room := s.newRoom(t)
	type mode struct {
		name  string
		tweak func(*xmpp.Config)
		want  string // what the error says; "" for success
	}
	modes := []mode{
		{"starttls-verified", func(c *xmpp.Config) { c.Security = xmpp.StartTLS; c.Addr = s.addr }, ""},
		{"starttls-unknown-ca", func(c *xmpp.Config) { c.Security = xmpp.StartTLS; c.Addr = s.addr; c.TLS = nil }, "xmpp: TLS failed"},
		{"starttls-wrong-name", func(c *xmpp.Config) {
			c.Security = xmpp.StartTLS
			c.Addr = s.addr
			c.TLS = &tls.Config{RootCAs: s.roots, ServerName: "other.example"}
		}, "xmpp: TLS failed"},
		{"wrong-password", func(c *xmpp.Config) { c.Password += "x" }, "xmpp: authentication failed"},
	}
	if s.tlsAddr != "" {
		modes = append(modes, mode{"directtls-verified", func(c *xmpp.Config) { c.Security = xmpp.DirectTLS; c.Addr = s.tlsAddr }, ""})
	}
	if s.insecure {
		modes = append(modes, mode{"plaintext-loopback", func(c *xmpp.Config) { c.Security = xmpp.UnsafePlaintext; c.Addr = s.addr }, ""})
	}
	for i, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			if s.roots == nil && m.want == "" && strings.Contains(m.name, "verified") {
				t.Skip("MPENC_XMPP_CA is not set: the server's certificate is checked against the system roots")
			}
			cfg := s.config(i, testKey(t, i))
			m.tweak(cfg)
			ctx, cancel := context.WithTimeout(context.Background(), waitBound)
			defer cancel()
			acct, ch, err := openRoom(ctx, cfg, i, room)
			if m.want != "" {
				if !errorSays(err, m.want) {
					t.Fatalf("dial: %v, want %q", err, m.want)
				}
				t.Logf("refused as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer acct.Close()
			go func() {
				for range ch.Events() {
				}
			}()
			if err := ch.Enter(ctx); err != nil {
				t.Fatalf("enter: %v", err)
			}
		})
	}
}

// TestIntegrationRequireChannelBinding: with Config.RequireChannelBinding
// the login is bound to the TLS connection (SCRAM-…-PLUS) or fails saying
// why: the server offers no -PLUS mechanism or cannot bind this connection
// (Prosody 0.12 on Debian), or refuses the binding (ejabberd 23.01 on TLS
// 1.3), never as a wrong password and never retried without it.
func TestIntegrationRequireChannelBinding(t *testing.T) {
	s := serverFromEnv(t)
	if s.roots == nil {
		t.Skip("MPENC_XMPP_CA is not set: the server's certificate is checked against the system roots")
	}
	type mode struct {
		name string
		sec  xmpp.Security
		addr string
	}
	modes := []mode{{"starttls", xmpp.StartTLS, s.addr}}
	if s.tlsAddr != "" {
		modes = append(modes, mode{"directtls", xmpp.DirectTLS, s.tlsAddr})
	}
	for i, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			var mu sync.Mutex
			var lines []string
			cfg := s.config(i, testKey(t, i))
			cfg.Security, cfg.Addr, cfg.RequireChannelBinding = m.sec, m.addr, true
			cfg.Logf = func(format string, args ...any) {
				mu.Lock()
				lines = append(lines, fmt.Sprintf(format, args...))
				mu.Unlock()
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitBound)
			defer cancel()
			acct, err := xmpp.Dial(ctx, cfg)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				acct.Close()
				if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "-PLUS (channel binding tls-") }) {
					t.Fatalf("logged in without channel binding: %q", lines)
				}
				t.Logf("bound: %q", lines)
			case errorSays(err, "xmpp: the server refused channel binding"),
				errorSays(err, "xmpp: channel binding is required but not possible"):
				if slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "retrying without it") }) {
					t.Fatalf("retried without channel binding: %q", lines)
				}
				t.Logf("refused as expected: %v", err)
			default:
				t.Fatalf("dial: %v, want a login bound to TLS or a refusal that says why", err)
			}
		})
	}
}

func TestIntegrationManyClients(t *testing.T) {
	s := serverFromEnv(t)
	room := s.newRoom(t)
	const n = 6
	cs := enterAll(t, s, room, n)
	last := cs[n-1].ch.Self()
	for _, c := range cs {
		c.waitFor("all present", func(evs []channel.Event) bool { return len(tail(evs).Members) == n })
	}
	for i, c := range cs {
		c.send(fmt.Sprintf("?mpENC:m%d.", i))
	}
	// One member drops out in the middle, the rest keep talking.
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := cs[3].ch.Close(); err != nil {
		t.Fatal(err)
	}
	cs[0].send("?mpENC:end.")
	rest := slices.Delete(slices.Clone(cs), 3, 4)
	for _, c := range rest {
		c.waitFor("all packets and the leave", func(evs []channel.Event) bool {
			return atLeast(n+1, channel.EventPacket)(evs) && slices.ContainsFunc(evs, func(e channel.Event) bool {
				return e.Kind == channel.EventOthers && len(e.Leave) == 1
			})
		})
	}
	_ = ctx
	checkSameOrder(t, rest, last)
}

func TestIntegrationEnterNickConflictAndTimeout(t *testing.T) {
	s := serverFromEnv(t)
	// A nick already taken by another account: the channel enters under
	// the next one ("dev0 (2)"), the room is not lost.
	room := s.newRoom(t)
	a := s.dial(t, 0, room)
	a.enter()
	b := s.dial(t, 1, room, withNick("dev0"))
	b.enter()
	a.waitFor("the second dev0 in", func(evs []channel.Event) bool {
		return slices.ContainsFunc(evs, func(e channel.Event) bool {
			return e.Kind == channel.EventOthers && slices.Contains(e.Enter, b.ch.Self())
		})
	})
	if b.ch.Err() != nil {
		t.Fatalf("Err after entering under another nick: %v", b.ch.Err())
	}
	// An Enter whose context ends leaves nothing behind.
	short, cancel2 := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel2()
	c := s.dial(t, 2, s.newRoom(t))
	if err := c.ch.Enter(short); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("enter with an expired context: %v", err)
	}
}

func TestIntegrationQueueOverflow(t *testing.T) {
	s := serverFromEnv(t)
	room := s.newRoom(t)
	a := s.dial(t, 0, room)
	a.enter()
	gate := make(chan struct{})
	logs := &logCount{}
	slow := s.dial(t, 1, room, gated(gate), func(c *xmpp.Config) { c.EventQueue = 20 }, logs.counting(overflowLog))
	slow.enter()
	// The slow consumer reads nothing while 100 packets arrive: its queue
	// overflows, the channel leaves the room (the account's connection,
	// which other rooms may share, stays).
	for k := range 100 {
		a.send(fmt.Sprintf("?mpENC:%d.", k))
	}
	a.waitFor("all echoes", atLeast(100, channel.EventPacket))
	a.waitFor("the slow one dropped", func(evs []channel.Event) bool {
		return slices.ContainsFunc(evs, func(e channel.Event) bool {
			return e.Kind == channel.EventOthers && slices.Equal(e.Leave, []string{slow.ch.Self()})
		})
	})
	close(gate)
	// It sees a gap-marking own leave right after what fitted, then comes
	// back once it has drained its queue.
	evs := slow.waitFor("leave then enter", func(evs []channel.Event) bool { return count(channel.EventOwnEnter)(evs) == 2 })
	var ks []channel.EventKind
	for _, e := range evs {
		if e.Kind != channel.EventIdentity && e.Kind != channel.EventPacket {
			ks = append(ks, e.Kind)
		}
	}
	if !slices.Equal(ks, []channel.EventKind{channel.EventOwnEnter, channel.EventOwnLeave, channel.EventOwnEnter}) {
		t.Fatalf("slow consumer's events:\n%s", dump(evs))
	}
	if n := count(channel.EventPacket)(evs); n == 0 || n >= 100 {
		t.Fatalf("%d packets before the overflow", n)
	}
	if n := logs.get(overflowLog); n != 1 {
		t.Fatalf("%d queue overflows, want 1", n)
	}
	a.send("?mpENC:after.")
	slow.waitFor("the packet after", func(evs []channel.Event) bool { return tail(evs).Body == "?mpENC:after." })
}

func TestIntegrationEnterWhileRoomIsConfigured(t *testing.T) {
	s := serverFromEnv(t)
	room := s.newRoom(t)
	// A plain client creates the room and leaves it as the server made it
	// (semi-anonymous on Prosody and ejabberd) for now.
	r := s.rawDial(t, 4)
	r.join(room, "creator", "")
	c := s.dial(t, 0, room)
	entered := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		entered <- c.ch.Enter(ctx)
	}()
	// Once our device is in the room (and saw the creator without a real
	// JID), the creator makes the room non-anonymous.
	r.waitFor("our device's presence", func(st string) bool {
		return strings.HasPrefix(st, "<presence") && strings.Contains(st, room+"/dev0")
	})
	ans := r.iq("cfg2", fmt.Sprintf(`<iq type='set' to='%s' id='cfg2'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var='muc#roomconfig_whois'><value>anyone</value></field></x></query></iq>`, room))
	if !strings.Contains(ans, `type="result"`) {
		t.Fatalf("configuring the room: %s", ans)
	}
	if err := <-entered; err != nil {
		t.Fatalf("enter: %v", err)
	}
	// The creator is a member from our first event on: nobody is hidden.
	evs := c.waitFor("own enter", atLeast(1, channel.EventOwnEnter))
	if want := []string{r.jid.String(), c.ch.Self()}; !slices.Equal(evs[0].Members, sorted(want)) {
		t.Fatalf("own enter members %v, want %v", evs[0].Members, want)
	}
	if n := count(channel.EventOwnEnter)(evs); n != 1 {
		t.Fatalf("%d own enters", n)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
