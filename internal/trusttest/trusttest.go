// Package trusttest checks a trust.Backend: the trust store's behaviour
// (observations, decisions, policy, the key directory, atomicity) run over
// the backend under test. Package trust runs it over trust.Memory and
// package store over SQLite, so both answer the same.
//
// It drives the store through what a program uses (trust.Directory, the
// user's decisions, Store.Current) and reads what was recorded through the
// backend itself (Tx.Keys, Tx.Events). Where trust gives a refusal only as
// an error's text (the directory's warnings and refusals), the text is
// checked: member, fingerprints and reason.
package trusttest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/trust"
)

// Key returns a distinct valid Ed25519 public key for n (the trust store
// refuses keys no device could announce).
func Key(n byte) crypto.PublicKey {
	var seed [crypto.SeedSize]byte
	seed[0], seed[1] = n, 0x7e
	return crypto.NewSigningKey(seed).Public()
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
		{"ChangedToKeyKnownElsewhere", testChangedToKnown},
		{"ChangeSettledByLaterDecision", testChangeSettled},
		{"ClaimedByAnotherAccount", testClaimed},
		{"ClaimSettledOnlyByLaterDecision", testClaimSettled},
		{"ClaimedButChangedOrDistrusted", testClaimPrecedence},
		{"NoClaimWithinAccount", testNoClaimWithinAccount},
		{"ClaimTie", testClaimTie},
		{"ClaimedOwnKey", testClaimOwnKey},
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
		{"LabelsKept", testLabels},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newBackend(t)) })
	}
}

func newStore(b trust.Backend, p trust.Policy) *trust.Store {
	return trust.New(b, trust.Config{Policy: p, Now: NewClock().Now})
}

// Observe records that member announced key as a session does, through a
// trust.Directory, and returns the store's decision. The error is the
// directory's when the store decided nothing (invalid input, a backend
// failure); the warning a decision carries (a changed or distrusted key)
// is in the Decision.
func Observe(s *trust.Store, member string, key crypto.PublicKey) (trust.Decision, error) {
	d, decided, err := observeKey(s, member, key)
	if decided {
		err = nil
	}
	return d, err
}

// observeKey calls the directory's ObserveKey and returns the decision it
// handed to OnDecision, whether it handed one, and its error.
func observeKey(s *trust.Store, member string, key crypto.PublicKey) (d trust.Decision, decided bool, err error) {
	dir := &trust.Directory{Store: s, OnDecision: func(dec trust.Decision) {
		if decided {
			panic("trusttest: two decisions for one observation")
		}
		d, decided = dec, true
	}}
	err = dir.ObserveKey(member, key)
	return d, decided, err
}

// observeErr observes and returns the decision with the directory's error,
// having checked that the error is the decision's warning and only that.
func observeErr(t *testing.T, s *trust.Store, member string, k crypto.PublicKey) (trust.Decision, error) {
	t.Helper()
	d, decided, err := observeKey(s, member, k)
	if !decided {
		t.Fatalf("ObserveKey(%s) decided nothing: %v", member, err)
	}
	if (err != nil) != d.Warning() {
		t.Fatalf("ObserveKey(%s) = %v for decision %v: an error exactly for a warning", member, err, d)
	}
	if err != nil && (!strings.HasPrefix(err.Error(), "trust: "+member+" ") || !strings.Contains(err.Error(), fp(k))) {
		t.Fatalf("ObserveKey(%s) = %q: want the member and the key's fingerprint", member, err)
	}
	return d, err
}

func observe(t *testing.T, s *trust.Store, member string, k crypto.PublicKey) trust.Decision {
	t.Helper()
	d, _ := observeErr(t, s, member, k)
	return d
}

func want(t *testing.T, d trust.Decision, kind trust.Kind, st trust.State, trusted bool) {
	t.Helper()
	if d.Kind != kind || d.State != st || d.Trusted != trusted {
		t.Fatalf("decision %v: want kind %v state %v trusted %v", d, kind, st, trusted)
	}
}

// identityKey is what a session asks: the directory's IdentityKey.
func identityKey(s *trust.Store, member string) (crypto.PublicKey, error) {
	return (&trust.Directory{Store: s}).IdentityKey(member)
}

func fp(k crypto.PublicKey) string { return trust.FingerprintOf(k).String() }

// Why the directory refuses a key (the end of its error).
const (
	whyUnverified       = "it is not verified"
	whyDistrusted       = "it is distrusted"
	whyJIDAuthenticated = "the account has verified keys and this one is not verified"
	whyAutoDistrusted   = "it was trusted blindly until the account's first key was verified, and it is not verified"
	whyChanged          = "it replaced the key this device had, and you have not verified or trusted it since"
)

// whyClaimed is why the directory refuses jid's key that other accounts
// (named as the refusal names them) have.
func whyClaimed(jid, others string) string {
	return fmt.Sprintf("it is also the key of %s, and you have not verified or trusted it for %s since", others, jid)
}

// claimedWarning is the warning ObserveKey returns for a claimed key.
func claimedWarning(member string, k crypto.PublicKey, others string) string {
	return fmt.Sprintf("trust: %s announced the identity key %s, which is also the key of %s: one account may be posing as another; "+
		"not used for %s until verified or trusted for it", member, fp(k), others, trust.Bare(member))
}

