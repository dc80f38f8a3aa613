package session

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/subsession"
	"github.com/mpenc/mpenc/internal/wire"
)

// room is the room as the channel shows it.
type room struct {
	channel   []string  // sorted membership of the room as the last event stamped it
	seniors   set       // members present when we entered who are still there: the oldest founds
	enteredAt time.Time // our last own enter: seniors that do not speak mpENC by a broadcast round later are no seniors
	announced set       // members that announced an identity key (they speak mpENC), trusted or not
}

// HandleEvent processes one channel event, to completion, at now
// (docs/SESSION.md, "Receive path"). Events must come in the channel's order.
func (c *Core) HandleEvent(ev channel.Event, now time.Time) {
	c.advance(now)
	c.tick() // timers due before this event fire first
	if c.cfg.OnOccupants != nil {
		switch ev.Kind {
		case channel.EventOwnEnter, channel.EventOthers:
			c.cfg.OnOccupants(ev.Members)
		case channel.EventOwnLeave:
			c.cfg.OnOccupants(nil) // its Members are those before it
		}
	}
	if c.fatal == nil || ev.Kind == channel.EventOwnLeave {
		switch ev.Kind {
		case channel.EventOwnEnter:
			c.onOwnEnter(ev)
		case channel.EventOwnLeave:
			c.onOwnLeave(ev)
		case channel.EventOthers:
			c.onOthers(ev)
		case channel.EventPacket:
			c.onPacket(ev)
		case channel.EventPlain:
			c.notify(Notice{Kind: Plain, Author: ev.Sender, Text: ev.Body})
		case channel.EventIdentity:
			// Identity announcements are the trust layer's business: a
			// directory that learns keys gets them now, in order.
			known := c.speaksMpENC(ev.Sender)
			c.announced.add(ev.Sender)
			if o, ok := c.cfg.Directory.(KeyObserver); ok {
				if err := o.ObserveKey(ev.Sender, ev.Key); err != nil {
					c.warn(ev.Sender, err)
				}
			}
			// A newcomer's key usually arrives just after its entry: now it
			// is known to speak mpENC, ask for its inclusion.
			if !known && ev.Sender != c.cfg.Self && c.so.Synced() && !c.autoIncludes(ev.Sender) &&
				slices.Contains(c.channel, ev.Sender) && !slices.Contains(c.Members(), ev.Sender) {
				c.notify(Notice{Kind: JoinRequest, Author: ev.Sender})
			}
		}
	}
	c.after()
}

// after runs what must follow every input: the idle tasks and the state.
func (c *Core) after() {
	c.handleTasks()
	c.flushOutbox()
	c.updateState()
}

func (c *Core) setChannel(members []string) {
	c.channel = slices.Sorted(slices.Values(members))
	for _, s := range c.subs() {
		s.base.SetChannelMembers(c.channel)
		c.drain(s)
	}
}

// onOthers: others left and/or entered. Leaves first (docs/SESSION.md,
// "Receive path").
func (c *Core) onOthers(ev channel.Event) {
	c.setChannel(ev.Members)
	if len(ev.Leave) > 0 {
		for _, m := range ev.Leave {
			c.notify(Notice{Kind: ChannelLeave, Author: m})
		}
		c.seniors.del(ev.Leave...)
		c.announced.del(ev.Leave...)
		c.seniority()
		c.ruleLOI(ev)
		c.taskLeave.del(ev.Leave...)
		c.ruleLS(ev.Leave)
	}
	for _, m := range ev.Enter {
		c.notify(Notice{Kind: ChannelEnter, Author: m})
		c.onEnter(m)
	}
}

// ruleLOI: members of the running operation left: it cannot complete. The
// leave is at one position of the order for everyone, so everyone ends the
// operation there with the leave pseudo-packet.
func (c *Core) ruleLOI(ev channel.Event) {
	if c.op == nil || !c.so.Ongoing() {
		return
	}
	hit := false
	for _, m := range ev.Leave {
		if slices.Contains(c.op.members, m) {
			hit = true
		}
	}
	if !hit {
		return
	}
	if _, err := c.so.AcceptLeave(ev.Leave, ev.Members); err != nil {
		return
	}
	c.endOp(fmt.Errorf("%w: %v left the room during it", ErrAborted, ev.Leave), false)
	c.statePosition()
}

