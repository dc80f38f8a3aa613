package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/muc"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"

	"github.com/mpenc/mpenc/channel"
)

var _ channel.GroupChannel = (*Channel)(nil)

// errAbandoned ends a join attempt nobody wants any more (Leave, or the
// Enter that asked for it gave up). It is never returned to callers.
var errAbandoned = errors.New("xmpp: join abandoned")

// errOffline: the account is disconnected (reconnecting). A join attempt
// that finds it so waits for the next connection; a request of the
// account's own (Devices, Bundle) fails with it.
var errOffline = errors.New("xmpp: account offline")

// exitWait bounds how long a new join waits for the room to confirm our
// previous exit, whose late confirmation would otherwise read as a removal
// of the new join.
const exitWait = 3 * time.Second

// maxNickTries is how many nicks a join tries when the room says ours is
// in use: the one asked for, then the same with " (2)", " (3)", ...
const maxNickTries = 9

// Channel is a GroupChannel over one multi-user chat room, on the
// connection of an Account. Get it from Account.Room; it is safe for
// concurrent use.
type Channel struct {
	acct *Account
	cfg  *settings
	addr jid.JID // the room's bare JID
	base string  // the nick asked for

	events chan channel.Event // unbuffered; the pump writes, the consumer reads
	wake   chan struct{}      // cap 1: something changed; the manager looks
	poked  chan struct{}      // cap 1: a stanza was applied; join/leave waits look
	done   chan struct{}      // closed by Close
	ctx    context.Context    // the channel's life; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the pump and the manager

	// mu guards everything below. It is never held during network I/O,
	// so the receive loop never waits behind a sender.
	mu        sync.Mutex
	closed    bool
	self      jid.JID // our full JID (the account's)
	conn      *conn   // the account's connection; nil while it is down
	room      *room
	nick      string       // the nick we ask for: base, or an alternative after a conflict
	nickTries int          // conflicts in a row
	want      bool         // we should be in the room (Enter called, Leave not)
	waiters   []chan error // Enter calls waiting for EventOwnEnter or a permanent error
	entered   uint64       // EventOwnEnter events queued so far
	err       error        // why we stay out for good (permanent failure or removal)
	retryAt   time.Time    // no join attempt before this (backoff)
	fails     int          // consecutive failed attempts
	exiting   bool         // we sent the room our exit and await its confirmation
	queue     []channel.Event
	qNotify   chan struct{} // cap 1: the queue grew
	paused    bool          // the queue overflowed: no re-entry until it drains
}

// newChannel makes the channel of room addr on account a; Account.Room
// completes it and starts its goroutines.
func newChannel(a *Account, addr jid.JID, nick string) *Channel {
	c := &Channel{
		acct:    a,
		cfg:     a.cfg,
		addr:    addr,
		base:    nick,
		nick:    nick,
		events:  make(chan channel.Event),
		wake:    make(chan struct{}, 1),
		poked:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		qNotify: make(chan struct{}, 1),
	}
	c.ctx, c.cancel = context.WithCancel(a.ctx)
	return c
}

// Self returns our participant id: our real full JID, the account's.
func (c *Channel) Self() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.self.String()
}

// Events returns the event stream, closed by Close. It must be drained: when
// Config.EventQueue events (default 16384) wait, the channel drops its
// connection (the consumer sees EventOwnLeave, and EventOwnEnter once the
// queue has drained and the channel re-entered).
func (c *Channel) Events() <-chan channel.Event { return c.events }

