package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"
)

// Account is one device's login to its XMPP account: one connection,
// reconnected when it drops, shared by every room the device is in (the
// model of mellium's muc package: rooms multiplexed on one session). Its
// full JID, the device's participant id in every room, is requested again
// at each reconnection. Create it with Dial, add rooms with Room, end it
// with Close. It is safe for concurrent use.
type Account struct {
	cfg *settings

	ctx    context.Context // the account's life; cancelled by Close
	cancel context.CancelFunc
	done   chan struct{} // closed by Close
	wake   chan struct{} // cap 1: the manager looks
	wg     sync.WaitGroup

	// mu guards everything below. It is never held during network I/O nor
	// while a Channel's mutex is taken: the account calls into its rooms
	// only with mu released (lock order: a Channel's mutex may be held
	// while taking nothing of the account's).
	mu       sync.Mutex
	closed   bool
	self     jid.JID             // our full JID
	conn     *conn               // nil while disconnected
	err      error               // why the account stays offline for good (authentication, TLS)
	fails    int                 // consecutive failed connections
	retryAt  time.Time           // no connection attempt before this (backoff)
	rooms    map[string]*Channel // by the room's bare JID
	invStats invStats
	// suspended is a lost connection whose stream management session may
	// be resumed until suspendedUntil: the rooms keep it meanwhile (they
	// neither leave nor notice), and writes to it are kept for resending
	// (sm.go).
	suspended      *conn
	suspendedUntil time.Time
	// The archive catch-up (archive.go): the query in flight, and the
	// live device channel packets held until it ends.
	archive    *archiveQuery
	catchingUp int // catch-ups under way (one, but a reconnection may overlap)
	held       []heldDirect
	heldBytes  int
}

// Dial connects and authenticates to the server of cfg.JID, and keeps the
// account connected until Close: a lost connection is opened again with
// exponential backoff (Config.ReconnectMin to ReconnectMax, ±25 %) under
// the same full JID, and every room re-enters on it. Dial fails for an
// invalid cfg ("xmpp: invalid configuration"), an unsafe option for a
// remote server ("xmpp: unsafe transport options are for loopback servers
// only"), TLS or authentication refusals that retrying cannot fix ("xmpp:
// TLS failed", "xmpp: authentication failed"; with
// Config.RequireChannelBinding also "xmpp: the server refused channel
// binding" and "xmpp: channel binding is required but not possible"), or a
// network error.
func Dial(ctx context.Context, cfg *Config) (*Account, error) {
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
	cn, err := s.connect(ctx, origin, nil)
	if err != nil {
		return nil, err
	}
	a := &Account{
		cfg:   s,
		done:  make(chan struct{}),
		wake:  make(chan struct{}, 1),
		rooms: make(map[string]*Channel),
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.mu.Lock()
	a.self = cn.sess.LocalAddr()
	a.installLocked(cn)
	a.mu.Unlock()
	a.wg.Add(1)
	go a.manage()
	s.logf("xmpp: connected as %s", a.self)
	return a, nil
}

// Room returns the channel of one multi-user chat room (its bare JID,
// "room@conference.example.org") on this account's connection, entering
// under nick; call Enter to enter it. nick is our nickname there: it must
// be unique per device, as some servers merge two devices of one account
// that share a nick into one occupant. A room has one channel per account:
// asking for a room that has one fails until that one is closed.
func (a *Account) Room(room, nick string) (*Channel, error) {
	r, err := jid.Parse(room)
	if err != nil {
		return nil, fmt.Errorf("%w: room %q: %v", errConfig, room, err)
	}
	if r.Localpart() == "" || r.Resourcepart() != "" {
		return nil, fmt.Errorf("%w: room %q must be a bare JID room@service", errConfig, room)
	}
	if err := checkNick(r, nick); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.closed:
		return nil, errClosed
	case a.err != nil:
		return nil, a.err
	case a.rooms[r.String()] != nil:
		return nil, fmt.Errorf("xmpp: %s already has a channel on this account", r)
	}
	c := newChannel(a, r, nick)
	c.room = newRoom(r, a.self.String(), a.cfg.MaxOccupants)
	c.self = a.self
	if a.conn != nil {
		c.conn = a.conn
	}
	a.rooms[r.String()] = c
	c.wg.Add(2)
	go c.pump()
	go c.manage()
	return c, nil
}

// checkNick checks that nick can be our nickname in room r.
func checkNick(r jid.JID, nick string) error {
	if nick == "" {
		return fmt.Errorf("%w: empty nick", errConfig)
	}
	if _, err := r.WithResource(nick); err != nil {
		return fmt.Errorf("%w: nick %q: %v", errConfig, nick, err)
	}
	return nil
}

