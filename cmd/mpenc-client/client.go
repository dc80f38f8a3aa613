package main

import (
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/trust"
)

// ui is what the controller needs from a front end (full screen or lines).
// Every method is called on the controller's goroutine.
type ui interface {
	// lineAdded: a line was appended to room's view; lineChanged: a line
	// already shown changed (an acknowledgement).
	lineAdded(v *roomView, l *line)
	lineChanged(v *roomView, l *line)
	// note shows the answer to a command (not part of the history).
	note(text string, warning bool)
	// roomsChanged: rooms were added or the current one changed.
	roomsChanged()
	// membersChanged: room's member list was refreshed.
	membersChanged(v *roomView)
	// stateChanged: room's session state changed (the header shows it).
	stateChanged(v *roomView)
	// quit ends the front end; the controller then leaves the rooms.
	quit()
}

// client is the controller shared by both front ends: it owns the views,
// turns App events into view changes and input lines into actions. Its
// methods run on one goroutine (the front end's); work that waits on the
// network runs elsewhere and comes back through post.
type client struct {
	app  *app.App
	cfg  *Config
	log  zerolog.Logger
	ui   ui
	post func(func()) // runs f on the controller's goroutine

	views   map[string]*roomView
	order   []string
	cur     string
	members map[string][]app.Member
	initial []string // rooms to join at start
	// shown: the key whose fingerprint /verify or /fingerprint last
	// displayed for each member; "/verify JID confirm" confirms that key
	// only, and only while the member still announces it.
	shown map[string]trust.Record
	// comparing: devices whose verification words are shown and wait
	// for "/verify JID same|differ".
	comparing map[string]bool
	// graceArmed: a late look at automatically distrusted members is
	// scheduled, not before graceUntil (excludeUntrustedNow).
	graceArmed bool
	graceUntil time.Time
	// sendHook, if set, sends instead of the room; testMembers and
	// testTrust, if set, stand for the current room's members and the
	// trust store (tests).
	sendHook    func(room, text string) error
	testMembers []app.Member
	testTrust   *trust.Store

	// started is when this run began (its own messages are newer);
	// failures, why each room that could not be joined failed (exit.go).
	started  time.Time
	failures map[string]int
}

func newClient(a *app.App, cfg *Config, log zerolog.Logger) *client {
	return &client{app: a, cfg: cfg, log: log, views: map[string]*roomView{}, members: map[string][]app.Member{},
		shown: map[string]trust.Record{}, comparing: map[string]bool{}, started: time.Now()}
}

// start shows the initial rooms with their history and joins them. The
// front end calls it once ui and post are set.
func (c *client) start() {
	for _, r := range c.initial {
		c.view(strings.ToLower(r))
	}
	c.ui.roomsChanged()
	for _, r := range c.initial {
		c.join(r, "", false)
	}
}

// idle reports whether nothing typed is still waiting: no message queued
// by the session (waiting for the others to come back), and every own
// message of this run acknowledged (or given up).
func (c *client) idle() bool {
	for _, v := range c.views {
		for _, l := range v.msgs {
			if l.own && l.ack == ackPending {
				return false
			}
		}
		for _, l := range v.queued {
			if !l.notSent() && !l.resent {
				return false
			}
		}
	}
	return true
}

// appRoom returns the App's room (nil when not connected, or without an
// App: tests).
func (c *client) appRoom(room string) *app.Room {
	if c.app == nil {
		return nil
	}
	return c.app.Room(room)
}

// current returns the current room's view (nil if there is none).
func (c *client) current() *roomView { return c.views[c.cur] }

// view returns the view of a room, creating it (with its history) if new.
func (c *client) view(room string) *roomView {
	if v, ok := c.views[room]; ok {
		return v
	}
	v := newRoomView(room)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	es, err := c.app.History(ctx, room, 0, c.cfg.HistoryLines)
	if err != nil {
		c.log.Warn().Err(err).Str("room", room).Msg("history not read")
	}
	v.loadHistory(es)
	c.views[room] = v
	c.order = append(c.order, room)
	if c.cur == "" {
		c.cur = room
	}
	return v
}

// join shows the room and joins it in the background.
func (c *client) join(room, nick string, remember bool) {
	room = strings.ToLower(strings.TrimSpace(room))
	again := c.appRoom(room) != nil
	v := c.view(room)
	c.cur = room
	c.ui.roomsChanged()
	switch {
	case again && v.state == session.StateJoined:
		c.ui.note("already in "+room, false)
		return
	case again:
		c.ui.note("joining "+room+" again…", false)
	default:
		c.ui.note("connecting to "+room+"…", false)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		r, err := c.app.Join(ctx, room, app.RoomOptions{Nick: nick, Include: c.cfg.Include, Remember: remember, StayIfLastMember: true})
		c.post(func() {
			if err != nil {
				c.failed(room, joinFailure(err))
				c.ui.note("could not connect to "+room+": "+oneLine(err.Error()), true)
				return
			}
			delete(c.failures, room)
			v.self = r.Self()
			c.ui.roomsChanged()
		})
	}()
}

// handle applies an App event.
func (c *client) handle(ev app.Event) {
	switch ev.Kind {
	case app.EventInvitation:
		c.ui.note(invitationText(ev.Invitation), false)
		return
	case app.EventTrust:
		c.trustChanged(ev.Trust)
		return
	case app.EventVerify:
		c.verifyEvent(ev)
		return
	case app.EventPairing:
		c.pairingEvent(ev)
		return
	case app.EventHistory:
		c.ui.note(oneLine(ev.Text), ev.Warning)
		return
	}
	if _, ok := c.views[ev.Room]; !ok && ev.Kind == app.EventEntry && ev.Entry.Archived {
		// History read for a room without a tab: the tab is made, but
		// what is on screen stays (the words of a pairing, say).
		cur := c.cur
		c.view(ev.Room)
		c.cur = cur
		c.ui.roomsChanged()
	}
	v := c.view(ev.Room)
	if r := c.appRoom(ev.Room); r != nil && v.self == "" {
		v.self = r.Self()
	}
	switch {
	case ev.Kind == app.EventJoined && ev.Err != nil, ev.Kind == app.EventOut:
		c.failed(ev.Room, exitRoom)
	case ev.Kind == app.EventJoined:
		delete(c.failures, ev.Room)
	}
	var lastBefore *line
	if len(v.lines) > 0 {
		lastBefore = v.lines[len(v.lines)-1]
	}
	state := v.state
	l, mc := v.apply(ev)
	if v.state != state {
		c.ui.stateChanged(v)
	}
	if l != nil {
		// Added: a new last line (also a sent message that took the
		// place of its queued line); otherwise a line shown already changed.
		if len(v.lines) > 0 && v.lines[len(v.lines)-1] == l && l != lastBefore {
			c.ui.lineAdded(v, l)
		} else {
			c.ui.lineChanged(v, l)
		}
	}
	if mc {
		c.refreshMembers(ev.Room)
	}
	if ev.Kind == app.EventClosed {
		delete(c.members, ev.Room)
		c.ui.membersChanged(v)
	}
}