// ruleLS: a session member left outside (or right after) an operation:
// propose to exclude it (LS, LOX: docs/SESSION.md, "Channel rules").
func (c *Core) ruleLS(leavers []string) {
	members := c.Members()
	for _, m := range leavers {
		if m != c.cfg.Self && slices.Contains(members, m) {
			c.taskExclude.add(m)
			// Gone without saying so (a crash, a lost connection, a
			// server restart seen from the others' side): if it comes
			// back within the join window, it is included again.
			if c.cur == nil || !leftOnPurpose(c.cur.base.Presence(m)) {
				c.returning[m] = c.now.Add(c.cfg.JoinWindow)
			}
		}
	}
}

// leftOnPurpose reports whether a member's presence in a subsession says
// it announced its leave.
func leftOnPurpose(p subsession.Presence) bool {
	return p == subsession.IntentAbsent || p == subsession.MemberParting
}

// onEnter applies EAL and ES to one entrant. (The reference also kicks
// whoever enters while an operation runs, rule EO; we let them wait:
// docs/SESSION.md, "Channel rules".)
func (c *Core) onEnter(m string) {
	switch {
	case c.taskExclude[m]:
		// EAL: it reset its state; it must be excluded before it rejoins.
		c.kick([]string{m}, reasonEAL)
	case !c.so.Synced():
		// D11 (docs/SESSION.md): unsynced members ignore entries.
	case !c.autoIncludes(m) && c.speaksMpENC(m):
		c.notify(Notice{Kind: JoinRequest, Author: m})
	}
	// With AutoInclude, handleTasks proposes the inclusion when idle.
}

// onPacket dispatches a packet event.
func (c *Core) onPacket(ev channel.Event) {
	if !wire.IsMpENC(ev.Body) {
		c.notify(Notice{Kind: Plain, Author: ev.Sender, Text: ev.Body})
		return
	}
	p, err := wire.DecodeWire(ev.Body)
	if err != nil {
		// Everything from the network is hostile: a packet that does not
		// decode is dropped, and the user told once per packet.
		c.warnAbout(ev.Sender, fmt.Errorf("session: undecodable packet: %w", err))
		return
	}
	switch p := p.(type) {
	case *wire.GreetPacket:
		c.onGreet(p, ev)
	case *wire.DataPacket:
		c.onData(p, ev.Body, ev.Sender)
	case *wire.ErrorPacket:
		c.onError(p, ev.Sender)
	case *wire.QueryPacket:
		// mpENC queries are not used in rooms: nothing to answer.
	}
}

// maxReportText bounds the text of an error report we pass on (bytes).
const maxReportText = 256

// onError handles an error packet: a member's report of a problem it had.
// What it says is that member's claim, never our warning: it goes out as
// an ErrorReport naming its sender, Signed only when it verifies under the
// sender's ephemeral key of our current group (an unsigned one, or one
// from outside our group, is the room's word for it), rate-limited like
// every notice a sender's packets cause.
func (c *Core) onError(p *wire.ErrorPacket, sender string) {
	if p.Source != sender {
		c.warnAbout(sender, fmt.Errorf("%w (%q)", errSourceMismatch, p.Source))
		return
	}
	signed := false
	if k, ok := c.ephemeralKeyOf(sender); ok && p.Signature != nil {
		if !p.Verify(k) {
			c.warnAbout(sender, errors.New("session: error report with a bad signature"))
			return
		}
		signed = true
	}
	text := strings.ToValidUTF8(string(p.Message), "\uFFFD")
	if len(text) > maxReportText {
		text = strings.ToValidUTF8(text[:maxReportText], "")
	}
	c.limited(Notice{Kind: ErrorReport, Author: sender, Text: text, Signed: signed, Severity: strings.ToLower(p.Severity.String())})
}

// ephemeralKeyOf returns a member's ephemeral signing key in our group.
func (c *Core) ephemeralKeyOf(m string) (crypto.PublicKey, bool) {
	if c.state == nil {
		return crypto.PublicKey{}, false
	}
	i := c.state.Position(m)
	if i < 0 || i >= len(c.state.EphemeralKeys) {
		return crypto.PublicKey{}, false
	}
	return c.state.EphemeralKeys[i], true
}
