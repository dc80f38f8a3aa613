// Package trusttest checks a trust.Backend: the trust store's behaviour
// (observations, decisions, policy, the key directory, atomicity) run over
// the backend under test. Package trust runs it over trust.Memory and
// package store over SQLite, so both answer the same.
package trusttest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/trust"
)

// Key returns a distinct, non-zero test key for n.
func Key(n byte) crypto.PublicKey {
	var k crypto.PublicKey
	for i := range k {
		k[i] = n ^ byte(i*7)
	}
	k[0] = n
	k[31] = 0x80 | n
	return k
}

// Clock is a fixed clock that advances by a second on each reading, so
// records have distinct, predictable times.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at a fixed date.
func NewClock() *Clock { return &Clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

// Now returns the next second.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// Run runs the behaviour tests, each over a fresh backend from newBackend.
func Run(t *testing.T, newBackend func(t *testing.T) trust.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b trust.Backend)
	}{
		{"FirstKeyRecorded", testFirstKey},
		{"SameKeyKnown", testSameKey},
		{"ChangedKeyNeverReplaces", testChanged},
		{"NewDevice", testNewDevice},
		{"VerifyAuthenticates", testVerify},
		{"AfterFirstAuthentication", testTOAKAFA},
		{"Distrust", testDistrust},
		{"TrustAcceptsChangedKey", testTrustChanged},
		{"AuthenticatedOnly", testAuthenticatedOnly},
		{"DirectoryRefusesWhatPolicyRefuses", testDirectory},
		{"DirectorySelf", testDirectorySelf},
		{"EventsRecorded", testEvents},
		{"InvalidInput", testInvalid},
		{"ConcurrentFirstObservation", testConcurrent},
		{"FailedUpdateWritesNothing", testRollback},
		{"TimesKept", testTimes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newBackend(t)) })
	}
}

func newStore(b trust.Backend, p trust.Policy) *trust.Store {
	return trust.New(b, trust.Config{Policy: p, Now: NewClock().Now})
}

func observe(t *testing.T, s *trust.Store, member string, k crypto.PublicKey) trust.Decision {
	t.Helper()
	d, err := s.Observe(member, k)
	if err != nil {
		t.Fatalf("Observe(%s): %v", member, err)
	}
	return d
}

func want(t *testing.T, d trust.Decision, kind trust.Kind, st trust.State, trusted bool) {
	t.Helper()
	if d.Kind != kind || d.State != st || d.Trusted != trusted {
		t.Fatalf("decision %v: want kind %v state %v trusted %v", d, kind, st, trusted)
	}
}

func keysOf(t *testing.T, s *trust.Store, jid string) map[crypto.PublicKey]trust.Record {
	t.Helper()
	rs, err := s.Keys(jid)
	if err != nil {
		t.Fatal(err)
	}
	m := map[crypto.PublicKey]trust.Record{}
	for _, r := range rs {
		m[r.Key] = r
	}
	return m
}

const (
	alicePhone  = "alice@example.org/phone"
	aliceLaptop = "alice@example.org/laptop"
	alice       = "alice@example.org"
	bobPhone    = "bob@example.org/phone"
)

func testFirstKey(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	d := observe(t, s, alicePhone, Key(1))
	want(t, d, trust.KeyNew, trust.BlindlyTrusted, true)
	if d.Err() != nil || d.Warning() || d.JID != alice || d.Member != alicePhone {
		t.Fatalf("first key: %+v err %v", d, d.Err())
	}
	ks := keysOf(t, s, alice)
	r, ok := ks[Key(1)]
	if len(ks) != 1 || !ok || r.State != trust.BlindlyTrusted || !r.Trusted || r.Member != alicePhone || r.JID != alice {
		t.Fatalf("records %+v", ks)
	}
	k, err := s.IdentityKey(alicePhone)
	if err != nil || k != Key(1) {
		t.Fatalf("IdentityKey = %x, %v", k[:4], err)
	}
	if _, err := s.IdentityKey(bobPhone); !errors.Is(err, trust.ErrUnknownMember) {
		t.Fatalf("unknown member: %v", err)
	}
}