// Close closes every room's channel (each leaves its room first), ends the
// stream, disconnects and stops every goroutine. It is idempotent.
func (a *Account) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		<-a.done
		return nil
	}
	rooms := a.roomsLocked()
	// A lost connection is not waited for: the rooms are out.
	suspended := a.endSuspensionLocked()
	a.mu.Unlock()
	if suspended != nil {
		for _, c := range rooms {
			c.detach(suspended, errClosed)
		}
	}
	var wg sync.WaitGroup
	for _, c := range rooms {
		wg.Go(func() { _ = c.Close() })
	}
	wg.Wait()
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		<-a.done
		return nil
	}
	a.closed = true
	cn := a.conn
	a.conn = nil
	a.mu.Unlock()
	if cn != nil {
		// End the stream politely, then the socket; a server that does not
		// read gets two seconds.
		t := time.AfterFunc(2*time.Second, func() { _ = cn.raw.Close() })
		_ = cn.sess.Close()
		t.Stop()
		cn.cancel()
		_ = cn.raw.Close()
	}
	a.cancel()
	close(a.done)
	a.wg.Wait()
	return nil
}

// roomsLocked returns the rooms' channels, in no particular order.
func (a *Account) roomsLocked() []*Channel {
	out := make([]*Channel, 0, len(a.rooms))
	for _, c := range a.rooms {
		out = append(out, c)
	}
	return out
}

// forget removes a closed channel from the account.
func (a *Account) forget(c *Channel) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rooms[c.addr.String()] == c {
		delete(a.rooms, c.addr.String())
	}
}

// installLocked makes cn the current connection and starts its receive
// loop, keep-alive, and the upkeep of our published device list.
func (a *Account) installLocked(cn *conn) {
	a.conn = cn
	if a.catchesUp() {
		a.catchingUp++ // live device packets are held from the first one (catchUp)
	}
	if cn.sm != nil {
		a.wg.Go(func() { smRequests(cn) })
	}
	a.wg.Add(4)
	go func() {
		defer a.wg.Done()
		a.upkeep(cn)
	}()
	go func() {
		defer a.wg.Done()
		a.catchUp(cn)
	}()
	go func() {
		defer a.wg.Done()
		h := a.handler(cn)
		for i := range cn.early {
			_ = h.HandleXMPP(cn.early[i].reader(), &cn.early[i].start)
		}
		cn.early = nil
		err := cn.sess.Serve(h)
		close(cn.served)
		var se stream.Error
		if err == nil || errors.As(err, &se) {
			// The server ended the session on purpose (a stream error:
			// another login took our resource, a policy violation, a
			// shutdown): there is nothing to resume.
			cn.ended.Store(true)
		}
		if err == nil {
			err = errors.New("stream closed by the server")
		}
		a.dropConn(cn, err)
	}()
	go func() {
		defer a.wg.Done()
		a.keepAlive(cn)
	}()
}

// dropConn tears cn down if it is still current: the socket is closed,
// every room that was in is told (its EventOwnLeave), and the manager
// reconnects after the backoff delay.
func (a *Account) dropConn(cn *conn, why error) {
	a.mu.Lock()
	if cn == nil || a.conn != cn {
		a.mu.Unlock()
		return
	}
	a.conn = nil
	cn.cancel()
	_ = cn.raw.Close()
	closed := a.closed
	if !closed && cn.sm != nil && !cn.ended.Load() && cn.sm.resumable() {
		// The rooms keep cn until it is resumed or given up (manage).
		a.suspendLocked(cn)
		a.retryAt = time.Time{} // the first attempt at once
		a.cfg.logf("xmpp: connection lost: %v; resuming it", why)
		a.mu.Unlock()
		a.kick()
		return
	}
	rooms := a.roomsLocked()
	if !closed {
		a.scheduleRetryLocked()
		a.cfg.logf("xmpp: connection lost: %v", why)
	}
	a.mu.Unlock()
	for _, c := range rooms {
		c.detach(cn, why)
	}
	a.kick()
}

// suspendedRetry bounds the delay between connection attempts while a
// lost connection may still be resumed.
const suspendedRetry = 2 * time.Second

// suspendLocked keeps cn for resumption (a.suspended).
func (a *Account) suspendLocked(cn *conn) {
	a.suspended = cn
	a.suspendedUntil = time.Now().Add(cn.sm.window)
}

