package app

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/devchan"
	"github.com/mpenc/mpenc/internal/keysync"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/store"
	"github.com/mpenc/mpenc/trust"
)

// The device channel (issue [K], docs/PROTOCOL.md "The device channel"):
// pairwise sessions with other devices, over direct messages on the
// account's connection, kept in the store.
const (
	// deviceKeys is how many one-time keys the bundle publishes.
	deviceKeys = 50
	// maxDirectQueue and maxDirectBytes bound the device channel packets
	// waiting to be handled (a catch-up from the archive delivers many at
	// once); more are dropped (the channel's recovery covers a loss).
	maxDirectQueue = 8192
	maxDirectBytes = 16 << 20
	// maxRequestsPerMinute bounds the requests accepted from one account
	// per minute, and maxRequestsTotal from everyone: each spends a key
	// and makes a session.
	maxRequestsPerMinute = 10
	maxRequestsTotal     = 60
	// maxOutbox bounds the payloads waiting for a session with one device.
	maxOutbox = 100
	// maxAttempts bounds the handshakes begun for one outbox (a refused
	// key or no answer makes another attempt with another digest).
	maxAttempts = 3
	// listTTL is how long a fetched device list is used.
	listTTL = 5 * time.Minute
	// responseWait is how long a request waits for its response before
	// another attempt (the responder may have spent the key and stopped
	// before answering, or the packet was lost).
	responseWait = 20 * time.Second
	// listLag is how long a request from a device its account does not
	// list yet is held back, once, before it is looked up again: a device
	// that just connected may not be in its list yet (two devices writing
	// the list at once lose an entry until the re-check puts it back);
	// maxLate bounds the requests held back.
	listLag           = 5 * time.Second
	maxLate           = 64
	maxLatePerAccount = 4
	// confirmWait is how long a session we accepted waits for the
	// initiator's confirmation (its first data packet) before it is
	// deleted: a request nobody follows up is not kept.
	confirmWait = 10 * time.Minute
	// simultaneous: two sessions with one device begun within this of
	// each other were started by both sides at once; the one begun by
	// the smaller device id is used (the tie-break). Otherwise the newer
	// one replaces the older for sending.
	simultaneous = 60 * time.Second
	// retiredKeep is how long a replaced session still decrypts (packets
	// already on their way), before its keys are deleted.
	retiredKeep = time.Hour
	// maxPeerSessions bounds the sessions kept with one device.
	maxPeerSessions = 8
	// rotateAge and rotateCount: a session older, or that sent more, is
	// replaced by a new handshake (forward secrecy beyond the ratchet's:
	// the identity keys' part of a session key is renewed).
	rotateAge   = 7 * 24 * time.Hour
	rotateCount = 10000
	// recoverEvery bounds the new handshakes begun because a device sent
	// data for a session we do not have (it has one we lost), per device;
	// maxRecoveries bounds them for everyone, per minute.
	recoverEvery  = time.Minute
	maxRecoveries = 20
	// refillEvery: the keys are topped up and the last-resort key
	// replaced when due this often (besides after each key spent).
	refillEvery = time.Hour
)

// archiveSetting names the store setting that keeps where the archive
// catch-up stopped.
const archiveSetting = "devchan.archive"

// errNoDevice: SendToDevice found no such device in its account's
// published device list.
var errNoDevice = errors.New("app: no such device in its account's published device list")

// peerID names a device of another account: the account, and the device
// id its published list gives.
type peerID struct {
	account string // bare JID
	dev     devchan.DeviceID
}

type directIn struct {
	from    string
	payload []byte
}

type outbox struct {
	to          string // the device's full JID
	payloads    []queued
	attempts    int
	handshaking bool // a handshake of ours for it is under way
	seq         uint64
}

// queued is a payload waiting for a session; n tells copies apart.
type queued struct {
	n uint64
	b []byte
}

// devSession is one session with what the channel itself does not keep:
// the device's resource (from its account's list), when it began (which
// orders sessions with one device), and when it was retired (zero: in
// use for sending).
type devSession struct {
	s        *devchan.Session
	resource string
	created  time.Time
	retired  time.Time
	// oneTime: begun over a one-time key (not the last-resort key), in
	// this process; only such a session carries a verification.
	oneTime bool
}

func (ds *devSession) peer() peerID {
	p := ds.s.Peer()
	return peerID{p.Account, p.Device}
}

// fullJID is the device's full JID as its account's list binds it.
func (ds *devSession) fullJID() string { return ds.s.Peer().Account + "/" + ds.resource }

// sendable reports whether ds can carry our payloads: established, not
// retired, and, when the other side began it, confirmed (its first data
// packet came), so that a request nobody follows up (a stranger claiming
// a device) never takes our traffic.
func (ds *devSession) sendable() bool {
	switch {
	case !ds.retired.IsZero():
		return false
	case ds.s.Role() == devchan.Responder:
		return ds.s.State() == devchan.Confirmed
	}
	return ds.s.State() == devchan.Established || ds.s.State() == devchan.Confirmed
}

