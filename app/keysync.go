package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/devchan"
	"github.com/mpenc/mpenc/internal/keysync"
	"github.com/mpenc/mpenc/trust"
)

// KeySync (issue [M], docs/PROTOCOL.md "KeySync"): the device's
// keysync.Machine, its messages inside the device channel, the words of
// the fresh session each negotiation runs over, and what reaching a
// group does: the partner's key is authenticated, and the trust messages
// that follow (ATM) bring the group's trust to the new device.

// groupedSetting names the store setting that keeps whether this device
// is in a device group ("1").
const groupedSetting = "keysync.grouped"

// leftSetting names the store setting that keeps that this device left
// its group ("1"): it never pairs again under its key.
const leftSetting = "keysync.left"

// beaconEvery and beaconTimes: a device alone after /devices pair
// beacons again this often, this many times (rebeacon).
const (
	beaconEvery = 5 * time.Second
	beaconTimes = 24
)

// PairingAnswer is the user's answer to a pairing's words.
type PairingAnswer uint8

// Answers (the draft's externals).
const (
	PairAccept PairingAnswer = iota + 1 // the words match
	PairReject                          // they do not: no group with that device, KeySync off until /devices pair
	PairCancel                          // not now
)

// startKey names a session being begun for a negotiation with a device.
type startKey struct {
	to  string
	neg keysync.TID
}

// pairing is what the app keeps around the machine (d.op guards it).
type pairing struct {
	m *keysync.Machine
	// bound is, per partner device (full JID), the fresh session its
	// negotiation runs over: the one whose words are shown, and the only
	// one its messages are taken from.
	bound map[string]*devSession
	// waiting holds what waits for a bound session of ours to be up, and
	// starting what waits for one being begun, per partner.
	waiting  map[*devSession][][]byte
	starting map[startKey][][]byte
	// provisional is the partner keys the user accepted (TrustThisKey),
	// authenticated only once the device group formed.
	provisional map[string]crypto.PublicKey
	timer       *time.Timer
	// boundFor is the negotiation each session of ours was begun for: a
	// session serves one negotiation only (words a user rejected are
	// never shown again).
	boundFor map[*devSession]keysync.TID
	// quiet: a pairing ended (cancelled, rejected, rolled back, timed
	// out): no Beacon until the user runs /devices pair again, or the
	// devices would pair again at once (the draft's Sole beacons on
	// entry).
	quiet bool
	// beaconing: a rebeacon loop runs.
	beaconing bool
	// last is the state after the last step, event what caused the step
	// under way, and partner the device of the last negotiation: to tell
	// the user how a pairing ended.
	last    keysync.State
	event   keysync.Event
	partner string
	// received is the group state each partner sent (GroupKeys,
	// OwnKeys), merged when the group forms with it.
	received map[string]keysync.GroupState
}

// PairDevices starts KeySync on this device: a device alone tells the
// account's other devices (a Beacon to each, over the device channel),
// and a device of a group answers one that does; a pairing then shows
// the words of its fresh session (EventPairing with Words) on both
// devices, for AnswerPairing. Call it on the new device, and on each
// device alone that should pair with it. A grouped device runs KeySync
// from the start.
func (a *App) PairDevices(ctx context.Context) error {
	if _, err := a.account(ctx); err != nil {
		return err
	}
	d := a.dev
	d.op.Lock()
	defer d.op.Unlock()
	if d.closed {
		return errClosed
	}
	if v, ok, err := a.st.Setting(ctx, a.acct.ID, leftSetting); err == nil && ok && v == "1" {
		return errors.New("this device left its device group for good: your other devices distrust its key. To use your account here again, start with a new store")
	}
	if d.ks == nil {
		if err := d.startKeySync(ctx, false); err != nil {
			return err
		}
		d.rebeacon(d.ks)
		go d.tellAlone()
		return nil
	}
	if st := d.ks.m.State(); st != keysync.Grouped {
		a.q.push(Event{Kind: EventPairing, Text: "looking for your other devices again: run /devices pair on the one to pair with too"})
	}
	d.ks.quiet = false
	switch d.ks.m.State() {
	case keysync.Grouped:
		a.q.push(Event{Kind: EventPairing, Text: "this device is in a device group already: run /devices pair on the device to add"})
		return nil
	case keysync.End:
		// Re-enabled by the user after a rejection: beaconing again
		// like a device that starts (the other device may still be
		// off when the first Beacon reaches it).
		if err := d.startKeySync(ctx, false); err != nil {
			return err
		}
		d.rebeacon(d.ks)
		return nil
	}
	d.ks.event = keysync.KeyGen
	out, err := d.ks.m.KeyGen(time.Now()) // a Sole device beacons again
	if err != nil {
		return err
	}
	d.ksApply(ctx, out)
	d.rebeacon(d.ks)
	return nil
}

