//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/transcript"
	"github.com/mpenc/mpenc/trust"
)

// Rooms that heal themselves: a server restart or crash with the default
// manual include, messages typed while the server is down, a silent
// occupant in a bot's room, and a bot that is kicked, whose room is
// destroyed, and whose server restarts. Every test takes the server from
// the environment (docs/XMPP.md), so it runs on any server whose launcher
// gives the restart command (and, for a crash, MPENC_XMPP_KILL_CMD).

// healBound is how long after the server's return the session must have
// re-formed among the members who came back: the issue's "unaided within
// 30 s". A bound to fail rather than hang, not a measurement.
const healBound = 30 * time.Second

// runServerCmd runs a command of the server's launcher (bounded).
func runServerCmd(t testing.TB, what, cmd string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", "-c", cmd).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, out)
	}
}

// outage takes the server down and returns the function that brings it
// back. With crash, the server is killed (SIGKILL: nobody is told
// anything, MPENC_XMPP_KILL_CMD) and back starts it again; otherwise a
// graceful restart runs in the background and back waits for its end.
// Tests that need it skip when the server under test cannot do it.
func (s *server) outage(t *testing.T, crash bool) (back func()) {
	t.Helper()
	if crash {
		s.canCrash(t)
		runServerCmd(t, "killing the server", os.Getenv("MPENC_XMPP_KILL_CMD"))
		return func() { runServerCmd(t, "starting the server again", s.restartCmd) }
	}
	if s.restartCmd == "" {
		t.Skip("MPENC_XMPP_RESTART_CMD is not set: the server under test cannot be restarted from here")
	}
	done := make(chan struct{})
	var err error
	var out []byte
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		out, err = exec.CommandContext(ctx, "sh", "-c", s.restartCmd).CombinedOutput()
	}()
	return func() {
		<-done
		if err != nil {
			t.Fatalf("restarting the server: %v\n%s", err, out)
		}
	}
}

// canCrash skips the test unless the server under test can be killed and
// started again from here.
func (s *server) canCrash(t *testing.T) {
	t.Helper()
	if os.Getenv("MPENC_XMPP_KILL_CMD") == "" || s.restartCmd == "" {
		t.Skip("MPENC_XMPP_KILL_CMD or MPENC_XMPP_RESTART_CMD is not set: the server under test cannot be crashed and started again from here")
	}
}

// TestIntegrationHealRestart: a server restart under a session of three
// devices that include nobody by themselves (the default, manual). They
// lost the room without leaving on purpose, so each includes the others
// again when they come back: one session of the three re-forms, unaided,
// within 30 s of the server's return, and messages flow. (Before c12ed7a
// nobody included anyone: the devices stayed JOINING until JOIN_FAILED.)
func TestIntegrationHealRestart(t *testing.T) {
	s := serverFromEnv(t)
	if s.restartCmd == "" {
		t.Skip("MPENC_XMPP_RESTART_CMD is not set: the server under test cannot be restarted from here")
	}
	healAfterOutage(t, s, func() { s.restart(t) })
}

// TestIntegrationHealCrash: the same after the server was killed
// (SIGKILL: no presence, no stream end; the clients find their sockets
// closed) and started again.
func TestIntegrationHealCrash(t *testing.T) {
	s := serverFromEnv(t)
	s.canCrash(t)
	healAfterOutage(t, s, func() { s.outage(t, true)() })
}

// healAfterOutage forms a session of three by hand, takes the server down
// (restart, or else a crash and a start), and checks that the session
// re-forms among the three within healBound of the server's return.
func healAfterOutage(t *testing.T, s *server, restart func()) {
	t.Helper()
	room := s.newRoom(t)
	ps := s.formByHand(t, room, 3, peerOpts{})
	exchange(t, ps, ps, "before")
	before := waitSession(t, ps)
	restart()
	returned := time.Now()
	after := waitSessionWithin(t, ps, healBound)
	t.Logf("one session of the three again %v after the server's return", time.Since(returned).Round(100*time.Millisecond))
	if after.sid == before.sid {
		t.Fatal("the session id did not change across the outage")
	}
	exchange(t, ps, ps, "after")
	for _, p := range ps {
		ns := p.notices()
		if n := len(ofKind(ns, session.Gap)); n != 1 {
			t.Errorf("%v: %d gap notices", p, n)
		}
		for _, w := range realWarnings(t, p, ns) {
			if w.Kind != session.Gap {
				t.Errorf("%v: unexpected warning %v", p, w)
			}
		}
	}
}

