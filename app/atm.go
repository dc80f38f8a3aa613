package app

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/trust"
)

// Automatic trust management (issue [L], docs/PROTOCOL.md "Trust
// messages"): the trust store says what to send after the user's
// decisions (trust.Config.OnVouch) and applies what arrives; the device
// channel carries both ways.

// nsEnvelope is the namespace of the root of a trust message payload
// (XEP-0420's content element).
const nsEnvelope = "urn:xmpp:sce:1"

// vouchWait bounds the sending of one trust message: finding the
// device in its account's list and queueing it on the channel (after
// which the store keeps it until a session carries it).
const (
	vouchWait  = 2 * time.Minute
	vouchRetry = 2 * time.Second
)

// rootNamespace returns the namespace of a payload's first element, ""
// if it does not start with one: device channel payloads are XML
// elements told apart by it.
func rootNamespace(p []byte) string {
	d := xml.NewDecoder(bytes.NewReader(p[:min(len(p), 512)]))
	for {
		t, err := d.Token()
		if err != nil {
			return ""
		}
		switch t := t.(type) {
		case xml.StartElement:
			return t.Name.Space
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return ""
			}
		case xml.ProcInst, xml.Comment:
		default:
			return ""
		}
	}
}

// trustChanged hands a decision of the account's trust store to the
// user interface.
func (a *App) trustChanged(e trust.Event) {
	a.q.push(Event{Kind: EventTrust, Trust: e})
	if a.hist != nil && e.JID == a.acct.JID {
		a.hist.wake() // an own device verified or distrusted: the archive's members
	}
	a.mu.Lock()
	rooms := make([]*Room, 0, len(a.rooms))
	for _, r := range a.rooms {
		rooms = append(rooms, r)
	}
	a.mu.Unlock()
	for _, r := range rooms {
		r.retryHeld()
	}
}

// vouch sends one trust message to its device, in the background: the
// device is found by its key in its account's published list. A device
// that just connected may not be in its list yet, and a server may
// refuse to read a list for a moment after it was created (ejabberd
// answers not-authorized): both are tried again, every vouchRetry, for
// vouchWait.
func (d *devices) vouch(v trust.Vouch) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), vouchWait)
		defer cancel()
		err := retrying(ctx, func() error {
			to, err := d.deviceOf(ctx, v.To.JID, v.To.Key)
			if err != nil {
				return err
			}
			// An error here means the payload was not queued: sending
			// it again cannot deliver it twice.
			return d.a.SendToDevice(ctx, to, v.Payload)
		})
		if err != nil {
			d.a.log().Warn("a trust message not sent", "to", v.To.JID, "err", err)
		}
	}()
}

// deviceOf returns the full JID of the device of account whose identity
// key is key, as its account publishes it.
func (d *devices) deviceOf(ctx context.Context, account string, key crypto.PublicKey) (string, error) {
	ds, err := d.a.PublishedDevices(ctx, account)
	if err != nil {
		return "", err
	}
	for _, x := range ds {
		if x.Key == key {
			return account + "/" + x.Resource, nil
		}
	}
	return "", fmt.Errorf("%w: %s has no device with the key %s", errNoDevice, account, trust.FingerprintOf(key))
}

// onTrustMessage applies a trust message that arrived over the session
// ds (the trust store knows whether to apply or park it).
func (d *devices) onTrustMessage(ds *devSession, p []byte) {
	evs, err := d.a.trust.HandleTrustMessage(ds.fullJID(), ds.s.Peer().Identity, p)
	if err != nil {
		d.a.log().Info("a trust message refused", "from", ds.fullJID(), "err", err)
		return
	}
	// One of our devices brought several decisions at once (the
	// group's trust reaching a device that just joined): one line sums
	// them up; each has its own EventTrust too.
	if ds.s.Peer().Account != d.a.acct.JID {
		return
	}
	var verified, distrusted int
	for _, e := range evs {
		switch e.Kind.String() {
		case "vouched":
			verified++
		case "vouched-distrust":
			distrusted++
			if e.JID == d.a.acct.JID {
				// One of our devices removed one of ours: the group's
				// record says so here too.
				d.markRemoved(e.Key, ds.s.Peer().Identity)
			}
		}
	}
	justGrouped := time.Since(d.groupedAt) < 2*time.Minute // the group's trust arriving
	if verified+distrusted == 0 || (verified+distrusted < 2 && !justGrouped) {
		return
	}
	text := fmt.Sprintf("%s's trust reached this device: %d key(s) verified", d.deviceName(ds.fullJID()), verified)
	if distrusted > 0 {
		text += fmt.Sprintf(", %d distrusted", distrusted)
	}
	d.a.q.push(Event{Kind: EventPairing, Device: ds.fullJID(), Text: text})
}
