package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
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

// Channel is a GroupChannel over one multi-user chat room. Create it with
// Dial; it is safe for concurrent use.
type Channel struct {
	cfg *settings

	events chan channel.Event // unbuffered; the pump writes, the consumer reads
	wake   chan struct{}      // cap 1: something changed; the manager looks
	poked  chan struct{}      // cap 1: a stanza was applied; join/leave waits look
	done   chan struct{}      // closed by Close
	ctx    context.Context    // the channel's life; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the pump, the manager, and each connection's goroutines

	// mu guards everything below. It is never held during network I/O,
	// so the receive loop never waits behind a sender.
	mu       sync.Mutex
	closed   bool
	self     jid.JID // our full JID; the resource is requested again on reconnect
	conn     *conn   // nil while disconnected
	room     *room
	want     bool         // we should be in the room (Enter called, Leave not)
	waiters  []chan error // Enter calls waiting for EventOwnEnter or a permanent error
	entered  uint64       // EventOwnEnter events queued so far
	err      error        // why we stay out for good (permanent failure or removal)
	retryAt  time.Time    // no join attempt before this (backoff)
	fails    int          // consecutive failed attempts
	queue    []channel.Event
	qNotify  chan struct{} // cap 1: the queue grew
	paused   bool          // the queue overflowed: no reconnect until it drains
	invStats invStats
	invites  chan Invitation // cap maxPendingInvitations; closed by Close
}

// invStats counts invitations, for tests.
type invStats struct {
	Invites uint64 // invitations to other rooms queued for Invitations
	// InvitesDropped counts invitations not queued: malformed, to this
	// channel's own room, or finding the queue full.
	InvitesDropped uint64
}

// Dial connects and authenticates to the server of cfg.JID. It does not
// enter the room: call Enter. The returned Channel must be closed with
// Close. Dial fails for an invalid cfg ("xmpp: invalid configuration"), an
// unsafe option for a remote server ("xmpp: unsafe transport options are
// for loopback servers only"), TLS or authentication refusals that
// retrying cannot fix ("xmpp: TLS failed", "xmpp: authentication failed";
// with Config.RequireChannelBinding also "xmpp: the server refused channel
// binding" and "xmpp: channel binding is required but not possible"), or a
// network error.
func Dial(ctx context.Context, cfg *Config) (*Channel, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	resource := s.resource
	if resource == "" {
		resource = "mpenc-" + randomID()
	}
	origin, err := s.account.WithResource(resource)
	if err != nil {
		return nil, fmt.Errorf("%w: resource %q: %v", errConfig, resource, err)
	}
	cn, err := s.connect(ctx, origin)
	if err != nil {
		return nil, err
	}
	c := &Channel{
		cfg:     s,
		events:  make(chan channel.Event),
		wake:    make(chan struct{}, 1),
		poked:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		qNotify: make(chan struct{}, 1),
		invites: make(chan Invitation, maxPendingInvitations),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.self = cn.sess.LocalAddr()
	c.room = newRoom(s.room, c.self.String(), s.MaxOccupants)
	c.mu.Lock()
	c.installLocked(cn)
	c.mu.Unlock()
	c.wg.Add(2)
	go c.pump()
	go c.manage()
	s.logf("xmpp: connected as %s", c.self)
	return c, nil
}

// Self returns our participant id: our real full JID.
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
	return fmt.Errorf("xmpp: enter %s: %w", c.cfg.room, ctx.Err())
}