// history runs /history: where the own archive stands, on (after the
// user read what it means), off, or a read now.
func (c *client) history(ctx context.Context, args []string) error {
	switch {
	case len(args) == 0:
		info, err := c.app.HistoryStatus(ctx)
		switch {
		case err != nil:
			return err
		case !info.On:
			c.ui.note("history: off on this device. /history on BOT@example.org keeps your rooms' messages, encrypted, at that history service, "+
				"where your other devices (and the ones you pair later) read them", false)
		case info.Revoked:
			c.ui.note(fmt.Sprintf("history: this device can no longer read or write your history at %s (it was removed from your device group)", oneLine(trust.Bare(info.Service))), true)
		default:
			writes := "this device writes its rooms' messages there"
			if !info.Writing {
				writes = "this device does not write there (/history on to start again), and reads what your other devices write"
			}
			more := ""
			if info.Admin {
				more += "; this device adds your other devices to it"
			}
			if info.Waiting {
				more += "; this device cannot read it yet: the device that turned history on adds it when it is online"
			}
			if info.Unreachable {
				more += "; the service does not answer at the moment"
			}
			c.ui.note(fmt.Sprintf("history: kept at %s; %s%s", oneLine(trust.Bare(info.Service)), writes, more), false)
		}
		return nil
	case args[0] == "off" && len(args) == 1:
		info, err := c.app.HistoryStatus(ctx)
		if err != nil {
			return err
		}
		if info.On && !info.Writing {
			c.ui.note("this device does not write to your history already", false)
			return nil
		}
		c.background("history off", func(ctx context.Context) (string, error) {
			return "this device no longer writes to your history service (it still reads what your other devices write)", c.app.DisableHistory(ctx)
		})
		return nil
	case args[0] == "fetch" && len(args) == 1:
		c.background("reading your history", func(ctx context.Context) (string, error) {
			return "", c.app.FetchHistory(ctx)
		})
		return nil
	case args[0] == "on" && len(args) >= 2 && (len(args) == 2 || args[2] == "yes"):
		// Already kept somewhere: no warning again, and no switch.
		info, err := c.app.HistoryStatus(ctx)
		if err != nil {
			return err
		}
		if info.On {
			if trust.Bare(info.Service) != trust.Bare(args[1]) && info.Service != args[1] {
				return fmt.Errorf("your history is kept at %s already; another service is not supported yet", oneLine(trust.Bare(info.Service)))
			}
			return c.history(ctx, []string{"on"})
		}
		if len(args) == 3 {
			return c.historyOn(args[1])
		}
		bot := oneLine(args[1])
		c.ui.note("Messages will be stored encrypted at "+bot+". It cannot read them unless it colludes with one of your devices "+
			"(a stolen one, say): then everything stored is readable, and stored messages lose forward secrecy. "+
			"Type /history on "+bot+" yes to go on", true)
		return nil
	case args[0] == "on" && len(args) == 1:
		info, err := c.app.HistoryStatus(ctx)
		if err != nil {
			return err
		}
		switch {
		case !info.On:
			return errors.New("/history on BOT@example.org: which history service? a bot's address")
		case info.Writing:
			c.ui.note("this device writes to your history at "+oneLine(trust.Bare(info.Service))+" already", false)
			return nil
		}
		c.background("history on", func(ctx context.Context) (string, error) {
			return "this device writes to your history at " + oneLine(trust.Bare(info.Service)) + " again", c.app.EnableHistory(ctx, info.Service)
		})
		return nil
	}
	return errors.New("usage: /history [on BOT|off|fetch]")
}

// historyOn turns history on at bot, once the user said yes.
func (c *client) historyOn(bot string) error {
	c.background("history on", func(ctx context.Context) (string, error) {
		if err := c.app.EnableHistory(ctx, bot); err != nil {
			return "", err
		}
		return "history on: your rooms' messages are kept at " + oneLine(bot) + " from now on, and the devices of your device group get the keys to read them", nil
	})
	return nil
}

// invitationText tells the user about an invitation and how to accept it.
// Everything in it came from the network and is sanitised. The inviter a
// mediated invitation names is only the sending room's claim (any JID can
// send one), so it is shown as such.
func invitationText(inv xmpp.Invitation) string {
	room := oneLine(inv.Room)
	var t string
	switch {
	case inv.Direct:
		t = oneLine(inv.From) + " invites you to " + room
	case inv.From != "":
		t = room + " says " + oneLine(inv.From) + " invites you there"
	default:
		t = room + " invites you"
	}
	if inv.Reason != "" {
		t += ": “" + oneLine(inv.Reason) + "”"
	}
	return t + " (/join " + oneLine(inv.Room) + " to accept)"
}

// refreshMembers reads a room's members off the controller's goroutine.
func (c *client) refreshMembers(room string) {
	r := c.appRoom(room)
	if r == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ms, err := r.Members(ctx)
		if err != nil {
			return
		}
		c.post(func() {
			c.members[room] = ms
			if v, ok := c.views[room]; ok {
				v.noteDevices(ms)
				c.ui.membersChanged(v)
			}
		})
	}()
}

// input handles a line the user typed.
func (c *client) input(s string) {
	cmd, ok, err := parseInput(s)
	if err != nil {
		c.ui.note(err.Error(), true)
		return
	}
	if !ok {
		return
	}
	if err := c.run(cmd); err != nil {
		c.ui.note(oneLine(err.Error()), true)
	}
}

// room returns the current room, or an error for commands that need one.
func (c *client) room() (*app.Room, error) {
	if c.cur == "" {
		return nil, errors.New("no room: /join room@conference.example.org")
	}
	r := c.appRoom(c.cur)
	if r == nil {
		return nil, fmt.Errorf("not in %s: /join %s", c.cur, c.cur)
	}
	return r, nil
}

// background runs an action that waits for the network and reports its
// outcome.
func (c *client) background(what string, f func(ctx context.Context) (string, error)) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := f(ctx)
		c.post(func() {
			if err != nil {
				c.ui.note(what+": "+oneLine(err.Error()), true)
				return
			}
			if out != "" {
				c.ui.note(out, false)
			}
		})
	}()
}