func testSameKey(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	observe(t, s, alicePhone, Key(1))
	for range 3 {
		d := observe(t, s, alicePhone, Key(1))
		want(t, d, trust.KeyKnown, trust.BlindlyTrusted, true)
		if d.Err() != nil || d.Previous != nil {
			t.Fatalf("known: %+v", d)
		}
	}
	// The same device under another resource is the same key: known.
	d := observe(t, s, aliceLaptop, Key(1))
	want(t, d, trust.KeyKnown, trust.BlindlyTrusted, true)
	if n := len(keysOf(t, s, alice)); n != 1 {
		t.Fatalf("%d records", n)
	}
}

func testChanged(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	observe(t, s, alicePhone, Key(1))
	d := observe(t, s, alicePhone, Key(2))
	want(t, d, trust.KeyChanged, trust.Undecided, false)
	if !d.Warning() || len(d.Previous) != 1 || d.Previous[0].Key != Key(1) || d.Previous[0].State != trust.BlindlyTrusted {
		t.Fatalf("changed: %+v", d)
	}
	var ce *trust.KeyChangedError
	if err := d.Err(); !errors.As(err, &ce) || ce.Previous[0].Key != Key(1) || ce.Key != Key(2) {
		t.Fatalf("Err() = %v", err)
	}
	ks := keysOf(t, s, alice)
	if len(ks) != 2 || ks[Key(1)].State != trust.BlindlyTrusted || ks[Key(2)].State != trust.Undecided {
		t.Fatalf("the old key must stay and the new one be undecided: %+v", ks)
	}
	// The member now announces the new key, which is refused.
	var ue *trust.UntrustedError
	if _, err := s.IdentityKey(alicePhone); !errors.As(err, &ue) || ue.Key != Key(2) || ue.State != trust.Undecided {
		t.Fatalf("IdentityKey after change: %v", err)
	}
	// Seeing the new key again is not a new alarm, and does not trust it.
	want(t, observe(t, s, alicePhone, Key(2)), trust.KeyKnown, trust.Undecided, false)
	// Going back to the old key: known, trusted as before.
	want(t, observe(t, s, alicePhone, Key(1)), trust.KeyKnown, trust.BlindlyTrusted, true)
	// A third key is a change again, with the key announced last before it.
	d = observe(t, s, alicePhone, Key(3))
	want(t, d, trust.KeyChanged, trust.Undecided, false)
	if d.Previous[0].Key != Key(1) {
		t.Fatalf("previous = %x", d.Previous[0].Key[:4])
	}
}

func testNewDevice(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	observe(t, s, alicePhone, Key(1))
	d := observe(t, s, aliceLaptop, Key(2))
	// No authenticated key yet: a new device is trusted blindly (BTBV),
	// and reported with the account's other keys.
	want(t, d, trust.KeyNewDevice, trust.BlindlyTrusted, true)
	if d.Warning() || d.Err() != nil || len(d.Previous) != 1 || d.Previous[0].Key != Key(1) {
		t.Fatalf("new device: %+v", d)
	}
	// Another account is independent.
	want(t, observe(t, s, bobPhone, Key(3)), trust.KeyNew, trust.BlindlyTrusted, true)
}

func testVerify(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	observe(t, s, alicePhone, Key(1))
	r, err := s.Verify(alicePhone, Key(1)) // a full JID: its bare part counts
	if err != nil || r.State != trust.Authenticated || !r.Trusted || r.JID != alice || r.Decided.IsZero() {
		t.Fatalf("Verify = %+v, %v", r, err)
	}
	want(t, observe(t, s, alicePhone, Key(1)), trust.KeyKnown, trust.Authenticated, true)
	// A key verified before it is seen (scanned from a QR code).
	if _, err := s.Verify(bobPhone, Key(5)); err != nil {
		t.Fatal(err)
	}
	want(t, observe(t, s, bobPhone, Key(5)), trust.KeyKnown, trust.Authenticated, true)
}