// refused checks that the directory refused member's key k, and why.
func refused(t *testing.T, s *trust.Store, member string, k crypto.PublicKey, why string) {
	t.Helper()
	got, err := identityKey(s, member)
	want := fmt.Sprintf("trust: %s's identity key %s is not trusted: %s", member, fp(k), why)
	if err == nil || err.Error() != want {
		t.Fatalf("IdentityKey(%s) = %x, %v; want the refusal %q", member, got[:4], err, want)
	}
	if r, ok, err := s.Current(member); err != nil || !ok || r.Key != k || r.Trusted {
		t.Fatalf("Current(%s) = %+v, %v, %v; want the untrusted key %x", member, r, ok, err, k[:4])
	}
}

// unknown checks that the directory knows no key of member.
func unknown(t *testing.T, s *trust.Store, member string) {
	t.Helper()
	_, err := identityKey(s, member)
	if want := "trust: no identity key announced: " + member; err == nil || err.Error() != want {
		t.Fatalf("IdentityKey(%s) = %v, want %q", member, err, want)
	}
	if _, ok, err := s.Current(member); ok || err != nil {
		t.Fatalf("Current(%s) = %v, %v: want no key", member, ok, err)
	}
}

// invalidInput is trust's invalid-input error, which every refusal of a
// malformed JID or key wraps. No caller branches on it, so trust does not
// export it; CheckJID's refusal wraps it alone.
func invalidInput(t *testing.T) error {
	t.Helper()
	err := errors.Unwrap(trust.CheckJID(""))
	if err == nil || err.Error() != "trust: invalid input" {
		t.Fatalf("CheckJID's refusal wraps %v", err)
	}
	return err
}