// AnswerPairing gives the user's answer to the pairing whose words are
// shown.
func (a *App) AnswerPairing(ctx context.Context, answer PairingAnswer) error {
	e := map[PairingAnswer]keysync.Event{PairAccept: keysync.Accept, PairReject: keysync.Reject, PairCancel: keysync.Cancel}[answer]
	if e == 0 {
		return fmt.Errorf("app: pairing answer %d", answer)
	}
	d := a.dev
	d.op.Lock()
	defer d.op.Unlock()
	if d.ks == nil || d.ks.m.State().Resting() {
		return errors.New("no pairing waits for an answer: /devices pair starts one")
	}
	d.ks.event = e
	out, err := d.ks.m.User(e, time.Now())
	if err != nil {
		return err
	}
	d.ksApply(ctx, out)
	if answer == PairAccept && !d.ks.m.State().Resting() {
		a.q.push(Event{Kind: EventPairing, Device: d.ks.m.Partner(),
			Text: "you accepted the words: waiting for " + d.deviceName(d.ks.m.Partner()) + " (its user must accept them too)"})
	}
	return nil
}

// rebeacon beacons again every beaconEvery, beaconTimes times, while the
// device is alone: a device list may miss a device that just connected
// (two devices writing it at once lose an entry until the next check),
// and a Beacon to a device that is not running KeySync yet is ignored.
// Called with d.op held; one loop runs at a time (another /devices pair
// while it runs does not start a second).
func (d *devices) rebeacon(ks *pairing) {
	if ks.beaconing {
		return
	}
	ks.beaconing = true
	go func() {
		defer func() {
			d.op.Lock()
			ks.beaconing = false
			d.op.Unlock()
		}()
		for range beaconTimes {
			time.Sleep(beaconEvery)
			d.op.Lock()
			if d.closed || d.ks != ks || ks.m.State() != keysync.Sole || ks.quiet {
				d.op.Unlock()
				return
			}
			ks.event = keysync.KeyGen
			if out, err := ks.m.KeyGen(time.Now()); err == nil {
				d.ksApply(context.Background(), out)
			}
			d.op.Unlock()
		}
	}()
}

// tellAlone tells the user which devices the account lists, for the
// pairing just started on this one.
func (d *devices) tellAlone() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	devs, err := d.a.PublishedDevices(ctx, d.a.acct.JID)
	if err != nil {
		return
	}
	var names []string
	for _, x := range devs {
		if x.Key == d.a.key.Public() {
			continue
		}
		n := d.a.acct.JID + "/" + x.Resource
		if x.Label != "" {
			n = "“" + x.Label + "” (" + n + ")"
		}
		names = append(names, n)
	}
	text := "this device is alone, and your account lists no other device yet: start the other one, and /devices pair there too"
	if len(names) > 0 {
		text = "this device is alone; your account lists " + strings.Join(names, ", ") +
			": run /devices pair on the one to pair with (devices already in a group answer by themselves)"
	}
	d.a.q.push(Event{Kind: EventPairing, Text: text})
}

