package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/devchan"
	"github.com/mpenc/mpenc/internal/keysync"
	"github.com/mpenc/mpenc/trust"
)

// Live verification (issue [L], docs/PROTOCOL.md "Verification"): a fresh
// device channel session, begun over a one-time key, whose words both
// users compare; each side that sees them match sends a MAC over both
// identity keys; a key is authenticated once the local user confirmed
// and the peer's MAC arrived over that session.
const (
	nsVerify = "https://github.com/mpenc/mpenc/ns/verify/1"
	// verifyWait bounds a verification from its start to its end.
	verifyWait = 10 * time.Minute
	// verifyFresh: a request is answered only over a session begun this
	// recently (a request over an older one is not a fresh handshake).
	verifyFresh = 2 * time.Minute
	// maxVerifyPayload bounds a verification message.
	maxVerifyPayload = 512
	// maxVerifications bounds those under way at once.
	maxVerifications = 16
)

// verifyPhase is where one verification stands.
type verifyPhase uint8

const (
	verifyHandshake verifyPhase = iota + 1 // ours: waiting for the fresh session
	verifyComparing                        // the words are shown; the user has not answered
	verifyConfirmed                        // the user saw them match; the peer's MAC has not come
	verifyDone                             // authenticated, or failed: removed
)

// verification is one verification with one device (the key d.verifs
// holds it under is the device's full JID).
type verification struct {
	id      [8]byte
	device  string // full JID
	ds      *devSession
	phase   verifyPhase
	peerMAC bool // the peer's MAC arrived, and was right
	timer   *time.Timer
}

// errNoVerification is returned (wrapped) by ConfirmWords for a device
// with no verification waiting for the user's answer.
var errNoVerification = errors.New("app: no verification with that device waits for an answer")

// verifyMsg is one verification message.
type verifyMsg struct {
	kind   string // request, mac, cancel
	id     [8]byte
	mac    [32]byte
	reason string // cancel: mismatch, declined, timeout
}

func (m verifyMsg) encode() []byte {
	var b bytes.Buffer
	id := hex.EncodeToString(m.id[:])
	switch m.kind {
	case "mac":
		fmt.Fprintf(&b, `<mac xmlns='%s' id='%s'>%s</mac>`, nsVerify, id, base64.StdEncoding.EncodeToString(m.mac[:]))
	case "cancel":
		fmt.Fprintf(&b, `<cancel xmlns='%s' id='%s' reason='%s'/>`, nsVerify, id, m.reason)
	default:
		fmt.Fprintf(&b, `<request xmlns='%s' id='%s'/>`, nsVerify, id)
	}
	return b.Bytes()
}

// parseVerifyMsg reads one verification message, strictly.
func parseVerifyMsg(p []byte) (verifyMsg, error) {
	bad := errors.New("app: a malformed verification message")
	if len(p) > maxVerifyPayload {
		return verifyMsg{}, bad
	}
	var raw struct {
		XMLName xml.Name
		ID      string `xml:"id,attr"`
		Reason  string `xml:"reason,attr"`
		Text    string `xml:",chardata"`
		Inner   []byte `xml:",innerxml"`
	}
	if err := xml.Unmarshal(p, &raw); err != nil || raw.XMLName.Space != nsVerify {
		return verifyMsg{}, bad
	}
	m := verifyMsg{kind: raw.XMLName.Local, reason: raw.Reason}
	id, err := hex.DecodeString(raw.ID)
	if err != nil || len(id) != 8 {
		return verifyMsg{}, bad
	}
	m.id = [8]byte(id)
	switch m.kind {
	case "request":
		if len(raw.Inner) != 0 {
			return verifyMsg{}, bad
		}
	case "mac":
		mac, err := base64.StdEncoding.DecodeString(raw.Text)
		if err != nil || len(mac) != 32 || bytes.ContainsRune(raw.Inner, '<') {
			return verifyMsg{}, bad
		}
		m.mac = [32]byte(mac)
	case "cancel":
		if m.reason != "mismatch" && m.reason != "declined" && m.reason != "timeout" {
			m.reason = "declined"
		}
	default:
		return verifyMsg{}, bad
	}
	return m, nil
}

