//go:build integration

package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/trust"
)

// Accounts the published-devices tests use alone (the others share 0-2).
const (
	pepListAccount     = 3 // two devices publish into its list
	pepFetcherAccount  = 4 // another account that reads it
	pepFallbackAccount = 5 // its nodes exist with other settings first
)

// signingKey is a fresh identity key for a device of these tests.
func signingKey(t testing.TB, n int) *crypto.SigningKey {
	t.Helper()
	var seed [crypto.SeedSize]byte
	copy(seed[:], fmt.Sprintf("pep-%d-%d", n, time.Now().UnixNano()))
	return crypto.NewSigningKey(seed)
}

// pepDevice dials account i as a device with key k and label, with no
// room: its connection publishes the device (Config.Sign set). lc, when
// set, counts its log lines.
func (s *server) pepDevice(t *testing.T, i int, k *crypto.SigningKey, label string, lc *logCount) *xmpp.Account {
	t.Helper()
	a, err := s.tryPEPDevice(t, i, k, label, lc, "")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// tryPEPDevice is pepDevice for any goroutine: it returns the error.
// fullJID, when set, is the device's address (its resource kept from an
// earlier connection).
func (s *server) tryPEPDevice(t *testing.T, i int, k *crypto.SigningKey, label string, lc *logCount, fullJID string) (*xmpp.Account, error) {
	cfg := s.config(i, k.Public())
	if fullJID != "" {
		cfg.JID = fullJID
	}
	cfg.Label, cfg.Sign = label, k.Sign
	cfg.Logf = func(format string, args ...any) {
		t.Logf("account %d %q: "+format, append([]any{i, label}, args...)...)
	}
	if lc != nil {
		lc.counting("published the device list (", "after configuring the node", "without publish-options")(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	a, err := xmpp.Dial(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("dial account %d: %v", i, err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return a, nil
}

// waitListed fetches account's device list through via until want holds.
func waitListed(t *testing.T, via *xmpp.Account, account string, want func([]xmpp.Device) bool) []xmpp.Device {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	var ds []xmpp.Device
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		ds, err = via.Devices(ctx, account)
		cancel()
		if err == nil && want(ds) {
			return ds
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the device list of %s: last %v, %v", account, ds, err)
	return nil
}

func listed(ds []xmpp.Device, k crypto.PublicKey, label string) bool {
	return slices.ContainsFunc(ds, func(d xmpp.Device) bool {
		fp := trust.FingerprintOf(k)
		return d.Key == k && d.Label == label && string(d.ID[:]) == string(fp[:8]) && (strings.HasPrefix(d.Resource, "dev") || strings.HasPrefix(d.Resource, "laptop-"))
	})
}

// TestIntegrationPublishedDevices: two devices of one account connect at
// the same time; both end up in the account's published device list
// (the upkeep's re-check puts back the entry the other's write dropped),
// with their labels, keys and resources, and both bundles are published,
// as another account reads them. A device that reconnects does not
// publish the list again when it is in it.
func TestIntegrationPublishedDevices(t *testing.T) {
	s := serverFromEnv(t)
	if len(s.accounts) <= pepFallbackAccount {
		t.Skipf("needs %d accounts", pepFallbackAccount+1)
	}
	owner := s.accounts[pepListAccount].jid
	k1, k2 := signingKey(t, 1), signingKey(t, 2)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	var laptop *xmpp.Account
	laptopJID := fmt.Sprintf("%s/laptop-%d", owner, time.Now().UnixNano()%1e6)
	wg.Go(func() { laptop, errs[0] = s.tryPEPDevice(t, pepListAccount, k1, "laptop", nil, laptopJID) })
	wg.Go(func() { _, errs[1] = s.tryPEPDevice(t, pepListAccount, k2, "phone", nil, "") })
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	reader := s.pepDevice(t, pepFetcherAccount, signingKey(t, 3), "reader", nil)

	ds := waitListed(t, reader, owner, func(ds []xmpp.Device) bool {
		return listed(ds, k1.Public(), "laptop") && listed(ds, k2.Public(), "phone")
	})
	t.Logf("%s lists %d devices", owner, len(ds))

	for _, k := range []*crypto.SigningKey{k1, k2} {
		fp := trust.FingerprintOf(k.Public())
		var id xmpp.DeviceID
		copy(id[:], fp[:8])
		deadline := time.Now().Add(waitBound)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), waitBound)
			b, err := reader.Bundle(ctx, owner, id)
			cancel()
			if err == nil && b != nil {
				if b.Key != k.Public() || b.Device != id || time.Since(b.Published) > time.Hour {
					t.Fatalf("bundle of %v: %+v", id, b)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bundle of %v: %v, %v", id, b, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// A device that publishes no bundle: none, and no error.
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	var id xmpp.DeviceID
	id[0] = 0xee
	if b, err := reader.Bundle(ctx, owner, id); b != nil || err != nil {
		t.Fatalf("the bundle of a device that publishes none: %v, %v", b, err)
	}

	// The device connects again (same resource): it finds itself listed,
	// and writes nothing.
	if err := laptop.Close(); err != nil {
		t.Fatal(err)
	}
	var lc logCount
	if _, err := s.tryPEPDevice(t, pepListAccount, k1, "laptop", &lc, laptopJID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second) // past the first re-check (2-6 s)
	if n := lc.get("published the device list ("); n != 0 {
		t.Errorf("a listed device published the list again (%d times)", n)
	}
}

// TestIntegrationPublishFallback: the account's nodes exist with settings
// other than ours (access limited to the presence roster, one item), as a
// client that is not mpenc, or an old server default, leaves them. The
// publish with publish-options is refused (precondition-not-met); the
// device configures the nodes and publishes again, and an account
// outside the roster can then read both.
func TestIntegrationPublishFallback(t *testing.T) {
	s := serverFromEnv(t)
	if len(s.accounts) <= pepFallbackAccount {
		t.Skipf("needs %d accounts", pepFallbackAccount+1)
	}
	owner := s.accounts[pepFallbackAccount].jid
	r := s.rawDial(t, pepFallbackAccount)
	restrict := func(node, maxItems string) {
		form := `<x xmlns='jabber:x:data' type='submit'>` +
			`<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>` +
			`<field var='pubsub#access_model'><value>presence</value></field>` +
			`<field var='pubsub#max_items'><value>` + maxItems + `</value></field></x>`
		id := fmt.Sprintf("c%d", time.Now().UnixNano())
		r.mustWrite(`<iq type='set' id='` + id + `'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='` + node + `'/><configure>` + form + `</configure></pubsub></iq>`)
		r.waitFor("the answer to create "+node, func(st string) bool { return strings.Contains(st, id) })
		id += "x"
		r.mustWrite(`<iq type='set' id='` + id + `'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='` + node + `'>` + form + `</configure></pubsub></iq>`)
		got := r.waitFor("the answer to configure "+node, func(st string) bool { return strings.Contains(st, id) })
		if !strings.Contains(got, `type="result"`) {
			t.Fatalf("configuring %s: %s", node, got)
		}
	}
	restrict("https://github.com/mpenc/mpenc/ns/devices/1", "1")
	restrict("https://github.com/mpenc/mpenc/ns/bundles/1", "1")

	reader := s.pepDevice(t, pepFetcherAccount, signingKey(t, 4), "reader", nil)
	k := signingKey(t, 5)
	var lc logCount
	s.pepDevice(t, pepFallbackAccount, k, "desk", &lc)
	waitListed(t, reader, owner, func(ds []xmpp.Device) bool { return listed(ds, k.Public(), "desk") })
	if lc.get("after configuring the node") == 0 {
		t.Errorf("the publish did not go through the configure fallback (log counts: configured %d, plain %d)",
			lc.get("after configuring the node"), lc.get("without publish-options"))
	}
	fp := trust.FingerprintOf(k.Public())
	var id xmpp.DeviceID
	copy(id[:], fp[:8])
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	b, err := reader.Bundle(ctx, owner, id)
	if err != nil || b == nil || b.Key != k.Public() {
		t.Fatalf("the bundle after the fallback: %v, %v", b, err)
	}
}
