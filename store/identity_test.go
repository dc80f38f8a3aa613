package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/trust"
)

func newDevice(t *testing.T, st *Store, pass string) (Account, deviceRow, *crypto.SigningKey) {
	t.Helper()
	a := mustAccount(t, st, "alice@example.org")
	d, sk, err := st.createDevice(ctx, a.ID, "mpenc-phone", []byte(pass), &deviceOptions{KDF: fastKDF})
	if err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	return a, d, sk
}

func TestIdentityRoundTrip(t *testing.T) {
	path := tempPath(t)
	st := openAt(t, path)
	a, d, sk := newDevice(t, st, "correct horse battery")
	if d.Public != sk.Public() || d.KDF != fastKDF || d.Account != a.ID || d.Resource != "mpenc-phone" {
		t.Fatalf("device %+v", d)
	}
	st.Close()

	st = openAt(t, path)
	defer st.Close()
	devs, err := st.devices(ctx, a.ID)
	if err != nil || len(devs) != 1 || devs[0].ID != d.ID || devs[0].Public != d.Public {
		t.Fatalf("Devices = %+v, %v", devs, err)
	}
	// The parameters are recorded with the key.
	if devs[0].KDF != fastKDF {
		t.Fatalf("KDF params %v", devs[0].KDF)
	}
	got, err := st.unlockDevice(ctx, d.ID, []byte("correct horse battery"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Seed() != sk.Seed() || got.Public() != sk.Public() {
		t.Fatal("unlocked another key")
	}
	msg := []byte("hello")
	sig := got.Sign(msg)
	if !crypto.Verify(d.Public, msg, &sig) {
		t.Fatal("unlocked key does not sign for its public key")
	}
	if byRes, err := st.deviceByResource(ctx, a.ID, "mpenc-phone"); err != nil || byRes.ID != d.ID {
		t.Fatalf("Device = %+v, %v", byRes, err)
	}
	if _, err := st.deviceByResource(ctx, a.ID, "other"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing device: %v", err)
	}
}

func TestWrongPassphrase(t *testing.T) {
	st := openTemp(t)
	_, d, _ := newDevice(t, st, "correct horse battery")
	for _, p := range []string{"correct horse batterY", "", "correct horse battery ", string(make([]byte, maxPassphraseSize+1))} {
		sk, err := st.unlockDevice(ctx, d.ID, []byte(p))
		if !errors.Is(err, errWrongPassphrase) || sk != nil {
			t.Fatalf("Unlock(%.30q) = %v, %v", p, sk, err)
		}
		if errors.Is(err, ErrCorrupt) {
			t.Fatal("a wrong passphrase reported as corruption")
		}
	}
	if _, err := st.unlockDevice(ctx, d.ID+100, []byte("correct horse battery")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing device: %v", err)
	}
}

func TestTamperedKeyRefused(t *testing.T) {
	st := openTemp(t)
	_, d, _ := newDevice(t, st, "correct horse battery")
	var orig []byte
	if err := st.db.QueryRow(`SELECT sealed FROM devices WHERE id = ?`, d.ID).Scan(&orig); err != nil {
		t.Fatal(err)
	}
	set := func(b []byte) {
		t.Helper()
		if _, err := st.db.Exec(`UPDATE devices SET sealed = ? WHERE id = ?`, b, d.ID); err != nil {
			t.Fatal(err)
		}
	}
	// Every byte of the ciphertext and nonce is authenticated.
	for _, off := range []int{headerSize - 24, headerSize - 1, headerSize, headerSize + 10, sealedSize - 1} {
		b := bytes.Clone(orig)
		b[off] ^= 0x01
		set(b)
		if _, err := st.unlockDevice(ctx, d.ID, []byte("correct horse battery")); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flipped byte %d: %v", off, err)
		}
	}
	// Truncated, extended, wrong magic, absurd parameters: refused before
	// any work.
	for name, b := range map[string][]byte{
		"truncated": orig[:len(orig)-1],
		"extended":  append(bytes.Clone(orig), 0),
		"magic":     append([]byte("XPKS"), orig[4:]...),
		"huge time": func() []byte { b := bytes.Clone(orig); b[6] = 0xff; return b }(),
		"huge mem":  func() []byte { b := bytes.Clone(orig); b[10] = 0xff; return b }(),
		"0 threads": func() []byte { b := bytes.Clone(orig); b[14] = 0; return b }(),
	} {
		set(b)
		if _, err := st.unlockDevice(ctx, d.ID, []byte("correct horse battery")); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := st.devices(ctx, d.Account); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: Devices = %v", name, err)
		}
	}
	// The salt and parameters feed the KDF: changing them derives another
	// key, which reads as a wrong passphrase (nothing can tell them apart
	// without the passphrase). It is refused all the same.
	for _, off := range []int{9, 15, 30, 31, 62} {
		b := bytes.Clone(orig)
		b[off] ^= 0x01
		set(b)
		if _, err := st.unlockDevice(ctx, d.ID, []byte("correct horse battery")); !errors.Is(err, errWrongPassphrase) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flipped header byte %d: %v", off, err)
		}
	}
	// Another key's public half: the AEAD binds the public key.
	set(orig)
	other := crypto.NewSigningKey([32]byte{1}).Public()
	if _, err := st.db.Exec(`UPDATE devices SET public_key = ? WHERE id = ?`, other[:], d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.unlockDevice(ctx, d.ID, []byte("correct horse battery")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("swapped public key: %v", err)
	}
}