// Leave leaves the room and returns once EventOwnLeave is queued (at once if
// we were not in the room). If the server does not confirm before ctx
// ends, the connection is dropped, which takes us out for sure.
func (c *Channel) Leave(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	c.want = false
	c.failWaitersLocked(fmt.Errorf("xmpp: enter %s: %w", c.cfg.room, errors.New("left before entering")))
	if !c.room.inRoom() {
		c.mu.Unlock()
		c.kick()
		return nil
	}
	cn := c.conn
	sendLeave := c.room.phase == phaseIn && cn != nil
	c.room.phase = phaseLeaving
	occ, _ := c.cfg.room.WithResource(c.room.nick)
	c.mu.Unlock()
	if sendLeave {
		if err := cn.sess.Send(cn.ctx, leavePresence(occ, randomID())); err != nil {
			c.dropConn(cn, fmt.Errorf("send leave: %w", err))
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
			c.dropConn(cn, errors.New("leave not confirmed in time"))
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
	size, err := stanzaSize(groupchat(c.cfg.room, id, wire))
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
	if err := cn.sess.Send(cn.ctx, groupchat(c.cfg.room, id, wire)); err != nil {
		c.dropConn(cn, fmt.Errorf("send: %w", err))
		return fmt.Errorf("xmpp: send to %s: %w", c.cfg.room, err)
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
			errs = append(errs, fmt.Errorf("%w: %w", errNotModerator, &roomError{Op: "kick", Room: c.cfg.room.String(), Condition: string(se.Condition), Text: clip(se.Text[""], maxErrText)}))
		case errors.As(err, &se):
			errs = append(errs, &roomError{Op: "kick", Room: c.cfg.room.String(), Condition: string(se.Condition), Text: clip(se.Text[""], maxErrText)})
		default:
			errs = append(errs, fmt.Errorf("xmpp: kick in %s: %w", c.cfg.room, err))
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
	if err := cn.sess.Send(cn.ctx, invitation(c.cfg.room, randomID(), invitee.String(), reason)); err != nil {
		c.dropConn(cn, fmt.Errorf("send: %w", err))
		return fmt.Errorf("xmpp: invite in %s: %w", c.cfg.room, err)
	}
	return nil
}

// Close leaves the room if needed (waiting a few seconds for the server),
// disconnects, stops every goroutine and closes Events. Events not yet
// received are discarded. Close is idempotent.
func (c *Channel) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
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
	close(c.invites)
	c.failWaitersLocked(errClosed)
	cn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if cn != nil {
		// End the stream politely, then the socket; a server that does not
		// read gets two seconds.
		t := time.AfterFunc(2*time.Second, func() { _ = cn.raw.Close() })
		_ = cn.sess.Close()
		t.Stop()
		cn.cancel()
		_ = cn.raw.Close()
	}
	c.cancel()
	close(c.done)
	c.wg.Wait()
	return nil
}

// installLocked makes cn the current connection and starts its receive loop
// and keep-alive.
func (c *Channel) installLocked(cn *conn) {
	c.conn = cn
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		err := cn.sess.Serve(c.handler(cn))
		close(cn.served)
		if err == nil {
			err = errors.New("stream closed by the server")
		}
		c.dropConn(cn, err)
	}()
	go func() {
		defer c.wg.Done()
		c.keepAlive(cn)
	}()
}

// dropConn tears cn down if it is still current: the socket is closed, and
// if we were in the room EventOwnLeave is queued (the membership before it,
// us included). The manager reconnects if we still want to be in.
func (c *Channel) dropConn(cn *conn, why error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropConnLocked(cn, why)
}

func (c *Channel) dropConnLocked(cn *conn, why error) {
	if cn == nil || c.conn != cn {
		return
	}
	c.conn = nil
	cn.cancel()
	_ = cn.raw.Close()
	wasIn := c.room.inRoom()
	c.pushLocked(c.room.lost(fmt.Errorf("xmpp: connection lost: %w", why))...)
	if wasIn && c.want {
		c.scheduleRetryLocked()
	}
	if !c.closed {
		c.cfg.logf("xmpp: connection lost: %v", why)
	}
	c.kickLocked()
	c.pokeLocked()
}

// handler is the receive loop's stanza handler for connection cn. It only
// decodes and applies the stanza to the room state under the mutex (no I/O,
// no waiting) and queues the resulting events.
//
// mellium workaround (mellium problems 2–5 of docs/XMPP.md): we do not use
// mux or muc.Client. Handlers run on the receive loop, where an IQ would
// deadlock; muc.Client ignores other occupants' presence and its Join/Leave
// hang on re-entry. We read every stanza ourselves and do requests from other
// goroutines.
func (c *Channel) handler(cn *conn) mxmpp.Handler {
	return mxmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		st, err := decodeStanza(*start, t)
		if errors.Is(err, errNotStanza) {
			return nil // a stream-level element we do not use
		}
		if err != nil {
			return err // the stream is broken; Serve ends and we reconnect
		}
		if st.Kind == kindOther {
			return nil // IQs: the session answers get/set with service-unavailable
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.conn != cn {
			return nil // a torn-down connection's last stanzas
		}
		if !c.want && (c.room.phase == phaseJoining || c.room.phase == phaseSettling) {
			// The join was abandoned (Leave, or Enter gave up): never let it
			// complete; the manager drops the connection.
			c.pokeLocked()
			return nil
		}
		if st.Kind == kindMessage && st.Invite != nil {
			c.inviteLocked(st)
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
		return nil
	})
}

// pushLocked queues events for the consumer. An EventOwnLeave is always
// queued; any other event that finds the queue full overflows it: the event
// is dropped and so is the connection, whose EventOwnLeave then marks the
// gap. No reconnect happens until the queue has drained to half.
func (c *Channel) pushLocked(evs ...channel.Event) {
	for _, ev := range evs {
		if ev.Kind != channel.EventOwnLeave && len(c.queue) >= c.cfg.EventQueue {
			if !c.paused {
				c.paused = true
				c.cfg.logf("xmpp: event queue full (%d): dropping the connection", len(c.queue))
			}
			if c.conn != nil {
				c.dropConnLocked(c.conn, errOverflow)
			}
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
	d := c.cfg.ReconnectMin
	for i := 0; i < c.fails && d < c.cfg.ReconnectMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.ReconnectMax)
	d = d*3/4 + time.Duration(rand.Int64N(int64(d/2)+1))
	c.retryAt = time.Now().Add(d)
}

// manage is the one goroutine that connects and joins. It runs until Close.
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
			// The room turned semi-anonymous: we are out (EventOwnLeave is
			// queued) but the server still has us. Drop the connection,
			// which takes us out of the room for sure.
			c.room.needsExit = false
			c.dropConnLocked(c.conn, errRoomAnonymous)
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
		case errors.Is(err, errAbandoned):
		case permanent(err):
			c.fails = 0
			c.want = false
			c.err = err
			c.failWaitersLocked(err)
			c.cfg.logf("xmpp: not entering %s: %v", c.cfg.room, err)
		default:
			c.fails++
			c.scheduleRetryLocked()
			c.cfg.logf("xmpp: entering %s failed (attempt %d), retrying: %v", c.cfg.room, c.fails, err)
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
	c.mu.Unlock()
	if cn == nil {
		var err error
		cn, err = c.reconnect()
		if err != nil {
			return err
		}
	}

	c.mu.Lock()
	if !c.want || c.conn != cn || c.closed {
		c.mu.Unlock()
		return errAbandoned
	}
	c.room.startJoin(c.cfg.Nick)
	entered := c.entered
	occ, err := c.cfg.room.WithResource(c.cfg.Nick)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: nick: %v", errConfig, err)
	}
	if err := cn.sess.Send(cn.ctx, joinPresence(occ, randomID(), c.cfg.Identity)); err != nil {
		c.dropConn(cn, fmt.Errorf("send join: %w", err))
		return fmt.Errorf("xmpp: join %s: %w", c.cfg.room, err)
	}

	deadline := time.NewTimer(c.cfg.JoinTimeout)
	defer deadline.Stop()
	var grace <-chan time.Time
	configuring := false
	for {
		c.mu.Lock()
		switch {
		case c.entered != entered:
			c.mu.Unlock()
			return nil
		case c.conn != cn:
			c.mu.Unlock()
			return fmt.Errorf("xmpp: join %s: connection lost", c.cfg.room)
		case c.room.joinErr != nil:
			err := c.room.joinErr
			c.room.reset()
			c.mu.Unlock()
			switch {
			case errors.Is(err, errOverflow):
				c.dropConn(cn, err)
			case errors.Is(err, errHiddenOccupants):
				c.exitRoom(cn) // the server has us in the room
			}
			return err
		case !c.want:
			c.room.reset()
			c.dropConnLocked(cn, errAbandoned)
			c.mu.Unlock()
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
			return fmt.Errorf("xmpp: join %s: no answer in %v", c.cfg.room, c.cfg.JoinTimeout)
		case <-grace:
			c.exitRoom(cn)
			return fmt.Errorf("%w (%s: no status 100 or 172 after %v)", errRoomAnonymous, c.cfg.room, c.cfg.AnonymityGrace)
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
	occ, _ := c.cfg.room.WithResource(c.room.nick)
	c.mu.Unlock()
	if err := cn.sess.Send(cn.ctx, leavePresence(occ, randomID())); err != nil {
		c.dropConn(cn, err)
	}
}

// configure makes the room we just created non-anonymous through the owner
// configuration form, after checking that the form offers it.
func (c *Channel) configure(cn *conn) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.IQTimeout)
	defer cancel()
	form, err := muc.GetConfig(ctx, c.cfg.room, cn.sess)
	if err != nil {
		return fmt.Errorf("%w: %s: fetching the room configuration: %w", errRoomAnonymous, c.cfg.room, err)
	}
	opts, ok := form.GetOptions("muc#roomconfig_whois")
	offers := false
	for _, o := range opts {
		offers = offers || o.Value == "anyone"
	}
	if !ok || !offers {
		return fmt.Errorf("%w: %s: the configuration form offers no muc#roomconfig_whois=anyone", errRoomAnonymous, c.cfg.room)
	}
	if err := c.iq(ctx, cn, nonAnonymousForm(), stanza.SetIQ); err != nil {
		return fmt.Errorf("%w: %s: configuring the room: %w", errRoomAnonymous, c.cfg.room, err)
	}
	c.cfg.logf("xmpp: created %s and made it non-anonymous", c.cfg.room)
	return nil
}