// startKeySync starts the machine (d.op held).
func (d *devices) startKeySync(ctx context.Context, grouped bool) error {
	m, out, err := keysync.New(grouped, rand.Reader, time.Now())
	if err != nil {
		return err
	}
	if d.ks != nil && d.ks.timer != nil {
		d.ks.timer.Stop()
	}
	d.ks = &pairing{m: m, bound: map[string]*devSession{}, waiting: map[*devSession][][]byte{},
		starting: map[startKey][][]byte{}, provisional: map[string]crypto.PublicKey{}, boundFor: map[*devSession]keysync.TID{},
		received: map[string]keysync.GroupState{}, last: keysync.InitState}
	d.ksApply(ctx, out)
	return nil
}

// resumeKeySync starts the machine of a device that is in a group, when
// the store says so (d.op held).
func (d *devices) resumeKeySync(ctx context.Context) {
	if d.ks != nil {
		return
	}
	if v, ok, err := d.a.st.Setting(ctx, d.a.acct.ID, groupedSetting); err == nil && ok && v == "1" {
		if err := d.startKeySync(ctx, true); err != nil {
			d.a.log().Warn("starting KeySync", "err", err)
		}
	}
}

// onKeySync handles a KeySync message that arrived over ds (d.op held).
func (d *devices) onKeySync(ctx context.Context, ds *devSession, p []byte) {
	from := ds.fullJID()
	if ds.s.Peer().Account != d.a.acct.JID || d.ks == nil {
		d.a.log().Info("a KeySync message ignored: KeySync is off, or not our device", "from", from)
		return
	}
	if d.peerState(ds) == trust.Distrusted || d.leftOrRemoved(ctx, ds.s.Peer().Identity) {
		// A removed device (or one that left, or whose verification
		// failed) pairs no more, and its word counts for nothing.
		d.a.log().Info("a KeySync message from a device distrusted here: ignored", "from", from)
		return
	}
	msg, err := keysync.Decode(p)
	if err != nil {
		d.a.log().Info("a KeySync message refused", "from", from, "err", err)
		return
	}
	if d.ks.quiet && d.ks.m.State() == keysync.Sole && (msg.Type == keysync.Beacon || msg.Type == keysync.NegotiationRequest) {
		// A pairing of this device ended (cancelled, rejected, timed
		// out): it does not start another, on its side or another
		// device's, until the user runs /devices pair again.
		d.a.log().Info("a KeySync message ignored: pairing stopped here until /devices pair", "from", from, "message", msg.Type)
		return
	}
	switch msg.Type {
	case keysync.LeaveGroup:
		d.onLeave(ctx, ds)
		return
	case keysync.Beacon:
	case keysync.NegotiationRequest:
		// A negotiation runs over a session the requester began for it
		// over one of our one-time keys: its words are that session's.
		if !ds.fresh() {
			d.a.log().Info("a KeySync request over a session that is not fresh: ignored", "from", from)
			return
		}
		// Bound below only if the machine takes the request: a request
		// it ignores (both devices requested at once, on a stale
		// Beacon) must not take the place of the session our own
		// request runs over.
	case keysync.GroupKeys, keysync.GroupTrustThisKey:
		// What a group sends its members: from the negotiation's
		// partner over its session, or from a device of the group (its
		// key authenticated here) over any.
		if d.ks.bound[from] != ds && d.peerState(ds) != trust.Authenticated {
			return
		}
	default:
		if d.ks.bound[from] != ds {
			d.a.log().Info("a KeySync message over another session than the negotiation's: ignored", "from", from, "message", msg.Type)
			return
		}
	}
	d.ks.event = msg.Type
	before := d.ks.m.State()
	out, err := d.ks.m.Receive(from, msg, time.Now())
	if err != nil {
		d.a.log().Warn("KeySync", "err", err)
	}
	if msg.Type == keysync.NegotiationRequest && d.ks.m.Partner() == from && (d.ks.m.State() != before || d.ks.bound[from] == nil) {
		d.ks.bound[from] = ds
	}
	d.a.log().Info("KeySync step", "from", from, "message", msg.Type, "state", before, "next", d.ks.m.State(), "outputs", len(out))
	switch msg.Type {
	case keysync.GroupKeys, keysync.OwnKeysOfferer, keysync.OwnKeysRequester:
		d.onGroupState(ctx, ds, msg.Payload)
	}
	if msg.Type == keysync.GroupTrustThisKey {
		// A passive device trusts the new key on the active device's
		// word: that word is its trust message (authenticated by the
		// trust store's rules), not this unguarded KeySync message,
		// which any device of the account could send.
		out = slices.DeleteFunc(out, func(o keysync.Output) bool { return o.Do == keysync.TrustThisKey })
	}
	d.ksApply(ctx, out)
}

