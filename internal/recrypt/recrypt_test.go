package recrypt

import (
	"bytes"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/edwards25519"
)

var update = flag.Bool("update", false, "rewrite testdata/recrypt/kat.json")

// detRand is SHA-256 in counter mode over a seed text: block n is
// SHA-256(seed ‖ "/" ‖ n in decimal).
type detRand struct {
	seed string
	n    int
	buf  []byte
}

func (r *detRand) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", r.seed, r.n))
		r.n++
		r.buf = append(r.buf, h[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func TestRoundTrip(t *testing.T) {
	rnd := &detRand{seed: "round trip"}
	a, A, err := NewAdmin(rnd)
	if err != nil {
		t.Fatal(err)
	}
	ctx, ad := []byte("group 1 epoch 0"), []byte("page 7")
	T, c, err := Seal(A, ctx, []byte("the history"), ad, rnd)
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != len("the history")+Overhead {
		t.Fatalf("ciphertext of %d bytes", len(c))
	}
	var members [3][2]Scalar
	for i := range members {
		x, r, err := Split(a, rnd)
		if err != nil {
			t.Fatal(err)
		}
		members[i] = [2]Scalar{x, r}
		R, err := Recrypt(r, T)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Open(x, A, T, R, ctx, c, ad)
		if err != nil || string(p) != "the history" {
			t.Fatalf("member %d: %q, %v", i, p, err)
		}
	}
	// Another member's R, a changed page, another context or page id:
	// nothing opens.
	R1, _ := Recrypt(members[1][1], T)
	if _, err := Open(members[0][0], A, T, R1, ctx, c, ad); !errors.Is(err, ErrOpen) {
		t.Fatalf("with another member's R: %v", err)
	}
	R0, _ := Recrypt(members[0][1], T)
	bad := bytes.Clone(c)
	bad[0] ^= 1
	for name, f := range map[string]func() error{
		"changed page": func() error { _, err := Open(members[0][0], A, T, R0, ctx, bad, ad); return err },
		"other group":  func() error { _, err := Open(members[0][0], A, T, R0, []byte("group 2 epoch 0"), c, ad); return err },
		"other page":   func() error { _, err := Open(members[0][0], A, T, R0, ctx, c, []byte("page 8")); return err },
	} {
		if err := f(); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestCollusionRecoversAdminSecret: the scheme's stated limit (seed 003
// §3.1, docs/PROTOCOL.md "History: recryption"). The service's share of
// any one member and that member's share add up to the admin secret, which
// opens every page of the group and epoch, for every member.
func TestCollusionRecoversAdminSecret(t *testing.T) {
	rnd := &detRand{seed: "collusion"}
	a, A, _ := NewAdmin(rnd)
	x, r, _ := Split(a, rnd)
	xs, _ := decodeScalar(x)
	rs, _ := decodeScalar(r)
	recovered := scalarOf(edwards25519.NewScalar().Add(xs, rs))
	if recovered != a {
		t.Fatal("r + x is not the admin secret")
	}
	// With a, any page opens without the service: S = [a]T.
	T, c, _ := Seal(A, nil, []byte("someone else's page"), nil, rnd)
	as, _ := decodeScalar(recovered)
	Tp, _ := DecodePoint(T)
	S := pointOf(new(edwards25519.Point).ScalarMult(as, Tp))
	aead, nonce, _ := pageAEAD(S, A, T, nil)
	if p, err := aead.Open(nil, nonce, c, nil); err != nil || string(p) != "someone else's page" {
		t.Fatalf("%q, %v", p, err)
	}
}

func mustHex(t *testing.T, s string) (p Point) {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatal(s)
	}
	return Point(b)
}

// TestPointsRefused: every kind of bad point is refused by every step that
// takes one, before any secret is used with it.
func TestPointsRefused(t *testing.T) {
	rnd := &detRand{seed: "refused"}
	a, A, _ := NewAdmin(rnd)
	x, r, _ := Split(a, rnd)
	order8 := mustHex(t, "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	T8, err := new(edwards25519.Point).SetBytes(order8[:])
	if err != nil {
		t.Fatal(err)
	}
	mixed := pointOf(new(edwards25519.Point).Add(edwards25519.NewGeneratorPoint(), T8))
	bad := map[string]Point{
		"identity":               mustHex(t, "0100000000000000000000000000000000000000000000000000000000000000"),
		"order 2":                mustHex(t, "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
		"order 4":                mustHex(t, "0000000000000000000000000000000000000000000000000000000000000000"),
		"order 8":                order8,
		"mixed order":            mixed,
		"identity with x's sign": mustHex(t, "0100000000000000000000000000000000000000000000000000000000000080"),
		"y + p for the identity": mustHex(t, "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
		"not on the curve (y=2)": mustHex(t, "0200000000000000000000000000000000000000000000000000000000000000"),
	}
	// The non-canonical twins y + p of the small y (p = 2^255 − 19):
	// every one refused, whatever point y names.
	for y := range 19 {
		bad[fmt.Sprintf("y+p for y=%d", y)] = nonCanonical(y)
	}
	T, c, _ := Seal(A, nil, []byte("page"), nil, rnd)
	R, _ := Recrypt(r, T)
	for name, p := range bad {
		if _, err := DecodePoint(p); !errors.Is(err, ErrBadPoint) {
			t.Errorf("%s: decoded (%v)", name, err)
		}
		if _, _, err := Seal(p, nil, []byte("x"), nil, rnd); !errors.Is(err, ErrBadPoint) {
			t.Errorf("%s as A: %v", name, err)
		}
		if _, err := Recrypt(r, p); !errors.Is(err, ErrBadPoint) {
			t.Errorf("%s as T at the service: %v", name, err)
		}
		if _, err := Open(x, A, p, R, nil, c, nil); !errors.Is(err, ErrBadPoint) {
			t.Errorf("%s as T at the member: %v", name, err)
		}
		if _, err := Open(x, A, T, p, nil, c, nil); !errors.Is(err, ErrBadPoint) {
			t.Errorf("%s as R: %v", name, err)
		}
	}
	// Scalars: zero and non-canonical ones are refused.
	var zero, big Scalar
	big[31] = 0xff
	for _, s := range []Scalar{zero, big} {
		if _, err := Recrypt(s, T); !errors.Is(err, ErrBadScalar) {
			t.Errorf("scalar %x: %v", s, err)
		}
		if _, _, err := Split(s, rnd); !errors.Is(err, ErrBadScalar) {
			t.Errorf("split of %x: %v", s, err)
		}
	}
}

// nonCanonical is the little-endian encoding of y + p for a small y:
// p = 0x7fff…ffed, so y + p = 0x7fff…ff(ed + y).
func nonCanonical(y int) (p Point) {
	for i := range p {
		p[i] = 0xff
	}
	p[31] = 0x7f
	p[0] = byte(0xed + y)
	return p
}

// kat is testdata/recrypt/kat.json: inputs drawn from detRand seeds, and
// every value the scheme derives from them.
type kat struct {
	Comment string `json:"comment"`
	Cases   []struct {
		Seed       string `json:"seed"`
		Context    string `json:"context"`
		AD         string `json:"ad"`
		Page       string `json:"page"`
		A          string `json:"a"`
		PublicA    string `json:"A"`
		X          string `json:"x"`
		R          string `json:"r"`
		T          string `json:"T"`
		ServerR    string `json:"R"`
		S          string `json:"S"`
		Key        string `json:"key"`
		Nonce      string `json:"nonce"`
		Ciphertext string `json:"ciphertext"`
	} `json:"cases"`
}

// TestKnownAnswers reproduces testdata/recrypt/kat.json (-update rewrites
// it). Its randomness: detRand over the case's seed, drawn in the order
// admin secret, member share, page scalar (64 bytes each).
func TestKnownAnswers(t *testing.T) {
	path := filepath.Join("..", "..", "testdata", "recrypt", "kat.json")
	var k kat
	if *update {
		k.Comment = "mpenc recryption known answers (issue [N], docs/PROTOCOL.md \"History: recryption\"): " +
			"randomness is SHA-256(seed/n) blocks, drawn as a (64 bytes), x (64), t (64); hex throughout"
		for i, seed := range []string{"kat 0", "kat 1", "kat 2"} {
			k.Cases = append(k.Cases, struct {
				Seed       string `json:"seed"`
				Context    string `json:"context"`
				AD         string `json:"ad"`
				Page       string `json:"page"`
				A          string `json:"a"`
				PublicA    string `json:"A"`
				X          string `json:"x"`
				R          string `json:"r"`
				T          string `json:"T"`
				ServerR    string `json:"R"`
				S          string `json:"S"`
				Key        string `json:"key"`
				Nonce      string `json:"nonce"`
				Ciphertext string `json:"ciphertext"`
			}{Seed: seed, Context: fmt.Sprintf("room@conference.example.org epoch %d", i), AD: fmt.Sprintf("page %d", i),
				Page: hex.EncodeToString([]byte(fmt.Sprintf("records of page %d", i)))})
		}
	} else {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &k); err != nil {
			t.Fatal(err)
		}
	}
	if len(k.Cases) == 0 {
		t.Fatal("no cases")
	}
	for i := range k.Cases {
		c := &k.Cases[i]
		rnd := &detRand{seed: c.Seed}
		page, _ := hex.DecodeString(c.Page)
		a, A, err := NewAdmin(rnd)
		if err != nil {
			t.Fatal(err)
		}
		x, r, err := Split(a, rnd)
		if err != nil {
			t.Fatal(err)
		}
		T, ct, err := Seal(A, []byte(c.Context), page, []byte(c.AD), rnd)
		if err != nil {
			t.Fatal(err)
		}
		R, err := Recrypt(r, T)
		if err != nil {
			t.Fatal(err)
		}
		S, err := SharedPoint(x, T, R)
		if err != nil {
			t.Fatal(err)
		}
		// S three ways: the member's, the admin's [a]T, the writer's
		// [t]A (t is the third draw).
		as, _ := decodeScalar(a)
		Tp, _ := DecodePoint(T)
		if pointOf(new(edwards25519.Point).ScalarMult(as, Tp)) != S {
			t.Fatalf("%s: R + [x]T is not [a]T", c.Seed)
		}
		key, nonce, err := PageKey(S, A, T, []byte(c.Context))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{
			"a": hex.EncodeToString(a[:]), "A": hex.EncodeToString(A[:]), "x": hex.EncodeToString(x[:]),
			"r": hex.EncodeToString(r[:]), "T": hex.EncodeToString(T[:]), "R": hex.EncodeToString(R[:]),
			"S": hex.EncodeToString(S[:]), "key": hex.EncodeToString(key[:]), "nonce": hex.EncodeToString(nonce[:]),
			"ciphertext": hex.EncodeToString(ct),
		}
		if *update {
			c.A, c.PublicA, c.X, c.R, c.T, c.ServerR, c.S = got["a"], got["A"], got["x"], got["r"], got["T"], got["R"], got["S"]
			c.Key, c.Nonce, c.Ciphertext = got["key"], got["nonce"], got["ciphertext"]
			continue
		}
		want := map[string]string{"a": c.A, "A": c.PublicA, "x": c.X, "r": c.R, "T": c.T, "R": c.ServerR, "S": c.S,
			"key": c.Key, "nonce": c.Nonce, "ciphertext": c.Ciphertext}
		for name, w := range want {
			if got[name] != w {
				t.Errorf("%s: %s = %s, want %s", c.Seed, name, got[name], w)
			}
		}
		p, err := Open(x, A, T, R, []byte(c.Context), ct, []byte(c.AD))
		if err != nil || !bytes.Equal(p, page) {
			t.Errorf("%s: opened %q, %v", c.Seed, p, err)
		}
	}
	if *update {
		out, _ := json.MarshalIndent(k, "", "  ")
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzDecodePoint(f *testing.F) {
	f.Add(pointOf(edwards25519.NewGeneratorPoint()).slice())
	f.Add(make([]byte, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 32 {
			return
		}
		q, err := DecodePoint(Point(b))
		if err != nil {
			return
		}
		// Accepted: canonical, in the subgroup, not the identity.
		if !bytes.Equal(q.Bytes(), b) || q.Equal(edwards25519.NewIdentityPoint()) == 1 {
			t.Fatalf("accepted %x", b)
		}
		e := new(edwards25519.Point).MultByCofactor(q)
		if e.Equal(edwards25519.NewIdentityPoint()) == 1 {
			t.Fatalf("accepted a small-order point %x", b)
		}
	})
}

func (p Point) slice() []byte { return p[:] }

// The costs: one edwards25519 scalar multiplication (the unit of
// docs/PERFORMANCE.md's ratios), a point check, the service's step per
// page and member, the member's per page, the writer's per page.
func BenchmarkScalarMult(b *testing.B) {
	rnd := &detRand{seed: "bench"}
	s, _ := randomScalar(rnd)
	p := edwards25519.NewGeneratorPoint()
	for b.Loop() {
		p.ScalarMult(s, p)
	}
}

func BenchmarkDecodePoint(b *testing.B) {
	T := pointOf(edwards25519.NewGeneratorPoint())
	for b.Loop() {
		if _, err := DecodePoint(T); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSetup(b *testing.B, size int) (x, r Scalar, A, T, R Point, c []byte) {
	rnd := &detRand{seed: "bench"}
	a, A, _ := NewAdmin(rnd)
	x, r, _ = Split(a, rnd)
	T, c, _ = Seal(A, nil, make([]byte, size), nil, rnd)
	R, _ = Recrypt(r, T)
	return
}

// unitCost times scalar multiplications in the benchmark's own run, the
// unit of the ratios the benchmarks report.
func unitCost() time.Duration {
	rnd := &detRand{seed: "unit"}
	s, _ := randomScalar(rnd)
	p := edwards25519.NewGeneratorPoint()
	const n = 1000
	start := time.Now()
	for range n {
		p.ScalarMult(s, p)
	}
	return time.Since(start) / n
}

// ratio reports the mean time of one iteration in scalar
// multiplications, the unit timed before the loop and again after it
// (their mean: a load spike during either shows as a spread between
// runs, not a ratio off by half).
func ratio(b *testing.B, start time.Time, unit time.Duration) {
	per := time.Since(start) / time.Duration(b.N)
	b.StopTimer()
	mean := (unit + unitCost()) / 2
	b.ReportMetric(float64(per)/float64(mean), "scalarmults/op")
}

func BenchmarkRecrypt(b *testing.B) {
	_, r, _, T, _, _ := benchSetup(b, 0)
	unit := unitCost()
	start := time.Now()
	for b.Loop() {
		if _, err := Recrypt(r, T); err != nil {
			b.Fatal(err)
		}
	}
	ratio(b, start, unit)
}

func BenchmarkOpen48KiB(b *testing.B) {
	x, _, A, T, R, c := benchSetup(b, 48<<10)
	b.SetBytes(48 << 10)
	unit := unitCost()
	start := time.Now()
	for b.Loop() {
		if _, err := Open(x, A, T, R, nil, c, nil); err != nil {
			b.Fatal(err)
		}
	}
	ratio(b, start, unit)
}

func BenchmarkSeal48KiB(b *testing.B) {
	_, _, A, _, _, _ := benchSetup(b, 0)
	page := make([]byte, 48<<10)
	rnd := &detRand{seed: "bench seal"}
	b.SetBytes(48 << 10)
	for b.Loop() {
		if _, _, err := Seal(A, nil, page, nil, rnd); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSealedShare(t *testing.T) {
	rnd := &detRand{seed: "share"}
	a, A, _ := NewAdmin(rnd)
	x, r, _ := Split(a, rnd)
	dev, err := ecdh.X25519().GenerateKey(rnd)
	if err != nil {
		t.Fatal(err)
	}
	ctx := []byte("group 1 epoch 0 alice@example.org/phone")
	sealed, err := SealShare([32]byte(dev.PublicKey().Bytes()), ctx, x)
	if err != nil || len(sealed) != SealedShareSize {
		t.Fatalf("%d bytes, %v", len(sealed), err)
	}
	got, err := OpenShare(dev, ctx, sealed)
	if err != nil || got != x {
		t.Fatalf("%x, %v", got, err)
	}
	// The opened share opens a page.
	T, c, _ := Seal(A, nil, []byte("p"), nil, rnd)
	R, _ := Recrypt(r, T)
	if p, err := Open(got, A, T, R, nil, c, nil); err != nil || string(p) != "p" {
		t.Fatalf("%q, %v", p, err)
	}
	// Another device, another context, a changed byte: nothing opens.
	other, _ := ecdh.X25519().GenerateKey(rnd)
	bad := bytes.Clone(sealed)
	bad[40] ^= 1
	for name, f := range map[string]func() error{
		"other device":  func() error { _, err := OpenShare(other, ctx, sealed); return err },
		"other context": func() error { _, err := OpenShare(dev, []byte("group 2"), sealed); return err },
		"changed":       func() error { _, err := OpenShare(dev, ctx, bad); return err },
		"short":         func() error { _, err := OpenShare(dev, ctx, sealed[:79]); return err },
	} {
		if err := f(); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