// endSuspensionLocked forgets the suspended connection; the caller tells
// the rooms what became of it. It returns that connection.
func (a *Account) endSuspensionLocked() *conn {
	old := a.suspended
	if old != nil {
		a.fails = 0 // what follows is a new outage: back off from the start
	}
	a.suspended, a.suspendedUntil = nil, time.Time{}
	return old
}

// kick wakes the manager.
func (a *Account) kick() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// scheduleRetryLocked sets the next connection attempt after a backoff
// delay: ReconnectMin doubled per consecutive failure up to ReconnectMax,
// ±25 %.
func (a *Account) scheduleRetryLocked() {
	a.retryAt = time.Now().Add(backoff(a.cfg, a.fails))
}

// backoff is the delay before retrying after fails consecutive failures:
// ReconnectMin doubled per failure up to ReconnectMax, ±25 %.
func backoff(s *settings, fails int) time.Duration {
	d := s.ReconnectMin
	for i := 0; i < fails && d < s.ReconnectMax; i++ {
		d *= 2
	}
	d = min(d, s.ReconnectMax)
	return d*3/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// manage is the one goroutine that reconnects. It runs until Close.
func (a *Account) manage() {
	defer a.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-a.done:
			return
		case <-a.wake:
		case <-timer.C:
		}
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			return
		}
		if a.conn != nil || a.err != nil {
			a.mu.Unlock()
			continue
		}
		if a.suspended != nil && !time.Now().Before(a.suspendedUntil) {
			// Too long: the rooms are left, and the next connection binds
			// afresh (replacing the session if the server still has it).
			old := a.endSuspensionLocked()
			rooms := a.roomsLocked()
			a.scheduleRetryLocked()
			a.cfg.logf("xmpp: connection not resumed within %v; leaving the rooms", old.sm.window)
			a.mu.Unlock()
			for _, c := range rooms {
				c.detach(old, errors.New("not resumed in time"))
			}
			a.kick()
			continue
		}
		if wait := time.Until(a.retryAt); wait > 0 {
			if a.suspended != nil {
				wait = min(wait, time.Until(a.suspendedUntil))
			}
			a.mu.Unlock()
			timer.Reset(wait)
			continue
		}
		origin := a.self
		var prev *smSession
		if a.suspended != nil {
			prev = a.suspended.sm
		}
		a.mu.Unlock()

		cn, err := a.cfg.connect(a.ctx, origin, prev)

		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			if cn != nil {
				cn.cancel()
				_ = cn.raw.Close()
			}
			return
		}
		var old *conn // the suspended connection, resumed or not
		if err == nil || permanent(err) || errors.Is(err, syscall.ECONNREFUSED) {
			// A server that refuses connections is not running: when it
			// is back, it will not have our session (no server keeps them
			// across a restart), so the rooms need not wait for it.
			old = a.endSuspensionLocked()
		}
		lost := errors.New("the server did not resume the session")
		if err != nil {
			lost = fmt.Errorf("not resumed: %w", err)
		}
		switch {
		case err == nil && cn.resumed:
			// Every room carries on over cn as if nothing happened (the
			// server kept our occupants, and resends what we missed); no
			// stanza is read from cn before they have it.
			a.fails, a.retryAt = 0, time.Time{}
			rooms := a.roomsLocked()
			a.conn = cn
			a.mu.Unlock()
			for _, c := range rooms {
				c.resume(old, cn)
			}
			a.mu.Lock()
			if a.closed || a.conn != cn {
				a.mu.Unlock()
				cn.cancel()
				_ = cn.raw.Close()
				continue
			}
			a.installLocked(cn)
			a.cfg.logf("xmpp: connection resumed as %s", a.self)
			a.mu.Unlock()
			a.kick()
			continue
		case err == nil:
			a.fails, a.retryAt = 0, time.Time{}
			if got := cn.sess.LocalAddr(); !got.Equal(a.self) {
				// The server gave us another resource: our participant id
				// changes; each room's session sees us leave and enter as
				// someone new.
				a.cfg.logf("xmpp: server bound %s instead of %s", got, a.self)
				a.self = got
			}
			a.installLocked(cn)
			a.cfg.logf("xmpp: reconnected as %s", a.self)
		case permanent(err):
			a.err = err
			a.cfg.logf("xmpp: staying offline: %v", err)
		default:
			a.fails++
			a.scheduleRetryLocked()
			if a.suspended != nil {
				// The resumption window is short: try often within it.
				a.retryAt = time.Now().Add(min(time.Until(a.retryAt), suspendedRetry))
			}
			a.cfg.logf("xmpp: connecting failed (attempt %d), retrying: %v", a.fails, err)
		}
		rooms := a.roomsLocked()
		self := a.self
		a.mu.Unlock()
		for _, c := range rooms {
			if old != nil {
				// The server no longer had the session: the rooms left.
				c.detach(old, lost)
			}
			switch {
			case err == nil:
				c.attach(cn, self)
			case permanent(err):
				c.fail(err)
			}
		}
		a.kick()
	}
}

