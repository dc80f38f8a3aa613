package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

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
	// sendHook, if set, sends instead of the room (tests).
	sendHook func(room, text string) error
}

func newClient(a *app.App, cfg *Config, log zerolog.Logger) *client {
	return &client{app: a, cfg: cfg, log: log, views: map[string]*roomView{}, members: map[string][]app.Member{}}
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
				c.ui.note("could not connect to "+room+": "+oneLine(err.Error()), true)
				return
			}
			v.self = r.Self()
			c.ui.roomsChanged()
		})
	}()
}

// handle applies an App event.
func (c *client) handle(ev app.Event) {
	if ev.Kind == app.EventInvitation {
		c.ui.note(invitationText(ev.Invitation), false)
		return
	}
	v := c.view(ev.Room)
	if r := c.appRoom(ev.Room); r != nil && v.self == "" {
		v.self = r.Self()
	}
	var lastBefore *line
	if len(v.lines) > 0 {
		lastBefore = v.lines[len(v.lines)-1]
	}
	l, mc := v.apply(ev)
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
			return fmt.Errorf("nobody matches %s in %s", cmd.args[0], r.JID())
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
			lines = append(lines, "  "+memberLine(m))
		}
		c.ui.note(strings.Join(lines, "\n"), false)
	case "info":
		return c.info(ctx, cmd.args[0])
	case "fingerprint":
		return c.fingerprint(ctx, cmd.args)
	case "verify", "trust", "distrust":
		return c.decide(ctx, cmd)
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
	m, err := c.member(ctx, args[0])
	if err != nil {
		return err
	}
	fp := trust.FingerprintOf(m.Trust.Key)
	c.ui.note(fmt.Sprintf("%s (%s):\n  %s\n  %s\ncompare it with what they read from their screen, then /verify %s confirm",
		oneLine(m.ID), m.Trust.State, fp, fp.Words(), oneLine(m.ID)), false)
	return nil
}

// member finds the one member of the current room matching who that
// announced a key.
func (c *client) member(ctx context.Context, who string) (app.Member, error) {
	r, err := c.room()
	if err != nil {
		return app.Member{}, err
	}
	ms, err := r.Members(ctx)
	if err != nil {
		return app.Member{}, err
	}
	var found []app.Member
	for _, m := range ms {
		if !m.Self && m.HasKey && (m.ID == who || trust.Bare(m.ID) == who || strings.HasPrefix(m.ID, who)) {
			found = append(found, m)
		}
	}
	// An exact full JID wins over prefixes.
	for _, m := range found {
		if m.ID == who {
			return m, nil
		}
	}
	switch len(found) {
	case 0:
		return app.Member{}, fmt.Errorf("no member matching %s announced a key in %s", who, r.JID())
	case 1:
		return found[0], nil
	}
	var ids []string
	for _, m := range found {
		ids = append(ids, m.ID)
	}
	return app.Member{}, fmt.Errorf("%s matches several devices: %s; give the full JID", who, strings.Join(ids, ", "))
}

// resolve turns what a user typed (a full JID, a bare JID, or a nick-like
// prefix of either) into the participant ids of the members (in the room
// or in the session) that match it: an exact full JID first, else every
// device of that bare JID, else those whose JID starts with it.
func resolve(ms []app.Member, who string) []string {
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	if slices.Contains(ids, who) {
		return []string{who}
	}
	var out []string
	for _, m := range ids {
		if trust.Bare(m) == who {
			out = append(out, m)
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, m := range ids {
		if strings.HasPrefix(m, who) {
			out = append(out, m)
		}
	}
	return out
}

// decide runs /verify, /trust and /distrust.
func (c *client) decide(ctx context.Context, cmd command) error {
	m, err := c.member(ctx, cmd.args[0])
	if err != nil {
		return err
	}
	ts := c.app.Trust()
	key := m.Trust.Key
	fp := trust.FingerprintOf(key)
	var rec trust.Record
	switch cmd.name {
	case "verify":
		given := strings.TrimSpace(strings.TrimPrefix(cmd.rest, cmd.args[0]))
		if given == "" {
			return fmt.Errorf("compare %s's fingerprint %s (%s) with what they read from their screen, then: /verify %s confirm, or type it: /verify %s FINGERPRINT",
				m.ID, fp, fp.Words(), m.ID, m.ID)
		}
		if given != "confirm" && !trust.Matches(key, given) {
			return fmt.Errorf("that does NOT match %s's key %s: not verified. If they read it to you, someone may be in the middle", m.ID, fp)
		}
		rec, err = ts.Verify(m.ID, key)
	case "trust":
		rec, err = ts.Trust(m.ID, key)
	case "distrust":
		rec, err = ts.Distrust(m.ID, key)
	}
	if err != nil {
		return err
	}
	c.ui.note(fmt.Sprintf("%s's key %s is now %s", oneLine(m.ID), fp, rec.State), false)
	c.refreshMembers(c.cur)
	return nil
}