// iq sends a request to the room and waits for the answer (a stanza.Error
// when the room refuses), bounded by ctx and IQTimeout.
func (c *Channel) iq(ctx context.Context, cn *conn, payload xml.TokenReader, typ stanza.IQType) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.IQTimeout)
	defer cancel()
	stop := context.AfterFunc(cn.ctx, cancel) // the connection went away
	defer stop()
	return cn.sess.UnmarshalIQElement(ctx, payload, stanza.IQ{Type: typ, To: c.cfg.room, ID: randomID()}, nil)
}

// reconnect opens a new connection with the same full JID and installs it.
func (c *Channel) reconnect() (*conn, error) {
	c.mu.Lock()
	origin := c.self
	c.mu.Unlock()
	cn, err := c.cfg.connect(c.ctx, origin)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = cn.raw.Close()
		cn.cancel()
		return nil, errClosed
	}
	if got := cn.sess.LocalAddr(); !got.Equal(c.self) {
		// The server gave us another resource: our participant id changes.
		// The session sees us leave and enter as someone new.
		c.cfg.logf("xmpp: server bound %s instead of %s", got, c.self)
		c.self = got
		c.room.self = got.String()
	}
	c.installLocked(cn)
	c.cfg.logf("xmpp: reconnected as %s", c.self)
	return cn, nil
}