// ksReady sends what waited for a bound session of ours, now up (d.op
// held).
func (d *devices) ksReady(ctx context.Context, ds *devSession) {
	if d.ks == nil {
		return
	}
	if w, ok := d.ks.waiting[ds]; ok {
		delete(d.ks.waiting, ds)
		for _, p := range w {
			d.sendRaw(ctx, ds, p)
		}
	}
}

// ksApply carries out the machine's outputs (d.op held).
func (d *devices) ksApply(ctx context.Context, out []keysync.Output) {
	ks := d.ks
	for _, o := range out {
		if o.Send != nil {
			d.ksSend(ctx, o)
			continue
		}
		switch o.Do {
		case keysync.TrustThisKey:
			// After the user's Accept (onKeySync drops those a
			// GroupTrustThisKey makes): held until the group forms.
			if ds := ks.bound[o.Partner]; o.Partner != "" && ds != nil {
				ks.provisional[o.Partner] = ds.s.Peer().Identity
			}
		case keysync.UntrustThisKey:
			delete(ks.provisional, o.Partner)
		case keysync.ShowSoleHandshake, keysync.ShowJoinGroupHandshake, keysync.ShowGroupedHandshake:
			ds := ks.bound[o.Partner]
			if ds == nil {
				continue
			}
			w, err := ds.s.Words()
			if err != nil {
				continue
			}
			name := d.deviceName(o.Partner)
			text := "pairing with your device " + name
			switch o.Do {
			case keysync.ShowJoinGroupHandshake:
				text = "joining the device group of " + name
			case keysync.ShowGroupedHandshake:
				text = name + " asks to join your device group"
			}
			d.a.q.push(Event{Kind: EventPairing, Device: o.Partner, Words: w[:], Text: text})
		case keysync.HideHandshakeDialog:
			d.a.q.push(Event{Kind: EventPairing, Text: "another of your devices answered the pairing"})
		case keysync.Disable:
			// pairingEnded says why; the machine is off (End) until
			// /devices pair.
		}
	}
	if p := ks.m.Partner(); p != "" {
		ks.partner = p
	}
	if now := ks.m.State(); !ks.last.Resting() && now.Resting() && !(now == keysync.Grouped && len(ks.provisional) > 0) {
		d.pairingEnded(ks.event, ks.partner)
	}
	ks.last = ks.m.State()
	// Back in Grouped with keys the user accepted: the pairing formed or
	// joined a group (the active device of a join shows nothing there,
	// so the state says it, not an action).
	if ks.m.State() == keysync.Grouped && len(ks.provisional) > 0 {
		d.grouped(ctx)
	}
	// A state that waits times out by itself.
	if ks.timer != nil {
		ks.timer.Stop()
		ks.timer = nil
	}
	if dl := ks.m.Deadline(); !dl.IsZero() {
		m := ks.m
		ks.timer = time.AfterFunc(time.Until(dl)+time.Second, func() {
			d.op.Lock()
			defer d.op.Unlock()
			if d.closed || d.ks == nil || d.ks.m != m {
				return
			}
			d.ks.event = keysync.Timeout
			out, err := m.Tick(time.Now())
			if err == nil {
				d.ksApply(context.Background(), out)
			}
		})
	}
}

