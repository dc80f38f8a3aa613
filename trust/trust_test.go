package trust_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/greeter"
	"github.com/mpenc/mpenc/internal/trusttest"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/trust"
)

// The directory is what a session takes as its key directory.
var (
	_ greeter.Directory   = (*trust.Directory)(nil)
	_ session.KeyObserver = (*trust.Directory)(nil)
)

func TestMemoryBackend(t *testing.T) {
	trusttest.Run(t, func(*testing.T) trust.Backend { return new(trust.Memory) })
}

func seqKey() crypto.PublicKey {
	var k crypto.PublicKey
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

// TestFingerprintVector pins the fingerprint of one key in both forms:
// a change here breaks comparisons between versions.
func TestFingerprintVector(t *testing.T) {
	k := seqKey()
	f := trust.FingerprintOf(k)
	h := crypto.Hash([]byte("mpenc/v1/fingerprint"), k[:])
	if hex.EncodeToString(f[:]) != hex.EncodeToString(h[:16]) {
		t.Fatal("fingerprint is not SHA-256(label || key)[:16]")
	}
	const wantHex = "9841 6545 49ca a879 78e5 515a db40 7d6b"
	const wantWords = "meteor doctor glove drum earth raven olive jaguar jacket tomato falcon fossil spoon dinner jigsaw harbor"
	if f.String() != wantHex || f.Words() != wantWords {
		t.Fatalf("fingerprint\n%q\n%q", f.String(), f.Words())
	}
	if f.Short() != wantHex[:4] {
		t.Fatalf("Short = %q", f.Short())
	}
}

func TestWordList(t *testing.T) {
	// Pin the list: it must never change.
	const wantSHA = "f5fe2fedbcecd40313de7823f09c04c24d2acbe7f1837396fc70853fe734217e"
	var all []string
	var f trust.Fingerprint
	for b := 0; b < 256; b += 16 {
		for i := range f {
			f[i] = byte(b + i)
		}
		all = append(all, strings.Fields(f.Words())...)
	}
	sum := sha256.Sum256([]byte(strings.Join(all, "\n") + "\n"))
	if hex.EncodeToString(sum[:]) != wantSHA {
		t.Fatalf("word list changed: %x", sum)
	}
	prefixes := map[string]bool{}
	for i, w := range all {
		if len(w) < 3 || len(w) > 8 || strings.Trim(w, "abcdefghijklmnopqrstuvwxyz") != "" {
			t.Errorf("word %d %q", i, w)
		}
		if i > 0 && all[i-1] >= w {
			t.Errorf("words not sorted at %d", i)
		}
		p := w[:min(4, len(w))]
		if prefixes[p] {
			t.Errorf("prefix %q repeated", p)
		}
		prefixes[p] = true
	}
}

func TestFingerprintParse(t *testing.T) {
	for n := range byte(50) {
		k := trusttest.Key(n + 1)
		f := trust.FingerprintOf(k)
		for _, s := range []string{f.String(), strings.ToUpper(f.String()), strings.ReplaceAll(f.String(), " ", ""), strings.ReplaceAll(f.String(), " ", ":")} {
			g, err := trust.ParseFingerprint(s)
			if err != nil || g != f {
				t.Fatalf("ParseFingerprint(%q) = %v", s, err)
			}
			if !trust.Matches(k, s) {
				t.Fatalf("Matches(%q)", s)
			}
		}
		for _, s := range []string{f.Words(), strings.ToUpper(f.Words()), strings.ReplaceAll(f.Words(), " ", "-"), strings.ReplaceAll(f.Words(), " ", " ,\n ")} {
			g, err := trust.ParseWords(s)
			if err != nil || g != f {
				t.Fatalf("ParseWords(%q) = %v", s, err)
			}
			if !trust.Matches(k, s) {
				t.Fatalf("Matches(%q)", s)
			}
		}
		if u := trust.URI("bob@example.org", k); !trust.Matches(k, u) || !trust.Matches(k, " "+u+"\n") {
			t.Fatalf("Matches(%q)", u)
		}
		if trust.Matches(trusttest.Key(n+2), f.String()) || trust.Matches(trusttest.Key(n+2), f.Words()) ||
			trust.Matches(trusttest.Key(n+2), trust.URI("bob@example.org", k)) {
			t.Fatal("matched another key")
		}
	}
	f := trust.FingerprintOf(seqKey())
	words := strings.Fields(f.Words())
	for _, bad := range []string{
		"", "abc", f.String()[:38], f.String() + "0", f.String() + " 0000", strings.Replace(f.String(), " ", "g", 1),
		f.String() + "\x00", strings.Repeat(" ", 2000),
	} {
		if _, err := trust.ParseFingerprint(bad); !errors.Is(err, trust.ErrInvalid) {
			t.Errorf("ParseFingerprint(%q) = %v", bad, err)
		}
	}
	for _, bad := range []string{
		"", strings.Join(words[:15], " "), f.Words() + " acorn", strings.Replace(f.Words(), words[3], "xylophone", 1),
		strings.Repeat("acorn ", 300),
	} {
		if _, err := trust.ParseWords(bad); !errors.Is(err, trust.ErrInvalid) {
			t.Errorf("ParseWords(%q) = %v", bad, err)
		}
	}
}

func TestURI(t *testing.T) {
	k := seqKey()
	u := trust.URI("alice@example.org/phone", k)
	const want = "xmpp:alice@example.org?trust-message;encryption=https://github.com/mpenc/mpenc/ns/identity/1;trust=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	if u != want {
		t.Fatalf("URI = %q", u)
	}
	for _, jid := range []string{"alice@example.org/phone", "x", "ünï@例え.jp/a b?c&d#e%f", "a b?c&d#e%f;trust=@b/r"} {
		u := trust.URI(jid, k)
		got, gk, err := trust.ParseURI(u)
		if err != nil || got != trust.Bare(jid) || gk != k {
			t.Fatalf("ParseURI(%q) = %q, %v", u, got, err)
		}
	}
	if u := trust.URI("a b@c", k); !strings.HasPrefix(u, "xmpp:a%20b@c?") {
		t.Fatalf("escaping: %q", u)
	}
	hk := hex.EncodeToString(k[:])
	q := "?trust-message;encryption=https://github.com/mpenc/mpenc/ns/identity/1;trust="
	for _, bad := range []string{
		"", "xmpp:", "mpenc:a@b?ed25519=" + hk, "XMPP:a@b" + q + hk,
		"xmpp:a@b", "xmpp:" + q + hk, "xmpp:a@b" + q + hk[:62], "xmpp:a@b" + q + hk + "00",
		"xmpp:a@b" + q + strings.ToUpper(hk), "xmpp:a@b?trust-message;encryption=urn:xmpp:omemo:2;trust=" + hk,
		"xmpp:a@b" + q + hk + ";trust=" + hk, "xmpp:a@b" + q + hk + ";distrust=" + hk,
		"xmpp:a@b/r" + q + hk,
		"xmpp:a%61@b" + q + hk, "xmpp:a%2x@b" + q + hk, "xmpp:a%2f@b" + q + hk, "xmpp:a%2" + q + hk,
		"xmpp:a b@c" + q + hk, "xmpp:a%0A@b" + q + hk, "xmpp:%FF@b" + q + hk,
		"xmpp:a@b" + q + strings.Repeat("0", 64),
		"xmpp:" + strings.Repeat("a", trust.MaxJIDSize+1) + q + hk,
	} {
		if _, _, err := trust.ParseURI(bad); !errors.Is(err, trust.ErrInvalid) {
			t.Errorf("ParseURI(%q) = %v", bad, err)
		}
	}
}

