package crypto_test

import (
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

// The primitive costs. Every other benchmark of the project is read as a
// multiple of these (docs/PERFORMANCE.md). Those of internal/primitive
// (X25519, AES-CTR, HKDF) are here too, so that one run of this package
// measures the whole model.

func BenchmarkEd25519Sign(b *testing.B) {
	k, _ := crypto.GenerateSigningKey(nil)
	msg := make([]byte, 256)
	for b.Loop() {
		k.Sign(msg)
	}
}

func BenchmarkEd25519Verify(b *testing.B) {
	k, _ := crypto.GenerateSigningKey(nil)
	msg := make([]byte, 256)
	sig := k.Sign(msg)
	pub := k.Public()
	for b.Loop() {
		if !crypto.Verify(pub, msg, &sig) {
			b.Fatal("verify failed")
		}
	}
}

func BenchmarkX25519(b *testing.B) {
	k, _ := primitive.GenerateX25519Key(nil)
	peer, _ := primitive.GenerateX25519Key(nil)
	p := peer.Public()
	for b.Loop() {
		if _, err := k.DH(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkX25519NewKey is the cost of building a key object (one
// fixed-base multiplication for the public key).
func BenchmarkX25519NewKey(b *testing.B) {
	var s [32]byte
	s[0] = 1
	for b.Loop() {
		if _, err := primitive.NewX25519Key(s); err != nil {
			b.Fatal(err)
		}
	}
}

func benchCTR(b *testing.B, keyLen, n int) {
	key := make([]byte, keyLen)
	var iv [12]byte
	buf := make([]byte, n)
	b.SetBytes(int64(n))
	for b.Loop() {
		if err := primitive.XORKeyStreamCTR(buf, buf, key, &iv); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAES256CTR128B(b *testing.B) { benchCTR(b, 32, 128) }
func BenchmarkAES256CTR1KiB(b *testing.B) { benchCTR(b, 32, 1024) }
func BenchmarkAES128CTR128B(b *testing.B) { benchCTR(b, 16, 128) }
func BenchmarkAES128CTR1KiB(b *testing.B) { benchCTR(b, 16, 1024) }

func BenchmarkSHA256_128B(b *testing.B) {
	buf := make([]byte, 128)
	b.SetBytes(128)
	for b.Loop() {
		crypto.Hash(buf)
	}
}

func BenchmarkSHA256_1KiB(b *testing.B) {
	buf := make([]byte, 1024)
	b.SetBytes(1024)
	for b.Loop() {
		crypto.Hash(buf)
	}
}

func BenchmarkHKDFGroupKey(b *testing.B) {
	ikm := make([]byte, 32)
	for b.Loop() {
		if _, err := primitive.HKDF(ikm, nil, "mpenc group key", 32); err != nil {
			b.Fatal(err)
		}
	}
}
