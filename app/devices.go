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
	"github.com/mpenc/mpenc/internal/devchan"
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
	// maxDirectQueue bounds the device channel packets waiting to be
	// handled; more are dropped (the peer's own retries cover a loss).
	maxDirectQueue = 256
	// maxRequestsPerMinute bounds the requests accepted from one account
	// per minute: each spends a one-time key.
	maxRequestsPerMinute = 10
	// maxOutbox bounds the payloads waiting for a session with one device.
	maxOutbox = 100
	// maxAttempts bounds the requests sent to one device for one outbox
	// (a refused key makes another attempt with another digest).
	maxAttempts = 3
	// listTTL is how long a fetched device list is used.
	listTTL = 5 * time.Minute
	// responseWait is how long a request waits for its response before
	// another attempt (the responder may have spent the key and crashed
	// before answering, or the packet was lost).
	responseWait = 60 * time.Second
	// simultaneous: two sessions with one device begun within this of
	// each other were started by both sides at once; the one begun by
	// the smaller device id is used (the tie-break). Otherwise the newer
	// one replaces the older for sending.
	simultaneous = 60 * time.Second
	// retiredKeep is how long a replaced session still decrypts (packets
	// already on their way), before its keys are deleted.
	retiredKeep = time.Hour
	// rotateAge and rotateCount: a session older, or that sent more, is
	// replaced by a new handshake (forward secrecy beyond the ratchet's:
	// the identity keys' part of a session key is renewed).
	rotateAge   = 7 * 24 * time.Hour
	rotateCount = 10000
	// recoverEvery bounds the new handshakes started because a device
	// sent data for a session we do not have (it has one we lost).
	recoverEvery = time.Minute
)

// errNoDevice: SendToDevice found no such device in its account's
// published device list.
var errNoDevice = errors.New("app: no such device in its account's published device list")

type directIn struct {
	from    string
	payload []byte
}

type outbox struct {
	to       string // the device's full JID
	payloads [][]byte
	attempts int
}

// devSession is one session with its times: Created orders sessions with
// one device; Retired (not zero) takes it out of sending.
type devSession struct {
	s       *devchan.Session
	created time.Time
	retired time.Time
}

type cachedList struct {
	devices []xmpp.Device
	at      time.Time
}

// devices runs the account's device channel. One goroutine (loop)
// handles what arrives; SendToDevice runs on the caller's. op serialises
// both over the sessions.
type devices struct {
	a     *App
	local devchan.Party
	in    chan directIn

	op        sync.Mutex // held while a packet or a send is handled
	sessions  map[devchan.DeviceID][]*devSession
	out       map[devchan.DeviceID]*outbox
	accepted  map[string][]time.Time // bare JID → acceptances in the last minute
	recovered map[devchan.DeviceID]time.Time

	mu      sync.Mutex // guards the fields below
	oneTime []xmpp.KeyDigest
	lr      xmpp.KeyDigest
	lists   map[string]cachedList
}

func newDevices(a *App) *devices {
	fp := trust.FingerprintOf(a.key.Public())
	return &devices{
		a:         a,
		local:     devchan.Party{Account: a.acct.JID, Device: devchan.DeviceID(fp[:8]), Identity: a.key.Public()},
		in:        make(chan directIn, maxDirectQueue),
		sessions:  map[devchan.DeviceID][]*devSession{},
		out:       map[devchan.DeviceID]*outbox{},
		accepted:  map[string][]time.Time{},
		recovered: map[devchan.DeviceID]time.Time{},
		lists:     map[string]cachedList{},
	}
}

// refill tops up the one-time keys in the store and keeps their digests
// for the bundle.
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

// load restores the saved sessions.
func (d *devices) load(ctx context.Context) error {
	saved, err := d.a.st.DeviceSessions(ctx, d.a.acct.ID, d.a.key)
	if err != nil {
		return err
	}
	d.op.Lock()
	defer d.op.Unlock()
	for _, ds := range saved {
		s, err := devchan.Unmarshal(ds.State)
		if err != nil {
			d.a.log().Warn("a saved device session is unreadable; dropped", "peer", ds.Peer, "err", err)
			continue
		}
		d.sessions[s.Peer().Device] = append(d.sessions[s.Peer().Device], &devSession{s: s, created: ds.Created, retired: ds.Retired})
	}
	return nil
}

// receive is xmpp.Config.OnDirect: it queues, never waits.
func (d *devices) receive(from string, payload []byte) {
	select {
	case d.in <- directIn{from, payload}:
	default:
		d.a.log().Warn("device channel queue full: a packet dropped", "from", from)
	}
}