type cachedList struct {
	devices []xmpp.Device
	at      time.Time
}

// devices runs the account's device channel. One goroutine (loop)
// handles what arrives; SendToDevice runs on the caller's. op serialises
// both over the sessions; network requests (device lists, bundles) are
// made without it.
type devices struct {
	a     *App
	local devchan.Party

	// inMu guards the queue of packets received; wake (cap 1) tells loop.
	inMu    sync.Mutex
	in      []directIn
	inBytes int
	cursor  *string // an archive position to save once in is drained
	// dropped: a packet was dropped (queue full) since the position was
	// set: it is not saved, so the next catch-up reads them again.
	dropped bool
	wake    chan struct{}

	op         sync.Mutex // guards everything below
	loaded     bool
	restored   []peerID // outboxes read back at load, not yet sent again
	sessions   map[peerID][]*devSession
	out        map[peerID]*outbox
	accepted   map[string][]time.Time // bare JID → requests accepted in the last minute
	acceptedAt []time.Time            // every request accepted in the last minute
	recovered  map[peerID]time.Time
	recoveries []time.Time
	refilled   time.Time
	late       map[string]int       // requests held back (listLag), per bare JID
	timers     map[*time.Timer]bool // their timers, stopped when the App closes
	closed     bool
	dirty      map[*devSession]bool     // opened from, not saved since
	verifs     map[string]*verification // live verifications, by device full JID
	ks         *pairing                 // KeySync; nil until started
	groupedAt  time.Time                // when a pairing last brought this device into a group

	mu      sync.Mutex // guards the key digests and the device lists
	oneTime []xmpp.KeyDigest
	lr      xmpp.KeyDigest
	lists   map[string]cachedList
}

func newDevices(a *App) *devices {
	fp := trust.FingerprintOf(a.key.Public())
	return &devices{
		a:         a,
		local:     devchan.Party{Account: a.acct.JID, Device: devchan.DeviceID(fp[:8]), Identity: a.key.Public()},
		wake:      make(chan struct{}, 1),
		sessions:  map[peerID][]*devSession{},
		out:       map[peerID]*outbox{},
		accepted:  map[string][]time.Time{},
		recovered: map[peerID]time.Time{},
		dirty:     map[*devSession]bool{},
		verifs:    map[string]*verification{},
		late:      map[string]int{},
		timers:    map[*time.Timer]bool{},
		lists:     map[string]cachedList{},
	}
}

// refill tops up the one-time keys in the store (replacing the
// last-resort key when due) and keeps their digests for the bundle.
func (d *devices) refill(ctx context.Context) error {
	otk, lr, err := d.a.st.DeviceChannelKeys(ctx, d.a.acct.ID, d.a.key, deviceKeys, devchan.Digest, nil)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.oneTime = d.oneTime[:0]
	for _, k := range otk {
		d.oneTime = append(d.oneTime, xmpp.KeyDigest{ID: devchan.IDOf(k), Digest: k})
	}
	d.lr = xmpp.KeyDigest{ID: devchan.IDOf(lr), Digest: lr}
	return nil
}

// keyDigests is xmpp.Config.OneTimeKeys.
func (d *devices) keyDigests() ([]xmpp.KeyDigest, xmpp.KeyDigest) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.oneTime), d.lr
}

// archiveCursor and saveArchiveCursor are xmpp.Config's.
func (d *devices) archiveCursor() (string, error) {
	v, _, err := d.a.st.Setting(context.Background(), d.a.acct.ID, archiveSetting)
	return v, err
}