// records reads jid's records (every record if jid is "") from the
// backend, as stored: Trusted is the store's to compute, never stored.
func records(t *testing.T, b trust.Backend, jid string) []trust.Record {
	t.Helper()
	var rs []trust.Record
	if err := b.View(func(tx trust.Tx) error {
		var err error
		rs, err = tx.Keys(jid)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Trusted || r.Changed || r.Claimed {
			t.Fatalf("the backend returned Trusted, Changed or Claimed: %+v", r)
		}
	}
	return rs
}

// holders reads every record of key from the backend (Tx.KeyHolders).
func holders(t *testing.T, b trust.Backend, key crypto.PublicKey) []trust.Record {
	t.Helper()
	var rs []trust.Record
	if err := b.View(func(tx trust.Tx) error {
		var err error
		rs, err = tx.KeyHolders(key)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Key != key || r.Trusted || r.Changed || r.Claimed {
			t.Fatalf("KeyHolders(%x) returned %+v", key[:4], r)
		}
	}
	return rs
}

func jidsOf(rs []trust.Record) string {
	var jids []string
	for _, r := range rs {
		jids = append(jids, r.JID)
	}
	return strings.Join(jids, " ")
}

func keysOf(t *testing.T, b trust.Backend, jid string) map[crypto.PublicKey]trust.Record {
	t.Helper()
	m := map[crypto.PublicKey]trust.Record{}
	for _, r := range records(t, b, jid) {
		m[r.Key] = r
	}
	return m
}

// events reads the trust history of jid (every JID if "") from the
// backend, at most limit entries (all if limit <= 0).
func events(t *testing.T, b trust.Backend, jid string, limit int) []trust.Event {
	t.Helper()
	var evs []trust.Event
	if err := b.View(func(tx trust.Tx) error {
		var err error
		evs, err = tx.Events(jid, limit)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return evs
}

// current returns member's current record, which must exist.
func current(t *testing.T, s *trust.Store, member string) trust.Record {
	t.Helper()
	r, ok, err := s.Current(member)
	if err != nil || !ok {
		t.Fatalf("Current(%s) = %v, %v", member, ok, err)
	}
	return r
}

const (
	alicePhone  = "alice@example.org/phone"
	aliceLaptop = "alice@example.org/laptop"
	alice       = "alice@example.org"
	bobPhone    = "bob@example.org/phone"
	bobLaptop   = "bob@example.org/laptop"
	bob         = "bob@example.org"
	// ghost is a device of another account that announces bob's key.
	ghost      = "ghost@evil.example/mpenc-1"
	ghost2     = "ghost@evil.example/mpenc-2"
	ghostJID   = "ghost@evil.example"
	carolPhone = "carol@example.net/phone"
)

func testFirstKey(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	d := observe(t, s, alicePhone, Key(1))
	want(t, d, trust.KeyNew, trust.BlindlyTrusted, true)
	if d.Warning() || d.JID != alice || d.Member != alicePhone || d.Key != Key(1) {
		t.Fatalf("first key: %+v", d)
	}
	ks := keysOf(t, b, alice)
	r, ok := ks[Key(1)]
	if len(ks) != 1 || !ok || r.State != trust.BlindlyTrusted || r.Member != alicePhone || r.JID != alice {
		t.Fatalf("records %+v", ks)
	}
	if c := current(t, s, alicePhone); c.Key != Key(1) || c.State != trust.BlindlyTrusted || !c.Trusted || c.JID != alice {
		t.Fatalf("Current = %+v", c)
	}
	k, err := identityKey(s, alicePhone)
	if err != nil || k != Key(1) {
		t.Fatalf("IdentityKey = %x, %v", k[:4], err)
	}
	unknown(t, s, bobPhone)
}

func testSameKey(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	observe(t, s, alicePhone, Key(1))
	for range 3 {
		d := observe(t, s, alicePhone, Key(1))
		want(t, d, trust.KeyKnown, trust.BlindlyTrusted, true)
		if d.Warning() || d.Previous != nil {
			t.Fatalf("known: %+v", d)
		}
	}
	// The same device under another resource is the same key: known.
	d := observe(t, s, aliceLaptop, Key(1))
	want(t, d, trust.KeyKnown, trust.BlindlyTrusted, true)
	if n := len(keysOf(t, b, alice)); n != 1 {
		t.Fatalf("%d records", n)
	}
}

func testChanged(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	observe(t, s, alicePhone, Key(1))
	d, err := observeErr(t, s, alicePhone, Key(2))
	want(t, d, trust.KeyChanged, trust.Undecided, false)
	if !d.Warning() || len(d.Previous) != 1 || d.Previous[0].Key != Key(1) || d.Previous[0].State != trust.BlindlyTrusted || d.Key != Key(2) {
		t.Fatalf("changed: %+v", d)
	}
	// The warning a session shows names the new key and the one before.
	if msg := err.Error(); !strings.Contains(msg, "a DIFFERENT identity key "+fp(Key(2))) || !strings.Contains(msg, "(before: "+fp(Key(1))+", blindly-trusted)") {
		t.Fatalf("ObserveKey = %q", msg)
	}
	ks := keysOf(t, b, alice)
	if len(ks) != 2 || ks[Key(1)].State != trust.BlindlyTrusted || ks[Key(2)].State != trust.Undecided {
		t.Fatalf("the old key must stay and the new one be undecided: %+v", ks)
	}
	// The member now announces the new key, which is refused.
	refused(t, s, alicePhone, Key(2), whyChanged)
	if c := current(t, s, alicePhone); c.State != trust.Undecided || !c.Changed {
		t.Fatalf("Current after change = %+v", c)
	}
	// Seeing the new key again is the same alarm (until the user
	// decides), without a new history entry, and does not trust it.
	n := len(events(t, b, alice, 0))
	d, _ = observeErr(t, s, alicePhone, Key(2))
	want(t, d, trust.KeyChanged, trust.Undecided, false)
	if len(d.Previous) != 1 || d.Previous[0].Key != Key(1) || len(events(t, b, alice, 0)) != n {
		t.Fatalf("changed again: %+v", d)
	}
	// Going back to the old key: known, trusted as before.
	want(t, observe(t, s, alicePhone, Key(1)), trust.KeyKnown, trust.BlindlyTrusted, true)
	if c := current(t, s, alicePhone); c.Changed || !c.Trusted {
		t.Fatalf("Current after going back = %+v", c)
	}
	// A third key is a change again, with the key announced last before it.
	d = observe(t, s, alicePhone, Key(3))
	want(t, d, trust.KeyChanged, trust.Undecided, false)
	if d.Previous[0].Key != Key(1) {
		t.Fatalf("previous = %x", d.Previous[0].Key[:4])
	}
}

// testChangedToKnown: a device that announces, in place of its own key,
// a key the account has from another device is a changed key, loud and
// untrusted for that device, even when the key is trusted for the other
// one (blindly or by verification). A server that announced its own key
// for a ghost device first, then for a real one, is caught.
func testChangedToKnown(t *testing.T, b trust.Backend) {
	const ghost = "alice@example.org/ghost"
	s := newStore(b, trust.BlindTrustBeforeVerification)
	want(t, observe(t, s, alicePhone, Key(1)), trust.KeyNew, trust.BlindlyTrusted, true)
	want(t, observe(t, s, ghost, Key(2)), trust.KeyNewDevice, trust.BlindlyTrusted, true)
	d, err := observeErr(t, s, alicePhone, Key(2))
	want(t, d, trust.KeyChanged, trust.BlindlyTrusted, false)
	if len(d.Previous) != 1 || d.Previous[0].Key != Key(1) || !strings.Contains(err.Error(), "a DIFFERENT identity key "+fp(Key(2))) {
		t.Fatalf("changed to a known key: %+v, %v", d, err)
	}
	refused(t, s, alicePhone, Key(2), whyChanged)
	// The key stays what it was for the device that announced it first.
	if k, err := identityKey(s, ghost); err != nil || k != Key(2) {
		t.Fatalf("IdentityKey(ghost) = %v", err)
	}
	if ks := keysOf(t, b, alice); len(ks) != 2 || ks[Key(2)].State != trust.BlindlyTrusted || ks[Key(1)].State != trust.BlindlyTrusted {
		t.Fatalf("records %+v", ks)
	}
	if evs := events(t, b, alice, 0); len(evs) != 3 || evs[2].Kind != trust.KeyChanged || evs[2].Previous != Key(1) || evs[2].Member != alicePhone {
		t.Fatalf("events %+v", evs)
	}
	// A key verified before the change does not settle it either.
	if _, err := s.Verify(alice, Key(2)); err != nil {
		t.Fatal(err)
	}
	want(t, observe(t, s, aliceLaptop, Key(3)), trust.KeyNewDevice, trust.Undecided, false)
	d = observe(t, s, aliceLaptop, Key(2))
	want(t, d, trust.KeyChanged, trust.Authenticated, false)
	refused(t, s, aliceLaptop, Key(2), whyChanged)
}

// testChangeSettled: a decision about the new key made after the change
// settles it, for every member that changed to it before; one made before
// does not; going back to the key a member is known by is quiet.
func testChangeSettled(t *testing.T, b trust.Backend) {
	const tablet = "alice@example.org/tablet"
	s := newStore(b, trust.BlindTrustBeforeVerification)
	observe(t, s, alicePhone, Key(1))
	observe(t, s, aliceLaptop, Key(2))
	observe(t, s, tablet, Key(3))
	if _, err := s.Trust(alicePhone, Key(4)); err != nil { // decided before anyone announces it
		t.Fatal(err)
	}
	for _, m := range []string{alicePhone, aliceLaptop} {
		want(t, observe(t, s, m, Key(4)), trust.KeyChanged, trust.BlindlyTrusted, false)
	}
	r, err := s.Trust(aliceLaptop, Key(4))
	if err != nil || !r.Trusted {
		t.Fatalf("Trust = %+v, %v", r, err)
	}
	for _, m := range []string{alicePhone, aliceLaptop} {
		if c := current(t, s, m); c.Changed || !c.Trusted || c.Key != Key(4) {
			t.Fatalf("Current(%s) after the decision = %+v", m, c)
		}
		if k, err := identityKey(s, m); err != nil || k != Key(4) {
			t.Fatalf("IdentityKey(%s) = %v", m, err)
		}
		// Settled: announcing it again is quiet.
		want(t, observe(t, s, m, Key(4)), trust.KeyKnown, trust.BlindlyTrusted, true)
	}
	// A member changing to it after the decision is a change again.
	want(t, observe(t, s, tablet, Key(4)), trust.KeyChanged, trust.BlindlyTrusted, false)
	refused(t, s, tablet, Key(4), whyChanged)
	// Distrusting the new key settles nothing: it is not used.
	if _, err := s.Distrust(alice, Key(4)); err != nil {
		t.Fatal(err)
	}
	refused(t, s, tablet, Key(4), whyDistrusted)
	// Going back to the key it is known by: quiet, trusted as before.
	want(t, observe(t, s, tablet, Key(3)), trust.KeyKnown, trust.BlindlyTrusted, true)
}

// testClaimed: a device of another account that announces a key bob
// has is a loud KeyClaimed, untrusted for its account until the user
// verifies or trusts the key for it, and recorded in the history; bob,
// who had the key first, is not flagged, and decisions about other keys
// or about bob's do not settle the claim.
func testClaimed(t *testing.T, b trust.Backend) {
	const bobOnly = "bob@example.org (another account)"
	s := newStore(b, trust.BlindTrustBeforeVerification)
	want(t, observe(t, s, bobPhone, Key(1)), trust.KeyNew, trust.BlindlyTrusted, true)
	d, err := observeErr(t, s, ghost, Key(1))
	want(t, d, trust.KeyClaimed, trust.Undecided, false)
	if !d.Warning() || d.JID != ghostJID || len(d.Previous) != 1 || d.Previous[0].JID != bob || d.Previous[0].Key != Key(1) ||
		d.Previous[0].Member != bobPhone || d.Previous[0].State != trust.BlindlyTrusted || !d.Previous[0].Trusted {
		t.Fatalf("claimed: %+v", d)
	}
	if err.Error() != claimedWarning(ghost, Key(1), bobOnly) {
		t.Fatalf("ObserveKey = %q", err)
	}
	refused(t, s, ghost, Key(1), whyClaimed(ghostJID, bobOnly))
	if c := current(t, s, ghost); !c.Claimed || c.Changed || c.State != trust.Undecided {
		t.Fatalf("Current(ghost) = %+v", c)
	}
	if evs := events(t, b, ghostJID, 0); len(evs) != 1 || evs[0].Kind != trust.KeyClaimed || evs[0].Kind.String() != "claimed" ||
		evs[0].Member != ghost || evs[0].Key != Key(1) || evs[0].Previous != (crypto.PublicKey{}) {
		t.Fatalf("ghost's events %+v", evs)
	}
	if hs := holders(t, b, Key(1)); jidsOf(hs) != bob+" "+ghostJID || hs[1].State != trust.Undecided {
		t.Fatalf("KeyHolders = %+v", hs)
	}
	// bob is unaffected, and announcing the key again, from another
	// device of his account too, stays quiet.
	if k, err := identityKey(s, bobPhone); err != nil || k != Key(1) {
		t.Fatalf("IdentityKey(bob) = %v", err)
	}
	if c := current(t, s, bobPhone); c.Claimed || !c.Trusted {
		t.Fatalf("Current(bob) = %+v", c)
	}
	want(t, observe(t, s, bobPhone, Key(1)), trust.KeyKnown, trust.BlindlyTrusted, true)
	want(t, observe(t, s, bobLaptop, Key(1)), trust.KeyKnown, trust.BlindlyTrusted, true)
	// ghost again, and its other resource: the same warning, no new event.
	n := len(events(t, b, "", 0))
	want(t, observe(t, s, ghost, Key(1)), trust.KeyClaimed, trust.Undecided, false)
	want(t, observe(t, s, ghost2, Key(1)), trust.KeyClaimed, trust.Undecided, false)
	refused(t, s, ghost2, Key(1), whyClaimed(ghostJID, bobOnly))
	if len(events(t, b, "", 0)) != n {
		t.Fatal("a claimed key announced again is a new event")
	}
	// Decisions about bob's key, or about another key of ghost's, do not
	// settle it.
	if _, err := s.Verify(bob, Key(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Trust(ghostJID, Key(2)); err != nil {
		t.Fatal(err)
	}
	refused(t, s, ghost, Key(1), whyClaimed(ghostJID, "bob@example.org (another account)"))
	// A third account is claimed by both that had the key before it.
	d, err = observeErr(t, s, carolPhone, Key(1))
	want(t, d, trust.KeyClaimed, trust.Undecided, false)
	if jidsOf(d.Previous) != bob+" "+ghostJID || !d.Previous[0].Trusted || d.Previous[1].Trusted ||
		err.Error() != claimedWarning(carolPhone, Key(1), "bob@example.org and ghost@evil.example (other accounts)") {
		t.Fatalf("a third claim: %+v, %v", d, err)
	}
	// Verifying the key for ghost, or trusting it for carol, settles it.
	if r, err := s.Verify(ghost, Key(1)); err != nil || !r.Trusted {
		t.Fatalf("Verify = %+v, %v", r, err)
	}
	if r, err := s.Trust(carolPhone, Key(1)); err != nil || !r.Trusted {
		t.Fatalf("Trust = %+v, %v", r, err)
	}
	for _, m := range []string{ghost, ghost2, carolPhone, bobPhone} {
		if k, err := identityKey(s, m); err != nil || k != Key(1) {
			t.Fatalf("IdentityKey(%s) after the decisions = %v", m, err)
		}
		if c := current(t, s, m); c.Claimed || !c.Trusted {
			t.Fatalf("Current(%s) after the decisions = %+v", m, c)
		}
	}
	want(t, observe(t, s, ghost, Key(1)), trust.KeyKnown, trust.Authenticated, true)
	want(t, observe(t, s, carolPhone, Key(1)), trust.KeyKnown, trust.BlindlyTrusted, true)
}

// testClaimSettled: only a decision made at or after the other account's
// record appeared settles a claim. With a clock that only goes forward a
// decision about ghost's key before bob had it would make ghost the
// first holder; a clock set back between them makes it come before.
func testClaimSettled(t *testing.T, b trust.Backend) {
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var now time.Time
	at := func(sec int) { now = base.Add(time.Duration(sec) * time.Second) }
	s := trust.New(b, trust.Config{Now: func() time.Time { return now }})
	at(10)
	want(t, observe(t, s, ghost, Key(1)), trust.KeyNew, trust.BlindlyTrusted, true)
	at(3) // the clock set back
	if _, err := s.Trust(ghost, Key(1)); err != nil {
		t.Fatal(err)
	}
	at(5)
	// bob's record is first seen before ghost's: bob is not flagged, ghost is.
	want(t, observe(t, s, bobPhone, Key(1)), trust.KeyNew, trust.BlindlyTrusted, true)
	at(11)
	d := observe(t, s, ghost, Key(1))
	want(t, d, trust.KeyClaimed, trust.BlindlyTrusted, false)
	if jidsOf(d.Previous) != bob {
		t.Fatalf("claimed by %q", jidsOf(d.Previous))
	}
	refused(t, s, ghost, Key(1), whyClaimed(ghostJID, "bob@example.org (another account)"))
	at(12)
	if _, err := s.Trust(ghost, Key(1)); err != nil {
		t.Fatal(err)
	}
	if k, err := identityKey(s, ghost); err != nil || k != Key(1) {
		t.Fatalf("IdentityKey(ghost) after a later decision = %v", err)
	}
}

// testClaimPrecedence: a member that changes to a key another account
// has is a KeyChanged (it says more, and is untrusted already), and a
// distrusted key is KeyDistrusted, claimed or not.
func testClaimPrecedence(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	observe(t, s, bobPhone, Key(1))
	want(t, observe(t, s, ghost, Key(2)), trust.KeyNew, trust.BlindlyTrusted, true)
	d, err := observeErr(t, s, ghost, Key(1))
	want(t, d, trust.KeyChanged, trust.Undecided, false)
	if len(d.Previous) != 1 || d.Previous[0].Key != Key(2) || !strings.Contains(err.Error(), "a DIFFERENT identity key "+fp(Key(1))) {
		t.Fatalf("changed to a claimed key: %+v, %v", d, err)
	}
	refused(t, s, ghost, Key(1), whyChanged)
	if c := current(t, s, ghost); !c.Changed || !c.Claimed {
		t.Fatalf("Current(ghost) = %+v", c)
	}
	if evs := events(t, b, ghostJID, 0); len(evs) != 2 || evs[1].Kind != trust.KeyChanged || evs[1].Previous != Key(2) {
		t.Fatalf("events %+v", evs)
	}
	if _, err := s.Distrust(ghostJID, Key(1)); err != nil {
		t.Fatal(err)
	}
	d, err = observeErr(t, s, ghost, Key(1))
	want(t, d, trust.KeyDistrusted, trust.Distrusted, false)
	if want := fmt.Sprintf("trust: %s uses the distrusted identity key %s", ghost, fp(Key(1))); err.Error() != want {
		t.Fatalf("distrusted: %v", err)
	}
	refused(t, s, ghost, Key(1), whyDistrusted)
	// Distrusted before it is announced: distrusted, not claimed.
	if _, err := s.Distrust(carolPhone, Key(1)); err != nil {
		t.Fatal(err)
	}
	want(t, observe(t, s, carolPhone, Key(1)), trust.KeyDistrusted, trust.Distrusted, false)
	refused(t, s, carolPhone, Key(1), whyDistrusted)
	// bob, who had it first, is untouched by all of it.
	if k, err := identityKey(s, bobPhone); err != nil || k != Key(1) {
		t.Fatalf("IdentityKey(bob) = %v", err)
	}
}

// testNoClaimWithinAccount: members of one account announcing one key
// are no claim (one device appears under a resource per room), whatever
// other accounts do.
func testNoClaimWithinAccount(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	observe(t, s, alicePhone, Key(2))
	want(t, observe(t, s, bobPhone, Key(1)), trust.KeyNew, trust.BlindlyTrusted, true)
	for _, m := range []string{bobLaptop, "bob@example.org/room-3", bobPhone} {
		d := observe(t, s, m, Key(1))
		want(t, d, trust.KeyKnown, trust.BlindlyTrusted, true)
		if d.Warning() || d.Previous != nil {
			t.Fatalf("%s: %+v", m, d)
		}
		if c := current(t, s, m); c.Claimed || !c.Trusted {
			t.Fatalf("Current(%s) = %+v", m, c)
		}
	}
	if evs := events(t, b, bob, 0); len(evs) != 1 || evs[0].Kind != trust.KeyNew {
		t.Fatalf("events %+v", evs)
	}
}

// testClaimTie: two accounts whose records of a key are first seen at
// the same time are both claimed; a decision at that time settles it.
func testClaimTie(t *testing.T, b trust.Backend) {
	fixed := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s := trust.New(b, trust.Config{Now: func() time.Time { return fixed }})
	want(t, observe(t, s, bobPhone, Key(1)), trust.KeyNew, trust.BlindlyTrusted, true)
	want(t, observe(t, s, ghost, Key(1)), trust.KeyClaimed, trust.Undecided, false)
	d, err := observeErr(t, s, bobPhone, Key(1))
	want(t, d, trust.KeyClaimed, trust.BlindlyTrusted, false)
	if jidsOf(d.Previous) != ghostJID || err.Error() != claimedWarning(bobPhone, Key(1), "ghost@evil.example (another account)") {
		t.Fatalf("a tie: %+v, %v", d, err)
	}
	refused(t, s, bobPhone, Key(1), whyClaimed(bob, "ghost@evil.example (another account)"))
	if _, err := s.Verify(bob, Key(1)); err != nil {
		t.Fatal(err)
	}
	if k, err := identityKey(s, bobPhone); err != nil || k != Key(1) {
		t.Fatalf("IdentityKey(bob) after the decision = %v", err)
	}
	refused(t, s, ghost, Key(1), whyClaimed(ghostJID, "bob@example.org (another account)"))
}

// testClaimOwnKey: a member of another account announcing our own key is
// claimed by us, refused by the directory whatever the user decides, and
// recorded (our key is not); our own account's other resource announcing
// it is not a claim, even after the other account announced it.
func testClaimOwnKey(t *testing.T, b trust.Backend) {
	const us = "alice@example.org (another account)"
	s := newStore(b, trust.BlindTrustBeforeVerification)
	var got []trust.Decision
	dir := &trust.Directory{Store: s, Self: alicePhone, SelfKey: Key(1), OnDecision: func(d trust.Decision) { got = append(got, d) }}
	err := dir.ObserveKey(ghost, Key(1))
	if len(got) != 1 {
		t.Fatalf("decisions %+v", got)
	}
	d := got[0]
	want(t, d, trust.KeyClaimed, trust.Undecided, false)
	if d.Own || len(d.Previous) != 1 || d.Previous[0].JID != alice || d.Previous[0].Key != Key(1) || d.Previous[0].State != trust.Authenticated ||
		err == nil || err.Error() != claimedWarning(ghost, Key(1), us) {
		t.Fatalf("our key claimed: %+v, %v", d, err)
	}
	refusal := fmt.Sprintf("trust: %s's identity key %s is not trusted: %s", ghost, fp(Key(1)), whyClaimed(ghostJID, us))
	if _, err := dir.IdentityKey(ghost); err == nil || err.Error() != refusal {
		t.Fatalf("IdentityKey(ghost) = %v", err)
	}
	if rs := records(t, b, ""); len(rs) != 1 || rs[0].JID != ghostJID || rs[0].State != trust.Undecided {
		t.Fatalf("records %+v", rs)
	}
	if evs := events(t, b, "", 0); len(evs) != 1 || evs[0].Kind != trust.KeyClaimed || evs[0].Member != ghost {
		t.Fatalf("events %+v", evs)
	}
	// No decision settles it: nobody else may hold our key.
	if _, err := s.Verify(ghostJID, Key(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := dir.IdentityKey(ghost); err == nil || err.Error() != refusal {
		t.Fatalf("IdentityKey(ghost) after Verify = %v", err)
	}
	if err := dir.ObserveKey(ghost, Key(1)); err == nil || got[1].Kind != trust.KeyClaimed || got[1].Trusted {
		t.Fatalf("ghost again after Verify: %+v, %v", got[1], err)
	}
	// Our own account's other resource: ours, not a claim.
	if err := dir.ObserveKey(aliceLaptop, Key(1)); err != nil || got[2].Kind != trust.KeyNew || !got[2].Own || !got[2].Trusted {
		t.Fatalf("our other resource: %+v, %v", got[2], err)
	}
	if k, err := dir.IdentityKey(aliceLaptop); err != nil || k != Key(1) {
		t.Fatalf("IdentityKey(our other resource) = %v", err)
	}
}

func testNewDevice(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	observe(t, s, alicePhone, Key(1))
	d := observe(t, s, aliceLaptop, Key(2))
	// No authenticated key yet: a new device is trusted blindly (BTBV),
	// and reported with the account's other keys.
	want(t, d, trust.KeyNewDevice, trust.BlindlyTrusted, true)
	if d.Warning() || len(d.Previous) != 1 || d.Previous[0].Key != Key(1) {
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
	// The blindly trusted laptop key is no longer used: automatically
	// distrusted.
	ks := keysOf(t, b, alice)
	if ks[Key(2)].State != trust.AutoDistrusted || ks[Key(1)].State != trust.Authenticated {
		t.Fatalf("after verification: %+v", ks)
	}
	if c := current(t, s, alicePhone); !c.Trusted {
		t.Fatalf("verified key not trusted: %+v", c)
	}
	refused(t, s, aliceLaptop, Key(2), whyAutoDistrusted)
	// A new device now waits for verification.
	d := observe(t, s, "alice@example.org/tablet", Key(3))
	want(t, d, trust.KeyNewDevice, trust.Undecided, false)
	refused(t, s, "alice@example.org/tablet", Key(3), whyUnverified)
	// Trusting it blindly by hand does not help while alice has a verified key.
	r, err := s.Trust(alice, Key(3))
	if err != nil || r.Trusted || r.State != trust.BlindlyTrusted {
		t.Fatalf("Trust after first authentication = %+v, %v", r, err)
	}
	// Verifying it does.
	if _, err := s.Verify(alice, Key(3)); err != nil {
		t.Fatal(err)
	}
	if k, err := identityKey(s, "alice@example.org/tablet"); err != nil || k != Key(3) {
		t.Fatalf("verified key refused: %v", err)
	}
	if k, err := identityKey(s, alicePhone); err != nil || k != Key(1) {
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
	d, err := observeErr(t, s, alicePhone, Key(1))
	want(t, d, trust.KeyDistrusted, trust.Distrusted, false)
	if want := fmt.Sprintf("trust: %s uses the distrusted identity key %s", alicePhone, fp(Key(1))); !d.Warning() || err.Error() != want {
		t.Fatalf("distrusted: %+v %v", d, err)
	}
	refused(t, s, alicePhone, Key(1), whyDistrusted)
	if c := current(t, s, alicePhone); c.State != trust.Distrusted {
		t.Fatalf("Current of a distrusted key = %+v", c)
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
	if k, err := identityKey(s, alicePhone); err != nil || k != Key(2) {
		t.Fatalf("trusted changed key: %v", err)
	}
}

func testAuthenticatedOnly(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.AuthenticatedOnly)
	d := observe(t, s, alicePhone, Key(1))
	want(t, d, trust.KeyNew, trust.Undecided, false)
	if d.Warning() {
		t.Fatalf("an unverified newcomer is no alarm: %+v", d)
	}
	refused(t, s, alicePhone, Key(1), whyUnverified)
	if r, _ := s.Trust(alice, Key(1)); r.Trusted {
		t.Fatal("blind trust counted under AuthenticatedOnly")
	}
	refused(t, s, alicePhone, Key(1), "only verified keys are used")
	if _, err := s.Verify(alice, Key(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := identityKey(s, alicePhone); err != nil {
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
	if err == nil || !strings.HasPrefix(err.Error(), "trust: "+alicePhone+" announced a DIFFERENT identity key "+fp(Key(2))) {
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
	unknown(t, s, "carol@example.org/x")
	if err := d.ObserveKey("bad\x00jid", Key(3)); !errors.Is(err, invalidInput(t)) {
		t.Fatalf("invalid JID: %v", err)
	}
	if len(got) != 3 || got[0].Kind != trust.KeyNew || got[1].Kind != trust.KeyChanged || got[2].Kind != trust.KeyNew {
		t.Fatalf("OnDecision got %v", got)
	}
}

func testDirectorySelf(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.AuthenticatedOnly)
	var got []trust.Decision
	d := &trust.Directory{Store: s, Self: alicePhone, SelfKey: Key(1), OnDecision: func(dec trust.Decision) { got = append(got, dec) }}
	if err := d.ObserveKey(alicePhone, Key(1)); err != nil {
		t.Fatal(err)
	}
	if k, err := d.IdentityKey(alicePhone); err != nil || k != Key(1) {
		t.Fatalf("self: %v", err)
	}
	err := d.ObserveKey(alicePhone, Key(2))
	if want := fmt.Sprintf("trust: %s announced a DIFFERENT identity key %s (before: %s, authenticated); not trusted until verified", alicePhone, fp(Key(2)), fp(Key(1))); err == nil || err.Error() != want {
		t.Fatalf("someone announcing another key for us: %v", err)
	}
	if k, err := d.IdentityKey(alicePhone); err != nil || k != Key(1) {
		t.Fatalf("self after impersonation: %v", err)
	}
	// Our own key is not recorded: it must not make our other devices
	// verified-only.
	if all := records(t, b, ""); len(all) != 0 || len(got) != 0 {
		t.Fatalf("own key recorded: %+v, decisions %v", all, got)
	}
	if evs := events(t, b, "", 0); len(evs) != 0 {
		t.Fatalf("own key in the history: %+v", evs)
	}
	// Another device of our account is reported as ours, and the policy
	// applies to it as to anyone's (here: not trusted until verified).
	if err := d.ObserveKey(aliceLaptop, Key(3)); err != nil {
		t.Fatal(err)
	}
	if err := d.ObserveKey(bobPhone, Key(4)); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Own || got[0].Kind != trust.KeyNew || got[0].Trusted || got[1].Own {
		t.Fatalf("decisions %+v", got)
	}
	refused(t, s, aliceLaptop, Key(3), whyUnverified)
}

// The decisions in the trust history: kinds trust does not export
// (Event.String describes them). The numbers are stored on disk.
const (
	kindVerified       trust.Kind = 10
	kindTrusted        trust.Kind = 11
	kindDistrusted     trust.Kind = 12
	kindAutoDistrusted trust.Kind = 15
)

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
	observe(t, s, alicePhone, Key(1)) // distrusted: a warning, not an event
	evs := events(t, b, alice, 0)
	// Verifying the phone's new key turns the two blindly trusted keys
	// automatically distrusted (TOAKAFA), each with an event.
	kinds := []trust.Kind{trust.KeyNew, trust.KeyNewDevice, trust.KeyChanged, kindVerified, kindAutoDistrusted, kindAutoDistrusted, kindTrusted, kindDistrusted}
	names := []string{"new", "new-device", "changed", "verified", "auto-distrusted", "auto-distrusted", "trusted", "distrusted"}
	if len(evs) != len(kinds) {
		t.Fatalf("events %+v", evs)
	}
	for i, e := range evs {
		if e.Kind != kinds[i] || e.Kind.String() != names[i] || e.JID != alice || e.At.IsZero() {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	if evs[2].Previous != Key(1) || evs[2].Key != Key(3) || evs[2].Member != alicePhone {
		t.Fatalf("changed event %+v", evs[2])
	}
	if evs[3].Key != Key(3) || evs[4].Key != Key(1) || evs[5].Key != Key(2) || evs[4].By != Key(3) || evs[5].By != Key(3) ||
		evs[6].Key != Key(2) || evs[7].Key != Key(1) {
		t.Fatalf("decision events %+v", evs[3:])
	}
	if last := events(t, b, alice, 2); len(last) != 2 || last[1].Kind != kindDistrusted {
		t.Fatalf("last 2: %+v", last)
	}
	if all := events(t, b, "", 0); len(all) != 9 {
		t.Fatalf("all events: %d", len(all))
	}
}

func testInvalid(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	errInvalid := invalidInput(t)
	long := make([]byte, 3*1023+2+1) // RFC 7622: 1023 bytes a part, and the separators
	for i := range long {
		long[i] = 'a'
	}
	long[1023] = '@'
	long[2*1023+1] = '/'
	if err := trust.CheckJID(string(long[:len(long)-1])); err != nil {
		t.Fatalf("a JID of the largest size refused: %v", err)
	}
	for _, jid := range []string{"", "/res", "a\nb@c", "\xff@x", string(long)} {
		if _, err := Observe(s, jid, Key(1)); !errors.Is(err, errInvalid) {
			t.Errorf("Observe(%.20q) = %v", jid, err)
		}
		if _, err := s.Verify(jid, Key(1)); !errors.Is(err, errInvalid) {
			t.Errorf("Verify(%.20q) = %v", jid, err)
		}
	}
	if _, err := Observe(s, alicePhone, crypto.PublicKey{}); !errors.Is(err, errInvalid) {
		t.Errorf("zero key: %v", err)
	}
	if all := records(t, b, ""); len(all) != 0 {
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
			d, err := Observe(s, fmt.Sprintf("alice@example.org/d%d", i), Key(byte(i+1)))
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
	if len(keysOf(t, b, alice)) != n {
		t.Fatal("lost a key")
	}
}

func testRollback(t *testing.T, b trust.Backend) {
	boom := errors.New("boom")
	err := b.Update(func(tx trust.Tx) error {
		if err := tx.PutKey(trust.Record{JID: alice, Key: Key(1), State: trust.Authenticated, FirstSeen: time.Unix(1, 0), LastSeen: time.Unix(1, 0)}); err != nil {
			return err
		}
		if err := tx.Bind(trust.Binding{Member: alicePhone, Key: Key(1), Accepted: Key(1), Since: time.Unix(1, 0)}); err != nil {
			return err
		}
		if err := tx.AppendEvent(trust.Event{At: time.Unix(1, 0), Kind: trust.KeyNew, JID: alice, Key: Key(1)}); err != nil {
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
	if all := records(t, b, ""); len(all) != 0 {
		t.Fatalf("failed update left %+v", all)
	}
	if _, ok, _ := s.Current(alicePhone); ok {
		t.Fatal("failed update left a binding")
	}
	if evs := events(t, b, "", 0); len(evs) != 0 {
		t.Fatal("failed update left an event")
	}
	// View discards writes.
	b.View(func(tx trust.Tx) error {
		return tx.PutKey(trust.Record{JID: alice, Key: Key(1), State: trust.Authenticated})
	})
	if all := records(t, b, ""); len(all) != 0 {
		t.Fatalf("View kept a write: %+v", all)
	}
}

func testTimes(t *testing.T, b trust.Backend) {
	c := NewClock()
	s := trust.New(b, trust.Config{Now: c.Now})
	observe(t, s, alicePhone, Key(1))
	observe(t, s, alicePhone, Key(1))
	r := keysOf(t, b, alice)[Key(1)]
	if !r.FirstSeen.Equal(time.Date(2030, 1, 2, 3, 4, 6, 0, time.UTC)) || !r.LastSeen.Equal(time.Date(2030, 1, 2, 3, 4, 7, 0, time.UTC)) || !r.Decided.IsZero() {
		t.Fatalf("times %+v", r)
	}
}

// testLabels: a device's label is kept with its key, survives later
// observations and decisions, is listed by Keys, and is not recorded for
// a key the store does not have.
func testLabels(t *testing.T, b trust.Backend) {
	s := newStore(b, trust.BlindTrustBeforeVerification)
	k1, k2 := Key(1), Key(2)
	observe(t, s, "bob@example.org/laptop", k1)
	if err := s.SetLabel("bob@example.org", k1, "laptop"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLabel("bob@example.org/any", k2, "ghost"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify("bob@example.org", k1); err != nil {
		t.Fatal(err)
	}
	observe(t, s, "bob@example.org/laptop", k1)
	observe(t, s, "bob@example.org/phone", k2)
	recs, err := s.Keys("")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Key != k1 || recs[0].Label != "laptop" || recs[1].Label != "" || !recs[0].Trusted {
		t.Fatalf("records %+v", recs)
	}
	if err := s.SetLabel("bob@example.org", k2, "phone"); err != nil {
		t.Fatal(err)
	}
	if recs, _ := s.Keys("bob@example.org"); len(recs) != 2 || recs[1].Label != "phone" {
		t.Fatalf("records of bob %+v", recs)
	}
	if err := s.SetLabel("bob@example.org", k1, strings.Repeat("x", 65)); err == nil {
		t.Fatal("a 65-byte label accepted")
	}
}