// shortWindow gives an App a join window of 20 s (a message typed while
// out of the session waits that long for its readers) and the quick
// reconnection of the tests.
func shortWindow(c *app.Config) {
	c.JoinWindow = 20 * time.Second
	c.XMPP = func(x *xmpp.Config) { x.ReconnectMin, x.ReconnectMax = 100*time.Millisecond, 2*time.Second }
}

// via makes an App connect through a proxy the test can cut.
func via(px *proxy) func(*app.Config) {
	return func(c *app.Config) {
		prev := c.XMPP
		c.XMPP = func(x *xmpp.Config) {
			if prev != nil {
				prev(x)
			}
			x.Addr = px.addr()
		}
	}
}

// formApps forms a session of app peers in room by hand: the first
// founds it and invites each of the others once it waits in the room.
func formApps(t *testing.T, room string, ps []*appPeer) []*app.Room {
	t.Helper()
	from := ps[0].mark()
	rs := []*app.Room{ps[0].join(room, "manual")}
	if ev := ps[0].waitEvent(from, "the founder's join", func(ev app.Event) bool { return ev.Kind == app.EventJoined }); ev.Err != nil {
		t.Fatalf("the founder's join: %v", ev.Err)
	}
	for _, p := range ps[1:] {
		from, pfrom := ps[0].mark(), p.mark()
		r := p.join(room, "manual")
		rs = append(rs, r)
		ps[0].waitEvent(from, "the join request of "+r.Self(), func(ev app.Event) bool {
			return ev.Kind == app.EventNotice && ev.Notice.Kind == session.JoinRequest && ev.Notice.Author == r.Self()
		})
		ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
		if _, err := rs[0].Invite(ctx, r.Self()); err != nil {
			t.Fatalf("including %s: %v", r.Self(), err)
		}
		cancel()
		if ev := p.waitEvent(pfrom, "the join of "+r.Self(), func(ev app.Event) bool { return ev.Kind == app.EventJoined }); ev.Err != nil {
			t.Fatalf("the join of %s: %v", r.Self(), ev.Err)
		}
	}
	return rs
}

// waitJoined waits for a StateChanged JOINED after position from.
func (p *appPeer) waitJoined(from int, room string) {
	p.t.Helper()
	p.waitEvent(from, "JOINED in "+room, func(ev app.Event) bool {
		return ev.Room == room && ev.Kind == app.EventNotice && ev.Notice.Kind == session.StateChanged && ev.Notice.State == session.StateJoined
	})
}

// entriesOf returns the entries p delivered about message id (or its
// queued handle), in order.
func (p *appPeer) entriesOf(ids ...transcript.ID) []app.Entry {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []app.Entry
	for _, ev := range p.evs {
		if ev.Kind == app.EventEntry && slices.Contains(ids, ev.Entry.ID) {
			out = append(out, ev.Entry)
		}
	}
	return out
}