// loop handles what arrives until ctx ends.
func (d *devices) loop(ctx context.Context) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-d.in:
			d.handle(ctx, m.from, m.payload)
		case <-tick.C:
			d.tidy(ctx, time.Now())
		}
	}
}

// tidy deletes retired sessions past retiredKeep, and handshakes that
// waited past responseWait (retrying what waits for them).
func (d *devices) tidy(ctx context.Context, now time.Time) {
	d.op.Lock()
	var retry []devchan.DeviceID
	for dev, list := range d.sessions {
		for _, ds := range list {
			expired := !ds.retired.IsZero() && now.Sub(ds.retired) > retiredKeep
			stale := ds.s.State() == devchan.AwaitResponse && now.Sub(ds.created) > responseWait
			if expired || stale {
				d.forget(ctx, ds)
				if stale && d.out[dev] != nil {
					retry = append(retry, dev)
				}
			}
		}
	}
	d.op.Unlock()
	for _, dev := range retry {
		go d.retry(dev)
	}
}

// forget deletes a session, in memory and in the store.
func (d *devices) forget(ctx context.Context, ds *devSession) {
	dev := ds.s.Peer().Device
	d.sessions[dev] = slices.DeleteFunc(d.sessions[dev], func(x *devSession) bool { return x == ds })
	if len(d.sessions[dev]) == 0 {
		delete(d.sessions, dev)
	}
	h := ds.s.IDs()
	if err := d.a.st.DeleteDeviceSession(ctx, d.a.acct.ID, dev, h.InitKey, h.RespKey); err != nil {
		d.a.log().Warn("deleting a device session", "err", err)
	}
}

func (d *devices) save(ctx context.Context, ds *devSession) {
	p := ds.s.Peer()
	h := ds.s.IDs()
	err := d.a.st.SaveDeviceSession(ctx, d.a.acct.ID, d.a.key, store.DeviceSession{Peer: p.Account, PeerDevice: p.Device, InitKey: h.InitKey, RespKey: h.RespKey,
		State: ds.s.Marshal(), Created: ds.created, Retired: ds.retired}, nil)
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
	d.op.Lock()
	defer d.op.Unlock()
	switch h.Type {
	case devchan.TypeRequest:
		d.onRequest(ctx, from, p)
	case devchan.TypeResponse:
		d.onResponse(ctx, from, h, p)
	case devchan.TypeData:
		d.onData(ctx, from, h, p)
	}
}