// Err reports why the channel stays out of the room for good: a permanent
// join failure (a semi-anonymous room, the room's refusal, TLS or
// authentication) or a removal ("xmpp: removed from room@service: kicked",
// banned, room destroyed). It is nil while the channel is in the room or
// trying to get back in, and is cleared by Enter.
func (c *Channel) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Enter enters the room and returns once EventOwnEnter is queued. If the
// room does not exist we create it and configure it to show real JIDs to
// every occupant. It fails for a room that hides them ("xmpp: the room
// hides occupants' real JIDs ..."), for the room's refusal ("xmpp: join
// room@service: conflict" for a nick in use, "forbidden" when banned,
// "registration-required" for a members-only room, and so on: the stanza
// error condition of RFC 6120 §8.3.3),
// or ctx's error; passing failures (network, server restarting) are retried
// with backoff until ctx ends. Entering while in the room is a no-op.
// After a successful Enter the channel stays in the room: it reconnects and
// re-enters by itself (EventOwnLeave, then EventOwnEnter) until Leave,
// Close or a permanent removal.
func (c *Channel) Enter(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	if c.room.phase == phaseIn {
		c.mu.Unlock()
		return nil
	}
	wanted := c.want
	c.want, c.err = true, nil
	if !wanted {
		// An explicit Enter tries at once, whatever earlier failures
		// scheduled.
		c.fails, c.retryAt = 0, time.Time{}
	}
	w := make(chan error, 1)
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	c.kick()
	select {
	case err := <-w:
		return err
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case err := <-w: // answered meanwhile
		return err
	default:
	}
	for i, x := range c.waiters {
		if x == w {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			break
		}
	}
	if !wanted && len(c.waiters) == 0 && !c.room.inRoom() {
		c.want = false // nobody wants the attempt this call started
		c.kickLocked()
	}
	return fmt.Errorf("xmpp: enter %s: %w", c.addr, ctx.Err())
}

