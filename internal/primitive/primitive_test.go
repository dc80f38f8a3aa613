package primitive_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"strings"
	"testing"

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
	a, err := primitive.GenerateX25519Key(&seq{})
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
	if _, err := primitive.GenerateX25519Key(strings.NewReader("short")); err == nil {
		t.Error("a short reader must fail key generation")
	}
	if _, err := primitive.Random32(strings.NewReader("short")); err == nil {
		t.Error("a short reader must fail")
	}
}

func TestX25519Agreement(t *testing.T) {
	a, _ := primitive.GenerateX25519Key(nil)
	b, _ := primitive.GenerateX25519Key(nil)
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
		if _, err := a.DH(p); !errors.Is(err, primitive.ErrLowOrderPoint) {
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

// TestCTRCounterBlock checks the counter block layout (IV ‖ 00000000) and
// both key sizes against a direct use of the standard library.
func TestCTRCounterBlock(t *testing.T) {
	iv := [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	src := bytes.Repeat([]byte("0123456789abcdef"), 5)
	for _, n := range []int{16, 32} {
		key := bytes.Repeat([]byte{byte(n)}, n)
		got := make([]byte, len(src))
		if err := primitive.XORKeyStreamCTR(got, src, key, &iv); err != nil {
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
		if err := primitive.XORKeyStreamCTR(got, got, key, &iv); err != nil || !bytes.Equal(got, src) {
			t.Errorf("AES-%d-CTR does not invert", n*8)
		}
	}
	for _, n := range []int{0, 15, 24, 33} {
		if err := primitive.XORKeyStreamCTR(make([]byte, 1), []byte{0}, make([]byte, n), &iv); !errors.Is(err, primitive.ErrKeySize) {
			t.Errorf("key of %d bytes: error %v, want ErrKeySize", n, err)
		}
	}
}

// TestX25519Counted: building a key and each DH are counted.
func TestX25519Counted(t *testing.T) {
	before := primitive.ReadOpCounts()
	a, _ := primitive.NewX25519Key([32]byte{1})
	b, _ := primitive.NewX25519Key([32]byte{2})
	if _, err := a.DH(b.Public()); err != nil {
		t.Fatal(err)
	}
	if got := primitive.ReadOpCounts().Sub(before); got != (primitive.OpCounts{X25519: 3}) {
		t.Errorf("counts %+v, want 3 X25519", got)
	}
}