// saveArchiveCursor keeps the new position for loop to save once the
// packets queued before it are handled (and their sessions saved): a
// crash in between reads them from the archive again rather than losing
// them.
func (d *devices) saveArchiveCursor(v string) {
	d.inMu.Lock()
	if d.dropped {
		// Something the archive gave was dropped: keep the position
		// before it, so that the next catch-up reads it again.
		d.inMu.Unlock()
		return
	}
	d.cursor = &v
	d.inMu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// load restores the saved sessions, once.
func (d *devices) load(ctx context.Context) error {
	d.op.Lock()
	defer d.op.Unlock()
	if d.loaded {
		return nil
	}
	saved, err := d.a.st.DeviceSessions(ctx, d.a.acct.ID, d.a.key)
	if err != nil {
		return err
	}
	for _, ds := range saved {
		s, err := devchan.Unmarshal(ds.State)
		crypto.Zero(ds.State)
		if err != nil {
			d.a.log().Warn("a saved device session is unreadable; dropped", "peer", ds.Peer, "err", err)
			continue
		}
		x := &devSession{s: s, resource: ds.Resource, created: ds.Created, retired: ds.Retired}
		d.sessions[x.peer()] = append(d.sessions[x.peer()], x)
	}
	outboxes, err := d.a.st.DeviceOutboxes(ctx, d.a.acct.ID, d.a.key)
	if err != nil {
		return err
	}
	for _, ob := range outboxes {
		j, err := jid.Parse(ob.To)
		if err != nil || j.Resourcepart() == "" {
			continue
		}
		id := peerID{j.Bare().String(), devchan.DeviceID(ob.PeerDevice)}
		o := &outbox{to: ob.To}
		for _, p := range ob.Payloads {
			o.seq++
			o.payloads = append(o.payloads, queued{o.seq, p})
		}
		d.out[id] = o
		d.restored = append(d.restored, id)
	}
	d.loaded = true
	d.resumeKeySync(ctx)
	return nil
}

// keepOutbox saves what waits for device id (to, its full JID) so that
// it survives a restart; nil: nothing waits. Called with op held.
func (d *devices) keepOutbox(ctx context.Context, id peerID, to string, payloads []queued) error {
	ob := store.DeviceOutbox{To: to, PeerDevice: [8]byte(id.dev)}
	for _, q := range payloads {
		ob.Payloads = append(ob.Payloads, q.b)
	}
	err := d.a.st.SetDeviceOutbox(ctx, d.a.acct.ID, d.a.key, ob, nil)
	if err != nil {
		d.a.log().Warn("saving what waits for a device", "to", to, "err", err)
	}
	return err
}

// sendRestored starts over, after a restart, for the devices whose
// payloads waited for a session: sent over a session that can send, or
// after a new handshake.
func (d *devices) sendRestored(ctx context.Context) {
	d.op.Lock()
	ids := d.restored
	d.restored = nil
	d.op.Unlock()
	for _, id := range ids {
		d.op.Lock()
		o := d.out[id]
		d.op.Unlock()
		if o == nil {
			continue
		}
		if err := d.a.sendToDevice(ctx, o.to, nil, false); err != nil {
			d.a.log().Warn("sending what waited for a device", "to", o.to, "err", err)
		}
	}
}

// receive is xmpp.Config.OnDirect: it queues, never waits.
func (d *devices) receive(from string, payload []byte) {
	d.inMu.Lock()
	full := len(d.in) >= maxDirectQueue || d.inBytes+len(payload) > maxDirectBytes
	if !full {
		d.in = append(d.in, directIn{from: from, payload: payload})
		d.inBytes += len(payload)
	}
	d.inMu.Unlock()
	if full {
		d.inMu.Lock()
		d.dropped = true
		d.inMu.Unlock()
		d.a.log().Warn("device channel queue full: a packet dropped", "from", from)
		return
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// next takes the oldest packet received, if any.
func (d *devices) next() (directIn, bool) {
	d.inMu.Lock()
	defer d.inMu.Unlock()
	if len(d.in) == 0 {
		return directIn{}, false
	}
	m := d.in[0]
	d.in[0] = directIn{}
	d.in = d.in[1:]
	d.inBytes -= len(m.payload)
	return m, true
}

// loop handles what arrives until ctx ends, and tidies every 10 s.
func (d *devices) loop(ctx context.Context) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	defer func() {
		// What was opened and not saved yet is saved before the store
		// closes (App.Close waits for loop).
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.saveDirty(ctx)
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
			d.inMu.Lock()
			cursor := d.cursor // set after the packets queued before it
			d.cursor = nil
			if len(d.in) == 0 {
				d.dropped = false // the queue drained: new positions count again
			}
			d.inMu.Unlock()
			for n := 1; ctx.Err() == nil; n++ {
				m, ok := d.next()
				if !ok {
					break
				}
				d.handle(ctx, m.from, m.payload)
				if n%256 == 0 {
					d.saveDirty(ctx)
				}
			}
			d.saveDirty(ctx)
			if cursor != nil && ctx.Err() == nil {
				if err := d.a.st.SetSetting(ctx, d.a.acct.ID, archiveSetting, *cursor); err != nil {
					d.a.log().Warn("saving the archive position", "err", err)
				}
			}
		case <-tick.C:
			d.tidy(ctx, time.Now())
		}
	}
}

// tidy deletes sessions past their time (retired ones after
// retiredKeep, accepted ones never confirmed after confirmWait, our
// handshakes unanswered after responseWait, retrying what waits for
// them), forgets old rate-limit entries, and refills the keys when due.
func (d *devices) tidy(ctx context.Context, now time.Time) {
	d.op.Lock()
	var retry []peerID
	for id, list := range d.sessions {
		for _, ds := range slices.Clone(list) {
			expired := !ds.retired.IsZero() && now.Sub(ds.retired) > retiredKeep
			unconfirmed := ds.s.Role() == devchan.Responder && ds.s.State() == devchan.Established && now.Sub(ds.created) > confirmWait
			stale := ds.s.State() == devchan.AwaitResponse && now.Sub(ds.created) > responseWait
			if expired || unconfirmed || stale {
				d.forget(ctx, ds)
				if stale {
					if o := d.out[id]; o != nil {
						o.handshaking = false
						retry = append(retry, id)
					}
				}
			}
		}
	}
	for b, ts := range d.accepted {
		if ts = recent(ts, now); len(ts) == 0 {
			delete(d.accepted, b)
		} else {
			d.accepted[b] = ts
		}
	}
	d.acceptedAt = recent(d.acceptedAt, now)
	d.recoveries = recent(d.recoveries, now)
	for id, t := range d.recovered {
		if now.Sub(t) > recoverEvery {
			delete(d.recovered, id)
		}
	}
	refill := now.Sub(d.refilled) > refillEvery
	if refill {
		d.refilled = now
	}
	d.op.Unlock()
	for _, id := range retry {
		go d.retry(id)
	}
	if refill {
		go d.republish()
	}
	d.mu.Lock()
	for b, c := range d.lists {
		if now.Sub(c.at) > listTTL {
			delete(d.lists, b)
		}
	}
	d.mu.Unlock()
}

// recent keeps the times of the last minute.
func recent(ts []time.Time, now time.Time) []time.Time {
	return slices.DeleteFunc(ts, func(t time.Time) bool { return now.Sub(t) > time.Minute })
}

// saveDirty saves the sessions that opened packets since the last time.
func (d *devices) saveDirty(ctx context.Context) {
	d.op.Lock()
	defer d.op.Unlock()
	for ds := range d.dirty {
		d.save(ctx, ds)
	}
	clear(d.dirty)
}

// forget deletes a session, in memory and in the store.
func (d *devices) forget(ctx context.Context, ds *devSession) {
	delete(d.dirty, ds)
	id := ds.peer()
	d.sessions[id] = slices.DeleteFunc(d.sessions[id], func(x *devSession) bool { return x == ds })
	if len(d.sessions[id]) == 0 {
		delete(d.sessions, id)
	}
	h := ds.s.IDs()
	if err := d.a.st.DeleteDeviceSession(ctx, d.a.acct.ID, id.dev, h.InitKey, h.RespKey); err != nil {
		d.a.log().Warn("deleting a device session", "err", err)
	}
}

// add keeps a new session, dropping the oldest beyond maxPeerSessions.
func (d *devices) add(ctx context.Context, ds *devSession) {
	id := ds.peer()
	d.sessions[id] = append(d.sessions[id], ds)
	for len(d.sessions[id]) > maxPeerSessions {
		d.forget(ctx, d.sessions[id][0])
	}
	d.save(ctx, ds)
}

func (d *devices) save(ctx context.Context, ds *devSession) {
	p := ds.s.Peer()
	h := ds.s.IDs()
	state := ds.s.Marshal()
	defer crypto.Zero(state)
	err := d.a.st.SaveDeviceSession(ctx, d.a.acct.ID, d.a.key, store.DeviceSession{Peer: p.Account, Resource: ds.resource, PeerDevice: p.Device,
		InitKey: h.InitKey, RespKey: h.RespKey, State: state, Created: ds.created, Retired: ds.retired}, nil)
	if err != nil {
		d.a.log().Warn("saving a device session", "peer", p.Account, "err", err)
	}
}

func (d *devices) send(ctx context.Context, to string, p []byte) error {
	d.a.xmu.Lock()
	xa := d.a.xa
	d.a.xmu.Unlock()
	if xa == nil {
		return errors.New("app: not connected")
	}
	return xa.SendDirect(ctx, to, p)
}

// handle deals with one packet from device from (a full JID).
func (d *devices) handle(ctx context.Context, from string, p []byte) {
	h, _, err := devchan.ParseHeader(p)
	if err != nil || h.To != d.local.Device {
		d.a.log().Debug("device channel packet dropped", "from", from, "err", err)
		return
	}
	fj, err := jid.Parse(from)
	if err != nil || fj.Resourcepart() == "" {
		return
	}
	switch h.Type {
	case devchan.TypeRequest:
		d.onRequest(ctx, fj, p, false)
	case devchan.TypeResponse:
		d.op.Lock()
		d.onResponse(ctx, fj, h, p)
		d.op.Unlock()
	case devchan.TypeData:
		d.op.Lock()
		d.onData(ctx, fj, h, p)
		d.op.Unlock()
	}
}

// allowRequest applies the request rate limits (d.op held).
func (d *devices) allowRequest(bare string, now time.Time) bool {
	d.accepted[bare] = recent(d.accepted[bare], now)
	d.acceptedAt = recent(d.acceptedAt, now)
	if len(d.accepted[bare]) >= maxRequestsPerMinute || len(d.acceptedAt) >= maxRequestsTotal {
		return false
	}
	d.accepted[bare] = append(d.accepted[bare], now)
	d.acceptedAt = append(d.acceptedAt, now)
	return true
}

func (d *devices) onRequest(ctx context.Context, from jid.JID, p []byte, late bool) {
	req, err := devchan.ParseRequest(p, d.local.Device)
	if err != nil {
		d.a.log().Debug("device channel request dropped", "from", from, "err", err)
		return
	}
	bare := from.Bare().String()
	id := peerID{bare, req.From}
	d.op.Lock()
	replay := d.find(id, req.Header) != nil
	allowed := !replay && (late || d.allowRequest(bare, time.Now())) // a held one was counted once
	d.op.Unlock()
	if replay {
		return // a copy (the archive's, a server's replay) of a request we answered
	}
	if !allowed {
		d.a.log().Warn("device channel requests over the rate: dropped", "from", bare)
		return
	}
	// The sender must be the device its account lists at that resource,
	// with the key the request carries: the list's entries are signed for
	// the account, so nobody else can claim the device.
	dev, err := d.published(ctx, from)
	if errors.Is(err, errNoDevice) && !late && d.holdBack(from, p) {
		return
	}
	if err != nil || dev.ID != xmpp.DeviceID(req.From) || dev.Key != req.Identity {
		d.a.log().Warn("device channel request from a device its account does not list with that key: dropped", "from", from, "err", err)
		return
	}
	peer := devchan.Party{Account: bare, Device: req.From, Identity: req.Identity}
	created := time.Now()
	d.op.Lock()
	defer d.op.Unlock()
	var s *devchan.Session
	var resp []byte
	err = d.a.st.AcceptDeviceChannel(ctx, d.a.acct.ID, d.a.key, req.Digest, func(scalar [32]byte) (store.DeviceSession, error) {
		ek, err := primitive.NewX25519Key(scalar)
		if err != nil {
			return store.DeviceSession{}, err
		}
		defer ek.Zero()
		s, resp, err = devchan.Accept(d.local, d.a.key, peer, req, ek)
		if err != nil {
			return store.DeviceSession{}, err
		}
		return store.DeviceSession{Peer: bare, Resource: from.Resourcepart(), PeerDevice: req.From, InitKey: req.InitKey, RespKey: req.RespKey,
			State: s.Marshal(), Created: created}, nil
	}, nil)
	switch {
	case errors.Is(err, store.ErrReplayed):
		return
	case errors.Is(err, store.ErrNotFound):
		resp = devchan.Refuse(d.local.Device, req)
	case err != nil:
		d.a.log().Warn("accepting a device channel", "from", from, "err", err)
		return
	default:
		d.mu.Lock()
		oneTime := req.Digest != d.lr.Digest
		d.mu.Unlock()
		ds := &devSession{s: s, resource: from.Resourcepart(), created: created, oneTime: oneTime}
		d.sessions[id] = append(d.sessions[id], ds)
		for len(d.sessions[id]) > maxPeerSessions {
			d.forget(ctx, d.sessions[id][0])
		}
		go d.republish() // the spent key leaves the bundle
	}
	if err := d.send(ctx, from.String(), resp); err != nil {
		d.a.log().Warn("answering a device channel request", "to", from, "err", err)
	}
}

// holdBack looks at a request again after listLag, once: its sender
// may not be in its account's list yet. It reports whether it did.
func (d *devices) holdBack(from jid.JID, p []byte) bool {
	bare := from.Bare().String()
	d.op.Lock()
	defer d.op.Unlock()
	total := 0
	for _, n := range d.late {
		total += n
	}
	if d.closed || total >= maxLate || d.late[bare] >= maxLatePerAccount {
		return false
	}
	d.late[bare]++
	d.mu.Lock()
	delete(d.lists, bare) // fetch it afresh then
	d.mu.Unlock()
	var t *time.Timer
	t = time.AfterFunc(listLag, func() {
		d.op.Lock()
		delete(d.timers, t)
		if d.late[bare]--; d.late[bare] <= 0 {
			delete(d.late, bare)
		}
		closed := d.closed
		d.op.Unlock()
		if closed {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		d.onRequest(ctx, from, p, true)
	})
	d.timers[t] = true
	return true
}

// stop stops the held-back requests' timers (App.Close, before the store
// closes). A timer that fired already may still run its request; it
// finds the connection closed.
func (d *devices) stop() {
	d.op.Lock()
	defer d.op.Unlock()
	d.closed = true
	for t := range d.timers {
		t.Stop()
	}
	clear(d.timers)
	for _, v := range d.verifs {
		d.endVerification(v)
	}
	if d.ks != nil && d.ks.timer != nil {
		d.ks.timer.Stop()
	}
}

// republish refills the keys and publishes the bundle again.
func (d *devices) republish() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.refill(ctx); err != nil {
		d.a.log().Warn("refilling the device channel keys", "err", err)
		return
	}
	d.a.xmu.Lock()
	xa := d.a.xa
	d.a.xmu.Unlock()
	if xa != nil {
		if err := xa.PublishBundle(ctx); err != nil {
			d.a.log().Warn("publishing the bundle", "err", err)
		}
	}
}

// find returns the session with the key ids of h.
func (d *devices) find(id peerID, h devchan.Header) *devSession {
	for _, ds := range d.sessions[id] {
		if ids := ds.s.IDs(); ids.InitKey == h.InitKey && ids.RespKey == h.RespKey {
			return ds
		}
	}
	return nil
}

// retireFor takes out of sending the sessions that ds, now usable,
// replaces: when the other side began ds (it lost or renews the
// others), every other one except one we began within simultaneous of it
// and heard nothing on (both sides began at once: the tie-break of usable
// picks the same of the two on both sides); when we began it, those
// begun more than simultaneous before it.
func (d *devices) retireFor(ctx context.Context, ds *devSession) {
	now := time.Now()
	for _, o := range d.sessions[ds.peer()] {
		if o == ds || !o.retired.IsZero() {
			continue
		}
		var replaced bool
		if ds.s.Role() == devchan.Responder {
			simultaneousOurs := o.s.Role() == devchan.Initiator && !o.s.Received() && absDur(ds.created.Sub(o.created)) <= simultaneous
			replaced = !simultaneousOurs
		} else {
			replaced = ds.created.Sub(o.created) > simultaneous
		}
		if replaced {
			o.retired = now
			d.save(ctx, o)
		}
	}
}

func absDur(x time.Duration) time.Duration {
	if x < 0 {
		return -x
	}
	return x
}

func (d *devices) onResponse(ctx context.Context, from jid.JID, h devchan.Header, p []byte) {
	id := peerID{from.Bare().String(), h.From}
	ds := d.find(id, h)
	if ds == nil || ds.s.Role() != devchan.Initiator || from.String() != ds.fullJID() {
		return
	}
	err := ds.s.HandleResponse(p, d.a.key)
	switch {
	case errors.Is(err, devchan.ErrRefused), errors.Is(err, devchan.ErrAuth):
		d.a.log().Warn("device channel handshake failed", "with", from, "err", err)
		if v := d.verifyFor(ds); v != nil {
			d.verifyFailed(v, false, fmt.Errorf("the handshake failed: %w", err))
		}
		d.forget(ctx, ds)
		if o := d.out[id]; o != nil {
			o.handshaking = false
			go d.retry(id)
		}
		return
	case err != nil:
		d.a.log().Debug("device channel response dropped", "from", from, "err", err)
		return
	}
	d.save(ctx, ds)
	d.retireFor(ctx, ds)
	o := d.out[id]
	if o != nil {
		o.handshaking = false
	}
	// An empty packet carries our confirmation at once, so that the
	// responder takes the session into use whatever carries the payloads
	// (the tie-break may pick another session).
	if pkt, err := ds.s.Seal(nil); err == nil {
		d.save(ctx, ds)
		if err := d.send(ctx, ds.fullJID(), pkt); err != nil {
			d.a.log().Warn("confirming a device channel", "to", from, "err", err)
		}
	}
	d.verifyReady(ctx, ds)
	d.ksReady(ctx, ds)
	if best := d.usable(id); best != nil {
		d.flush(ctx, id, best)
	}
}

// retry starts another handshake for a device whose outbox waits.
func (d *devices) retry(id peerID) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d.op.Lock()
	o := d.out[id]
	d.op.Unlock()
	if o == nil {
		return
	}
	if err := d.a.sendToDevice(ctx, o.to, nil, true); err != nil {
		d.a.log().Warn("device channel retry", "to", o.to, "err", err)
	}
}

