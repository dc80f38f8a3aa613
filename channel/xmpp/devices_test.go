package xmpp

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/trust"
)

var pepAccount = jid.MustParse("alice@example.org")

func pepKey(n byte) *crypto.SigningKey {
	var seed [crypto.SeedSize]byte
	seed[0], seed[31] = n, 0xd1
	return crypto.NewSigningKey(seed)
}

// entry is device n's signed entry in pepAccount's list.
func entry(n byte, label string) listedDevice {
	k := pepKey(n)
	d := listedDevice{Device: Device{ID: deviceIDOf(k.Public()), Resource: fmt.Sprintf("mpenc-%02x", n), Key: k.Public(), Label: label}}
	d.sig = k.Sign(deviceEntryMessage(pepAccount, d.Resource, label))
	return d
}

func TestDeviceIDIsFingerprintPrefix(t *testing.T) {
	for n := range byte(4) {
		k := pepKey(n).Public()
		fp := trust.FingerprintOf(k)
		if id := deviceIDOf(k); !bytes.Equal(id[:], fp[:8]) {
			t.Fatalf("device id %v, fingerprint %v", id, fp)
		}
	}
}

func TestDeviceListRoundTrip(t *testing.T) {
	list := []listedDevice{entry(1, "laptop"), entry(2, ""), entry(3, "phone ☎")}
	data, err := encodeDevices(list)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseDevices(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(list) {
		t.Fatalf("%d entries back, want %d:\n%s", len(got), len(list), data)
	}
	for i := range got {
		if got[i] != list[i] {
			t.Fatalf("entry %d: %+v, want %+v", i, got[i], list[i])
		}
		if !got[i].verify(pepAccount) {
			t.Fatalf("entry %d does not verify", i)
		}
		// The signature binds the account: another account's list cannot
		// carry it.
		if got[i].verify(jid.MustParse("mallory@example.org")) {
			t.Fatalf("entry %d verifies for another account", i)
		}
	}
}

// TestDeviceListDropsBadEntries: each entry breaking one rule is dropped,
// the others kept; the signature is checked by verify, not by the parser.
func TestDeviceListDropsBadEntries(t *testing.T) {
	good := entry(1, "laptop")
	renamed := entry(2, "phone")
	renamed.Label = "p0ne" // the signature no longer matches
	wrongID := entry(3, "x")
	wrongID.ID[0] ^= 1
	dupID := entry(1, "again")
	sameRes := entry(4, "y")
	sameRes.Resource = good.Resource
	data, err := encodeDevices([]listedDevice{good, renamed, wrongID, dupID, sameRes})
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseDevices(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != good || got[1].Label != "p0ne" {
		t.Fatalf("kept %+v", got)
	}
	if got[1].verify(pepAccount) {
		t.Fatal("a renamed entry verifies")
	}
	for name, text := range map[string]string{
		"upper-case id":          strings.Replace(string(mustEncode(t, good)), good.ID.String(), strings.ToUpper(good.ID.String()), 1),
		"short key":              strings.Replace(string(mustEncode(t, good)), ">", ">AAAA", 2),
		"bidi override in label": strings.Replace(string(mustEncode(t, good)), "laptop", "lap\u202etop", 1),
		"bad resource":           strings.Replace(string(mustEncode(t, good)), good.Resource, "a/b@c\x7f", 1),
	} {
		got, err := parseDevices([]byte(text))
		if err != nil || len(got) != 0 {
			t.Errorf("%s: %v, %v (want the entry dropped)", name, got, err)
		}
	}
}

func mustEncode(t *testing.T, ds ...listedDevice) []byte {
	t.Helper()
	b, err := encodeDevices(ds)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDeviceListCaps(t *testing.T) {
	var many []listedDevice
	for n := range byte(maxDevices + 1) {
		many = append(many, entry(n, "d"))
	}
	if _, err := parseDevices(mustEncode(t, many...)); !errors.Is(err, errPEP) {
		t.Fatalf("%d devices: %v", len(many), err)
	}
	if _, err := parseDevices(mustEncode(t, many[:maxDevices]...)); err != nil {
		t.Fatalf("%d devices: %v", maxDevices, err)
	}
	big := append(mustEncode(t, entry(1, "a")), bytes.Repeat([]byte(" "), maxPEPResponse)...)
	if _, err := parseDevices(big); !errors.Is(err, errPEP) {
		t.Fatalf("oversized: %v", err)
	}
	for _, text := range []string{"", "<devices/>", "<x xmlns='" + nsDevices + "'/>", "<devices xmlns='" + nsDevices + "'><device"} {
		if ds, err := parseDevices([]byte(text)); err == nil && len(ds) != 0 {
			t.Fatalf("%q: %v", text, ds)
		}
	}
}

func TestMergeSelf(t *testing.T) {
	a, b, me := entry(1, "a"), entry(2, "b"), entry(3, "me")
	if got, changed := mergeSelf(nil, me); !changed || len(got) != 1 || got[0] != me {
		t.Fatalf("empty list: %v %v", got, changed)
	}
	list := []listedDevice{a, me, b}
	if got, changed := mergeSelf(list, me); changed || len(got) != 3 {
		t.Fatalf("listed already: %v %v", got, changed)
	}
	// Our entry with an old label is replaced; a stale entry holding our
	// resource too; the others stay in their order.
	old := entry(3, "old name")
	stale := entry(4, "gone")
	stale.Resource = me.Resource
	got, changed := mergeSelf([]listedDevice{a, old, stale, b}, me)
	if !changed || len(got) != 3 || got[0] != a || got[1] != b || got[2] != me {
		t.Fatalf("replaced: %v %v", got, changed)
	}
	// A full list makes room by dropping the oldest entries.
	var full []listedDevice
	for n := range byte(maxDevices) {
		full = append(full, entry(10+n, "d"))
	}
	got, changed = mergeSelf(full, me)
	if !changed || len(got) != maxDevices || got[len(got)-1] != me || got[0] != full[1] {
		t.Fatalf("full list: %d entries, changed %v", len(got), changed)
	}
}

func bundleOf(n byte, otks int, lr bool) *Bundle {
	k := pepKey(n)
	b := &Bundle{Device: deviceIDOf(k.Public()), Key: k.Public(), Published: time.Unix(1_800_000_000, 0).UTC()}
	for i := range otks {
		var d KeyDigest
		d.ID[0], d.ID[7] = byte(i+1), n
		d.Digest[0] = byte(i)
		b.OneTimeKeys = append(b.OneTimeKeys, d)
	}
	if lr {
		b.LastResort.ID[0], b.LastResort.Digest[5] = 0xff, 9
	}
	return b
}

var pepNow = time.Unix(1_800_000_100, 0)

func TestBundleRoundTrip(t *testing.T) {
	for _, b := range []*Bundle{bundleOf(1, 0, false), bundleOf(2, 3, true), bundleOf(3, maxOneTimeKeys, true)} {
		data, err := encodeBundle(pepAccount, b, pepKey(keyIndex(b)).Sign)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseBundle(data, pepAccount, b.Device, pepNow)
		if err != nil {
			t.Fatalf("%d one-time keys: %v\n%s", len(b.OneTimeKeys), err, data)
		}
		if got.Key != b.Key || !got.Published.Equal(b.Published) || len(got.OneTimeKeys) != len(b.OneTimeKeys) || got.LastResort != b.LastResort {
			t.Fatalf("got %+v, want %+v", got, b)
		}
		for i := range got.OneTimeKeys {
			if got.OneTimeKeys[i] != b.OneTimeKeys[i] {
				t.Fatalf("one-time key %d: %v, want %v", i, got.OneTimeKeys[i], b.OneTimeKeys[i])
			}
		}
	}
}

// keyIndex finds which pepKey signs b (the tests' keys are 1 to 3).
func keyIndex(b *Bundle) byte {
	for n := range byte(8) {
		if pepKey(n).Public() == b.Key {
			return n
		}
	}
	panic("unknown key")
}

func TestBundleRefusals(t *testing.T) {
	b := bundleOf(2, 2, true)
	sign := pepKey(2).Sign
	data, err := encodeBundle(pepAccount, b, sign)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func() error{
		"another account": func() error {
			_, err := parseBundle(data, jid.MustParse("mallory@example.org"), b.Device, pepNow)
			return err
		},
		"another device": func() error {
			id := b.Device
			id[0] ^= 1
			_, err := parseBundle(data, pepAccount, id, pepNow)
			return err
		},
		"a digest changed": func() error {
			text := strings.Replace(string(data), "AAAA", "AAAB", 1)
			_, err := parseBundle([]byte(text), pepAccount, b.Device, pepNow)
			return err
		},
		"from the future": func() error {
			_, err := parseBundle(data, pepAccount, b.Device, b.Published.Add(-maxClockSkew-time.Second))
			return err
		},
		"signed by another key": func() error {
			d, _ := encodeBundle(pepAccount, b, pepKey(5).Sign)
			_, err := parseBundle(d, pepAccount, b.Device, pepNow)
			return err
		},
		"a repeated one-time key id": func() error {
			c := *b
			c.OneTimeKeys = []KeyDigest{b.OneTimeKeys[0], b.OneTimeKeys[0]}
			d, _ := encodeBundle(pepAccount, &c, sign)
			_, err := parseBundle(d, pepAccount, b.Device, pepNow)
			return err
		},
		"too many one-time keys": func() error {
			c := bundleOf(2, maxOneTimeKeys+1, false)
			c.Key = b.Key
			d, err := encodeBundle(pepAccount, c, sign)
			if err == nil {
				_, err = parseBundle(d, pepAccount, b.Device, pepNow)
			}
			return err
		},
		"time with a sign": func() error {
			text := strings.Replace(string(data), `ts="`, `ts="+`, 1)
			_, err := parseBundle([]byte(text), pepAccount, b.Device, pepNow)
			return err
		},
	}
	for name, f := range cases {
		if err := f(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPEPAnswer(t *testing.T) {
	ok := `<iq xmlns='jabber:client' type='result' id='x'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'>` +
		`<item id='current'><devices xmlns='` + nsDevices + `'/></item><item id='b'><x xmlns='y'>t</x></item></items></pubsub></iq>`
	a, err := parsePEPAnswer([]byte(ok))
	if err != nil || a.err != nil || len(a.items) != 2 || a.items[0].id != "current" || !strings.HasPrefix(string(a.items[0].payload), "<devices") {
		t.Fatalf("%+v %v", a, err)
	}
	refused := `<iq xmlns='jabber:client' type='error' id='x'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
		`<precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>`
	a, err = parsePEPAnswer([]byte(refused))
	if err != nil || a.err == nil || a.err.Condition != stanza.Conflict || a.pubsubCond != "precondition-not-met" {
		t.Fatalf("%+v %v", a, err)
	}
	for _, bad := range []string{"", "<iq type='set'/>", "<iq type='result'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items>" + strings.Repeat("<item/>", maxDevices+1) + "</items></pubsub></iq>"} {
		if _, err := parsePEPAnswer([]byte(bad)); !errors.Is(err, errPEP) {
			t.Errorf("%.40q: %v", bad, err)
		}
	}
}

func FuzzParseDevices(f *testing.F) {
	f.Add(mustEncodeF(entry(1, "laptop"), entry(2, "")))
	f.Add([]byte("<devices xmlns='" + nsDevices + "'><device id='00' resource='r' sig='' label='l'>k</device></devices>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, err := parseDevices(data)
		if err != nil {
			if ds != nil {
				t.Fatal("entries with an error")
			}
			return
		}
		if len(ds) > maxDevices {
			t.Fatalf("%d entries", len(ds))
		}
		seen := map[DeviceID]bool{}
		for _, d := range ds {
			if deviceIDOf(d.Key) != d.ID || seen[d.ID] || !validResource(d.Resource) || (d.Label != "" && !validLabel(d.Label)) {
				t.Fatalf("kept an entry breaking the rules: %+v", d)
			}
			seen[d.ID] = true
		}
		// What we read, we write back so that it reads the same.
		again, err := parseDevices(mustEncodeF(ds...))
		if err != nil || len(again) != len(ds) {
			t.Fatalf("re-encoded: %v, %d of %d entries", err, len(again), len(ds))
		}
		for i := range ds {
			if again[i] != ds[i] {
				t.Fatalf("entry %d changed: %+v → %+v", i, ds[i], again[i])
			}
		}
	})
}

func mustEncodeF(ds ...listedDevice) []byte {
	b, err := encodeDevices(ds)
	if err != nil {
		panic(err)
	}
	return b
}

func FuzzParseBundle(f *testing.F) {
	b := bundleOf(2, 3, true)
	data, _ := encodeBundle(pepAccount, b, pepKey(2).Sign)
	f.Add(data)
	data, _ = encodeBundle(pepAccount, bundleOf(2, 0, false), pepKey(2).Sign)
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseBundle(data, pepAccount, b.Device, pepNow)
		if err != nil {
			return
		}
		if got.Key != b.Key || len(got.OneTimeKeys) > maxOneTimeKeys || got.Published.After(pepNow.Add(maxClockSkew)) {
			t.Fatalf("accepted %+v", got)
		}
		// What we accept, the device's key signed: signing the same
		// content again gives a bundle that reads the same.
		again, err := encodeBundle(pepAccount, got, pepKey(2).Sign)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseBundle(again, pepAccount, b.Device, pepNow)
		if err != nil || !back.Published.Equal(got.Published) || len(back.OneTimeKeys) != len(got.OneTimeKeys) || back.LastResort != got.LastResort {
			t.Fatalf("re-signed: %+v, %v", back, err)
		}
	})
}

func FuzzParsePEPAnswer(f *testing.F) {
	f.Add([]byte(`<iq type='result'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'><item id='current'><devices xmlns='` + nsDevices + `'/></item></items></pubsub></iq>`))
	f.Add([]byte(`<iq type='error'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := parsePEPAnswer(data)
		if err != nil {
			return
		}
		if len(a.items) > maxDevices {
			t.Fatalf("%d items", len(a.items))
		}
		for _, it := range a.items {
			_, _ = parseDevices(it.payload)
			_, _ = parseBundle(it.payload, pepAccount, DeviceID{}, pepNow)
		}
	})
}