func (c *client) run(cmd command) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch cmd.name {
	case "":
		return c.send(ctx, cmd.rest)
	case "resend":
		return c.resend(ctx, cmd.args)
	case "help":
		c.ui.note(helpText(), false)
	case "quit":
		c.ui.quit()
	case "join":
		nick := ""
		if len(cmd.args) > 1 {
			nick = cmd.args[1]
		}
		c.join(cmd.args[0], nick, true)
	case "part":
		room := c.cur
		if len(cmd.args) > 0 {
			room = strings.ToLower(cmd.args[0])
		}
		if room == "" {
			return errors.New("no room to leave")
		}
		c.ui.note("leaving "+room+" (telling the others first)…", false)
		c.background("part", func(ctx context.Context) (string, error) {
			return "", c.app.Leave(ctx, room, true)
		})
	case "rooms":
		var b strings.Builder
		b.WriteString("rooms:")
		for i, room := range c.order {
			state := "not connected"
			if c.appRoom(room) != nil {
				state = "connecting"
				if st := c.views[room].state; st != 0 {
					state = st.String()
				}
			}
			mark := " "
			if room == c.cur {
				mark = "*"
			}
			fmt.Fprintf(&b, "\n %s%d %s (%s)", mark, i+1, room, state)
		}
		c.ui.note(b.String(), false)
	case "room":
		return c.switchTo(cmd.args[0])
	case "invite":
		r, err := c.room()
		if err != nil {
			return err
		}
		who := cmd.args[0]
		c.ui.note("inviting "+oneLine(who)+"…", false)
		c.background("invite", func(ctx context.Context) (string, error) { return r.Invite(ctx, who) })
	case "kick":
		r, err := c.room()
		if err != nil {
			return err
		}
		ms, err := r.Members(ctx)
		if err != nil {
			return err
		}
		ids := slices.DeleteFunc(resolve(ms, cmd.args[0]), func(m string) bool { return m == r.Self() })
		if len(ids) == 0 {
			return fmt.Errorf("no member is %s in %s (%s)", cmd.args[0], r.JID(), exactHint)
		}
		c.ui.note("excluding "+strings.Join(ids, ", ")+"…", false)
		c.background("kick", func(ctx context.Context) (string, error) {
			if err := r.Exclude(ctx, ids); err != nil {
				return "", err
			}
			return "", nil
		})
	case "refresh":
		r, err := c.room()
		if err != nil {
			return err
		}
		c.background("refresh", func(ctx context.Context) (string, error) { return "", r.Refresh(ctx) })
	case "who":
		r, err := c.room()
		if err != nil {
			return err
		}
		ms, err := r.Members(ctx)
		if err != nil {
			return err
		}
		lines := []string{"in " + r.JID() + ":"}
		for _, m := range ms {
			lines = append(lines, "  "+memberLine(m, r.Self()))
		}
		c.ui.note(strings.Join(lines, "\n"), false)
	case "devices":
		switch {
		case len(cmd.args) == 2 && cmd.args[0] == "remove":
			return c.removeDevice(cmd.args[1])
		case len(cmd.args) == 1 && cmd.args[0] == "remove":
			return errors.New("/devices remove DEVICE: which device? its full JID, as /devices shows it")
		case len(cmd.args) == 1 && cmd.args[0] == "leave":
			c.ui.note("/devices leave makes this device leave your device group for good: your other devices will distrust its key, "+
				"and your contacts' devices follow them, so it is excluded from your rooms; it cannot pair again under this key. "+
				"Type /devices leave yes to go on", true)
			return nil
		case len(cmd.args) == 2 && cmd.args[0] == "leave":
			if cmd.args[1] != "yes" {
				return errors.New("/devices leave: type /devices leave yes to go on")
			}
			c.background("leaving your device group", func(ctx context.Context) (string, error) {
				return "", c.app.LeaveDeviceGroup(ctx)
			})
			return nil
		case len(cmd.args) == 1:
			return c.pairing(cmd.args[0])
		case len(cmd.args) == 2 && cmd.args[0] == "pair":
			return errors.New("/devices pair takes no device: run /devices pair on each of the two devices, and the one already in a group answers")
		case len(cmd.args) == 2:
			return fmt.Errorf("/devices %s: try /devices, or /devices pair, accept, reject, cancel, remove DEVICE or leave", oneLine(cmd.args[0]))
		}
		return c.devices(ctx)
	case "history":
		return c.history(ctx, cmd.args)
	case "info":
		return c.info(ctx, cmd.args[0])
	case "fingerprint":
		return c.fingerprint(ctx, cmd.args)
	case "verify", "trust", "distrust":
		return c.decide(ctx, cmd)
	case "why":
		return c.why(cmd.args)
	default:
		return fmt.Errorf("/%s is not implemented", cmd.name)
	}
	return nil
}

// send sends a message to the current room. After a gap (a lost
// connection, a server restart) the session keeps it until the others are
// back: a queued line shows it. Before we were ever in the session there
// is nobody to send it to: it is not sent, and the user is told.
func (c *client) send(ctx context.Context, text string) error {
	if c.cur == "" {
		return errors.New("no room: /join room@conference.example.org")
	}
	var err error
	switch r := c.appRoom(c.cur); {
	case c.sendHook != nil:
		err = c.sendHook(c.cur, text)
	case r == nil:
		return fmt.Errorf("not sent: not connected to %s yet (/join %s)", c.cur, c.cur)
	default:
		_, err = r.Send(ctx, text)
	}
	if err != nil {
		if errors.Is(err, session.ErrNotJoined) {
			return errors.New("not sent: you are not in the session yet, so nobody can read it; send it again once you are included")
		}
		return fmt.Errorf("not sent: %w", err)
	}
	return nil
}

// resend sends again a message of the current room that did not reach
// everyone it was meant for: #N (or N) a message sent without some of
// them, qN one never sent; without an argument the latest of them.
func (c *client) resend(ctx context.Context, args []string) error {
	v := c.current()
	if v == nil {
		return errors.New("no room")
	}
	var l *line
	if len(args) == 0 {
		for i := len(v.lines) - 1; i >= 0 && l == nil; i-- {
			if x := v.lines[i]; resendable(x) {
				l = x
			}
		}
		if l == nil {
			return errors.New("no message to send again: every message reached everyone it was meant for")
		}
	} else {
		arg := strings.TrimPrefix(args[0], "#")
		if q, ok := strings.CutPrefix(arg, "q"); ok {
			n, _ := strconv.Atoi(q)
			for _, x := range v.queued {
				if x.num == n {
					l = x
				}
			}
		} else if n, err := strconv.Atoi(arg); err == nil {
			l = v.message(n)
		}
		switch {
		case l == nil:
			return fmt.Errorf("no message %s here", args[0])
		case l.kind == lineQueued && !l.notSent():
			return fmt.Errorf("%s is still waiting to be sent (until %s)", l.label(), l.until.Local().Format("15:04:05"))
		case !resendable(l):
			return fmt.Errorf("%s reached everyone it was meant for (or is not yours): nothing to send again", l.label())
		}
	}
	if err := c.send(ctx, l.text); err != nil {
		return err
	}
	l.resent = true
	c.ui.lineChanged(v, l)
	c.ui.note(fmt.Sprintf("%s sent again", l.label()), false)
	return nil
}

// resendable reports whether a line is our message that did not reach
// everyone it was meant for, not sent again yet.
func resendable(l *line) bool {
	if !l.own || l.resent {
		return false
	}
	return l.notSent() || l.kind == lineMessage && len(l.notDelivered) > 0
}