// pairingEnded tells the user how a pairing with partner ended without
// a group (event caused it), and keeps this device from beaconing again
// until the user asks (d.op held).
func (d *devices) pairingEnded(event keysync.Event, partner string) {
	d.ks.quiet = true
	name := d.deviceName(partner)
	var text string
	warning := false
	switch event {
	case keysync.Timeout:
		text = "the pairing with " + name + " timed out (10 minutes without an answer)"
	case keysync.Cancel:
		text = "pairing with " + name + " cancelled"
	case keysync.Reject:
		text = "you rejected the pairing with " + name + ": it is not in your device group"
	case keysync.Rollback:
		text = name + " stopped the pairing (cancelled, timed out, or closed)"
	case keysync.CommitReject:
		warning = true
		text = name + " rejected the pairing: its screen showed other words, or its user declined. If the words differed, someone may be between the two devices"
	default:
		return
	}
	if d.ks.m.State() != keysync.Grouped {
		text += " (/devices pair to try again)" // a grouped device answers the next one by itself
	}
	d.a.q.push(Event{Kind: EventPairing, Device: partner, Warning: warning, Text: text})
}

// deviceName names an own device for a line: its label from the cached
// device list, and its address.
func (d *devices) deviceName(device string) string {
	if device == "" {
		return "the other device"
	}
	d.mu.Lock()
	c := d.lists[d.a.acct.JID]
	d.mu.Unlock()
	for _, x := range c.devices {
		if d.a.acct.JID+"/"+x.Resource == device && x.Label != "" {
			return "“" + x.Label + "” (" + device + ")"
		}
	}
	return device
}

// grouped finishes a pairing that formed or joined a group: the keys the
// user accepted are authenticated (which sends the trust messages of
// docs/PROTOCOL.md "Trust messages": the group's trust reaches the new
// device), and the device remembers it is grouped (d.op held).
func (d *devices) grouped(ctx context.Context) {
	ks := d.ks
	if err := d.a.st.SetSetting(ctx, d.a.acct.ID, groupedSetting, "1"); err != nil {
		d.a.log().Warn("saving the device group", "err", err)
	}
	d.groupedAt = time.Now()
	for dev, key := range ks.provisional {
		delete(ks.provisional, dev)
		received := ks.received[dev]
		delete(ks.received, dev)
		if _, err := d.a.trust.Verify(d.a.acct.JID, key); err != nil {
			d.a.log().Warn("authenticating a paired device", "device", dev, "err", err)
			d.a.q.push(Event{Kind: EventPairing, Device: dev, Warning: true, Text: "paired, but its key could not be recorded as verified: " + err.Error()})
			continue
		}
		// The group's state: ours, what the partner sent, and the
		// partner on our word.
		rooms := d.mergeGroup(ctx, dev, received, false)
		s, err := d.loadGroup(ctx)
		if err == nil {
			d.addPartner(&s, dev, key, time.Now())
			err = d.saveGroup(ctx, s)
		}
		if err != nil {
			d.a.log().Warn("saving the device group's state", "err", err)
		}
		var names []string
		for _, x := range s.Devices {
			if x.Status == keysync.Member {
				names = append(names, d.groupName(x))
			}
		}
		text := fmt.Sprintf("in a device group with %s: its key is verified, and your verified keys reach it (as trust messages); the group: %s",
			d.deviceName(dev), strings.Join(names, ", "))
		if len(rooms) > 0 {
			text += fmt.Sprintf("; %d room(s) of the group joined here too: %s", len(rooms), strings.Join(rooms, ", "))
		}
		d.a.q.push(Event{Kind: EventPairing, Device: dev, Text: text, Rooms: rooms})
	}
	d.a.hist.wake() // the archive's keys for the new device
}