// VerifyDevice starts a live verification with one device (its full
// JID, as its account publishes it): a fresh device channel session,
// begun over one of its one-time keys, whose words both screens show
// (an EventVerify with Words, here once the session is up, there when
// the request arrives). The key is authenticated on both sides once
// both users confirm the words match (ConfirmWords) and each side has
// the other's proof of it; EventVerify says how it ended. It fails at
// once when the device is not in its account's list or publishes no
// one-time key.
func (a *App) VerifyDevice(ctx context.Context, device string) error {
	d := a.dev
	ds, req, err := d.freshSession(ctx, device)
	if err != nil {
		return err
	}
	v := &verification{device: ds.fullJID(), phase: verifyHandshake}
	rand.Read(v.id[:])
	d.op.Lock()
	if err := d.startVerification(v, ds); err != nil {
		d.op.Unlock()
		return err
	}
	d.add(ctx, ds)
	d.op.Unlock()
	return d.send(ctx, ds.fullJID(), req)
}

// freshSession begins a session with device (a full JID its account
// lists) over one of its one-time keys, for what must be bound to a
// fresh handshake (the words of a verification or a pairing). It returns
// the session, not yet added, and the request to send. It fails when
// the device publishes no one-time key: the last-resort key lives for
// days, and words over a session begun with it could be matched by a
// patient man in the middle (docs/PROTOCOL.md "The device channel").
func (d *devices) freshSession(ctx context.Context, device string) (*devSession, []byte, error) {
	xa, err := d.a.account(ctx)
	if err != nil {
		return nil, nil, err
	}
	j, err := jid.Parse(device)
	if err != nil || j.Resourcepart() == "" {
		return nil, nil, fmt.Errorf("app: %q is not a device's full JID", device)
	}
	dev, err := d.published(ctx, j)
	if err != nil {
		return nil, nil, err
	}
	if dev.Key == d.a.key.Public() {
		return nil, nil, errors.New("app: that is this device")
	}
	b, err := xa.Bundle(ctx, j.Bare().String(), dev.ID)
	if err != nil || b == nil {
		return nil, nil, fmt.Errorf("app: the bundle of %s: %v", device, err)
	}
	if len(b.OneTimeKeys) == 0 {
		return nil, nil, fmt.Errorf("app: %s publishes no one-time key now: try again in a minute", device)
	}
	digest := b.OneTimeKeys[mrand.IntN(len(b.OneTimeKeys))].Digest
	peer := devchan.Party{Account: j.Bare().String(), Device: devchan.DeviceID(dev.ID), Identity: dev.Key}
	s, req, err := devchan.Initiate(d.local, d.a.key, peer, digest, nil)
	if err != nil {
		return nil, nil, err
	}
	return &devSession{s: s, resource: j.Resourcepart(), created: time.Now(), oneTime: true}, req, nil
}

// fresh reports whether ds was begun over one of our one-time keys by
// the other side, in this process, less than verifyFresh ago: what a
// request bound to a fresh handshake must arrive over.
func (ds *devSession) fresh() bool {
	return ds.s.Role() == devchan.Responder && ds.oneTime && time.Since(ds.created) <= verifyFresh
}

