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

	op       sync.Mutex // held while a packet or a send is handled
	sessions map[devchan.DeviceID][]*devchan.Session
	out      map[devchan.DeviceID]*outbox
	accepted map[string][]time.Time // bare JID → acceptances in the last minute

	mu      sync.Mutex // guards the fields below
	oneTime []xmpp.KeyDigest
	lr      xmpp.KeyDigest
	lists   map[string]cachedList
}

func newDevices(a *App) *devices {
	fp := trust.FingerprintOf(a.key.Public())
	return &devices{
		a:        a,
		local:    devchan.Party{Account: a.acct.JID, Device: devchan.DeviceID(fp[:8]), Identity: a.key.Public()},
		in:       make(chan directIn, maxDirectQueue),
		sessions: map[devchan.DeviceID][]*devchan.Session{},
		out:      map[devchan.DeviceID]*outbox{},
		accepted: map[string][]time.Time{},
		lists:    map[string]cachedList{},
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
		d.sessions[s.Peer().Device] = append(d.sessions[s.Peer().Device], s)
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
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-d.in:
			d.handle(ctx, m.from, m.payload)
		}
	}
}

func (d *devices) save(ctx context.Context, s *devchan.Session) {
	p := s.Peer()
	h := s.IDs()
	err := d.a.st.SaveDeviceSession(ctx, d.a.acct.ID, d.a.key, store.DeviceSession{Peer: p.Account, PeerDevice: p.Device, InitKey: h.InitKey, RespKey: h.RespKey, State: s.Marshal()}, nil)
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
		return store.DeviceSession{Peer: bare, PeerDevice: req.From, InitKey: req.InitKey, RespKey: req.RespKey, State: s.Marshal()}, nil
	}, nil)
	switch {
	case errors.Is(err, store.ErrNotFound):
		resp = devchan.Refuse(d.local.Device, req)
	case err != nil:
		d.a.log().Warn("accepting a device channel", "from", from, "err", err)
		return
	default:
		d.sessions[req.From] = append(d.sessions[req.From], s)
		go d.republish() // the spent key leaves the bundle
	}
	if err := d.send(ctx, from, resp); err != nil {
		d.a.log().Warn("answering a device channel request", "to", from, "err", err)
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
func (d *devices) find(dev devchan.DeviceID, h devchan.Header) *devchan.Session {
	for _, s := range d.sessions[dev] {
		if ids := s.IDs(); ids.InitKey == h.InitKey && ids.RespKey == h.RespKey {
			return s
		}
	}
	return nil
}

func (d *devices) drop(s *devchan.Session) {
	dev := s.Peer().Device
	d.sessions[dev] = slices.DeleteFunc(d.sessions[dev], func(x *devchan.Session) bool { return x == s })
}

func (d *devices) onResponse(ctx context.Context, from string, h devchan.Header, p []byte) {
	s := d.find(h.From, h)
	if s == nil || s.Role() != devchan.Initiator || trust.Bare(from) != s.Peer().Account {
		return
	}
	err := s.HandleResponse(p, d.a.key)
	switch {
	case errors.Is(err, devchan.ErrRefused), errors.Is(err, devchan.ErrAuth):
		d.a.log().Warn("device channel handshake failed", "with", from, "err", err)
		d.drop(s)
		if o := d.out[h.From]; o != nil {
			go d.retry(h.From)
		}
		return
	case err != nil:
		d.a.log().Debug("device channel response dropped", "from", from, "err", err)
		return
	}
	d.save(ctx, s)
	d.flush(ctx, h.From, s)
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
	if err := d.a.SendToDevice(ctx, o.to, nil); err != nil {
		d.a.log().Warn("device channel retry", "to", o.to, "err", err)
	}
}

// flush sends what waits for dev over s.
func (d *devices) flush(ctx context.Context, dev devchan.DeviceID, s *devchan.Session) {
	o := d.out[dev]
	if o == nil {
		return
	}
	delete(d.out, dev)
	for _, pl := range o.payloads {
		pkt, err := s.Seal(pl)
		if err != nil {
			d.a.log().Warn("sealing for a device", "to", o.to, "err", err)
			continue
		}
		d.save(ctx, s) // the key used is gone before the packet leaves
		if err := d.send(ctx, o.to, pkt); err != nil {
			d.a.log().Warn("sending to a device", "to", o.to, "err", err)
		}
	}
}

func (d *devices) onData(ctx context.Context, from string, h devchan.Header, p []byte) {
	s := d.find(h.From, h)
	if s == nil || trust.Bare(from) != s.Peer().Account {
		d.a.log().Debug("device channel data for no session", "from", from)
		return
	}
	pl, err := s.Open(p)
	if err != nil {
		d.a.log().Debug("device channel data refused", "from", from, "err", err)
		return
	}
	d.save(ctx, s)
	d.a.q.push(Event{Kind: EventDevice, Device: from, Payload: pl})
}

// usable returns the session to send to dev with: an established one,
// preferring (when both sides started one at once) the one whose
// initiator has the smaller device id, so that both sides pick the same.
func (d *devices) usable(dev devchan.DeviceID) (best *devchan.Session, pending bool) {
	for _, s := range d.sessions[dev] {
		switch s.State() {
		case devchan.AwaitResponse:
			pending = true
		case devchan.Established, devchan.Confirmed:
			if best == nil || initiator(s, d.local) < initiator(best, d.local) {
				best = s
			}
		}
	}
	return best, pending
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
// payload to a device waits for a handshake; the device need not be
// online to answer it later only when the server keeps messages for it.
// The device receives it as an EventDevice. It fails when the device is
// not in its account's published device list.
func (a *App) SendToDevice(ctx context.Context, to string, payload []byte) error {
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
	if s, _ := d.usable(id); s != nil {
		defer d.op.Unlock()
		if payload == nil {
			return nil
		}
		pkt, err := s.Seal(payload)
		if err != nil {
			return err
		}
		d.save(ctx, s)
		return d.send(ctx, j.String(), pkt)
	}
	o := d.out[id]
	if o == nil {
		o = &outbox{to: j.String()}
		d.out[id] = o
	}
	if payload != nil {
		if len(o.payloads) >= maxOutbox {
			d.op.Unlock()
			return fmt.Errorf("app: %d payloads already wait for %s", maxOutbox, to)
		}
		o.payloads = append(o.payloads, slices.Clone(payload))
	}
	if _, pending := d.usable(id); pending {
		d.op.Unlock()
		return nil
	}
	if o.attempts >= maxAttempts {
		delete(d.out, id)
		d.op.Unlock()
		return fmt.Errorf("app: no device channel with %s after %d attempts", to, maxAttempts)
	}
	o.attempts++
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
	d.op.Lock()
	d.sessions[id] = append(d.sessions[id], s)
	d.save(ctx, s)
	d.op.Unlock()
	return d.send(ctx, j.String(), req)
}
