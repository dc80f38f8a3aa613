package crypto_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/mpenc/mpenc/crypto"
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
	a, err := crypto.GenerateX25519Key(&seq{})
	if err != nil {
		t.Fatal(err)
	}
	want := [32]byte{}
	for i := range want {
		want[i] = byte(i)
	}
	if a.Scalar() != want {
		t.Errorf("scalar %x, want the reader's bytes", a.Scalar())
	}
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
	if _, err := crypto.Random32(strings.NewReader("short")); err == nil {
		t.Error("a short reader must fail")
	}
}

func TestX25519Agreement(t *testing.T) {
	a, _ := crypto.GenerateX25519Key(nil)
	b, _ := crypto.GenerateX25519Key(nil)
	ab, err := a.DH(b.Public())
	if err != nil {
		t.Fatal(err)
	}
	ba, err := b.DH(a.Public())
	if err != nil {
		t.Fatal(err)
	}
	if ab != ba {
		t.Fatal("DH values differ")
	}
	// Low-order points are refused rather than yielding an all-zero secret.
	for _, p := range [][32]byte{{}, {1}} {
		if _, err := a.DH(p); !errors.Is(err, crypto.ErrLowOrderPoint) {
			t.Errorf("DH(%x) error = %v, want ErrLowOrderPoint", p[:1], err)
		}
	}
	if strings.Contains(a.String(), "scalar") {
		t.Error("String must not mention the scalar")
	}
	s := a.Scalar()
	a.Zero()
	if a.Scalar() == s && s != ([32]byte{}) {
		t.Error("Zero left the scalar in place")
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

// TestCTRCounterBlock checks the counter block layout (IV ‖ 00000000) and
// both key sizes against a direct use of the standard library.
func TestCTRCounterBlock(t *testing.T) {
	iv := [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	src := bytes.Repeat([]byte("0123456789abcdef"), 5)
	for _, n := range []int{16, 32} {
		key := bytes.Repeat([]byte{byte(n)}, n)
		got := make([]byte, len(src))
		if err := crypto.XORKeyStreamCTR(got, src, key, &iv); err != nil {
			t.Fatal(err)
		}
		block, _ := aes.NewCipher(key)
		ctr := append(iv[:], 0, 0, 0, 0)
		want := make([]byte, len(src))
		cipher.NewCTR(block, ctr).XORKeyStream(want, src)
		if !bytes.Equal(got, want) {
			t.Errorf("AES-%d-CTR differs from IV‖0 counter", n*8)
		}
		// Decryption is the same operation, in place.
		if err := crypto.XORKeyStreamCTR(got, got, key, &iv); err != nil || !bytes.Equal(got, src) {
			t.Errorf("AES-%d-CTR does not invert", n*8)
		}
	}
	for _, n := range []int{0, 15, 24, 33} {
		if err := crypto.XORKeyStreamCTR(make([]byte, 1), []byte{0}, make([]byte, n), &iv); !errors.Is(err, crypto.ErrKeySize) {
			t.Errorf("key of %d bytes: error %v, want ErrKeySize", n, err)
		}
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