// ConfirmWords gives the user's answer to a verification with device
// (its full JID): match when the words on both screens are the same.
// A mismatch distrusts the device's key at once, drops what it said in
// trust messages we parked, and tells the device; a match sends our
// proof, and the key is authenticated when the device's proof is in.
func (a *App) ConfirmWords(ctx context.Context, device string, match bool) error {
	d := a.dev
	d.op.Lock()
	defer d.op.Unlock()
	v := d.verifs[device]
	if v == nil || v.phase != verifyComparing {
		return fmt.Errorf("%w: %s", errNoVerification, device)
	}
	if !match {
		d.sendVerify(ctx, v, verifyMsg{kind: "cancel", id: v.id, reason: "mismatch"})
		d.verifyFailed(v, true, errors.New("the words differ: someone may be between the two devices; its key is now distrusted"))
		return nil
	}
	peer := v.ds.s.Peer()
	mac, err := v.ds.s.VerifyMAC(a.key.Public(), peer.Identity, v.id)
	if err != nil {
		return err
	}
	d.sendVerify(ctx, v, verifyMsg{kind: "mac", id: v.id, mac: mac})
	v.phase = verifyConfirmed
	if v.peerMAC {
		d.verified(v)
	} else {
		d.a.q.push(Event{Kind: EventVerify, Device: v.device, Text: "waiting for the other device's confirmation"})
	}
	return nil
}

// startVerification registers v over ds (d.op held): one per device,
// a bounded number at once; it ends by itself after verifyWait.
func (d *devices) startVerification(v *verification, ds *devSession) error {
	if d.closed {
		return errClosed
	}
	if old := d.verifs[v.device]; old != nil {
		d.endVerification(old)
		d.a.q.push(Event{Kind: EventVerify, Device: old.device, Text: "the verification before this one was replaced by a new one"})
	}
	if len(d.verifs) >= maxVerifications {
		return errors.New("app: too many verifications under way")
	}
	v.ds = ds
	d.verifs[v.device] = v
	v.timer = time.AfterFunc(verifyWait, func() {
		d.op.Lock()
		defer d.op.Unlock()
		if d.verifs[v.device] == v {
			d.sendVerify(context.Background(), v, verifyMsg{kind: "cancel", id: v.id, reason: "timeout"})
			d.verifyFailed(v, false, errors.New("no answer in time"))
		}
	})
	return nil
}

// verifyFor returns the verification running over ds, if any (d.op held).
func (d *devices) verifyFor(ds *devSession) *verification {
	v := d.verifs[ds.fullJID()]
	if v == nil || v.ds != ds {
		return nil
	}
	return v
}

// verifyReady shows the words of our verification once its session is
// up, and sends the request over it (d.op held).
func (d *devices) verifyReady(ctx context.Context, ds *devSession) {
	v := d.verifyFor(ds)
	if v == nil || v.phase != verifyHandshake {
		return
	}
	d.sendVerify(ctx, v, verifyMsg{kind: "request", id: v.id})
	v.phase = verifyComparing
	d.showWords(v, "compare these words with the other device's screen")
}

func (d *devices) showWords(v *verification, text string) {
	w, err := v.ds.s.Words()
	if err != nil {
		d.verifyFailed(v, false, err)
		return
	}
	d.a.q.push(Event{Kind: EventVerify, Device: v.device, Words: w[:], Text: text})
}