// flush sends what waits for id over ds.
func (d *devices) flush(ctx context.Context, id peerID, ds *devSession) {
	o := d.out[id]
	if o == nil || o.handshaking {
		return
	}
	delete(d.out, id)
	d.keepOutbox(ctx, id, o.to, nil)
	for _, pl := range o.payloads {
		pkt, err := ds.s.Seal(pl.b)
		if err != nil {
			d.a.log().Warn("sealing for a device", "to", o.to, "err", err)
			continue
		}
		d.save(ctx, ds) // the key used is gone before the packet leaves
		if err := d.send(ctx, ds.fullJID(), pkt); err != nil {
			d.a.log().Warn("sending to a device", "to", o.to, "err", err)
		}
	}
}

func (d *devices) onData(ctx context.Context, from jid.JID, h devchan.Header, p []byte) {
	id := peerID{from.Bare().String(), h.From}
	ds := d.find(id, h)
	if ds == nil {
		d.recover(from, id)
		return
	}
	if from.String() != ds.fullJID() {
		return // another resource of the account: not the device the session is with
	}
	was := ds.s.State()
	pl, err := ds.s.Open(p)
	if err != nil {
		d.a.log().Debug("device channel data refused", "from", from, "err", err)
		return
	}
	// Saved once the queue is drained (loop), not per packet: a catch-up
	// delivers hundreds at once. (What we seal is saved before it leaves.)
	d.dirty[ds] = true
	if was == devchan.Established && ds.s.State() == devchan.Confirmed && ds.s.Role() == devchan.Responder {
		// The initiator proved itself: the session takes over from the
		// ones it replaces, and carries what waits.
		d.retireFor(ctx, ds)
		if best := d.usable(id); best != nil {
			d.flush(ctx, id, best)
		}
	}
	if len(pl) == 0 {
		return // a confirmation only
	}
	switch rootNamespace(pl) {
	case nsEnvelope:
		d.onTrustMessage(ds, pl)
		return
	case nsVerify:
		d.onVerify(ctx, ds, pl)
		return
	case keysync.Namespace:
		d.onKeySync(ctx, ds, pl)
		return
	case nsArchiveKeys:
		d.onArchiveKeys(ds, pl)
		return
	}
	d.a.q.push(Event{Kind: EventDevice, Device: ds.fullJID(), Payload: pl})
}