// handler is the receive loop's stanza handler for connection cn. It
// decodes the stanza and hands it to the room it comes from, which applies
// it under its own mutex (no I/O, no waiting); invitations to other rooms
// go to Config.OnInvitation.
//
// mellium workaround (mellium problems 2–5 of docs/XMPP.md): we do not use
// mux or muc.Client. Handlers run on the receive loop, where an IQ would
// deadlock; muc.Client ignores other occupants' presence and its Join/Leave
// hang on re-entry. We read every stanza ourselves and do requests from other
// goroutines.
func (a *Account) handler(cn *conn) mxmpp.Handler {
	return mxmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		if start.Name.Space == nsSM {
			return smElement(cn.sm, t, start)
		}
		st, err := decodeStanza(*start, t)
		if errors.Is(err, errNotStanza) {
			return nil // a stream-level element we do not use
		}
		if err != nil {
			return err // the stream is broken; Serve ends and we reconnect
		}
		if st.Kind == kindMessage && st.MAM != nil && (!st.FromOK || st.From.Equal(a.cfg.account)) {
			// Our archive's results; a stanza without from comes from our
			// own account (RFC 6120 §8.1.2.1), as Prosody sends them.
			a.mu.Lock()
			from, payload, ok := a.archivedLocked(st)
			a.mu.Unlock()
			if ok && a.cfg.OnDirect != nil {
				a.cfg.OnDirect(from, payload)
			}
			return nil
		}
		if st.Kind == kindIQ && st.HistoryRequest != nil && st.FromOK && st.ID != "" &&
			st.From.Resourcepart() != "" && a.cfg.OnHistoryRequest != nil {
			return a.answerHistory(t, st)
		}
		if st.Kind == kindOther || st.Kind == kindIQ || !st.FromOK {
			return nil // other IQs: the session answers get/set with service-unavailable
		}
		a.mu.Lock()
		if a.conn != cn {
			a.mu.Unlock()
			return nil // a torn-down connection's last stanzas
		}
		c := a.rooms[st.From.Bare().String()]
		if c == nil && st.Kind == kindMessage && st.P2P != nil && st.Type == string(stanza.ChatMessage) &&
			st.From.Resourcepart() != "" && a.cfg.OnDirect != nil {
			deliver := a.directLocked(st.From.String(), st.P2P)
			a.mu.Unlock()
			if deliver {
				a.cfg.OnDirect(st.From.String(), st.P2P)
			}
			return nil
		}
		var inv Invitation
		invited := false
		if st.Kind == kindMessage && st.Invite != nil {
			inv, invited = a.invitationLocked(st)
		}
		a.mu.Unlock()
		if invited {
			a.cfg.OnInvitation(inv)
		}
		if c != nil {
			c.apply(cn, st)
		}
		return nil
	})
}

// keepAlive checks the connection every KeepAlive. A room we are in
// answers a self-ping (XEP-0410), which proves the connection alive and
// tells whether the room still has us; when no room settles it, the
// server is pinged, and a ping not answered within IQTimeout drops the
// connection (a silent network failure would otherwise go unnoticed until
// the next write).
func (a *Account) keepAlive(cn *conn) {
	if a.cfg.KeepAlive < 0 {
		return
	}
	t := time.NewTicker(a.cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-cn.ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		rooms := a.roomsLocked()
		a.mu.Unlock()
		var settled atomic.Bool
		var wg sync.WaitGroup
		for _, c := range rooms {
			wg.Go(func() {
				if c.selfPing(cn) {
					settled.Store(true)
				}
			})
		}
		wg.Wait()
		if !settled.Load() && !a.pingServer(cn) {
			return
		}
	}
}

// pingServer pings our server and drops the connection if it does not
// answer. It reports whether the connection is kept.
func (a *Account) pingServer(cn *conn) bool {
	ctx, cancel := context.WithTimeout(cn.ctx, a.cfg.IQTimeout)
	err := ping.Send(ctx, cn.sess, cn.sess.LocalAddr().Domain())
	cancel()
	var se stanza.Error
	if err != nil && !errors.As(err, &se) { // an error reply still proves the server is there
		a.dropConn(cn, fmt.Errorf("keep-alive: %w", err))
		return false
	}
	return true
}