// Leave leaves the room and returns once EventOwnLeave is queued (at once if
// we were not in the room). If the room does not confirm before ctx ends,
// the channel counts itself out (EventOwnLeave) and ignores the room from
// then on; the account's connection, which other rooms share, is kept.
func (c *Channel) Leave(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	c.want = false
	c.failWaitersLocked(fmt.Errorf("xmpp: enter %s: %w", c.addr, errors.New("left before entering")))
	if !c.room.inRoom() {
		c.mu.Unlock()
		c.kick()
		return nil
	}
	cn := c.conn
	sendLeave := c.room.phase == phaseIn && cn != nil
	c.room.phase = phaseLeaving
	occ, _ := c.addr.WithResource(c.room.nick)
	c.mu.Unlock()
	if sendLeave {
		if err := cn.sess.Send(cn.ctx, leavePresence(occ, randomID())); err != nil {
			c.acct.dropConn(cn, fmt.Errorf("send leave: %w", err))
		}
	}
	for {
		c.mu.Lock()
		if c.room.phase != phaseLeaving {
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		select {
		case <-c.poked:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			// We count ourselves out; the room's late confirmation is
			// ignored, and a new Enter waits for it a little (exitWait).
			c.mu.Lock()
			if c.room.phase == phaseLeaving {
				c.pushLocked(c.room.lost(errors.New("xmpp: leave not confirmed in time"))...)
				c.exiting = true
			}
			c.mu.Unlock()
			return nil
		}
	}
}

// Send broadcasts a wire string to the room, best effort; its echo is an
// EventPacket from Self. It fails outside the room ("xmpp: not in the
// room"), for a string XML cannot carry unchanged ("xmpp: body not
// representable in XML") and above Config.MaxStanzaSize ("xmpp: stanza of
// N bytes over the M-byte limit"), in which cases nothing is sent and the
// connection is kept. A write error
// drops the connection (the channel reconnects). A write blocked by the
// server is bounded by Config.WriteTimeout, not by ctx.
func (c *Channel) Send(ctx context.Context, wire string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(wire) > c.cfg.MaxStanzaSize {
		return &stanzaTooLargeError{Size: len(wire), Limit: c.cfg.MaxStanzaSize}
	}
	if !xmlSafe(wire) {
		return errInvalidBody
	}
	id := randomID()
	size, err := stanzaSize(groupchat(c.addr, id, wire))
	if err != nil {
		return fmt.Errorf("xmpp: encode message: %w", err)
	}
	// The session adds xmlns='jabber:client' to the stanza.
	size += len(` xmlns="jabber:client"`)
	if size > c.cfg.MaxStanzaSize {
		return &stanzaTooLargeError{Size: size, Limit: c.cfg.MaxStanzaSize}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	if !c.room.inRoom() || c.conn == nil {
		c.mu.Unlock()
		return errNotInRoom
	}
	cn := c.conn
	c.mu.Unlock()
	if err := cn.sess.Send(cn.ctx, groupchat(c.addr, id, wire)); err != nil {
		c.acct.dropConn(cn, fmt.Errorf("send: %w", err))
		return fmt.Errorf("xmpp: send to %s: %w", c.addr, err)
	}
	return nil
}

// Kick asks the room to remove members (real full JIDs) by setting their
// role to none (XEP-0045 §8.2). It needs the moderator role
// ("xmpp: kicking needs the moderator role in the room" otherwise). Members not in the room as far as our event
// stream has got are skipped (kicking someone already gone is a no-op). The
// removals show up later as EventOthers.
func (c *Channel) Kick(ctx context.Context, members []string, reason string) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	if !c.room.inRoom() || c.conn == nil {
		c.mu.Unlock()
		return errNotInRoom
	}
	if c.room.me.role != "moderator" {
		c.mu.Unlock()
		return errNotModerator
	}
	var nicks []string
	for _, m := range members {
		if m == c.self.String() {
			continue
		}
		nicks = append(nicks, c.room.nicksOf(m)...)
	}
	cn := c.conn
	c.mu.Unlock()
	var errs []error
	for _, nick := range nicks {
		err := c.iq(ctx, cn, kickPayload(nick, clip(reason, maxKickReason)), stanza.SetIQ)
		var se stanza.Error
		switch {
		case err == nil:
		case errors.As(err, &se) && se.Condition == stanza.ItemNotFound:
			// Gone already: a no-op by contract.
		case errors.As(err, &se) && (se.Condition == stanza.Forbidden || se.Condition == stanza.NotAllowed):
			errs = append(errs, fmt.Errorf("%w: %w", errNotModerator, &roomError{Op: "kick", Room: c.addr.String(), Condition: string(se.Condition), Text: clip(se.Text[""], maxErrText)}))
		case errors.As(err, &se):
			errs = append(errs, &roomError{Op: "kick", Room: c.addr.String(), Condition: string(se.Condition), Text: clip(se.Text[""], maxErrText)})
		default:
			errs = append(errs, fmt.Errorf("xmpp: kick in %s: %w", c.addr, err))
		}
	}
	return errors.Join(errs...)
}

// maxInviteReason caps the reason of an invitation (bytes).
const maxInviteReason = 1024

// maxKickReason caps the reason we give when we kick (bytes): it is ours,
// a short sentence, cut rather than refused.
const maxKickReason = 256

// Invite asks the room to send to (a bare or full JID) a mediated
// invitation (XEP-0045 §7.8.2) with reason; any XMPP client shows it as an
// invitation to the room. Only an occupant can invite ("xmpp: not in the
// room" otherwise). The room answers only a refusal, as an error message
// that this channel does not wait for, so a nil error means sent, not
// delivered. It fails for a reason XML cannot carry or longer than 1 KiB,
// and for an invalid JID; nothing is sent then.
func (c *Channel) Invite(ctx context.Context, to, reason string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	invitee, err := jid.Parse(to)
	if err != nil {
		return fmt.Errorf("xmpp: invite %q: %w", to, err)
	}
	if invitee.Localpart() == "" {
		return fmt.Errorf("xmpp: invite %q: not a user's JID", to)
	}
	if len(reason) > maxInviteReason || !xmlSafe(reason) {
		return errInvalidBody
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	if !c.room.inRoom() || c.conn == nil {
		c.mu.Unlock()
		return errNotInRoom
	}
	cn := c.conn
	c.mu.Unlock()
	if err := cn.sess.Send(cn.ctx, invitation(c.addr, randomID(), invitee.String(), reason)); err != nil {
		c.acct.dropConn(cn, fmt.Errorf("send: %w", err))
		return fmt.Errorf("xmpp: invite in %s: %w", c.addr, err)
	}
	return nil
}

// Close leaves the room if needed (waiting a few seconds for the server),
// stops the channel's goroutines, closes Events and removes the room from
// the account, whose connection stays up. Events not yet received are
// discarded. Close is idempotent.
func (c *Channel) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return nil
	}
	in := c.room.inRoom()
	c.mu.Unlock()
	if in {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_ = c.Leave(ctx)
		cancel()
	}
	c.mu.Lock()
	if c.closed {
		// A concurrent Close got here first (we both saw it open above).
		c.mu.Unlock()
		<-c.done
		return nil
	}
	c.closed, c.want = true, false
	c.failWaitersLocked(errClosed)
	c.conn = nil
	c.mu.Unlock()
	c.acct.forget(c)
	c.cancel()
	close(c.done)
	c.wg.Wait()
	return nil
}