// groupName names a device of the group for a line: its label, or its
// resource.
func (d *devices) groupName(x keysync.GroupDevice) string {
	if x.Key == d.a.key.Public() {
		return "this device"
	}
	if x.Label != "" {
		return "“" + x.Label + "”"
	}
	return x.Resource
}

// ksSend sends one message: to the partner over the negotiation's
// session (a NegotiationRequest begins a fresh one), or to every own
// device (d.op held).
func (d *devices) ksSend(ctx context.Context, o keysync.Output) {
	msg := *o.Send
	switch msg.Type {
	case keysync.GroupTrustThisKey:
		if ds := d.ks.bound[o.Partner]; ds != nil {
			k := ds.s.Peer().Identity
			msg.Payload = k[:]
		}
	case keysync.GroupKeys, keysync.OwnKeysOfferer, keysync.OwnKeysRequester:
		partner := o.Partner
		if partner == "" {
			partner = o.To
		}
		msg.Payload = d.groupPayload(ctx, partner)
	}
	p, err := keysync.Encode(msg)
	if err != nil {
		d.a.log().Warn("encoding a KeySync message", "err", err)
		return
	}
	if msg.Type == keysync.Beacon && d.ks.quiet {
		return // a pairing just ended: no new one until /devices pair
	}
	d.a.log().Info("KeySync send", "message", msg.Type, "to", o.To, "partner", o.Partner)
	if o.To == "" {
		// To the group: the partner, if any, over the negotiation's
		// session (it may not be in the group yet), the others over the
		// channel.
		skip := ""
		if ds := d.ks.bound[o.Partner]; ds != nil && o.Partner != "" {
			skip = o.Partner
			if ds.s.State() == devchan.AwaitResponse {
				d.ks.waiting[ds] = append(d.ks.waiting[ds], p)
			} else {
				d.sendRaw(ctx, ds, p)
			}
		}
		go d.toOwnDevices(p, skip)
		return
	}
	if msg.Type == keysync.NegotiationRequest {
		d.ksRequest(o.To, p)
		return
	}
	ds := d.ks.bound[o.To]
	switch {
	case ds == nil:
		d.a.log().Info("KeySync: no session with the partner", "to", o.To)
	case ds.s.State() == devchan.AwaitResponse:
		d.ks.waiting[ds] = append(d.ks.waiting[ds], p) // ksReady sends it
	default:
		d.sendRaw(ctx, ds, p)
	}
}

// ksRequest sends a NegotiationRequest over a session begun for it with
// a fresh handshake, whose words both sides then show. Another Beacon of
// the same device (an offerer answers ours with its own again) makes
// another request of the same negotiation: it goes over the same
// session, begun or beginning (d.op held).
func (d *devices) ksRequest(to string, p []byte) {
	ks := d.ks
	neg := ks.m.Negotiation()
	if ds := ks.bound[to]; ds != nil && ds.s.Role() == devchan.Initiator && time.Since(ds.created) <= verifyFresh && ks.boundFor[ds] == neg {
		if ds.s.State() == devchan.AwaitResponse {
			ks.waiting[ds] = append(ks.waiting[ds], p)
		} else {
			d.sendRaw(context.Background(), ds, p)
		}
		return
	}
	key := startKey{to, neg}
	if q, ok := ks.starting[key]; ok {
		ks.starting[key] = append(q, p)
		return
	}
	ks.starting[key] = [][]byte{p}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), vouchWait)
		defer cancel()
		var ds *devSession
		var req []byte
		err := retrying(ctx, func() (err error) {
			ds, req, err = d.freshSession(ctx, to)
			return err
		})
		d.op.Lock()
		if d.ks != ks {
			d.op.Unlock()
			return
		}
		q := ks.starting[key]
		delete(ks.starting, key)
		if err != nil {
			d.op.Unlock()
			d.a.log().Warn("KeySync: no fresh session", "with", to, "err", err)
			return
		}
		if old := ks.bound[to]; old != nil {
			delete(ks.boundFor, old) // a session serves one negotiation
		}
		ks.bound[to] = ds
		ks.boundFor[ds] = neg
		ks.waiting[ds] = q
		d.add(ctx, ds)
		d.op.Unlock()
		if err := d.send(ctx, to, req); err != nil {
			d.a.log().Warn("KeySync: sending a request", "to", to, "err", err)
		}
	}()
}