// switchTo makes a room current, by number (1-based) or JID.
func (c *client) switchTo(arg string) error {
	if n, err := strconv.Atoi(arg); err == nil {
		if n < 1 || n > len(c.order) {
			return fmt.Errorf("no room %d (/rooms)", n)
		}
		c.cur = c.order[n-1]
	} else {
		arg = strings.ToLower(arg)
		i := slices.IndexFunc(c.order, func(r string) bool { return r == arg || strings.HasPrefix(r, arg+"@") })
		if i < 0 {
			return fmt.Errorf("not in %s (/join it)", arg)
		}
		c.cur = c.order[i]
	}
	if v := c.current(); v != nil {
		v.unread = 0
	}
	c.ui.roomsChanged()
	return nil
}

// cycle switches to the next (d = 1) or previous (d = -1) room.
func (c *client) cycle(d int) {
	if len(c.order) == 0 {
		return
	}
	i := slices.Index(c.order, c.cur)
	i = (i + d + len(c.order)) % len(c.order)
	_ = c.switchTo(strconv.Itoa(i + 1))
}

func (c *client) info(ctx context.Context, arg string) error {
	v := c.current()
	if v == nil {
		return errors.New("no room")
	}
	n, _ := strconv.Atoi(strings.TrimPrefix(arg, "#"))
	l := v.message(n)
	if l == nil {
		return fmt.Errorf("no message #%d here", n)
	}
	c.ui.note(c.detailsOf(ctx, v, l), false)
	return nil
}

// detailsOf describes a message, with the session's live list of who has
// not acknowledged it when the message is in the running session.
func (c *client) detailsOf(ctx context.Context, v *roomView, l *line) string {
	var unacked []string
	live := false
	if r := c.appRoom(v.jid); r != nil && l.ack == ackPending {
		unacked, live, _ = r.Unacked(ctx, l.id)
		// Our own acknowledgement of others' messages is on its way.
		unacked = slices.DeleteFunc(unacked, func(m string) bool { return m == r.Self() })
	}
	return v.details(l, unacked, live)
}

func (c *client) fingerprint(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fp := trust.FingerprintOf(c.app.PublicKey())
		self := c.app.Account()
		if r, err := c.room(); err == nil {
			self = r.Self()
		}
		qr, err := qrText(trust.URI(self, c.app.PublicKey()))
		if err != nil {
			qr = "(no QR code: " + err.Error() + ")"
		}
		c.ui.note(fmt.Sprintf("your fingerprint (%s):\n  %s\n  %s\n%s\nscan it or read it aloud to the other person; they compare it with what they see and /verify you",
			self, fp, fp.Words(), qr), false)
		return nil
	}
	ms, err := c.keyed(ctx, args[0])
	if err != nil {
		return err
	}
	c.ui.note(c.show(ms), false)
	return nil
}

// exactHint says how commands name members.
const exactHint = "a full JID names one device, a bare JID every device of exactly that account; no abbreviations"

// roomMembers returns the current room's JID and its members (the room's
// occupants and the session's members).
func (c *client) roomMembers(ctx context.Context) (string, []app.Member, error) {
	if c.testMembers != nil {
		return c.cur, c.testMembers, nil
	}
	r, err := c.room()
	if err != nil {
		return "", nil, err
	}
	ms, err := r.Members(ctx)
	return r.JID(), ms, err
}

// trustStore is the account's trust store.
func (c *client) trustStore() *trust.Store {
	if c.testTrust != nil {
		return c.testTrust
	}
	return c.app.Trust()
}

// matchMembers returns the members who names exactly: a full JID names
// that device, a bare JID every device of exactly that account. Never a
// prefix or a look-alike: bob@example.org names neither
// bob@example.org.evil.net/x nor bobby@example.org/x. The JID typed is
// normalised as the XMPP layer normalises members' (case of the local
// part and domain).
func matchMembers(ms []app.Member, who string) ([]app.Member, error) {
	j, err := jid.Parse(strings.TrimSpace(who))
	if err != nil {
		return nil, fmt.Errorf("%q is not a JID (%s)", oneLine(who), exactHint)
	}
	full, want := j.Resourcepart() != "", j.String()
	var out []app.Member
	for _, m := range ms {
		if full && m.ID == want || !full && trust.Bare(m.ID) == want {
			out = append(out, m)
		}
	}
	return out, nil
}

// resolve returns the participant ids of the members (in the room or in
// the session) that who names exactly (matchMembers): that device for a
// full JID, every device of exactly that account for a bare JID; none if
// who is not a JID.
func resolve(ms []app.Member, who string) []string {
	found, _ := matchMembers(ms, who)
	var ids []string
	for _, m := range found {
		ids = append(ids, m.ID)
	}
	return ids
}

// keyed returns the members of the current room other than us that who
// names exactly (matchMembers) and that announced a key.
func (c *client) keyed(ctx context.Context, who string) ([]app.Member, error) {
	room, ms, err := c.roomMembers(ctx)
	if err != nil {
		return nil, err
	}
	found, err := matchMembers(ms, who)
	if err != nil {
		return nil, err
	}
	found = slices.DeleteFunc(found, func(m app.Member) bool { return m.Self || !m.HasKey })
	if len(found) == 0 {
		return nil, fmt.Errorf("no member %s announced a key in %s (%s)", oneLine(who), room, exactHint)
	}
	return found, nil
}

// show displays the fingerprints of members' keys and remembers each as
// the one "/verify JID confirm" confirms.
func (c *client) show(ms []app.Member) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteString("\n")
		}
		fp := trust.FingerprintOf(m.Trust.Key)
		c.shown[m.ID] = m.Trust
		state := stateName(m.Trust.State)
		if m.Trust.Changed {
			state += ", CHANGED: not used until you decide"
		}
		switch {
		case m.Trust.Claimed && m.Trust.Key == c.app.PublicKey():
			state += ", it announces YOUR OWN key: never used"
		case m.Trust.Claimed && claimedHere(m) != "":
			state += ", " + oneLine(claimedHere(m)) + " IN THIS ROOM ANNOUNCES THIS KEY TOO: not used while both are here"
		case m.Trust.Claimed:
			state += ", ANOTHER ACCOUNT HAS THIS KEY: not used until you decide"
		}
		name := oneLine(m.ID)
		if l := strings.TrimSpace(oneLine(m.Label)); l != "" {
			name += " “" + l + "”" // the device's label: what its owner calls it
		}
		fmt.Fprintf(&b, "%s (%s):\n  %s\n  %s\ncompare it in full with what they read from their screen; if it is the same, type:\n  /verify %s confirm %s",
			name, state, fp, fp.Words(), oneLine(m.ID), confirmToken(fp))
	}
	return b.String()
}

// confirmToken is what "/verify JID confirm" names a displayed
// fingerprint by: its first two groups. It is not a verification value
// (the whole fingerprint is what people compare); it says which of the
// fingerprints shown the user compared, so that the key confirmed is that
// one.
func confirmToken(fp trust.Fingerprint) string { return fp.String()[:9] }

// minConfirmDigits is the least a confirmation must name of the
// fingerprint shown: two groups.
const minConfirmDigits = 8