// recover begins a new handshake with a device that sent data for a
// session we do not have (it kept one we lost), within the rate limits;
// sendToDevice checks that the device is the one its account lists at
// that resource before anything is sent.
func (d *devices) recover(from jid.JID, id peerID) {
	now := time.Now()
	d.recoveries = recent(d.recoveries, now)
	if now.Sub(d.recovered[id]) <= recoverEvery || len(d.recoveries) >= maxRecoveries {
		return
	}
	d.recovered[id] = now
	d.recoveries = append(d.recoveries, now)
	d.a.log().Info("device channel data for a session we do not have: starting a new one", "from", from)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		dev, err := d.published(ctx, from)
		if err != nil || devchan.DeviceID(dev.ID) != id.dev {
			return
		}
		if err := d.a.sendToDevice(ctx, from.String(), nil, true); err != nil {
			d.a.log().Warn("device channel recovery", "with", from, "err", err)
		}
	}()
}

// usable returns the session to send to id with, among the sendable
// ones: the newest, except that of two begun within simultaneous of each
// other, the one begun by the smaller device id (both sides then pick the
// same; the other still decrypts).
func (d *devices) usable(id peerID) *devSession {
	var best *devSession
	for _, ds := range d.sessions[id] {
		if ds.sendable() && (best == nil || preferred(ds, best, d.local)) {
			best = ds
		}
	}
	return best
}