// testTOAKAFA: XEP-0450 "trust only authenticated keys after first
// authentication".
func testTOAKAFA(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	observe(t, s, alicePhone, Key(1))
	observe(t, s, aliceLaptop, Key(2)) // blindly trusted
	if _, err := s.Verify(alice, Key(1)); err != nil {
		t.Fatal(err)
	}
	// The blindly trusted laptop key is no longer used.
	ks := keysOf(t, s, alice)
	if ks[Key(2)].State != trust.BlindlyTrusted || ks[Key(2)].Trusted || !ks[Key(1)].Trusted {
		t.Fatalf("after verification: %+v", ks)
	}
	var ue *trust.UntrustedError
	if _, err := s.IdentityKey(aliceLaptop); !errors.As(err, &ue) || !ue.JIDAuthenticated {
		t.Fatalf("blindly trusted key after first authentication: %v", err)
	}
	// A new device now waits for verification.
	d := observe(t, s, "alice@example.org/tablet", Key(3))
	want(t, d, trust.KeyNewDevice, trust.Undecided, false)
	if _, err := s.IdentityKey("alice@example.org/tablet"); !errors.As(err, &ue) {
		t.Fatalf("new key after first authentication: %v", err)
	}
	// Trusting it blindly by hand does not help while alice has a verified key.
	r, err := s.Trust(alice, Key(3))
	if err != nil || r.Trusted || r.State != trust.BlindlyTrusted {
		t.Fatalf("Trust after first authentication = %+v, %v", r, err)
	}
	// Verifying it does.
	if _, err := s.Verify(alice, Key(3)); err != nil {
		t.Fatal(err)
	}
	if k, err := s.IdentityKey("alice@example.org/tablet"); err != nil || k != Key(3) {
		t.Fatalf("verified key refused: %v", err)
	}
	if k, err := s.IdentityKey(alicePhone); err != nil || k != Key(1) {
		t.Fatalf("verified key refused: %v", err)
	}
	// Other accounts keep blind trust.
	want(t, observe(t, s, bobPhone, Key(9)), trust.KeyNew, trust.BlindlyTrusted, true)
}

func testDistrust(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	observe(t, s, alicePhone, Key(1))
	r, err := s.Distrust(alice, Key(1))
	if err != nil || r.State != trust.Distrusted || r.Trusted {
		t.Fatalf("Distrust = %+v, %v", r, err)
	}
	d := observe(t, s, alicePhone, Key(1))
	want(t, d, trust.KeyDistrusted, trust.Distrusted, false)
	var de *trust.DistrustedError
	if !d.Warning() || !errors.As(d.Err(), &de) {
		t.Fatalf("distrusted: %+v %v", d, d.Err())
	}
	var ue *trust.UntrustedError
	if _, err := s.IdentityKey(alicePhone); !errors.As(err, &ue) || ue.State != trust.Distrusted {
		t.Fatalf("IdentityKey of a distrusted key: %v", err)
	}
	// Distrusting a key never seen records it, so it is refused on arrival.
	if _, err := s.Distrust(bobPhone, Key(7)); err != nil {
		t.Fatal(err)
	}
	want(t, observe(t, s, bobPhone, Key(7)), trust.KeyDistrusted, trust.Distrusted, false)
	// Verification by the user overrides an earlier distrust.
	if _, err := s.Verify(alice, Key(1)); err != nil {
		t.Fatal(err)
	}
	want(t, observe(t, s, alicePhone, Key(1)), trust.KeyKnown, trust.Authenticated, true)
}

func testTrustChanged(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	observe(t, s, alicePhone, Key(1))
	observe(t, s, alicePhone, Key(2))
	r, err := s.Trust(alicePhone, Key(2))
	if err != nil || !r.Trusted {
		t.Fatalf("Trust = %+v, %v", r, err)
	}
	if k, err := s.IdentityKey(alicePhone); err != nil || k != Key(2) {
		t.Fatalf("trusted changed key: %v", err)
	}
}