// names reports whether token (hex digits, spaces allowed, any case)
// names fp: at least its first two groups, and nothing it does not have.
func names(fp trust.Fingerprint, token string) bool {
	t := strings.ToLower(strings.Join(strings.Fields(token), ""))
	h := strings.ReplaceAll(fp.String(), " ", "")
	return len(t) >= minConfirmDigits && strings.HasPrefix(h, t)
}

// decide runs /verify, /trust and /distrust. A bare JID acts on every
// device of exactly that account, a full JID on that device.
func (c *client) decide(ctx context.Context, cmd command) error {
	if cmd.name == "verify" {
		switch strings.ToLower(cmd.args[0]) {
		case "live", "same", "differ", "confirm":
			return fmt.Errorf("/verify JID %s: whom? (a JID, such as bob@example.org)", strings.ToLower(cmd.args[0]))
		}
		switch strings.ToLower(strings.TrimSpace(strings.TrimPrefix(cmd.rest, cmd.args[0]))) {
		case "live":
			if !strings.Contains(cmd.args[0], "@") {
				return fmt.Errorf("%s is not a JID (user@example.org)", oneLine(cmd.args[0]))
			}
			return c.verifyLive(cmd.args[0])
		case "same":
			return c.answerWords(cmd.args[0], true)
		case "differ":
			return c.answerWords(cmd.args[0], false)
		}
	}
	ms, err := c.keyed(ctx, cmd.args[0])
	if err != nil {
		return err
	}
	ts := c.trustStore()
	var chosen []app.Member // each with the key to decide about
	switch cmd.name {
	case "verify":
		given := strings.TrimSpace(strings.TrimPrefix(cmd.rest, cmd.args[0]))
		switch token, confirm := strings.CutPrefix(given, "confirm"); {
		case given == "":
			c.ui.note(c.show(ms), false)
			return nil
		case confirm:
			if chosen, err = c.confirmed(ms, cmd.args[0], token); err != nil {
				return err
			}
		default:
			for _, m := range ms {
				if trust.Matches(m.Trust.Key, given) {
					chosen = append(chosen, m)
				}
			}
			if len(chosen) == 0 && !fingerprintLike(given) {
				return fmt.Errorf("%q is not a fingerprint (32 hex digits, its 16 words, or the text of its QR code): compare one in full with /verify %s, or answer words shown with /verify %s same|differ",
					oneLine(given), oneLine(cmd.args[0]), oneLine(cmd.args[0]))
			}
			if len(chosen) == 0 {
				var fps []string
				for _, m := range ms {
					fps = append(fps, oneLine(m.ID)+": "+trust.FingerprintOf(m.Trust.Key).String())
				}
				return fmt.Errorf("that does NOT match the key of %s (%s): not verified. If they read it to you, someone may be in the middle",
					oneLine(cmd.args[0]), strings.Join(fps, "; "))
			}
		}
	default:
		chosen = ms
	}
	var out []string
	for _, m := range chosen {
		var rec trust.Record
		switch cmd.name {
		case "verify":
			rec, err = ts.Verify(m.ID, m.Trust.Key)
		case "trust":
			rec, err = ts.Trust(m.ID, m.Trust.Key)
		case "distrust":
			rec, err = ts.Distrust(m.ID, m.Trust.Key)
		}
		if err != nil {
			return err
		}
		t := fmt.Sprintf("%s's key %s is now %s", oneLine(m.ID), trust.FingerprintOf(m.Trust.Key), stateName(rec.State))
		if !rec.Trusted && rec.State != trust.Distrusted {
			t += " (not used: only verified keys count for this account now)"
		}
		out = append(out, t)
	}
	c.ui.note(strings.Join(out, "\n"), false)
	if c.testMembers == nil {
		c.refreshMembers(c.cur)
		c.excludeUntrusted(ctx)
	}
	return nil
}

// pairing runs "/devices pair|accept|reject|cancel" in the background.
func (c *client) pairing(sub string) error {
	answers := map[string]app.PairingAnswer{"accept": app.PairAccept, "reject": app.PairReject, "cancel": app.PairCancel}
	if sub != "pair" && answers[sub] == 0 {
		return fmt.Errorf("/devices %s: try /devices, or /devices pair, accept, reject, cancel, remove DEVICE or leave", oneLine(sub))
	}
	c.background("pairing", func(ctx context.Context) (string, error) {
		if sub == "pair" {
			return "", c.app.PairDevices(ctx) // the app says what it does
		}
		return "", c.app.AnswerPairing(ctx, answers[sub])
	})
	return nil
}

// removeDevice runs "/devices remove DEVICE" in the background, then
// excludes the device from this device's sessions.
func (c *client) removeDevice(device string) error {
	c.background("removing "+oneLine(device), func(ctx context.Context) (string, error) {
		if !strings.Contains(device, "@") {
			// A label: the device of the account's list that has it.
			full, err := c.ownDeviceByLabel(ctx, device)
			if err != nil {
				return "", err
			}
			device = full
		}
		if err := c.app.RemoveDevice(ctx, device); err != nil {
			return "", err
		}
		c.post(func() {
			if c.testMembers == nil {
				c.excludeUntrusted(context.Background())
			}
		})
		return "", nil
	})
	return nil
}