// attach gives the channel the account's new connection cn, on which the
// account is self; the manager enters again if we want to be in.
func (c *Channel) attach(cn *conn, self jid.JID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || cn.ctx.Err() != nil {
		return // closed, or cn dropped already (detach came first)
	}
	c.conn, c.self, c.exiting = cn, self, false
	if c.room.phase == phaseOut {
		c.room.self = self.String()
	}
	c.kickLocked()
}

// resume moves the channel from connection old to cn, which resumed old's
// stream management session: the room goes on as it was, without a word
// to the consumer. A channel that had no connection (added while old was
// lost) is attached to cn.
func (c *Channel) resume(old, cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return
	case c.conn == old && old != nil:
		c.conn = cn
	case c.conn == nil:
		c.conn, c.exiting = cn, false
		if c.room.phase == phaseOut {
			c.room.self = c.self.String()
		}
	default:
		return
	}
	c.kickLocked()
}

// detach tells the channel that the account lost connection cn: if we were
// in the room, EventOwnLeave is queued (the membership before it, us
// included), and the manager enters again on the next connection.
func (c *Channel) detach(cn *conn, why error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != cn {
		return
	}
	c.conn = nil
	c.exiting = false // the server forgets us with the connection
	wasIn := c.room.inRoom()
	c.pushLocked(c.room.lost(fmt.Errorf("xmpp: connection lost: %w", why))...)
	if wasIn && c.want {
		c.scheduleRetryLocked()
	}
	c.kickLocked()
	c.pokeLocked()
}

// fail ends the channel's hopes of entering: the account will not connect
// again (authentication or TLS refused).
func (c *Channel) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.want, c.err = false, err
	c.failWaitersLocked(err)
	c.kickLocked()
}

// outLocked takes us out of the room on our own initiative (the event
// queue overflowed): EventOwnLeave if we were in, a join in progress
// fails, and the manager tells the room we left.
func (c *Channel) outLocked(why error) {
	ph := c.room.phase
	if ph == phaseOut {
		return
	}
	wasIn := c.room.inRoom()
	c.pushLocked(c.room.lost(fmt.Errorf("xmpp: left the room: %w", why))...)
	if ph == phaseJoining || ph == phaseSettling {
		c.room.joinErr = why // the join attempt tells the room
	} else {
		c.room.needsExit = true
	}
	if wasIn && c.want {
		c.scheduleRetryLocked()
	}
	c.kickLocked()
}

// apply applies a stanza from the room, received on connection cn, to
// the room state under the mutex (no I/O, no waiting) and queues the
// resulting events. It runs on the account's receive loop.
func (c *Channel) apply(cn *conn, st *inStanza) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != cn || c.closed {
		return // a torn-down connection's last stanzas
	}
	if c.room.phase == phaseOut {
		if c.exiting && st.Kind == kindPresence && st.Type == "unavailable" &&
			(st.hasStatus(statusSelf) || st.From.Resourcepart() == c.room.nick) {
			c.exiting = false // the room confirmed our exit
			c.pokeLocked()
		}
		return
	}
	if !c.want && (c.room.phase == phaseJoining || c.room.phase == phaseSettling) {
		// The join was abandoned (Leave, or Enter gave up): never let it
		// complete; the manager tells the room we leave.
		c.pokeLocked()
		return
	}
	c.pushLocked(c.room.handle(st)...)
	if rm := c.room.removed; rm != nil {
		c.room.removed = nil
		if rm.Reason != leftByRequest { // (Leave already cleared want; an Enter since may have set it)
			c.want = false
			c.err = rm
			c.failWaitersLocked(rm)
			c.cfg.logf("xmpp: %v", rm)
		}
	}
	if c.room.lossTransient {
		c.room.lossTransient = false
		c.scheduleRetryLocked()
	}
	c.pokeLocked()
	c.kickLocked()
}