func testAuthenticatedOnly(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.AuthenticatedOnly)
	d := observe(t, s, alicePhone, Key(1))
	want(t, d, trust.KeyNew, trust.Undecided, false)
	if d.Warning() || d.Err() != nil {
		t.Fatalf("an unverified newcomer is no alarm: %+v", d)
	}
	if _, err := s.IdentityKey(alicePhone); err == nil {
		t.Fatal("unverified key used under AuthenticatedOnly")
	}
	if r, _ := s.Trust(alice, Key(1)); r.Trusted {
		t.Fatal("blind trust counted under AuthenticatedOnly")
	}
	if _, err := s.Verify(alice, Key(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.IdentityKey(alicePhone); err != nil {
		t.Fatal(err)
	}
}

func testDirectory(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	var got []trust.Decision
	d := &trust.Directory{Store: s, OnDecision: func(dec trust.Decision) { got = append(got, dec) }}
	if err := d.ObserveKey(alicePhone, Key(1)); err != nil {
		t.Fatal(err)
	}
	if k, err := d.IdentityKey(alicePhone); err != nil || k != Key(1) {
		t.Fatalf("IdentityKey = %v", err)
	}
	err := d.ObserveKey(alicePhone, Key(2))
	var ce *trust.KeyChangedError
	if !errors.As(err, &ce) {
		t.Fatalf("changed key: ObserveKey = %v", err)
	}
	if _, err := d.IdentityKey(alicePhone); err == nil {
		t.Fatal("directory answered a changed key")
	}
	if err := d.ObserveKey(bobPhone, Key(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Distrust(bobPhone, Key(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.IdentityKey(bobPhone); err == nil {
		t.Fatal("directory answered a distrusted key")
	}
	if _, err := d.IdentityKey("carol@example.org/x"); !errors.Is(err, trust.ErrUnknownMember) {
		t.Fatalf("unknown: %v", err)
	}
	if err := d.ObserveKey("bad\x00jid", Key(3)); err == nil {
		t.Fatal("invalid JID accepted")
	}
	if len(got) != 3 || got[0].Kind != trust.KeyNew || got[1].Kind != trust.KeyChanged || got[2].Kind != trust.KeyNew {
		t.Fatalf("OnDecision got %v", got)
	}
}

func testDirectorySelf(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.AuthenticatedOnly)
	d := &trust.Directory{Store: s, Self: alicePhone, SelfKey: Key(1)}
	if err := d.ObserveKey(alicePhone, Key(1)); err != nil {
		t.Fatal(err)
	}
	if k, err := d.IdentityKey(alicePhone); err != nil || k != Key(1) {
		t.Fatalf("self: %v", err)
	}
	var ce *trust.KeyChangedError
	if err := d.ObserveKey(alicePhone, Key(2)); !errors.As(err, &ce) {
		t.Fatalf("someone announcing another key for us: %v", err)
	}
	if k, err := d.IdentityKey(alicePhone); err != nil || k != Key(1) {
		t.Fatalf("self after impersonation: %v", err)
	}
	// Our own key is not recorded: it must not make our other devices
	// verified-only.
	if all, _ := s.All(); len(all) != 0 {
		t.Fatalf("own key recorded: %+v", all)
	}
}

func testEvents(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	observe(t, s, alicePhone, Key(1))
	observe(t, s, alicePhone, Key(1))
	observe(t, s, aliceLaptop, Key(2))
	observe(t, s, alicePhone, Key(3))
	observe(t, s, bobPhone, Key(4))
	s.Verify(alice, Key(3))
	s.Trust(alice, Key(2))
	s.Distrust(alice, Key(1))
	evs, err := s.Events(alice, 0)
	if err != nil {
		t.Fatal(err)
	}
	kinds := []trust.EventKind{trust.EventNew, trust.EventNewDevice, trust.EventChanged, trust.EventVerified, trust.EventTrusted, trust.EventDistrusted}
	if len(evs) != len(kinds) {
		t.Fatalf("events %+v", evs)
	}
	for i, e := range evs {
		if e.Kind != kinds[i] || e.JID != alice || e.At.IsZero() {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	if evs[2].Previous != Key(1) || evs[2].Key != Key(3) || evs[2].Member != alicePhone {
		t.Fatalf("changed event %+v", evs[2])
	}
	if last, _ := s.Events(alice, 2); len(last) != 2 || last[1].Kind != trust.EventDistrusted {
		t.Fatalf("last 2: %+v", last)
	}
	if all, _ := s.Events("", 0); len(all) != 7 {
		t.Fatalf("all events: %d", len(all))
	}
}

func testInvalid(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	long := make([]byte, trust.MaxJIDSize+1)
	for i := range long {
		long[i] = 'a'
	}
	for _, jid := range []string{"", "/res", "a\nb@c", "\xff@x", string(long)} {
		if _, err := s.Observe(jid, Key(1)); !errors.Is(err, trust.ErrInvalid) {
			t.Errorf("Observe(%.20q) = %v", jid, err)
		}
		if _, err := s.Verify(jid, Key(1)); !errors.Is(err, trust.ErrInvalid) {
			t.Errorf("Verify(%.20q) = %v", jid, err)
		}
	}
	if _, err := s.Observe(alicePhone, crypto.PublicKey{}); !errors.Is(err, trust.ErrInvalid) {
		t.Errorf("zero key: %v", err)
	}
	if all, _ := s.All(); len(all) != 0 {
		t.Fatalf("invalid input recorded: %+v", all)
	}
}

func testConcurrent(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	const n = 8
	var wg sync.WaitGroup
	kinds := make([]trust.Kind, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := s.Observe(fmt.Sprintf("alice@example.org/d%d", i), Key(byte(i+1)))
			kinds[i], errs[i] = d.Kind, err
		}()
	}
	wg.Wait()
	news := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if kinds[i] == trust.KeyNew {
			news++
		} else if kinds[i] != trust.KeyNewDevice {
			t.Fatalf("kind %v", kinds[i])
		}
	}
	if news != 1 {
		t.Fatalf("%d observations saw the first key", news)
	}
	if len(keysOf(t, s, alice)) != n {
		t.Fatal("lost a key")
	}
}

func testRollback(t *testing.T, b trust.Backend) {
	boom := errors.New("boom")
	err := b.Update(func(tx trust.Tx) error {
		if err := tx.PutKey(trust.Record{JID: alice, Key: Key(1), State: trust.Authenticated, FirstSeen: time.Unix(1, 0), LastSeen: time.Unix(1, 0)}); err != nil {
			return err
		}
		if err := tx.Bind(alicePhone, Key(1), time.Unix(1, 0)); err != nil {
			return err
		}
		if err := tx.AppendEvent(trust.Event{At: time.Unix(1, 0), Kind: trust.EventNew, JID: alice, Key: Key(1)}); err != nil {
			return err
		}
		// Reads inside the transaction see its writes.
		rs, err := tx.Keys(alice)
		if err != nil || len(rs) != 1 {
			return fmt.Errorf("read own write: %v %v", rs, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v", err)
	}
	s := newStore(b, trust.BlindTrustBeforeVerification)
	if all, _ := s.All(); len(all) != 0 {
		t.Fatalf("failed update left %+v", all)
	}
	if _, ok, _ := s.Current(alicePhone); ok {
		t.Fatal("failed update left a binding")
	}
	if evs, _ := s.Events("", 0); len(evs) != 0 {
		t.Fatal("failed update left an event")
	}
	// View discards writes.
	b.View(func(tx trust.Tx) error {
		return tx.PutKey(trust.Record{JID: alice, Key: Key(1), State: trust.Authenticated})
	})
	if all, _ := s.All(); len(all) != 0 {
		t.Fatalf("View kept a write: %+v", all)
	}
}

func testTimes(t *testing.T, b trust.Backend) {
	c := NewClock()
	s := trust.New(b, trust.Config{Now: c.Now})
	observe(t, s, alicePhone, Key(1))
	observe(t, s, alicePhone, Key(1))
	r := keysOf(t, s, alice)[Key(1)]
	if !r.FirstSeen.Equal(time.Date(2030, 1, 2, 3, 4, 6, 0, time.UTC)) || !r.LastSeen.Equal(time.Date(2030, 1, 2, 3, 4, 7, 0, time.UTC)) || !r.Decided.IsZero() {
		t.Fatalf("times %+v", r)
	}
}