// ownDeviceByLabel finds the one device of our account's published list
// whose label is label.
func (c *client) ownDeviceByLabel(ctx context.Context, label string) (string, error) {
	devs, err := c.app.PublishedDevices(ctx, c.app.Account())
	if err != nil {
		return "", err
	}
	var found, all []string
	for _, d := range devs {
		full := c.app.Account() + "/" + d.Resource
		all = append(all, fmt.Sprintf("“%s” %s", oneLine(d.Label), full))
		if strings.EqualFold(d.Label, label) {
			found = append(found, full)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("no device of yours is labelled %q; your device list: %s", oneLine(label), strings.Join(all, ", "))
	}
	return "", fmt.Errorf("%d devices are labelled %q: name one by its address (%s)", len(found), oneLine(label), strings.Join(found, ", "))
}

// pairingEvent shows how KeySync moved on, in the system pane.
func (c *client) pairingEvent(ev app.Event) {
	if len(ev.Words) > 0 {
		var ws []string
		for _, w := range ev.Words {
			ws = append(ws, oneLine(w))
		}
		c.ui.note(fmt.Sprintf("%s; compare these words with its screen:\n  %s\nthe same: /devices accept · different: /devices reject · not now: /devices cancel",
			oneLine(ev.Text), strings.ToUpper(strings.Join(ws, " "))), false)
		return
	}
	c.ui.note(oneLine(ev.Text), ev.Warning)
	// Rooms the device group joins at start: joined here too (and
	// remembered), without leaving the room on screen.
	for _, room := range ev.Rooms {
		if c.appRoom(room) != nil {
			continue
		}
		cur := c.cur
		c.join(room, "", true)
		c.cur = cur
		c.ui.roomsChanged()
	}
	if c.testMembers == nil {
		for _, room := range c.order {
			c.refreshMembers(room)
		}
	}
}

// why shows the recorded causes of the trust state of each known key of
// an account (args[0]), or of those whose fingerprint starts with
// args[1] (hex, spaces ignored).
func (c *client) why(args []string) error {
	account := trust.Bare(args[0])
	recs, err := c.trustStore().Keys(account)
	if err != nil {
		return err
	}
	if account != args[0] {
		// A full JID names one device: the key it announced last.
		cur, ok, err := c.trustStore().Current(args[0])
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s announced no key here", oneLine(args[0]))
		}
		recs = slices.DeleteFunc(recs, func(r trust.Record) bool { return r.Key != cur.Key })
	}
	prefix := ""
	if len(args) > 1 {
		prefix = strings.ToLower(strings.ReplaceAll(args[1], " ", ""))
	}
	var b strings.Builder
	for _, r := range recs {
		fp := trust.FingerprintOf(r.Key)
		if !strings.HasPrefix(strings.ReplaceAll(fp.String(), " ", ""), prefix) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		name := oneLine(account)
		if l := strings.TrimSpace(oneLine(r.Label)); l != "" {
			name += " “" + l + "”"
		}
		fmt.Fprintf(&b, "%s, key %s: %s", name, fp, stateName(r.State))
		evs, err := c.trustStore().Why(account, r.Key)
		if err != nil {
			return err
		}
		for _, e := range evs {
			who := ""
			if e.Key != r.Key {
				who = oneLine(e.JID) + "'s key " + trust.FingerprintOf(e.Key).String()[:9] + ": "
			}
			fmt.Fprintf(&b, "\n  %s%s", who, oneLine(e.String()))
		}
	}
	if b.Len() == 0 && prefix != "" {
		return fmt.Errorf("no key of %s with a fingerprint starting %s is known", oneLine(account), oneLine(args[1]))
	}
	if b.Len() == 0 {
		return fmt.Errorf("no key of %s is known", oneLine(account))
	}
	c.ui.note(b.String(), false)
	return nil
}

// trustChanged tells the user about a decision they did not make here (a
// trust message from another of their devices or a contact's, or
// TOAKAFA's), in the system pane, and excludes from the sessions the
// members it leaves untrusted. The user's own decisions were reported by
// the command that made them.
func (c *client) trustChanged(e trust.Event) {
	if e.By == (trust.Event{}).By {
		return
	}
	trusted, state := false, trust.State(0)
	if recs, err := c.trustStore().Keys(e.JID); err == nil {
		for _, r := range recs {
			if r.Key == e.Key {
				trusted, state = r.Trusted, r.State
			}
		}
	}
	// Blind trust ending because another key of the account was verified
	// is no alarm: the verified device's trust messages usually vouch
	// for the key at once (excludeUntrusted waits for them).
	c.ui.note(fmt.Sprintf("%s's key %s: %s", oneLine(e.JID), trust.FingerprintOf(e.Key), oneLine(e.String())), !trusted && state != trust.AutoDistrusted)
	for _, room := range c.order {
		c.refreshMembers(room)
	}
	if !trusted && c.testMembers == nil {
		c.excludeUntrusted(context.Background())
	}
}

// excludeUntrusted excludes, in every room, the session members whose
// keys we no longer trust after a trust decision: a distrusted key, or
// another device of an account of which we just verified one (only
// verified keys count then). Left in, such a member would make our next
// key agreement fail where the others' succeed: a split. Each is named,
// with how to bring it back.
func (c *client) excludeUntrusted(ctx context.Context) {
	c.excludeUntrustedNow(ctx, false)
}

// autoDistrustGrace is how long a member whose key TOAKAFA just
// distrusted (another key of its account was verified) stays in the
// session before it is excluded: the verified device's trust messages,
// which usually vouch for it, arrive within it (docs/USAGE.md).
var autoDistrustGrace = 60 * time.Second

// armGrace schedules the late look of excludeUntrustedNow in after,
// unless one is scheduled; when it comes before c.graceUntil (a grace
// begun since), it waits for that too.
func (c *client) armGrace(after time.Duration) {
	if c.graceArmed {
		return
	}
	c.graceArmed = true
	time.AfterFunc(after, func() {
		c.post(func() {
			c.graceArmed = false
			if left := time.Until(c.graceUntil); left > 0 {
				c.armGrace(left)
				return
			}
			c.excludeUntrustedNow(context.Background(), true)
		})
	})
}

// excludeUntrustedNow is excludeUntrusted; unless late, a member whose
// key was only automatically distrusted is left in for autoDistrustGrace
// and looked at again then.
func (c *client) excludeUntrustedNow(ctx context.Context, late bool) {
	graced := false
	defer func() {
		// One late look covers every grace running: several trust
		// changes in a row must not exclude the same member twice.
		if graced {
			c.graceUntil = time.Now().Add(autoDistrustGrace)
			c.armGrace(autoDistrustGrace)
		}
	}()
	for _, room := range c.order {
		r := c.appRoom(room)
		if r == nil {
			continue
		}
		ms, err := r.Members(ctx)
		if err != nil {
			continue
		}
		var out []string
		var names []string
		for _, m := range ms {
			if m.Self || !m.InSession || !m.HasKey || m.Trust.Trusted {
				continue
			}
			if !late && m.Trust.State == trust.AutoDistrusted && !m.Trust.Changed && !m.Trust.Claimed {
				graced = true
				continue
			}
			out = append(out, m.ID)
			name := oneLine(m.ID)
			if l := strings.TrimSpace(oneLine(m.Label)); l != "" {
				name += " “" + l + "”"
			}
			why := stateName(m.Trust.State)
			switch {
			case m.Trust.State == trust.Distrusted:
				why = "distrusted"
			case m.Trust.Changed:
				why = "its key changed"
			case m.Trust.Claimed:
				why = "its key is claimed by another"
			default:
				why = "not verified, and only verified keys count for " + oneLine(trust.Bare(m.ID)) + " now"
			}
			names = append(names, fmt.Sprintf("%s (%s)", name, why))
		}
		if len(out) == 0 {
			continue
		}
		c.ui.note(fmt.Sprintf("in %s, no longer trusted: %s. Excluding from the session (/verify, then /invite, to bring one back)",
			oneLine(room), strings.Join(names, ", ")), true)
		c.background("exclude", func(ctx context.Context) (string, error) {
			err := r.Exclude(ctx, out)
			if errors.Is(err, session.ErrBusy) {
				// Another operation runs (often another member's
				// exclusion of the same device): look again once it is
				// over, rather than show the session's refusal.
				time.AfterFunc(5*time.Second, func() {
					c.post(func() { c.excludeUntrusted(context.Background()) })
				})
				return "", nil
			}
			return "", err
		})
	}
}