// TestIntegrationHealTypedWhileDown: the server crashes under a session
// of three (manual include) and one member types a message while it is
// down. The session queues it for the two others (a Queued entry with the
// handle Send returned); when both are back it is sent, as the message
// that replaces the queued line, reaches both, and is acknowledged by
// everyone. Without MPENC_XMPP_KILL_CMD the message is typed during a
// graceful restart instead, as soon as the author sees the gap.
func TestIntegrationHealTypedWhileDown(t *testing.T) {
	s := serverFromEnv(t)
	ps := []*appPeer{
		s.newAppPeer(t, s.cmdAccount(t, 3), t.TempDir(), shortWindow),
		s.newAppPeer(t, s.cmdAccount(t, 4), t.TempDir(), shortWindow),
		s.newAppPeer(t, s.cmdAccount(t, 5), t.TempDir(), shortWindow),
	}
	room := s.newRoom(t)
	rs := formApps(t, room, ps)
	id, msgID, sent := typeWhileDown(t, s, ps[0], rs[0], nil)
	for i, p := range ps[1:] {
		p.waitMessage(0, room, bare(rs[0].Self()), fmt.Sprintf("the message typed while down, at member %d", i+1),
			func(s string) bool { return s == sent })
	}
	ps[0].waitEvent(0, "the message acknowledged by everyone", func(ev app.Event) bool {
		return ev.Kind == app.EventEntry && ev.Entry.Kind == session.Message && ev.Entry.Text == sent && ev.Entry.Ack == session.FullyAcked
	})
	for _, e := range ps[0].entriesOf(id, msgID) {
		if len(e.NotDelivered) > 0 {
			t.Errorf("reported not delivered although everyone came back: %+v", e)
		}
	}
}

// TestIntegrationHealTypedWhileDownOneAway: the same, but one member never
// comes back (its connection is cut with the server's): the message
// waits for it until the end of its wait (20 s here), is then sent to the
// member who came back, and its author is shown whom it did not reach;
// it is never shown as acknowledged by everyone without that.
func TestIntegrationHealTypedWhileDownOneAway(t *testing.T) {
	s := serverFromEnv(t)
	addr := s.clientAddr()
	px := newProxy(t, addr)
	ps := []*appPeer{
		s.newAppPeer(t, s.cmdAccount(t, 3), t.TempDir(), shortWindow),
		s.newAppPeer(t, s.cmdAccount(t, 4), t.TempDir(), shortWindow),
		s.newAppPeer(t, s.cmdAccount(t, 5), t.TempDir(), shortWindow, via(px)),
	}
	room := s.newRoom(t)
	rs := formApps(t, room, ps)
	away := rs[2].Self()
	id, _, sent := typeWhileDown(t, s, ps[0], rs[0], px.cut)
	ps[1].waitMessage(0, room, bare(rs[0].Self()), "the message typed while down", func(s string) bool { return s == sent })
	nd := ps[0].waitEvent(0, "whom the message did not reach", func(ev app.Event) bool {
		return ev.Kind == app.EventEntry && ev.Entry.Kind == session.Message && ev.Entry.Text == sent && len(ev.Entry.NotDelivered) > 0
	}).Entry
	if !slices.Equal(nd.NotDelivered, []string{away}) {
		t.Errorf("not delivered to %v, want [%s]", nd.NotDelivered, away)
	}
	if slices.Contains(nd.Members, away) || !slices.Contains(nd.Members, rs[1].Self()) {
		t.Errorf("sent to %v", nd.Members)
	}
	// Acknowledged by the member it reached: still not "by everyone".
	ps[0].waitEvent(0, "the acknowledgement of the member it reached", func(ev app.Event) bool {
		return ev.Kind == app.EventEntry && ev.Entry.ID == nd.ID && ev.Entry.Ack == session.FullyAcked
	})
	for _, e := range ps[0].entriesOf(id, nd.ID) {
		if e.Kind == session.Message && e.Ack == session.FullyAcked && !slices.Equal(e.NotDelivered, []string{away}) {
			t.Errorf("shown acknowledged by everyone: %+v", e)
		}
	}
}

// typeWhileDown takes the server down (cutting also cut, if set, so that
// its member never comes back), has author type a message once it saw
// the gap, checks that the session queued it for the other members, and
// brings the server back. It returns the queued handle, the id of the
// message it was sent as, and the text.
func typeWhileDown(t *testing.T, s *server, author *appPeer, r *app.Room, cut func()) (handle, sent transcript.ID, text string) {
	t.Helper()
	crash := os.Getenv("MPENC_XMPP_KILL_CMD") != ""
	from := author.mark()
	back := s.outage(t, crash)
	if cut != nil {
		cut()
	}
	author.waitEvent(from, "the gap", func(ev app.Event) bool { return ev.Kind == app.EventNotice && ev.Notice.Kind == session.Gap })
	text = "typed while the server was down"
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	id, err := r.Send(ctx, text)
	if err != nil {
		t.Fatalf("typing while out of the session: %v", err)
	}
	q := author.waitEvent(from, "the queued line", func(ev app.Event) bool {
		return ev.Kind == app.EventEntry && ev.Entry.Kind == session.Queued && ev.Entry.ID == id
	}).Entry
	if q.Text != text || len(q.Members) != 2 || slices.Contains(q.Members, r.Self()) || q.Until.IsZero() {
		t.Errorf("queued: %+v", q)
	}
	back()
	m := author.waitEvent(from, "the message that replaces the queued line", func(ev app.Event) bool {
		return ev.Kind == app.EventEntry && ev.Entry.Kind == session.Message && ev.Entry.Replaces == id && ev.Entry.Text == text
	}).Entry
	return id, m.ID, text
}