// onVerify handles a verification message that arrived over ds (d.op
// held).
func (d *devices) onVerify(ctx context.Context, ds *devSession, p []byte) {
	m, err := parseVerifyMsg(p)
	if err != nil {
		d.a.log().Info("a verification message refused", "from", ds.fullJID(), "err", err)
		return
	}
	v := d.verifyFor(ds)
	switch m.kind {
	case "request":
		if v != nil {
			return // a copy
		}
		if !ds.fresh() {
			// Not a session just begun over a one-time key of ours.
			d.a.log().Info("a verification request over a session that is not fresh: refused", "from", ds.fullJID())
			d.sendRaw(ctx, ds, verifyMsg{kind: "cancel", id: m.id, reason: "declined"}.encode())
			return
		}
		v = &verification{id: m.id, device: ds.fullJID(), phase: verifyComparing}
		if err := d.startVerification(v, ds); err != nil {
			return
		}
		d.showWords(v, "asks to verify this device: compare these words with its screen")
	case "mac":
		if v == nil || v.id != m.id || v.peerMAC {
			return
		}
		peer := ds.s.Peer()
		want, err := ds.s.VerifyMAC(peer.Identity, d.a.key.Public(), v.id)
		if err != nil || !crypto.Equal(want[:], m.mac[:]) {
			d.sendVerify(ctx, v, verifyMsg{kind: "cancel", id: v.id, reason: "mismatch"})
			d.verifyFailed(v, true, errors.New("the other device's confirmation does not match this session: someone may be between the two devices; its key is now distrusted"))
			return
		}
		v.peerMAC = true
		if v.phase == verifyConfirmed {
			d.verified(v)
		}
	case "cancel":
		if v == nil || v.id != m.id {
			return
		}
		if m.reason == "mismatch" {
			d.verifyFailed(v, true, errors.New("the other device's user saw different words: someone may be between the two devices; its key is now distrusted"))
			return
		}
		d.verifyFailed(v, false, fmt.Errorf("the other device ended it (%s)", m.reason))
	}
}

// verified authenticates the key once both sides confirmed (d.op held).
func (d *devices) verified(v *verification) {
	peer := v.ds.s.Peer()
	d.endVerification(v)
	if _, err := d.a.trust.Verify(peer.Account, peer.Identity); err != nil {
		d.a.q.push(Event{Kind: EventVerify, Device: v.device, Err: err})
		return
	}
	d.a.q.push(Event{Kind: EventVerify, Device: v.device,
		Text: fmt.Sprintf("verified: %s's key %s is authenticated", v.device, trust.FingerprintOf(peer.Identity))})
}

// verifyFailed ends v with why; distrust distrusts the peer's key (a
// mismatch: the words, or the proof, differ).
func (d *devices) verifyFailed(v *verification, distrust bool, why error) {
	d.endVerification(v)
	if distrust {
		peer := v.ds.s.Peer()
		if _, err := d.a.trust.DistrustMismatch(peer.Account, peer.Identity); err != nil {
			why = fmt.Errorf("%w (and distrusting it failed: %v)", why, err)
		}
	}
	d.a.q.push(Event{Kind: EventVerify, Device: v.device, Err: why, Warning: distrust})
}

// cancelAll tells the other side of every verification under way, and
// the partner of a pairing under way, that this device stops (it is
// closing), so that they do not wait for the timeout (d.op held).
func (d *devices) cancelAll(ctx context.Context) {
	for _, v := range d.verifs {
		if v.phase != verifyHandshake {
			d.sendVerify(ctx, v, verifyMsg{kind: "cancel", id: v.id, reason: "declined"})
		}
		d.endVerification(v)
	}
	if d.ks != nil && !d.ks.m.State().Resting() {
		if out, err := d.ks.m.User(keysync.Cancel, time.Now()); err == nil {
			d.ksApply(ctx, out)
		}
	}
}

func (d *devices) endVerification(v *verification) {
	v.phase = verifyDone
	if v.timer != nil {
		v.timer.Stop()
	}
	if d.verifs[v.device] == v {
		delete(d.verifs, v.device)
	}
}

// sendVerify seals m over v's session and sends it (d.op held).
func (d *devices) sendVerify(ctx context.Context, v *verification, m verifyMsg) {
	d.sendRaw(ctx, v.ds, m.encode())
}

// sendRaw seals p over ds and sends it (d.op held).
func (d *devices) sendRaw(ctx context.Context, ds *devSession, p []byte) {
	pkt, err := ds.s.Seal(p)
	if err != nil {
		d.a.log().Warn("sealing a verification message", "to", ds.fullJID(), "err", err)
		return
	}
	d.save(ctx, ds) // the key used is gone before the packet leaves
	if err := d.send(ctx, ds.fullJID(), pkt); err != nil {
		d.a.log().Warn("sending a verification message", "to", ds.fullJID(), "err", err)
	}
}
