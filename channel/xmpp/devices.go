package xmpp

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

// What each device publishes about itself in its account's PEP service
// (XEP-0163), as OMEMO devices do (XEP-0384): the account's device list,
// one item holding every device, and one bundle item per device.
// docs/PROTOCOL.md "Devices" and docs/XMPP.md "Published devices" have
// the elements and the rules.
const (
	// nsDevices is the device list's node and its element's namespace.
	nsDevices = "https://github.com/mpenc/mpenc/ns/devices/1"
	// nsBundles is the bundles' node and the bundle element's namespace.
	nsBundles = "https://github.com/mpenc/mpenc/ns/bundles/1"
	// devicesItem is the id of the device list's only item.
	devicesItem = "current"

	nsPubSub        = "http://jabber.org/protocol/pubsub"
	nsPubSubOwner   = "http://jabber.org/protocol/pubsub#owner"
	nsPubSubErrors  = "http://jabber.org/protocol/pubsub#errors"
	nsPublishOpts   = "http://jabber.org/protocol/pubsub#publish-options"
	nsNodeConfig    = "http://jabber.org/protocol/pubsub#node_config"
	deviceEntryCtx  = "mpenc/v1/device-entry\x00"
	bundleSignedCtx = "mpenc/v1/bundle\x00"
)

// Caps on what we accept from a PEP service (everything in it was written
// by the account's devices or by its server: both untrusted here).
const (
	// maxPEPResponse bounds the bytes of one PEP answer we read; the rest
	// is discarded unread.
	maxPEPResponse = 64 << 10
	// maxDevices bounds the devices of one list.
	maxDevices = 64
	// maxOneTimeKeys bounds the one-time key digests of one bundle.
	maxOneTimeKeys = 100
	// maxResource bounds a device's resource (RFC 7622 allows 1023 bytes;
	// ours are 14).
	maxResource = 64
)

// DeviceID names a device: the first 8 bytes of its identity key's
// fingerprint (docs/PROTOCOL.md "Devices").
type DeviceID [8]byte

// String is the id in 16 hex digits.
func (id DeviceID) String() string { return hex.EncodeToString(id[:]) }

// Device is one device an account publishes in its device list: where it
// is reached, its identity key, and the label its owner gave it, all
// signed by that key for that account (a server cannot move an entry to
// another account or rename it; it can drop it).
type Device struct {
	ID       DeviceID
	Resource string           // the device's resource: its full JID is the account's with it
	Key      crypto.PublicKey // its identity key; ID is derived from it
	Label    string           // "" when it has none
}

// Bundle is what a device publishes for others to open a pairwise
// channel with it (issue [K]): its identity key, and the digests of its
// one-time keys and of a last-resort key, signed with the identity key for
// its account and device.
type Bundle struct {
	Device    DeviceID
	Key       crypto.PublicKey
	Published time.Time // the second it was signed
	// OneTimeKeys are digests of one-time keys, each with its id; at most
	// 100. LastResort, when its id is not zero, is the digest of a key
	// used when no one-time key is left.
	OneTimeKeys []KeyDigest
	LastResort  KeyDigest
}

// KeyDigest is the published digest of a key, and its id.
type KeyDigest struct {
	ID     [8]byte
	Digest [32]byte
}

var errPEP = errors.New("xmpp: malformed published data")

// deviceIDOf derives a device id from an identity key: the fingerprint's
// first 8 bytes (trust.FingerprintOf, which this tier cannot import, uses
// the same context).
func deviceIDOf(key crypto.PublicKey) DeviceID {
	h := crypto.Hash([]byte("mpenc/v1/fingerprint"), key[:])
	var id DeviceID
	copy(id[:], h[:8])
	return id
}

// deviceEntryMessage is what a device signs to be listed under account.
func deviceEntryMessage(account jid.JID, resource, label string) []byte {
	b := []byte(deviceEntryCtx)
	b = append(b, account.Bare().String()...)
	b = append(b, 0)
	b = append(b, resource...)
	b = append(b, 0)
	return append(b, label...)
}

// bundleMessage is what a device signs to publish b under account.
func bundleMessage(account jid.JID, b *Bundle) []byte {
	m := []byte(bundleSignedCtx)
	m = append(m, account.Bare().String()...)
	m = append(m, 0)
	m = append(m, b.Device[:]...)
	m = binary.BigEndian.AppendUint64(m, uint64(b.Published.Unix()))
	m = binary.BigEndian.AppendUint16(m, uint16(len(b.OneTimeKeys)))
	for _, k := range b.OneTimeKeys {
		m = append(m, k.ID[:]...)
		m = append(m, k.Digest[:]...)
	}
	m = append(m, b.LastResort.ID[:]...)
	return append(m, b.LastResort.Digest[:]...)
}

