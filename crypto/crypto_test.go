package crypto_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

// seq is a deterministic reader: 0, 1, 2, ...
type seq struct{ n byte }

func (s *seq) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = s.n
		s.n++
	}
	return len(p), nil
}

func TestRandomnessIsInjected(t *testing.T) {
	s, err := crypto.GenerateSigningKey(&seq{n: 32})
	if err != nil {
		t.Fatal(err)
	}
	if s.Seed()[0] != 32 || s.Seed()[31] != 63 {
		t.Errorf("seed %x does not come from the reader", s.Seed())
	}
	if _, err := crypto.GenerateSigningKey(iotest.ErrReader(errors.New("boom"))); err == nil {
		t.Error("a failing reader must fail key generation")
	}
}

func TestSignVerify(t *testing.T) {
	k, _ := crypto.GenerateSigningKey(nil)
	msg := []byte("hello")
	sig := k.Sign(msg)
	if !crypto.Verify(k.Public(), msg, &sig) {
		t.Fatal("valid signature rejected")
	}
	bad := sig
	bad[0] ^= 1
	if crypto.Verify(k.Public(), msg, &bad) {
		t.Error("altered signature accepted")
	}
	if crypto.Verify(k.Public(), []byte("hellp"), &sig) {
		t.Error("signature accepted for another message")
	}
	other, _ := crypto.GenerateSigningKey(nil)
	if crypto.Verify(other.Public(), msg, &sig) {
		t.Error("signature accepted for another key")
	}
	seed := k.Seed()
	if strings.Contains(k.String(), string(seed[:])) {
		t.Error("String leaks the seed")
	}
}

// TestOpCounts: signatures, key expansions and verifications are counted
// where the benchmarks read them (internal/primitive).
func TestOpCounts(t *testing.T) {
	before := primitive.ReadOpCounts()
	k := crypto.NewSigningKey([crypto.SeedSize]byte{1})
	msg := make([]byte, 100)
	sig := k.Sign(msg)
	crypto.Verify(k.Public(), msg[:10], &sig)
	got := primitive.ReadOpCounts().Sub(before)
	want := primitive.OpCounts{Sign: 2, SignBytes: 100, Verify: 1, VerifyBytes: 10}
	if got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
}

func TestEqualAndZero(t *testing.T) {
	if !crypto.Equal([]byte("abc"), []byte("abc")) || crypto.Equal([]byte("abc"), []byte("abd")) || crypto.Equal([]byte("ab"), []byte("abc")) {
		t.Error("Equal is wrong")
	}
	b := []byte{1, 2, 3}
	crypto.Zero(b)
	if !bytes.Equal(b, []byte{0, 0, 0}) {
		t.Error("Zero did not zero")
	}
	if h := crypto.Hash([]byte("a"), []byte("bc")); h != crypto.Hash([]byte("abc")) {
		t.Error("Hash must hash the concatenation")
	}
}