func (d *devices) onRequest(ctx context.Context, from string, p []byte) {
	req, err := devchan.ParseRequest(p, d.local.Device)
	if err != nil {
		d.a.log().Debug("device channel request dropped", "from", from, "err", err)
		return
	}
	fp := trust.FingerprintOf(req.Identity)
	if devchan.DeviceID(fp[:8]) != req.From {
		d.a.log().Debug("device channel request dropped: the device id is not its key's", "from", from)
		return
	}
	bare := trust.Bare(from)
	now := time.Now()
	recent := slices.DeleteFunc(d.accepted[bare], func(t time.Time) bool { return now.Sub(t) > time.Minute })
	if len(recent) >= maxRequestsPerMinute {
		d.accepted[bare] = recent
		d.a.log().Warn("device channel requests from one account over the rate: dropped", "from", bare)
		return
	}
	d.accepted[bare] = append(recent, now)
	peer := devchan.Party{Account: bare, Device: req.From, Identity: req.Identity}
	var s *devchan.Session
	var resp []byte
	created := time.Now()
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
		return store.DeviceSession{Peer: bare, PeerDevice: req.From, InitKey: req.InitKey, RespKey: req.RespKey, State: s.Marshal(), Created: created}, nil
	}, nil)
	switch {
	case errors.Is(err, store.ErrNotFound):
		resp = devchan.Refuse(d.local.Device, req)
	case err != nil:
		d.a.log().Warn("accepting a device channel", "from", from, "err", err)
		return
	default:
		ds := &devSession{s: s, created: created}
		d.sessions[req.From] = append(d.sessions[req.From], ds)
		d.retireForRequest(ctx, ds)
		go d.republish() // the spent key leaves the bundle
	}
	if err := d.send(ctx, from, resp); err != nil {
		d.a.log().Warn("answering a device channel request", "to", from, "err", err)
	}
	// Payloads waiting for our own handshake with that device need not
	// wait any more.
	if best, _ := d.usable(req.From); best != nil {
		d.flush(ctx, req.From, best)
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

// find returns the session of device dev with the key ids of h.
func (d *devices) find(dev devchan.DeviceID, h devchan.Header) *devSession {
	for _, ds := range d.sessions[dev] {
		if ids := ds.s.IDs(); ids.InitKey == h.InitKey && ids.RespKey == h.RespKey {
			return ds
		}
	}
	return nil
}

// retireForRequest takes out of sending every other session with the
// device that just sent us a request, which it means to replace (it lost
// them, or renews them), except one we began ourselves moments ago and
// have heard nothing on: both sides began at once, and the tie-break of
// usable picks the same of the two on both sides.
func (d *devices) retireForRequest(ctx context.Context, ds *devSession) {
	now := time.Now()
	for _, o := range d.sessions[ds.s.Peer().Device] {
		simultaneousOurs := o.s.Role() == devchan.Initiator && !o.s.Received() && ds.created.Sub(o.created) <= simultaneous
		if o != ds && o.retired.IsZero() && !simultaneousOurs {
			o.retired = now
			d.save(ctx, o)
		}
	}
}

// retireOlder takes the sessions with ds's device that ds replaces out of
// sending: those begun more than simultaneous before it. (One begun by
// the other side at the same time stays: the tie-break picks one of the
// two, the same on both sides.)
func (d *devices) retireOlder(ctx context.Context, ds *devSession) {
	now := time.Now()
	for _, o := range d.sessions[ds.s.Peer().Device] {
		if o != ds && o.retired.IsZero() && ds.created.Sub(o.created) > simultaneous {
			o.retired = now
			d.save(ctx, o)
		}
	}
}

func (d *devices) onResponse(ctx context.Context, from string, h devchan.Header, p []byte) {
	ds := d.find(h.From, h)
	if ds == nil || ds.s.Role() != devchan.Initiator || trust.Bare(from) != ds.s.Peer().Account {
		return
	}
	err := ds.s.HandleResponse(p, d.a.key)
	switch {
	case errors.Is(err, devchan.ErrRefused), errors.Is(err, devchan.ErrAuth):
		d.a.log().Warn("device channel handshake failed", "with", from, "err", err)
		d.forget(ctx, ds)
		if o := d.out[h.From]; o != nil {
			go d.retry(h.From)
		}
		return
	case err != nil:
		d.a.log().Debug("device channel response dropped", "from", from, "err", err)
		return
	}
	d.save(ctx, ds)
	d.retireOlder(ctx, ds)
	if best, _ := d.usable(h.From); best != nil {
		d.flush(ctx, h.From, best)
	}
}

// retry starts another handshake for a device whose outbox waits.
func (d *devices) retry(dev devchan.DeviceID) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d.op.Lock()
	o := d.out[dev]
	d.op.Unlock()
	if o == nil {
		return
	}
	if err := d.a.sendToDevice(ctx, o.to, nil, true); err != nil {
		d.a.log().Warn("device channel retry", "to", o.to, "err", err)
	}
}

// flush sends what waits for dev over s.
func (d *devices) flush(ctx context.Context, dev devchan.DeviceID, ds *devSession) {
	o := d.out[dev]
	if o == nil {
		return
	}
	delete(d.out, dev)
	for _, pl := range o.payloads {
		pkt, err := ds.s.Seal(pl)
		if err != nil {
			d.a.log().Warn("sealing for a device", "to", o.to, "err", err)
			continue
		}
		d.save(ctx, ds) // the key used is gone before the packet leaves
		if err := d.send(ctx, o.to, pkt); err != nil {
			d.a.log().Warn("sending to a device", "to", o.to, "err", err)
		}
	}
}

func (d *devices) onData(ctx context.Context, from string, h devchan.Header, p []byte) {
	ds := d.find(h.From, h)
	if ds == nil {
		// The device has a session we do not (we lost ours): a new
		// handshake, at most every recoverEvery per device; what it sent
		// on the lost session is lost.
		if now := time.Now(); now.Sub(d.recovered[h.From]) > recoverEvery {
			d.recovered[h.From] = now
			d.a.log().Info("device channel data for a session we do not have: starting a new one", "from", from)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := d.a.sendToDevice(ctx, from, nil, true); err != nil {
					d.a.log().Warn("device channel recovery", "with", from, "err", err)
				}
			}()
		}
		return
	}
	if trust.Bare(from) != ds.s.Peer().Account {
		return
	}
	pl, err := ds.s.Open(p)
	if err != nil {
		d.a.log().Debug("device channel data refused", "from", from, "err", err)
		return
	}
	d.save(ctx, ds)
	d.a.q.push(Event{Kind: EventDevice, Device: from, Payload: pl})
}