// peerState is the state here of the key at the other end of ds (0 if
// the store does not know it; Distrusted, failing closed, if the store
// cannot be read).
func (d *devices) peerState(ds *devSession) trust.State {
	peer := ds.s.Peer()
	st, err := d.a.trustStateOf(peer.Account, peer.Identity)
	if err != nil {
		return trust.Distrusted
	}
	return st
}

// retrying calls f until it succeeds, every vouchRetry, while ctx lasts:
// a list or bundle just published may not be readable yet (ejabberd
// answers not-authorized for a moment), and a device just connected may
// be missing from its list.
func retrying(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil || errors.Is(err, errClosed) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(vouchRetry):
		}
	}
}

// toOwnDevices sends p to every device the account lists but this one
// and skip (a full JID, or "").
func (d *devices) toOwnDevices(p []byte, skip string) {
	ctx, cancel := context.WithTimeout(context.Background(), vouchWait)
	defer cancel()
	var devs []xmpp.Device
	err := retrying(ctx, func() (err error) {
		devs, err = d.a.PublishedDevices(ctx, d.a.acct.JID)
		return err
	})
	if err != nil {
		d.a.log().Warn("KeySync: listing our devices", "err", err)
		return
	}
	for _, x := range devs {
		if x.Key == d.a.key.Public() || d.a.acct.JID+"/"+x.Resource == skip {
			continue
		}
		if err := d.a.SendToDevice(ctx, d.a.acct.JID+"/"+x.Resource, p); err != nil {
			d.a.log().Info("KeySync: to a device", "device", x.Resource, "err", err)
		}
	}
}

// RemoveDevice removes another device of this account (its full JID):
// its key is distrusted, which the trust messages of docs/PROTOCOL.md
// "Trust messages" carry to every device whose key is authenticated here
// (your other devices, and your contacts', whose clients then exclude it
// from the rooms they share with it), and it is removed from the
// account's published device list. Its trust messages count for nothing
// from then on. The client excludes it from this device's rooms.
func (a *App) RemoveDevice(ctx context.Context, device string) error {
	xa, err := a.account(ctx)
	if err != nil {
		return err
	}
	j, err := jid.Parse(device)
	if err != nil || j.Resourcepart() == "" || j.Bare().String() != a.acct.JID {
		return fmt.Errorf("%q is not one of your devices: name it by its full JID or its label, as /devices shows them", device)
	}
	dev, err := a.dev.published(ctx, j)
	if errors.Is(err, errNoDevice) {
		return fmt.Errorf("%s is not in your device list: removed already, or never listed", device)
	}
	if err != nil {
		return err
	}
	if dev.Key == a.key.Public() {
		return errors.New("app: that is this device")
	}
	if _, err := a.trust.Distrust(a.acct.JID, dev.Key); err != nil {
		return err
	}
	a.dev.op.Lock()
	if s, err := a.dev.loadGroup(ctx); err == nil && len(s.Devices) > 0 {
		s.Set(keysync.GroupDevice{Key: dev.Key, Resource: j.Resourcepart(), Label: dev.Label, Status: keysync.Removed,
			At: time.Now(), By: a.key.Public()})
		if err := a.dev.saveGroup(ctx, s); err != nil {
			a.log().Warn("saving the device group's state", "err", err)
		}
	}
	a.dev.op.Unlock()
	if err := xa.RemoveDevice(ctx, dev.ID); err != nil {
		return fmt.Errorf("app: %s is distrusted, but still in the device list: %w", device, err)
	}
	a.q.push(Event{Kind: EventPairing, Device: device,
		Text: "removed " + device + ": distrusted here and by every device your verified devices reach, and out of your device list"})
	return nil
}