// verifyLive starts a live verification (the device channel's words)
// with one device (a full JID), or with every device an account (a bare
// JID) publishes but this one, in the background.
func (c *client) verifyLive(who string) error {
	c.background("verifying "+oneLine(who), func(ctx context.Context) (string, error) {
		devs := []string{who}
		if !strings.Contains(who, "/") {
			ds, err := c.app.PublishedDevices(ctx, who)
			if err != nil {
				return "", err
			}
			devs = nil
			for _, d := range ds {
				if d.Key != c.app.PublicKey() {
					devs = append(devs, who+"/"+d.Resource)
				}
			}
			if len(devs) == 0 {
				return "", fmt.Errorf("%s publishes no other device", oneLine(who))
			}
		}
		var started []string
		for _, d := range devs {
			if err := c.app.VerifyDevice(ctx, d); err != nil {
				return "", err
			}
			started = append(started, oneLine(d))
		}
		return "verifying " + strings.Join(started, ", ") + ": the words will show here and on the other screen", nil
	})
	return nil
}

// answerWords gives the user's answer (the words are the same, or
// differ) to the verifications whose words are shown with who (a full
// JID, or every device of a bare JID).
func (c *client) answerWords(who string, same bool) error {
	var ids []string
	for id := range c.comparing {
		if id == who || trust.Bare(id) == who {
			ids = append(ids, id)
		}
	}
	switch {
	case len(ids) == 0:
		return fmt.Errorf("no words are shown for %s: /verify %s live starts a verification", oneLine(who), oneLine(who))
	case len(ids) > 1:
		// Each device's words are compared on their own: an answer for
		// an account would confirm words the user may not have read.
		slices.Sort(ids)
		for i := range ids {
			ids[i] = oneLine(ids[i])
		}
		return fmt.Errorf("words are shown for %d devices of %s: answer for each by its address: %s", len(ids), oneLine(who), strings.Join(ids, ", "))
	}
	id := ids[0]
	delete(c.comparing, id)
	c.background("verifying "+oneLine(id), func(ctx context.Context) (string, error) {
		return "", c.app.ConfirmWords(ctx, id, same)
	})
	return nil
}

// fingerprintLike reports whether s has the form of a fingerprint (32
// hex digits with separators, or 16 words) or of a trust message URI:
// only a well-formed one that matches no key is a warning.
func fingerprintLike(s string) bool {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "xmpp:") {
		return true
	}
	if len(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == ',' || r == '-' })) == 16 {
		return true
	}
	hexDigits := 0
	for _, r := range s {
		switch {
		case '0' <= r && r <= '9', 'a' <= r && r <= 'f', 'A' <= r && r <= 'F':
			hexDigits++
		case r == ' ' || r == '\t' || r == ':' || r == '-':
		default:
			return false
		}
	}
	return hexDigits == 32
}

// verifyEvent shows how a live verification moved on, in the system pane.
func (c *client) verifyEvent(ev app.Event) {
	who := oneLine(ev.Device)
	switch {
	case ev.Err != nil:
		delete(c.comparing, ev.Device)
		c.ui.note(fmt.Sprintf("verification with %s FAILED: %s", who, oneLine(ev.Err.Error())), true)
	case len(ev.Words) > 0:
		c.comparing[ev.Device] = true
		var ws []string
		for _, w := range ev.Words {
			ws = append(ws, oneLine(w))
		}
		c.ui.note(fmt.Sprintf("%s %s:\n  %s\nif its screen shows the same words, type: /verify %s same\notherwise: /verify %s differ",
			who, oneLine(ev.Text), strings.ToUpper(strings.Join(ws, " ")), who, who), false)
	default:
		c.ui.note(fmt.Sprintf("verification with %s: %s", who, oneLine(ev.Text)), false)
		if c.testMembers == nil {
			for _, room := range c.order {
				c.refreshMembers(room)
			}
		}
	}
}

// confirmed returns the members whose key "/verify WHO confirm TOKEN"
// confirms: those WHO names whose displayed fingerprint TOKEN names, each
// of which must still announce the key displayed. Anything else is
// refused, with why.
func (c *client) confirmed(ms []app.Member, who, token string) ([]app.Member, error) {
	var out []app.Member
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, fmt.Errorf("confirm which fingerprint? /verify %s shows it, with the line to type (/verify JID confirm and its first two groups)", oneLine(who))
	}
	for _, m := range ms {
		shown, ok := c.shown[m.ID]
		if !ok || !names(trust.FingerprintOf(shown.Key), token) {
			continue
		}
		if shown.Key != m.Trust.Key {
			return nil, fmt.Errorf("NOT verified: %s announced another key since its fingerprint was shown (shown %s, now %s): someone may be in the middle; compare the new one first: /verify %s",
				oneLine(m.ID), trust.FingerprintOf(shown.Key), trust.FingerprintOf(m.Trust.Key), oneLine(m.ID))
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		for _, m := range ms {
			if names(trust.FingerprintOf(m.Trust.Key), token) {
				return nil, fmt.Errorf("NOT verified: show %s's fingerprint first (/verify %s), compare it in full, then confirm", oneLine(m.ID), oneLine(m.ID))
			}
		}
		return nil, fmt.Errorf("NOT verified: %q is not the start of a fingerprint shown for %s (at least its first two groups: /verify %s shows them)",
			oneLine(token), oneLine(who), oneLine(who))
	}
	return out, nil
}

// deviceRow is one device as /devices lists it.
type deviceRow struct {
	m     app.Member
	rooms []string
	// published: whether its account's published device list has it,
	// when that account publishes one (pubKnown).
	published, pubKnown bool
	// group: the device group's record of one of our devices, if any.
	group *app.GroupDevice
}

// publishedWait bounds how long /devices waits for the device lists.
const publishedWait = 5 * time.Second