// TestNames pins the names the enums print as: users see them.
func TestNames(t *testing.T) {
	for _, c := range []struct {
		v    fmt.Stringer
		want string
	}{
		{trust.Undecided, "undecided"},
		{trust.BlindlyTrusted, "blindly-trusted"},
		{trust.Authenticated, "authenticated"},
		{trust.Distrusted, "distrusted"},
		{trust.State(0), "State(0)"},
		{trust.State(5), "automatically-distrusted"},
		{trust.State(6), "State(6)"},
		{trust.KeyNew, "new"},
		{trust.KeyNewDevice, "new-device"},
		{trust.KeyKnown, "known"},
		{trust.KeyChanged, "changed"},
		{trust.KeyDistrusted, "distrusted"},
		{trust.KeyClaimed, "claimed"},
		{trust.Kind(0), "Kind(0)"},
		{trust.Kind(7), "Kind(7)"},
		// The user's decisions, in the trust history.
		{trust.Kind(10), "verified"},
		{trust.Kind(11), "trusted"},
		{trust.Kind(12), "distrusted"},
		{trust.Kind(13), "vouched"},
		{trust.Kind(14), "vouched-distrust"},
		{trust.Kind(15), "auto-distrusted"},
		{trust.Kind(16), "vouch-refused"},
		{trust.Kind(17), "verify-failed"},
		{trust.Kind(18), "left"},
		{trust.Kind(19), "Kind(19)"},
		{trust.Kind(255), "Kind(255)"},
	} {
		if got := c.v.String(); got != c.want {
			t.Errorf("%#v prints %q, want %q", c.v, got, c.want)
		}
	}
}