func TestDeviceDeterministicAndDuplicates(t *testing.T) {
	st := openTemp(t)
	a := mustAccount(t, st, "alice@example.org")
	_, sk1, err := st.createDevice(ctx, a.ID, "r1", []byte("passphrase"), &deviceOptions{KDF: fastKDF, Rand: &seqReader{}})
	if err != nil {
		t.Fatal(err)
	}
	var want [32]byte
	for i := range want {
		want[i] = byte(i + 1)
	}
	if sk1.Seed() != want {
		t.Fatal("the identity key does not come from the injected reader")
	}
	if _, _, err := st.createDevice(ctx, a.ID, "r1", []byte("passphrase"), &deviceOptions{KDF: fastKDF}); !errors.Is(err, errExists) {
		t.Fatalf("duplicate resource: %v", err)
	}
	if _, _, err := st.createDevice(ctx, a.ID+1, "r2", []byte("passphrase"), &deviceOptions{KDF: fastKDF}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing account: %v", err)
	}
	for _, p := range []string{"", "short"} {
		if _, _, err := st.createDevice(ctx, a.ID, "r3", []byte(p), &deviceOptions{KDF: fastKDF}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("passphrase %q: %v", p, err)
		}
	}
	if _, _, err := st.createDevice(ctx, a.ID, "r3", []byte("passphrase"), &deviceOptions{KDF: KDFParams{Time: 1, MemoryKiB: 1, Threads: 1}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad KDF params: %v", err)
	}
	if _, _, err := st.createDevice(ctx, a.ID, "bad\xff", []byte("passphrase"), &deviceOptions{KDF: fastKDF}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("resource not UTF-8: %v", err)
	}
}

func TestChangePassphrase(t *testing.T) {
	st := openTemp(t)
	_, d, sk := newDevice(t, st, "old passphrase")
	newKDF := KDFParams{Time: 2, MemoryKiB: 128, Threads: 2}
	if err := st.changePassphrase(ctx, d.ID, []byte("wrong passphrase"), []byte("new passphrase"), nil); !errors.Is(err, errWrongPassphrase) {
		t.Fatalf("wrong old passphrase: %v", err)
	}
	if err := st.changePassphrase(ctx, d.ID, []byte("old passphrase"), []byte("new passphrase"), &deviceOptions{KDF: newKDF}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.unlockDevice(ctx, d.ID, []byte("old passphrase")); !errors.Is(err, errWrongPassphrase) {
		t.Fatalf("old passphrase still works: %v", err)
	}
	got, err := st.unlockDevice(ctx, d.ID, []byte("new passphrase"))
	if err != nil || got.Seed() != sk.Seed() {
		t.Fatalf("new passphrase: %v", err)
	}
	if dd, _ := st.deviceByResource(ctx, d.Account, d.Resource); dd.KDF != newKDF {
		t.Fatalf("params after change: %v", dd.KDF)
	}
}

func TestPassphraseNormalised(t *testing.T) {
	st := openTemp(t)
	// "café" composed (NFC) and decomposed (NFD) unlock the same key.
	_, d, _ := newDevice(t, st, "caf\u00e9 passphrase")
	if _, err := st.unlockDevice(ctx, d.ID, []byte("cafe\u0301 passphrase")); err != nil {
		t.Fatalf("NFD passphrase: %v", err)
	}
}

func TestPassphraseFromEnv(t *testing.T) {
	t.Setenv("MPENC_TEST_PASSPHRASE", "from the environment")
	p, err := PassphraseFromEnv("MPENC_TEST_PASSPHRASE")
	if err != nil || string(p) != "from the environment" {
		t.Fatalf("PassphraseFromEnv = %q, %v", p, err)
	}
	if _, ok := os.LookupEnv("MPENC_TEST_PASSPHRASE"); ok {
		t.Fatal("the variable stays in the environment")
	}
	if _, err := PassphraseFromEnv("MPENC_TEST_PASSPHRASE"); !errors.Is(err, errNoPassphrase) {
		t.Fatalf("unset: %v", err)
	}
	t.Setenv("MPENC_TEST_EMPTY", "")
	if _, err := PassphraseFromEnv("MPENC_TEST_EMPTY"); !errors.Is(err, errNoPassphrase) {
		t.Fatalf("empty: %v", err)
	}
}

func TestSealedCodec(t *testing.T) {
	var seed [32]byte
	seed[0] = 7
	sk := crypto.NewSigningKey(seed)
	blob, err := seal(&seed, sk.Public(), []byte("passphrase"), fastKDF, &seqReader{})
	if err != nil {
		t.Fatal(err)
	}
	if len(blob) != sealedSize || string(blob[:4]) != "MPKS" {
		t.Fatalf("blob %x", blob)
	}
	k, err := decodeSealed(blob)
	if err != nil || !bytes.Equal(k.encode(), blob) || k.kdf != fastKDF {
		t.Fatalf("decode: %v", err)
	}
	// Every prefix is refused.
	for i := range blob {
		if _, err := decodeSealed(blob[:i]); err == nil {
			t.Fatalf("prefix %d accepted", i)
		}
	}
	got, err := open(blob, sk.Public(), []byte("passphrase"))
	if err != nil || got.Seed() != seed {
		t.Fatalf("open: %v", err)
	}
}

// TestDeviceResource: a new device's resource is "mpenc-" and the first
// 8 hex digits of its key's fingerprint.
func TestDeviceResource(t *testing.T) {
	var key crypto.PublicKey // the fingerprint of the zero key, by hand
	h := sha256.Sum256(append([]byte("mpenc/v1/fingerprint"), key[:]...))
	if got, want := deviceResource(key), "mpenc-"+hex.EncodeToString(h[:4]); got != want {
		t.Fatalf("deviceResource = %q, want %q", got, want)
	}
	ctx := context.Background()
	st := openTemp(t)
	a, err := st.CreateAccount(ctx, "d@example.org", "d")
	if err != nil {
		t.Fatal(err)
	}
	d, sk, err := st.createDevice(ctx, a.ID, "", []byte("passphrase"), &deviceOptions{KDF: fastKDF})
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Zero()
	if d.Resource != deviceResource(sk.Public()) || !strings.HasPrefix(trust.FingerprintOf(sk.Public()).String(), d.Resource[6:10]) {
		t.Fatalf("resource %q for fingerprint %s", d.Resource, trust.FingerprintOf(sk.Public()))
	}
}

// TestUnlockCreatesOnce: the first Unlock records the account and creates
// the device (asking for the passphrase with create set); later ones
// unlock the same key, refuse a wrong passphrase, and zero what they were
// given.
func TestUnlockCreatesOnce(t *testing.T) {
	path := tempPath(t)
	st := openAt(t, path)
	var asked []bool
	var given [][]byte
	pass := func(p string) func(bool) ([]byte, error) {
		return func(create bool) ([]byte, error) {
			asked = append(asked, create)
			b := []byte(p)
			given = append(given, b)
			return b, nil
		}
	}
	acct, res, key, err := st.Unlock(ctx, "Alice@Example.org", "alice", pass("correct horse battery"), fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	if acct.JID != "alice@example.org" || acct.Nick != "alice" || !strings.HasPrefix(res, "mpenc-") || len(asked) != 1 || !asked[0] {
		t.Fatalf("first Unlock: %+v %q, asked %v", acct, res, asked)
	}
	st.Close()

	st = openAt(t, path)
	defer st.Close()
	acct2, res2, key2, err := st.Unlock(ctx, "alice@example.org", "other", pass("correct horse battery"), KDFParams{})
	if err != nil {
		t.Fatal(err)
	}
	if acct2.ID != acct.ID || acct2.Nick != "alice" || res2 != res || key2.Public() != key.Public() || len(asked) != 2 || asked[1] {
		t.Fatalf("second Unlock: %+v %q, asked %v", acct2, res2, asked)
	}
	if _, _, _, err := st.Unlock(ctx, "alice@example.org", "alice", pass("wrong horse battery"), KDFParams{}); !errors.Is(err, errWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	for i, b := range given {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Errorf("passphrase %d not zeroed", i)
		}
	}
	if devs, _ := st.devices(ctx, acct.ID); len(devs) != 1 {
		t.Fatalf("%d devices", len(devs))
	}
}