// devices lists the devices this account knows, grouped by account, ours
// first: those in our rooms (label, address, device id, fingerprint,
// trust, last seen, rooms), then those the store remembers from earlier
// (keyed by their identity key, labelled as last announced). Each
// account's published device list (docs/PROTOCOL.md "Devices") is
// fetched and compared: a device it does not list says so.
func (c *client) devices(ctx context.Context) error {
	byID := map[string]*deviceRow{}
	self := ""
	for _, room := range c.order {
		r := c.appRoom(room)
		if r == nil {
			continue
		}
		ms, err := r.Members(ctx)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Self {
				self = m.ID
			}
			d := byID[m.ID]
			if d == nil {
				d = &deviceRow{m: m}
				byID[m.ID] = d
			}
			if m.InRoom || m.InSession {
				d.rooms = append(d.rooms, room)
			}
		}
	}
	if c.app != nil {
		if self == "" {
			self = c.app.Account()
		}
		// Devices the store knows that no room shows now: one row per
		// key not already listed.
		inRooms := map[crypto.PublicKey]bool{}
		for _, d := range byID {
			if d.m.HasKey {
				inRooms[d.m.Trust.Key] = true
			}
		}
		recs, err := c.app.Trust().Keys("")
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if inRooms[rec.Key] {
				continue
			}
			id := rec.Member
			if id == "" {
				id = rec.JID
			}
			key := id + "#" + hex.EncodeToString(rec.Key[:]) // a map key only, never shown
			byID[key] = &deviceRow{m: app.Member{ID: id, Label: rec.Label, HasKey: true, Trust: rec, Status: "gone"}}
		}
	}
	// The device group (KeySync) knows our own devices' labels and
	// addresses, and this device, also when no room shows them.
	var group []app.GroupDevice
	if c.app != nil {
		g, err := c.app.DeviceGroup(ctx)
		if err != nil {
			return err
		}
		group = g
	}
	for i := range group {
		g := &group[i]
		found := false
		for _, d := range byID {
			if d.m.HasKey && d.m.Trust.Key == g.Key && trust.Bare(d.m.ID) == trust.Bare(self) {
				found = true
				if d.m.Label == "" {
					d.m.Label = g.Label
				}
				if !strings.Contains(d.m.ID, "/") && g.Device != "" {
					d.m.ID = g.Device // the trust store knew only the account
				}
			}
		}
		if !found && g.Key == c.app.PublicKey() && g.Device != "" {
			byID[g.Device] = &deviceRow{m: app.Member{ID: g.Device, Label: g.Label, Self: true, HasKey: true, Trust: trust.Record{Key: g.Key}}}
		}
	}
	if len(byID) == 0 {
		c.ui.note("no devices known: join a room first (devices are known when they are in a room you are in)", false)
		return nil
	}
	ids := slices.Collect(maps.Keys(byID))
	// The account of a row: its member's (a map key may carry a key's
	// hex after the member, never shown).
	accountOf := func(k string) string { return trust.Bare(byID[k].m.ID) }
	slices.SortFunc(ids, func(a, b string) int {
		ao, bo := accountOf(a) == trust.Bare(self), accountOf(b) == trust.Bare(self)
		switch {
		case ao != bo && ao:
			return -1
		case ao != bo:
			return 1
		}
		ar, br := len(byID[a].rooms) > 0, len(byID[b].rooms) > 0
		switch {
		case ar != br && ar:
			return -1
		case ar != br:
			return 1
		}
		return strings.Compare(a, b)
	})
	publishes := c.publishedLists(ctx, ids, byID)
	inGroup := 0
	if c.app != nil {
		for i := range group {
			g := &group[i]
			if g.Status == "in the group" {
				inGroup++
			}
			for _, d := range byID {
				if d.m.HasKey && d.m.Trust.Key == g.Key && trust.Bare(d.m.ID) == trust.Bare(self) {
					d.group = g
				}
			}
		}
	}
	var lines []string
	account := ""
	for _, id := range ids {
		if b := accountOf(id); b != account {
			account = b
			head := oneLine(b)
			if b == trust.Bare(self) {
				head += " (your account"
				ownRows := 0
				for _, id2 := range ids {
					if accountOf(id2) == b {
						ownRows++
					}
				}
				switch {
				case inGroup > 1:
					head += fmt.Sprintf("; %d devices in your device group", inGroup)
				case ownRows > 1:
					head += "; this device is in no device group: /devices pair"
				}
				head += ")"
			}
			switch state, ok := publishes[b]; {
			case !ok:
			case state == "":
				head += ": publishes no device list"
			default:
				head += ": " + state
			}
			lines = append(lines, head)
		}
		lines = append(lines, "  "+deviceLine(byID[id]))
	}
	c.ui.note(strings.Join(lines, "\n"), false)
	return nil
}

// publishedLists fetches the published device list of each account in
// ids, at once and for at most publishedWait, and marks each row whose
// key it lists. It returns, per account, "" when it publishes none, a
// short note when the list could not be read, and "published" otherwise.
func (c *client) publishedLists(ctx context.Context, ids []string, rows map[string]*deviceRow) map[string]string {
	out := map[string]string{}
	if c.app == nil {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, publishedWait)
	defer cancel()
	type result struct {
		account string
		keys    map[crypto.PublicKey]bool
		err     error
	}
	accounts := map[string]bool{}
	for _, id := range ids {
		accounts[trust.Bare(rows[id].m.ID)] = true
	}
	results := make(chan result, len(accounts))
	for acct := range accounts {
		go func() {
			ds, err := c.app.PublishedDevices(ctx, acct)
			keys := map[crypto.PublicKey]bool{}
			for _, d := range ds {
				keys[d.Key] = true
			}
			if err == nil && len(ds) == 0 {
				keys = nil
			}
			results <- result{acct, keys, err}
		}()
	}
	for range accounts {
		r := <-results
		switch {
		case r.err != nil:
			out[r.account] = "its device list could not be read (" + oneLine(r.err.Error()) + ")"
		case r.keys == nil:
			out[r.account] = ""
		default:
			out[r.account] = "published device list read"
			for _, row := range rows {
				if trust.Bare(row.m.ID) == r.account && row.m.HasKey {
					row.pubKnown, row.published = true, r.keys[row.m.Trust.Key]
				}
			}
		}
	}
	return out
}

// causeName says how a key got its state, for /devices (/why has the
// whole story): " by you", " automatically" or "".
func causeName(k trust.Kind) string {
	switch k.String() {
	case "verified", "trusted", "distrusted":
		return " by you"
	case "vouched", "vouched-distrust", "auto-distrusted":
		return " automatically"
	case "verify-failed":
		return " (its verification failed)"
	case "left":
		return " (it left your device group)"
	}
	return ""
}

// deviceLine is one device in /devices.
func deviceLine(d *deviceRow) string {
	m := d.m
	label := "(no label)"
	if l := strings.TrimSpace(oneLine(m.Label)); l != "" {
		label = "“" + l + "”"
	}
	s := label + " " + oneLine(m.ID)
	switch {
	case m.Self:
		s += ": this device"
	case !m.HasKey:
		s += ": no identity key (no mpENC)"
	default:
		s += ": " + stateName(m.Trust.State) + causeName(m.Trust.Cause)
		if !m.Trust.Trusted {
			s += ", not trusted"
		}
		if !m.Trust.LastSeen.IsZero() {
			s += ", last seen " + m.Trust.LastSeen.Local().Format("2006-01-02 15:04")
		}
	}
	if m.HasKey {
		fp := trust.FingerprintOf(m.Trust.Key)
		s += "\n    device id " + hex.EncodeToString(fp[:8]) + ", fingerprint " + fp.String()
	}
	switch {
	case !d.pubKnown:
	case d.published:
		s += "\n    in its account's published device list"
	default:
		s += "\n    not in its account's published device list"
	}
	if g := d.group; g != nil {
		on := g.Since.Local().Format("2006-01-02 15:04")
		switch g.Status {
		case "in the group":
			s += "\n    in your device group since " + on
			if !m.Self {
				s += " (on the word of " + oneLine(g.By) + ")"
			}
		case "left":
			s += "\n    left your device group on " + on
		default:
			s += "\n    " + oneLine(g.Status) + " from your device group on " + on + " (on the word of " + oneLine(g.By) + ")"
		}
	}
	if len(d.rooms) > 0 {
		s += "\n    in " + strings.Join(sortedClean(d.rooms), ", ")
	} else if !m.Self {
		s += "\n    in none of your rooms now"
	}
	return s
}