// The XML forms. Attributes and texts are read as strings and checked by
// the parse functions; encoding/xml allocates only within the byte cap the
// caller has applied.
type xmlDevices struct {
	XMLName xml.Name    `xml:"https://github.com/mpenc/mpenc/ns/devices/1 devices"`
	Devices []xmlDevice `xml:"device"`
}

type xmlDevice struct {
	ID       string `xml:"id,attr"`
	Resource string `xml:"resource,attr"`
	Label    string `xml:"label,attr,omitempty"`
	Sig      string `xml:"sig,attr"`
	Key      string `xml:",chardata"`
}

type xmlBundle struct {
	XMLName    xml.Name    `xml:"https://github.com/mpenc/mpenc/ns/bundles/1 bundle"`
	TS         string      `xml:"ts,attr"`
	Key        string      `xml:"ik"`
	OneTime    []xmlDigest `xml:"otk"`
	LastResort *xmlDigest  `xml:"lr"`
	Sig        string      `xml:"sig"`
}

type xmlDigest struct {
	ID     string `xml:"id,attr"`
	Digest string `xml:",chardata"`
}

// listedDevice is one entry of a device list as read: structurally
// valid, its signature not yet checked.
type listedDevice struct {
	Device
	sig crypto.Signature
}

// verify reports whether d's signature lists it under account.
func (d *listedDevice) verify(account jid.JID) bool {
	return crypto.Verify(d.Key, deviceEntryMessage(account, d.Resource, d.Label), &d.sig)
}