// handshaking reports whether a handshake of ours with id is under way.
func (d *devices) handshaking(id peerID) bool {
	for _, ds := range d.sessions[id] {
		if ds.s.State() == devchan.AwaitResponse {
			return true
		}
	}
	return d.out[id] != nil && d.out[id].handshaking
}

// preferred reports whether session a is to be used rather than b.
func preferred(a, b *devSession, local devchan.Party) bool {
	gap := a.created.Sub(b.created)
	if gap > simultaneous || gap < -simultaneous {
		return gap > 0
	}
	return initiator(a.s, local) < initiator(b.s, local)
}

// initiator is the device id of a session's initiator, as a string to
// compare.
func initiator(s *devchan.Session, local devchan.Party) string {
	if s.Role() == devchan.Initiator {
		return string(local.Device[:])
	}
	p := s.Peer().Device
	return string(p[:])
}

// published finds device to (a full JID) in its account's published
// device list (fetched at most every listTTL, or again when the resource
// is not in it).
func (d *devices) published(ctx context.Context, to jid.JID) (xmpp.Device, error) {
	bare := to.Bare().String()
	d.mu.Lock()
	c, ok := d.lists[bare]
	d.mu.Unlock()
	if !ok || time.Since(c.at) > listTTL || !slices.ContainsFunc(c.devices, func(x xmpp.Device) bool { return x.Resource == to.Resourcepart() }) {
		ds, err := d.a.PublishedDevices(ctx, bare)
		if err != nil {
			return xmpp.Device{}, err
		}
		c = cachedList{ds, time.Now()}
		d.mu.Lock()
		d.lists[bare] = c
		d.mu.Unlock()
	}
	for _, x := range c.devices {
		if x.Resource == to.Resourcepart() {
			return x, nil
		}
	}
	return xmpp.Device{}, fmt.Errorf("%w: %s", errNoDevice, to)
}