// pushLocked queues events for the consumer. An EventOwnLeave is always
// queued; any other event that finds the queue full overflows it: the event
// is dropped and we leave the room, whose EventOwnLeave then marks the
// gap. No re-entry happens until the queue has drained to half.
func (c *Channel) pushLocked(evs ...channel.Event) {
	for _, ev := range evs {
		if ev.Kind != channel.EventOwnLeave && len(c.queue) >= c.cfg.EventQueue {
			if !c.paused {
				c.paused = true
				c.cfg.logf("xmpp: event queue full (%d) in %s: leaving the room until it drains", len(c.queue), c.addr)
			}
			c.outLocked(errOverflow)
			return
		}
		if ev.Kind == channel.EventOwnEnter {
			c.entered++
		}
		c.queue = append(c.queue, ev)
	}
	select {
	case c.qNotify <- struct{}{}:
	default:
	}
}

// pump moves queued events to the unbuffered Events channel, so that
// producers never wait for the consumer.
func (c *Channel) pump() {
	defer c.wg.Done()
	defer close(c.events)
	for {
		c.mu.Lock()
		for len(c.queue) == 0 {
			c.mu.Unlock()
			select {
			case <-c.qNotify:
			case <-c.done:
				return
			}
			c.mu.Lock()
		}
		ev := c.queue[0]
		c.queue[0] = channel.Event{}
		c.queue = c.queue[1:]
		if len(c.queue) == 0 {
			c.queue = nil // let the backing array go
		}
		if c.paused && len(c.queue) <= c.cfg.EventQueue/2 {
			c.paused = false
			c.kickLocked()
		}
		c.mu.Unlock()
		select {
		case c.events <- ev:
		case <-c.done:
			return
		}
	}
}

// kick wakes the manager, and a join or leave waiting for news.
func (c *Channel) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
	select {
	case c.poked <- struct{}{}:
	default:
	}
}

func (c *Channel) kickLocked() { c.kick() }

func (c *Channel) pokeLocked() {
	select {
	case c.poked <- struct{}{}:
	default:
	}
}

func (c *Channel) failWaitersLocked(err error) {
	for _, w := range c.waiters {
		w <- err
	}
	c.waiters = nil
}

// scheduleRetryLocked sets the next join attempt after a backoff delay:
// ReconnectMin doubled per consecutive failure up to ReconnectMax, ±25 %.
func (c *Channel) scheduleRetryLocked() {
	c.retryAt = time.Now().Add(backoff(c.cfg, c.fails))
}

// manage is the one goroutine that enters the room. It runs until Close.
func (c *Channel) manage() {
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		case <-timer.C:
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		if c.room.needsExit && c.conn != nil {
			// The room turned semi-anonymous, or our queue overflowed: we
			// are out (EventOwnLeave is queued) but the server still has
			// us. Tell the room we leave.
			c.room.needsExit = false
			cn, nick := c.conn, c.room.nick
			c.exiting = true
			c.mu.Unlock()
			c.sendExit(cn, nick)
			continue
		}
		if !c.want || c.room.phase != phaseOut || c.paused {
			c.mu.Unlock()
			continue
		}
		if wait := time.Until(c.retryAt); wait > 0 {
			c.mu.Unlock()
			timer.Reset(wait)
			continue
		}
		c.mu.Unlock()

		err := c.attempt()

		c.mu.Lock()
		switch {
		case err == nil:
			c.fails = 0
			c.retryAt = time.Time{}
			c.failWaitersLocked(nil)
		case errors.Is(err, errAbandoned), errors.Is(err, errOffline):
			// Nobody wants it any more, or the account is reconnecting
			// (attach wakes us).
		case permanent(err):
			c.fails = 0
			c.want = false
			c.err = err
			c.failWaitersLocked(err)
			c.cfg.logf("xmpp: not entering %s: %v", c.addr, err)
		default:
			c.fails++
			c.scheduleRetryLocked()
			c.cfg.logf("xmpp: entering %s failed (attempt %d), retrying: %v", c.addr, c.fails, err)
		}
		c.kickLocked()
		c.mu.Unlock()
	}
}