// keepAlive pings the server every KeepAlive; a ping that is not answered
// within IQTimeout drops the connection (a silent network failure would
// otherwise go unnoticed until the next write).
func (c *Channel) keepAlive(cn *conn) {
	if c.cfg.KeepAlive < 0 {
		return
	}
	t := time.NewTicker(c.cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-cn.ctx.Done():
			return
		case <-t.C:
		}
		if !c.selfPing(cn) && !c.pingServer(cn) {
			return
		}
	}
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
	occ, err := c.cfg.room.WithResource(c.room.nick)
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

// pingServer pings our server and drops the connection if it does not
// answer. It reports whether the connection is kept.
func (c *Channel) pingServer(cn *conn) bool {
	ctx, cancel := context.WithTimeout(cn.ctx, c.cfg.IQTimeout)
	err := ping.Send(ctx, cn.sess, cn.sess.LocalAddr().Domain())
	cancel()
	var se stanza.Error
	if err != nil && !errors.As(err, &se) { // an error reply still proves the server is there
		c.dropConn(cn, fmt.Errorf("keep-alive: %w", err))
		return false
	}
	return true
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
	c.cfg.logf("xmpp: %s: %s: entering again", c.cfg.room, strings.TrimPrefix(why.Error(), "xmpp: "))
	c.kickLocked()
	c.mu.Unlock()
}