// TestIntegrationHealSilentOccupant: a bot (mpenc-bot, include =
// "everyone") holds a room; a client enters announcing an identity key
// and never answers. The bot's inclusion of it stalls and is aborted, and
// the silent occupant is left out of automatic inclusions for a while. An
// honest newcomer that enters while that inclusion runs, and another one
// later, are each included by the bot within a minute, and neither is
// ever removed from the room. (Before c12ed7a the bot kicked whoever
// entered during an operation, rule EO, and kept proposing the silent
// occupant together with every newcomer, so nobody got in.)
func TestIntegrationHealSilentOccupant(t *testing.T) {
	s := serverFromEnv(t)
	botAcct := s.cmdAccount(t, 0)
	s.cmdAccount(t, 5) // the silent occupant's
	room := s.newRoom(t)
	_, botBin := buildCommands(t)
	dir := t.TempDir()
	botLog := filepath.Join(dir, "bot.log")
	logOnFailure(t, botLog)
	cfg := s.botConfig(t, dir, botAcct, botRoom{room, "everyone"})
	startProc(t, "bot", secretEnv(botAcct, "the bot's passphrase"), false, botBin, "-config", cfg)
	waitFile(t, botLog, `"message":"joined"`, 1)

	silent := s.rawDial(t, 5)
	silent.join(room, "silent", identityXML(testKey(t, 99)))
	// The bot proposes to include it: its first mpENC packet since.
	silent.waitFor("the bot's proposal", func(st string) bool { return strings.Contains(st, "?mpENC:") })

	var removed atomic.Int64 // honest newcomers' own leaves: kicks
	watch := func(ev channel.Event) {
		if ev.Kind == channel.EventOwnLeave {
			removed.Add(1)
		}
	}
	join := func(p *peer) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := p.sess.Join(ctx); err != nil {
			t.Fatalf("%v: not included by the bot within a minute: %v\n%s", p, err, dumpNotes(p.notices()))
		}
	}
	p1 := s.newPeer(t, 1, room, peerOpts{watch: watch})
	join(p1)
	p2 := s.newPeer(t, 2, room, peerOpts{watch: watch})
	join(p2)
	waitMembers := func(p *peer) {
		t.Helper()
		deadline := time.Now().Add(waitBound)
		for {
			v := p.view()
			if v.state == session.StateJoined && len(v.members) == 3 && slices.Contains(v.members, p1.id) && slices.Contains(v.members, p2.id) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v: members %v, state %v; want the bot and both newcomers\n%s", p, v.members, v.state, dumpNotes(p.notices()))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitMembers(p1)
	waitMembers(p2)
	exchange(t, []*peer{p1, p2}, []*peer{p1, p2}, "past the silent occupant")
	if n := removed.Load(); n != 0 {
		t.Errorf("honest newcomers were removed from the room %d times", n)
	}
	for _, p := range []*peer{p1, p2} {
		for _, n := range p.notices() {
			if slices.Contains(n.Include, silent.jid.String()) && n.Kind == session.Membership {
				t.Errorf("%v: the silent occupant was included: %v", p, n)
			}
		}
	}
}

// TestIntegrationBotRejoins: a member founds a room (so its account owns
// it), a second member is included, and the first invites the bot
// (include = "manual"). A moderator (another client of the owner's
// account) kicks the bot: the bot logs it, rejoins after its backoff and
// is included again by the members (it left without leaving on purpose),
// and answers. The moderator destroys the room: the bot logs it, rejoins
// (creating the room again), and includes the first member when it comes
// back. The server restarts: the bot logs the gap and the session
// re-forms by itself. (Before, the bot left silently on a kick and never
// came back.)
func TestIntegrationBotRejoins(t *testing.T) {
	s := serverFromEnv(t)
	botAcct, peerAcct, otherAcct := s.cmdAccount(t, 0), s.cmdAccount(t, 1), s.cmdAccount(t, 2)
	botName := bare(botAcct.jid)
	room := s.newRoom(t)
	_, botBin := buildCommands(t)
	dir := t.TempDir()
	botLog := filepath.Join(dir, "bot.log")
	logOnFailure(t, botLog)

	// Two members: when the bot is gone the session goes on without it (a
	// last member alone with a plain client in the room, the moderator,
	// would leave: docs/SESSION.md, "Rotation").
	p := s.newAppPeer(t, peerAcct, t.TempDir())
	q := s.newAppPeer(t, otherAcct, t.TempDir())
	r := formApps(t, room, []*appPeer{p, q})[0]
	from := p.mark()
	cfg := s.botConfig(t, dir, botAcct, botRoom{room, "manual"})
	bot := startProc(t, "bot", secretEnv(botAcct, "the bot's passphrase"), false, botBin, "-config", cfg)
	p.waitEvent(from, "the bot waiting to be included", func(ev app.Event) bool {
		return ev.Kind == app.EventNotice && ev.Notice.Kind == session.JoinRequest && trust.Bare(ev.Notice.Author) == botName
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*cmdBound)
	defer cancel()
	if _, err := r.Invite(ctx, botName); err != nil {
		t.Fatalf("including the bot: %v", err)
	}
	p.waitMessage(from, room, botName, "the greeting", contains("Hello "))
	p.ask(r, botName, "!ping", func(s string) bool { return s == "pong" })

	// A moderator kicks the bot.
	mod := s.rawDial(t, 1)
	mod.join(room, "moderator", "")
	from = p.mark()
	ans := mod.iq("kick1", fmt.Sprintf(`<iq type='set' to='%s' id='kick1'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='bot' role='none'><reason>testing the bot's rejoin</reason></item></query></iq>`, room))
	if !strings.Contains(ans, `type="result"`) {
		t.Fatalf("the kick: %s", ans)
	}
	waitFile(t, botLog, `"message":"out of the room; rejoining"`, 1)
	waitFile(t, botLog, `"message":"rejoining the room"`, 1)
	botIncluded(t, p, from, botName)
	p.ask(r, botName, "!ping", func(s string) bool { return s == "pong" })

	// The moderator destroys the room; the bot creates it again, and
	// includes the member when it comes back.
	from = p.mark()
	ans = mod.iq("destroy1", fmt.Sprintf(`<iq type='set' to='%s' id='destroy1'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy><reason>testing the bot</reason></destroy></query></iq>`, room))
	if !strings.Contains(ans, `type="result"`) {
		t.Fatalf("destroying the room: %s", ans)
	}
	p.waitEvent(from, "the member out of the destroyed room", func(ev app.Event) bool { return ev.Kind == app.EventOut })
	waitFile(t, botLog, `"message":"out of the room; rejoining"`, 2)
	waitFile(t, botLog, `"message":"rejoining the room"`, 2)
	waitFile(t, botLog, `"message":"in the session again"`, 2)
	from = p.mark()
	p.join(room, "manual")
	if ev := p.waitEvent(from, "the member's join after the destruction", func(ev app.Event) bool { return ev.Kind == app.EventJoined }); ev.Err != nil {
		t.Fatalf("the member's join after the destruction: %v", ev.Err)
	}
	p.ask(r, botName, "!ping", func(s string) bool { return s == "pong" })

	// The server restarts: a gap, and the session re-forms by itself.
	if s.restartCmd == "" {
		t.Log("MPENC_XMPP_RESTART_CMD is not set: the restart part is left out")
	} else {
		from = p.mark()
		s.restart(t)
		waitFile(t, botLog, `"message":"lost the room (connection lost, server restarting, or the room forgot us): reconnecting; the session re-forms by itself"`, 1)
		p.waitJoined(from, room)
		waitFile(t, botLog, `"message":"in the session again"`, 3)
		p.ask(r, botName, "!ping", func(s string) bool { return s == "pong" })
	}
	if err := bot.stop(); err != nil {
		t.Errorf("the bot's exit: %v", err)
	}
	data, _ := os.ReadFile(botLog)
	// (The room's reason, when it gave one, follows: "kicked (\"…\")".)
	for _, want := range []string{`"err":"xmpp: removed from ` + room + `: kicked`, `"err":"xmpp: removed from ` + room + `: room destroyed`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("the bot's log lacks %s", want)
		}
	}
}

// botIncluded waits until p shows a membership change after from that
// includes one of the bot's devices.
func botIncluded(t *testing.T, p *appPeer, from int, botName string) {
	t.Helper()
	p.waitEvent(from, "the bot included again", func(ev app.Event) bool {
		return ev.Kind == app.EventEntry && ev.Entry.Kind == session.Membership &&
			slices.ContainsFunc(ev.Entry.Include, func(m string) bool { return trust.Bare(m) == botName })
	})
}

// TestIntegrationClientWaitsToBeIncluded: the client (line mode) enters a
// room whose member includes nobody by itself. It says how long it waits
// and how a member can include it; a message typed meanwhile is not sent
// and says so (there is nobody to send it to yet); the member is told who
// waits and the command to include them; once included, the client's
// messages arrive.
func TestIntegrationClientWaitsToBeIncluded(t *testing.T) {
	s := serverFromEnv(t)
	aAcct, bAcct := s.cmdAccount(t, 1), s.cmdAccount(t, 2)
	room := s.newRoom(t)
	clientBin, _ := buildCommands(t)
	dir := t.TempDir()
	logOnFailure(t, filepath.Join(dir, "b.db.log"))
	a := s.newAppPeer(t, aAcct, t.TempDir())
	from := a.mark()
	ra := a.join(room, "manual")
	if ev := a.waitEvent(from, "a's join", func(ev app.Event) bool { return ev.Kind == app.EventJoined }); ev.Err != nil {
		t.Fatalf("a's join: %v", ev.Err)
	}
	cfgB := s.clientConfig(t, dir, "b", bAcct, "manual", room)
	b := startProc(t, "client b", secretEnv(bAcct, "passphrase of b"), true, clientBin, "-plain", "-config", cfgB)
	wait := regexp.MustCompile(`waiting to be included \((\d+):\d\d left, until \d\d:\d\d:\d\d\); a member can include you with /invite (` +
		regexp.QuoteMeta(bare(bAcct.jid)) + `/\S+)`)
	out := b.waitOutput("the wait to be included", wait.MatchString)
	m := wait.FindStringSubmatch(out)
	if m[1] != "4" && m[1] != "5" {
		t.Errorf("%s minutes left of the default five", m[1])
	}
	b.writeLine("too early")
	b.waitFor("not sent: you are not in the session yet")
	jr := a.waitEvent(from, "b waiting", func(ev app.Event) bool {
		return ev.Kind == app.EventNotice && ev.Notice.Kind == session.JoinRequest && trust.Bare(ev.Notice.Author) == bare(bAcct.jid)
	})
	if jr.Notice.Author != m[2] {
		t.Errorf("the client names %s, the room %s", m[2], jr.Notice.Author)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	if _, err := ra.Invite(ctx, m[2]); err != nil {
		t.Fatalf("including b: %v", err)
	}
	b.waitFor("joined the session")
	b.writeLine("now it goes")
	a.waitMessage(from, room, bare(bAcct.jid), "b's message", func(s string) bool { return s == "now it goes" })
	if got := a.waitMessage(from, room, bare(bAcct.jid), "b's message", func(string) bool { return true }); got == "too early" {
		t.Error("the message typed before b was included was sent")
	}
	b.in.Close()
	if err := b.wait(); err != nil {
		t.Errorf("client b: %v\n%s", err, b.output())
	}
}