// attempt connects if needed and enters the room once. It returns nil
// once EventOwnEnter is queued.
func (c *Channel) attempt() error {
	c.mu.Lock()
	cn := c.conn
	if cn == nil {
		c.mu.Unlock()
		c.acct.kick()
		return errOffline
	}
	if c.exiting {
		// Our last exit is not confirmed yet: its confirmation must not
		// arrive in the middle of the new join, where it would read as a
		// removal.
		wait := time.NewTimer(min(exitWait, c.cfg.JoinTimeout))
		for c.exiting && c.conn == cn && c.want {
			c.mu.Unlock()
			select {
			case <-c.poked:
			case <-time.After(100 * time.Millisecond):
			case <-wait.C:
				c.mu.Lock()
				c.exiting = false
				c.mu.Unlock()
			case <-c.done:
				wait.Stop()
				return errClosed
			}
			c.mu.Lock()
		}
		wait.Stop()
	}
	if !c.want || c.conn != cn || c.closed {
		c.mu.Unlock()
		return errAbandoned
	}
	c.room.startJoin(c.nick)
	entered := c.entered
	occ, err := c.addr.WithResource(c.nick)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: nick: %v", errConfig, err)
	}
	if err := cn.sess.Send(cn.ctx, joinPresence(occ, randomID(), c.cfg.announce)); err != nil {
		c.acct.dropConn(cn, fmt.Errorf("send join: %w", err))
		return fmt.Errorf("xmpp: join %s: %w", c.addr, err)
	}

	deadline := time.NewTimer(c.cfg.JoinTimeout)
	defer deadline.Stop()
	var grace <-chan time.Time
	configuring := false
	for {
		c.mu.Lock()
		switch {
		case c.entered != entered:
			c.nickTries = 0
			c.mu.Unlock()
			return nil
		case c.conn != cn:
			c.mu.Unlock()
			return fmt.Errorf("xmpp: join %s: connection lost", c.addr)
		case c.room.joinErr != nil:
			err := c.room.joinErr
			c.room.reset()
			var re *roomError
			if errors.As(err, &re) && re.Condition == "conflict" && c.nickTries+1 < maxNickTries {
				// Our nick is taken (by another account, or by another
				// device of ours, which the server would merge with us):
				// try the next one. In the second case the server has us
				// in the room under it: leave it first.
				c.nickTries++
				old := c.nick
				c.nick = fmt.Sprintf("%s (%d)", c.base, c.nickTries+1)
				c.mu.Unlock()
				if re.Text == sharedNick {
					c.exitRoom(cn)
				}
				return fmt.Errorf("xmpp: join %s: nick %q in use, trying %q", c.addr, old, c.nick)
			}
			c.mu.Unlock()
			switch {
			case errors.Is(err, errOverflow), errors.Is(err, errHiddenOccupants):
				c.exitRoom(cn) // the server has us in the room
			}
			return err
		case !c.want:
			c.mu.Unlock()
			c.exitRoom(cn)
			return errAbandoned
		case c.room.phase == phaseSettling && !c.room.nonAnon:
			if c.room.created && !configuring {
				// We created the room: make it non-anonymous. Prosody and
				// most servers create rooms semi-anonymous.
				configuring = true
				c.mu.Unlock()
				err := c.configure(cn)
				c.mu.Lock()
				if err == nil && c.conn == cn && c.room.phase == phaseSettling {
					c.pushLocked(c.room.configured()...)
				}
				c.mu.Unlock()
				if err != nil {
					c.exitRoom(cn)
					return err
				}
				continue
			}
			if !c.room.created && grace == nil {
				// Someone else's room without status 100. Its creator may be
				// configuring it right now (a 172 would come): wait a little.
				grace = time.After(c.cfg.AnonymityGrace)
			}
		}
		c.mu.Unlock()
		select {
		case <-c.poked:
		case <-time.After(100 * time.Millisecond): // pokes are shared with Leave
		case <-deadline.C:
			c.exitRoom(cn)
			return fmt.Errorf("xmpp: join %s: no answer in %v", c.addr, c.cfg.JoinTimeout)
		case <-grace:
			c.exitRoom(cn)
			return fmt.Errorf("%w (%s: no status 100 or 172 after %v)", errRoomAnonymous, c.addr, c.cfg.AnonymityGrace)
		case <-c.done:
			return errClosed
		}
	}
}