// TestObserveStory: a key, its change, the user's verification, and a new
// device after the first authentication.
func TestObserveStory(t *testing.T) {
	ts := trust.New(new(trust.Memory), trust.Config{})
	k1, k2 := trusttest.Key(1), trusttest.Key(2)
	var got []string
	dir := &trust.Directory{Store: ts, OnDecision: func(d trust.Decision) {
		got = append(got, fmt.Sprintln(d.Kind, d.State, d.Trusted, d.Warning()))
	}}
	note := func(err error) {
		if err != nil {
			got = append(got, "error\n")
		}
	}

	note(dir.ObserveKey("bob@example.org/phone", k1))
	note(dir.ObserveKey("bob@example.org/phone", k2))           // the phone's key changed
	if _, err := ts.Verify("bob@example.org", k2); err != nil { // the user compared fingerprints
		t.Fatal(err)
	}
	note(dir.ObserveKey("bob@example.org/phone", k2))
	note(dir.ObserveKey("bob@example.org/laptop", trusttest.Key(3))) // after the first authentication
	want := []string{
		"new blindly-trusted true false\n",
		"changed undecided false true\n", "error\n",
		"known authenticated true false\n",
		"new-device undecided false false\n",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestErrorsName(t *testing.T) {
	k := seqKey()
	fp := trust.FingerprintOf(k).String()
	for _, err := range []error{
		&trust.KeyChangedError{Member: "a@b/c", Key: k, Previous: []trust.Record{{Key: k, State: trust.Authenticated}}},
		&trust.DistrustedError{Member: "a@b/c", Key: k},
		&trust.UntrustedError{Member: "a@b/c", Key: k, State: trust.Undecided},
		&trust.UntrustedError{Member: "a@b/c", Key: k, State: trust.BlindlyTrusted, JIDAuthenticated: true},
	} {
		if s := err.Error(); !strings.HasPrefix(s, "trust: ") || !strings.Contains(s, "a@b/c") || !strings.Contains(s, fp) {
			t.Errorf("%q", s)
		}
	}
}

// TestKeyChangedEvenIfKnownElsewhere: the attack of a server that adds a
// ghost device with its own key (trusted blindly as a new device), then
// makes a real device announce that key. The real device's change must be
// a loud KeyChanged, and the key must not be used for it, although the
// account has the key from the ghost.
func TestKeyChangedEvenIfKnownElsewhere(t *testing.T) {
	ts := trust.New(new(trust.Memory), trust.Config{})
	real, ghost := "bob@example.org/phone", "bob@example.org/mpenc-ghost"
	k1, k2 := trusttest.Key(1), trusttest.Key(2)
	var got []trust.Decision
	dir := &trust.Directory{Store: ts, OnDecision: func(d trust.Decision) { got = append(got, d) }}
	if err := dir.ObserveKey(real, k1); err != nil {
		t.Fatal(err)
	}
	if err := dir.ObserveKey(ghost, k2); err != nil {
		t.Fatal(err)
	}
	if got[1].Kind != trust.KeyNewDevice || !got[1].Trusted {
		t.Fatalf("ghost: %+v", got[1])
	}
	err := dir.ObserveKey(real, k2)
	d := got[2]
	if d.Kind != trust.KeyChanged || !d.Warning() || d.Trusted || err == nil {
		t.Fatalf("the real device took the ghost's key: decision %v, error %v; want a KeyChanged warning", d, err)
	}
	if k, err := dir.IdentityKey(real); err == nil {
		t.Fatalf("IdentityKey(%s) = %x: the ghost's key is used for the real device", real, k[:4])
	}
	if r, _, _ := ts.Current(real); r.Trusted {
		t.Fatalf("Current(%s) = %+v: trusted", real, r)
	}
	// The user decides: the change is accepted.
	if _, err := ts.Trust(real, k2); err != nil {
		t.Fatal(err)
	}
	if k, err := dir.IdentityKey(real); err != nil || k != k2 {
		t.Fatalf("after the user's decision: %v", err)
	}
}

// TestKeyClaimedByAnotherAccount: a device of another account that
// announces bob's key, or ours, is a loud warning naming the account that
// has the key, and the key is not used for it until the user verifies or
// trusts it for that account (never, for our own key); bob, who had the
// key first, and the devices of one account sharing a key (one device
// under a resource per room) stay as they were.
func TestKeyClaimedByAnotherAccount(t *testing.T) {
	ts := trust.New(new(trust.Memory), trust.Config{})
	const bob, bobLaptop, ghost = "bob@example.org/phone", "bob@example.org/laptop", "ghost@evil.example/r"
	k1 := trusttest.Key(1)
	var got []trust.Decision
	dir := &trust.Directory{Store: ts, Self: "alice@example.org/phone", SelfKey: trusttest.Key(9),
		OnDecision: func(d trust.Decision) { got = append(got, d) }}
	if err := dir.ObserveKey(bob, k1); err != nil {
		t.Fatal(err)
	}
	err := dir.ObserveKey(ghost, k1)
	d := got[1]
	if err == nil || !strings.Contains(err.Error(), "bob@example.org (another account)") || !d.Warning() || d.Trusted || d.Kind.String() != "claimed" {
		t.Fatalf("ghost announcing bob's key: decision %v, error %v; want a claimed-key warning naming bob", d, err)
	}
	if k, err := dir.IdentityKey(ghost); err == nil {
		t.Fatalf("IdentityKey(ghost) = %x: bob's key is used for ghost", k[:4])
	} else if !strings.Contains(err.Error(), "it is also the key of bob@example.org (another account)") {
		t.Fatalf("IdentityKey(ghost) = %v: want why", err)
	}
	if r, _, _ := ts.Current(ghost); r.Trusted {
		t.Fatalf("Current(ghost) = %+v: trusted", r)
	}
	for _, m := range []string{bob, bobLaptop} {
		if err := dir.ObserveKey(m, k1); err != nil {
			t.Fatalf("bob's own devices announcing his key: %v", err)
		}
		if k, err := dir.IdentityKey(m); err != nil || k != k1 {
			t.Fatalf("IdentityKey(%s) = %v", m, err)
		}
	}
	// The user decides: the key is ghost's too.
	if _, err := ts.Trust(ghost, k1); err != nil {
		t.Fatal(err)
	}
	if k, err := dir.IdentityKey(ghost); err != nil || k != k1 {
		t.Fatalf("after the user's decision: %v", err)
	}
	// Our own key, announced by another account: never used.
	const mallory = "mallory@evil.example/r"
	if err := dir.ObserveKey(mallory, trusttest.Key(9)); err == nil || !strings.Contains(err.Error(), "alice@example.org (another account)") {
		t.Fatalf("our key announced by %s: %v", mallory, err)
	}
	if _, err := ts.Trust(mallory, trusttest.Key(9)); err != nil {
		t.Fatal(err)
	}
	if k, err := dir.IdentityKey(mallory); err == nil {
		t.Fatalf("IdentityKey(%s) = %x: our own key is used for another account", mallory, k[:4])
	}
}