// SendToDevice sends payload (1 byte to 32 KiB) to one device, by its
// full JID, over the device channel: end-to-end encrypted and
// authenticated for that device's identity key as its account publishes
// it (whether to trust that key is the trust store's question, as in
// rooms). The first payload to a device waits for a handshake (tried
// again with other keys, three times in all); a session is replaced by a
// new handshake after a week or 10,000 payloads. The device receives it
// as an EventDevice. What waits for a handshake is kept in the store and
// sent after a restart, once the account connects. It fails when the
// device is not in its account's published device list; a device that
// does not answer the handshake makes the payloads that wait for it fail
// silently after three tries (logged).
func (a *App) SendToDevice(ctx context.Context, to string, payload []byte) error {
	if len(payload) == 0 {
		return errors.New("app: an empty device payload")
	}
	return a.sendToDevice(ctx, to, payload, false)
}

// sendToDevice is SendToDevice; a nil payload sends nothing, and force
// begins a new handshake even when a session can send.
func (a *App) sendToDevice(ctx context.Context, to string, payload []byte, force bool) error {
	if len(payload) > devchan.MaxPlaintext {
		return fmt.Errorf("app: a device payload of %d bytes, more than %d", len(payload), devchan.MaxPlaintext)
	}
	a.dev.op.Lock()
	closed := a.dev.closed
	a.dev.op.Unlock()
	if closed {
		return errClosed
	}
	xa, err := a.account(ctx)
	if err != nil {
		return err
	}
	d := a.dev
	j, err := jid.Parse(to)
	if err != nil || j.Resourcepart() == "" {
		return fmt.Errorf("app: %q is not a device's full JID", to)
	}
	dev, err := d.published(ctx, j)
	if err != nil {
		return err
	}
	id := peerID{j.Bare().String(), devchan.DeviceID(dev.ID)}
	d.op.Lock()
	if best := d.usable(id); best != nil && !force {
		defer d.op.Unlock()
		if time.Since(best.created) > rotateAge || best.s.Sent() > rotateCount {
			if !d.handshaking(id) {
				go func() { // a new session replaces it once established
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					if err := a.sendToDevice(ctx, to, nil, true); err != nil {
						a.log().Warn("renewing a device session", "with", to, "err", err)
					}
				}()
			}
		}
		// What waits for a handshake goes first: payloads keep their
		// order per device, whichever session carries them.
		d.flush(ctx, id, best)
		if payload == nil {
			return nil
		}
		pkt, err := best.s.Seal(payload)
		if err != nil {
			return err
		}
		d.save(ctx, best)
		return d.send(ctx, best.fullJID(), pkt)
	}
	o := d.out[id]
	if o == nil {
		o = &outbox{to: j.String()}
		d.out[id] = o
	}
	var mine uint64 // this call's payload in the outbox, 0 if none
	if payload != nil {
		if len(o.payloads) >= maxOutbox {
			d.op.Unlock()
			return fmt.Errorf("app: %d payloads already wait for %s", maxOutbox, to)
		}
		o.seq++
		mine = o.seq
		o.payloads = append(o.payloads, queued{mine, slices.Clone(payload)})
		if err := d.keepOutbox(ctx, id, o.to, o.payloads); err != nil {
			o.payloads = o.payloads[:len(o.payloads)-1]
			d.op.Unlock()
			return err
		}
	}
	if d.handshaking(id) {
		d.op.Unlock()
		return nil // the handshake under way carries it
	}
	if o.attempts >= maxAttempts {
		delete(d.out, id)
		d.keepOutbox(ctx, id, o.to, nil)
		d.op.Unlock()
		return fmt.Errorf("app: no device channel with %s after %d attempts", to, maxAttempts)
	}
	o.attempts++
	o.handshaking = true // other senders queue behind this handshake
	d.op.Unlock()

	// An error means this payload was not queued: the caller may send it
	// again without it arriving twice.
	fail := func(err error) error {
		d.op.Lock()
		o.handshaking = false
		if mine != 0 {
			o.payloads = slices.DeleteFunc(o.payloads, func(q queued) bool { return q.n == mine })
			d.keepOutbox(ctx, id, o.to, o.payloads)
		}
		others := len(o.payloads) > 0 && o.attempts < maxAttempts
		d.op.Unlock()
		if others {
			// Payloads of other calls wait for this handshake: try again
			// for them (bounded by maxAttempts).
			go func() {
				time.Sleep(listLag)
				d.retry(id)
			}()
		}
		return err
	}
	b, err := xa.Bundle(ctx, j.Bare().String(), dev.ID)
	if err != nil || b == nil {
		return fail(fmt.Errorf("app: the bundle of %s: %v", to, err))
	}
	digest := b.LastResort.Digest
	if n := len(b.OneTimeKeys); n > 0 {
		digest = b.OneTimeKeys[rand.IntN(n)].Digest
	} else if b.LastResort.ID == [8]byte{} {
		return fail(fmt.Errorf("app: %s publishes no key to start a device channel with", to))
	}
	peer := devchan.Party{Account: id.account, Device: id.dev, Identity: dev.Key}
	s, req, err := devchan.Initiate(d.local, a.key, peer, digest, nil)
	if err != nil {
		return fail(err)
	}
	ds := &devSession{s: s, resource: j.Resourcepart(), created: time.Now()}
	d.op.Lock()
	o.handshaking = false // the session in AwaitResponse says it now
	d.add(ctx, ds)
	d.op.Unlock()
	if err := d.send(ctx, j.String(), req); err != nil {
		// The payload is queued: the request goes again after
		// responseWait (tidy).
		a.log().Warn("sending a device channel request", "to", to, "err", err)
	}
	return nil
}