// exitRoom abandons a join in progress: we tell the room we leave and
// forget it (no EventOwnEnter was queued, so no event).
func (c *Channel) exitRoom(cn *conn) {
	c.mu.Lock()
	if c.conn != cn || c.room.inRoom() {
		c.mu.Unlock()
		return
	}
	c.room.reset()
	nick := c.room.nick
	c.exiting = true
	c.mu.Unlock()
	c.sendExit(cn, nick)
}

// sendExit sends the room our unavailable presence under nick.
func (c *Channel) sendExit(cn *conn, nick string) {
	occ, err := c.addr.WithResource(nick)
	if err != nil {
		return
	}
	if err := cn.sess.Send(cn.ctx, leavePresence(occ, randomID())); err != nil {
		c.acct.dropConn(cn, err)
	}
}

// configure makes the room we just created non-anonymous through the owner
// configuration form, after checking that the form offers it.
func (c *Channel) configure(cn *conn) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.IQTimeout)
	defer cancel()
	form, err := muc.GetConfig(ctx, c.addr, cn.sess)
	if err != nil {
		return fmt.Errorf("%w: %s: fetching the room configuration: %w", errRoomAnonymous, c.addr, err)
	}
	opts, ok := form.GetOptions("muc#roomconfig_whois")
	offers := false
	for _, o := range opts {
		offers = offers || o.Value == "anyone"
	}
	if !ok || !offers {
		return fmt.Errorf("%w: %s: the configuration form offers no muc#roomconfig_whois=anyone", errRoomAnonymous, c.addr)
	}
	if err := c.iq(ctx, cn, nonAnonymousForm(), stanza.SetIQ); err != nil {
		return fmt.Errorf("%w: %s: configuring the room: %w", errRoomAnonymous, c.addr, err)
	}
	c.cfg.logf("xmpp: created %s and made it non-anonymous", c.addr)
	return nil
}

// iq sends a request to the room and waits for the answer (a stanza.Error
// when the room refuses), bounded by ctx and IQTimeout.
func (c *Channel) iq(ctx context.Context, cn *conn, payload xml.TokenReader, typ stanza.IQType) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.IQTimeout)
	defer cancel()
	stop := context.AfterFunc(cn.ctx, cancel) // the connection went away
	defer stop()
	return cn.sess.UnmarshalIQElement(ctx, payload, stanza.IQ{Type: typ, To: c.addr, ID: randomID()}, nil)
}

// selfPing pings our own occupant JID (XEP-0410 MUC self-ping) when we are
// in the room, and reports whether that settled the round: the room
// answered, so the connection is alive, and we know whether it still has
// us (selfPingVerdict). An item-not-found answer is checked with a
// disco#info query to the room (roomVerdict): a room that no longer exists
// (roomLost with errRoomGone) is entered again, which creates it anew. No
// answer, or remote-server-not-found/-timeout (the room unreachable from
// our server), settles nothing: the caller pings the server instead.
func (c *Channel) selfPing(cn *conn) bool {
	c.mu.Lock()
	if c.conn != cn || !c.room.inRoom() {
		c.mu.Unlock()
		return false
	}
	occ, err := c.addr.WithResource(c.room.nick)
	entered := c.entered
	c.mu.Unlock()
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(cn.ctx, c.cfg.IQTimeout)
	err = ping.Send(ctx, cn.sess, occ)
	cancel()
	switch selfPingVerdict(err) {
	case pingIn:
		return true
	case pingUnsettled:
		return false
	case pingAskRoom:
		switch roomVerdict(c.iq(cn.ctx, cn, discoInfoQuery(), stanza.GetIQ)) {
		case roomExists:
			return true // XEP-0410: still in, our nick is changing
		case roomUnknown:
			return false
		}
		c.roomLost(cn, entered, fmt.Errorf("%w (self-ping and disco#info answered %s)", errRoomGone, stanza.ItemNotFound))
		return true
	default:
		var se stanza.Error
		errors.As(err, &se)
		c.roomLost(cn, entered, fmt.Errorf("%w (self-ping answered %s)", errForgotten, se.Condition))
		return true
	}
}