func b64Fixed(s string, out []byte) bool {
	if len(s) != base64.StdEncoding.EncodedLen(len(out)) {
		return false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != len(out) {
		return false
	}
	copy(out, b)
	return true
}

func hexFixed(s string, out []byte) bool {
	if len(s) != 2*len(out) {
		return false
	}
	b, err := hex.DecodeString(s)
	if err != nil || hex.EncodeToString(b) != s { // lower case only: one spelling per id
		return false
	}
	copy(out, b)
	return true
}

// validResource reports whether r can be a device's resource.
func validResource(r string) bool {
	if r == "" || len(r) > maxResource {
		return false
	}
	_, err := jid.New("a", "example.org", r)
	return err == nil
}

// parseDevices reads a device list element (the whole <devices/>, at most
// maxPEPResponse bytes). Entries that are malformed, whose id is not their
// key's, or that repeat an id or a resource are dropped; more than
// maxDevices entries make the list malformed. Signatures are not checked
// here.
func parseDevices(data []byte) ([]listedDevice, error) {
	if len(data) > maxPEPResponse {
		return nil, fmt.Errorf("%w: device list of %d bytes", errPEP, len(data))
	}
	var x xmlDevices
	if err := xml.Unmarshal(data, &x); err != nil {
		return nil, fmt.Errorf("%w: device list: %v", errPEP, err)
	}
	if len(x.Devices) > maxDevices {
		return nil, fmt.Errorf("%w: %d devices listed, more than %d", errPEP, len(x.Devices), maxDevices)
	}
	var out []listedDevice
	for _, e := range x.Devices {
		var d listedDevice
		if !hexFixed(e.ID, d.ID[:]) || !validResource(e.Resource) ||
			!b64Fixed(e.Key, d.Key[:]) || !b64Fixed(e.Sig, d.sig[:]) ||
			(e.Label != "" && !validLabel(e.Label)) {
			continue
		}
		if primitive.CheckEd25519PublicKey(d.Key) != nil || deviceIDOf(d.Key) != d.ID {
			continue
		}
		if slices.ContainsFunc(out, func(o listedDevice) bool { return o.ID == d.ID || o.Resource == e.Resource }) {
			continue
		}
		d.Resource, d.Label = e.Resource, e.Label
		out = append(out, d)
	}
	return out, nil
}

// encodeDevices is the device list element for ds.
func encodeDevices(ds []listedDevice) ([]byte, error) {
	x := xmlDevices{Devices: make([]xmlDevice, 0, len(ds))}
	for _, d := range ds {
		x.Devices = append(x.Devices, xmlDevice{
			ID: d.ID.String(), Resource: d.Resource, Label: d.Label,
			Sig: base64.StdEncoding.EncodeToString(d.sig[:]),
			Key: base64.StdEncoding.EncodeToString(d.Key[:]),
		})
	}
	return xml.Marshal(x)
}

// maxClockSkew bounds how far in the future a bundle's time may be.
const maxClockSkew = 24 * time.Hour

// parseBundle reads a bundle element for device id of account, and checks
// it completely: form, caps, that its key is id's, and its signature. now
// bounds its time.
func parseBundle(data []byte, account jid.JID, id DeviceID, now time.Time) (*Bundle, error) {
	if len(data) > maxPEPResponse {
		return nil, fmt.Errorf("%w: bundle of %d bytes", errPEP, len(data))
	}
	var x xmlBundle
	if err := xml.Unmarshal(data, &x); err != nil {
		return nil, fmt.Errorf("%w: bundle: %v", errPEP, err)
	}
	if len(x.OneTime) > maxOneTimeKeys {
		return nil, fmt.Errorf("%w: bundle with %d one-time keys, more than %d", errPEP, len(x.OneTime), maxOneTimeKeys)
	}
	b := &Bundle{Device: id}
	ts, err := strconv.ParseInt(x.TS, 10, 64)
	if err != nil || ts < 0 || x.TS != strconv.FormatInt(ts, 10) {
		return nil, fmt.Errorf("%w: bundle time %.24q", errPEP, x.TS)
	}
	b.Published = time.Unix(ts, 0).UTC()
	if b.Published.After(now.Add(maxClockSkew)) {
		return nil, fmt.Errorf("%w: bundle time %v is in the future", errPEP, b.Published)
	}
	var sig crypto.Signature
	if !b64Fixed(x.Key, b.Key[:]) || !b64Fixed(x.Sig, sig[:]) {
		return nil, fmt.Errorf("%w: bundle key or signature", errPEP)
	}
	if primitive.CheckEd25519PublicKey(b.Key) != nil || deviceIDOf(b.Key) != id {
		return nil, fmt.Errorf("%w: the bundle's key is not device %v's", errPEP, id)
	}
	digest := func(x xmlDigest) (KeyDigest, bool) {
		var k KeyDigest
		ok := hexFixed(x.ID, k.ID[:]) && b64Fixed(x.Digest, k.Digest[:]) && k.ID != [8]byte{}
		return k, ok
	}
	b.OneTimeKeys = make([]KeyDigest, 0, len(x.OneTime))
	for _, o := range x.OneTime {
		k, ok := digest(o)
		if !ok {
			return nil, fmt.Errorf("%w: one-time key digest", errPEP)
		}
		if slices.ContainsFunc(b.OneTimeKeys, func(p KeyDigest) bool { return p.ID == k.ID }) {
			return nil, fmt.Errorf("%w: one-time key id %x twice", errPEP, k.ID)
		}
		b.OneTimeKeys = append(b.OneTimeKeys, k)
	}
	if x.LastResort != nil {
		k, ok := digest(*x.LastResort)
		if !ok {
			return nil, fmt.Errorf("%w: last-resort key digest", errPEP)
		}
		b.LastResort = k
	}
	if !crypto.Verify(b.Key, bundleMessage(account, b), &sig) {
		return nil, fmt.Errorf("%w: the bundle's signature does not verify", errPEP)
	}
	return b, nil
}

// encodeBundle is the bundle element of b, signed by sign for account.
func encodeBundle(account jid.JID, b *Bundle, sign func([]byte) crypto.Signature) ([]byte, error) {
	if len(b.OneTimeKeys) > maxOneTimeKeys {
		return nil, fmt.Errorf("xmpp: %d one-time keys in a bundle, more than %d", len(b.OneTimeKeys), maxOneTimeKeys)
	}
	sig := sign(bundleMessage(account, b))
	x := xmlBundle{
		TS:  strconv.FormatInt(b.Published.Unix(), 10),
		Key: base64.StdEncoding.EncodeToString(b.Key[:]),
		Sig: base64.StdEncoding.EncodeToString(sig[:]),
	}
	for _, k := range b.OneTimeKeys {
		x.OneTime = append(x.OneTime, xmlDigest{ID: hex.EncodeToString(k.ID[:]), Digest: base64.StdEncoding.EncodeToString(k.Digest[:])})
	}
	if b.LastResort.ID != [8]byte{} {
		x.LastResort = &xmlDigest{ID: hex.EncodeToString(b.LastResort.ID[:]), Digest: base64.StdEncoding.EncodeToString(b.LastResort.Digest[:])}
	}
	return xml.Marshal(x)
}

// mergeSelf returns list with our entry in it, replacing any entry with
// our id or resource, and whether that changed the list (the list is
// published again only then). Other entries are kept as they are: a
// device removes only itself (XEP-0384's rule).
func mergeSelf(list []listedDevice, self listedDevice) ([]listedDevice, bool) {
	out := make([]listedDevice, 0, len(list)+1)
	found := false
	for _, d := range list {
		switch {
		case d.ID == self.ID && d.Resource == self.Resource && d.Label == self.Label && d.Key == self.Key && d.sig == self.sig:
			found = true
			out = append(out, d)
		case d.ID == self.ID || d.Resource == self.Resource:
			// an older entry of ours (another label), or a stale one
			// holding our resource: replaced by ours below
		default:
			out = append(out, d)
		}
	}
	if found {
		return list, false
	}
	if len(out) >= maxDevices { // full: the oldest entries go first
		out = out[len(out)-maxDevices+1:]
	}
	return append(out, self), true
}