// usable returns the session to send to dev with, among those not
// retired and established: the newest, except that of two begun within
// simultaneous of each other, the one begun by the smaller device id
// (both sides then pick the same; the other still decrypts). pending
// reports a handshake of ours under way.
func (d *devices) usable(dev devchan.DeviceID) (best *devSession, pending bool) {
	for _, ds := range d.sessions[dev] {
		switch {
		case !ds.retired.IsZero():
		case ds.s.State() == devchan.AwaitResponse:
			pending = true
		case ds.s.State() == devchan.Established, ds.s.State() == devchan.Confirmed:
			if best == nil || preferred(ds, best, d.local) {
				best = ds
			}
		}
	}
	return best, pending
}

// preferred reports whether session a is to be used rather than b.
func preferred(a, b *devSession, local devchan.Party) bool {
	gap := a.created.Sub(b.created)
	if gap > simultaneous || gap < -simultaneous {
		return gap > 0
	}
	return initiator(a.s, local) < initiator(b.s, local)
}

// published finds device to (a full JID) in its account's published
// device list (fetched at most every listTTL).
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

// SendToDevice sends payload (at most 32 KiB) to one device, by its full
// JID, over the device channel: end-to-end encrypted and authenticated
// for that device's identity key as its account publishes it (whether to
// trust that key is the trust store's question, as in rooms). The first
// payload to a device waits for a handshake (retried with other keys, up
// to three times); a session is replaced by a new handshake after a week
// or 10,000 payloads. The device receives it as an EventDevice. It fails
// when the device is not in its account's published device list, and
// when the device does not answer (it must be online, or its server
// must keep messages for it).
func (a *App) SendToDevice(ctx context.Context, to string, payload []byte) error {
	if payload == nil {
		payload = []byte{}
	}
	return a.sendToDevice(ctx, to, payload, false)
}

// sendToDevice is SendToDevice; a nil payload sends nothing, and force
// starts a new handshake even when a session can send.
func (a *App) sendToDevice(ctx context.Context, to string, payload []byte, force bool) error {
	if len(payload) > devchan.MaxPlaintext {
		return fmt.Errorf("app: a device payload of %d bytes, more than %d", len(payload), devchan.MaxPlaintext)
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
	id := devchan.DeviceID(dev.ID)
	d.op.Lock()
	best, pending := d.usable(id)
	if best != nil && !force {
		defer d.op.Unlock()
		old := time.Since(best.created) > rotateAge || best.s.Sent() > rotateCount
		if old && !pending {
			go func() { // a new session replaces it once established
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := a.sendToDevice(ctx, to, nil, true); err != nil {
					a.log().Warn("renewing a device session", "with", to, "err", err)
				}
			}()
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
		return d.send(ctx, j.String(), pkt)
	}
	o := d.out[id]
	if payload != nil {
		if o == nil {
			o = &outbox{to: j.String()}
			d.out[id] = o
		}
		if len(o.payloads) >= maxOutbox {
			d.op.Unlock()
			return fmt.Errorf("app: %d payloads already wait for %s", maxOutbox, to)
		}
		o.payloads = append(o.payloads, slices.Clone(payload))
	}
	if pending && !force {
		d.op.Unlock()
		return nil
	}
	if o != nil {
		if o.attempts >= maxAttempts {
			delete(d.out, id)
			d.op.Unlock()
			return fmt.Errorf("app: no device channel with %s after %d attempts", to, maxAttempts)
		}
		o.attempts++
	}
	d.op.Unlock()

	b, err := xa.Bundle(ctx, j.Bare().String(), dev.ID)
	if err != nil || b == nil {
		return fmt.Errorf("app: the bundle of %s: %v", to, err)
	}
	digest := b.LastResort.Digest
	if n := len(b.OneTimeKeys); n > 0 {
		digest = b.OneTimeKeys[rand.IntN(n)].Digest
	} else if b.LastResort.ID == [8]byte{} {
		return fmt.Errorf("app: %s publishes no key to start a device channel with", to)
	}
	peer := devchan.Party{Account: j.Bare().String(), Device: id, Identity: dev.Key}
	s, req, err := devchan.Initiate(d.local, a.key, peer, digest, nil)
	if err != nil {
		return err
	}
	ds := &devSession{s: s, created: time.Now()}
	d.op.Lock()
	d.sessions[id] = append(d.sessions[id], ds)
	d.save(ctx, ds)
	d.op.Unlock()
	return d.send(ctx, j.String(), req)
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