// pingVerdict is what a self-ping's answer says.
type pingVerdict uint8

const (
	pingIn        pingVerdict = iota // still in the room
	pingUnsettled                    // no answer from the room: ask the server
	pingAskRoom                      // item-not-found: the room may be gone
	pingForgot                       // the room does not have us
)

// selfPingVerdict reads the answer to a self-ping (XEP-0410). A reply, or
// service-unavailable or feature-not-implemented, means we are in.
// item-not-found means in for the XEP (our nick is changing), but
// ejabberd ("Conference room does not exist") and Prosody answer it for a
// room that no longer exists, so the room is asked (roomVerdict). Any
// other error means the room forgot us without a word, as a restarted MUC
// service does (Prosody answers not-acceptable). No answer, or
// remote-server-not-found/-timeout, settles nothing.
func selfPingVerdict(err error) pingVerdict {
	var se stanza.Error
	switch {
	case err == nil:
		return pingIn
	case !errors.As(err, &se):
		return pingUnsettled
	}
	switch se.Condition {
	case stanza.ServiceUnavailable, stanza.FeatureNotImplemented:
		return pingIn
	case stanza.ItemNotFound:
		return pingAskRoom
	case stanza.RemoteServerNotFound, stanza.RemoteServerTimeout:
		return pingUnsettled
	}
	return pingForgot
}

// roomState is what a disco#info query to the room says of it.
type roomState uint8

const (
	roomExists  roomState = iota // it answered (with its features, or refusing us)
	roomGone                     // item-not-found or gone: there is no such room
	roomUnknown                  // no answer from the room
)

// roomVerdict reads the answer to a disco#info query to the room: a result
// or any refusal but item-not-found and gone (RFC 6120 §8.3.3) come from a
// room that exists; no answer, or remote-server-not-found/-timeout, says
// nothing.
func roomVerdict(err error) roomState {
	var se stanza.Error
	switch {
	case err == nil:
		return roomExists
	case !errors.As(err, &se):
		return roomUnknown
	}
	switch se.Condition {
	case stanza.ItemNotFound, stanza.Gone:
		return roomGone
	case stanza.RemoteServerNotFound, stanza.RemoteServerTimeout:
		return roomUnknown
	}
	return roomExists
}

// roomLost handles a room that no longer has us while we believe we are in
// (since the enter numbered entered): it forgot us (errForgotten), or it
// no longer exists (errRoomGone). The gap becomes EventOwnLeave with why
// as its Err, and the manager enters again on the same connection after
// the usual retry delay; entering a room that no longer exists creates it
// anew, and configures it as any room we create. No leave is sent: a room
// that does not have us ignores it, and one that (against the XEP) still
// had us would answer with our own departure, which reads as a removal.
func (c *Channel) roomLost(cn *conn, entered uint64, why error) {
	c.mu.Lock()
	if c.conn != cn || c.entered != entered || !c.room.inRoom() || !c.want {
		c.mu.Unlock()
		return // left, re-entered or lost meanwhile: the answer is stale
	}
	c.pushLocked(c.room.lost(why)...)
	c.scheduleRetryLocked()
	c.cfg.logf("xmpp: %s: %s: entering again", c.addr, strings.TrimPrefix(why.Error(), "xmpp: "))
	c.kickLocked()
	c.mu.Unlock()
}
