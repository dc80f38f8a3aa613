package crypto

import (
	"crypto/ed25519"
	"fmt"
	"io"

	"github.com/mpenc/mpenc/internal/primitive"
)

// Sizes of Ed25519 values.
const (
	SeedSize      = ed25519.SeedSize      // 32: the private key as stored and sent
	PublicKeySize = ed25519.PublicKeySize // 32
)

// PublicKey is an Ed25519 public key. It is comparable and can key a map.
type PublicKey [PublicKeySize]byte

// Signature is an Ed25519 signature (64 bytes).
type Signature [ed25519.SignatureSize]byte

// SigningKey is an Ed25519 private key. As in the reference implementation,
// the private key is its 32-byte seed; the expanded form is computed once
// here.
//
// The zero value is not usable. A SigningKey is safe for concurrent use.
type SigningKey struct {
	seed   [SeedSize]byte
	priv   ed25519.PrivateKey
	public PublicKey
}

// NewSigningKey builds a signing key from its 32-byte seed.
func NewSigningKey(seed [SeedSize]byte) *SigningKey {
	primitive.CountSign(0) // a key expansion costs what a signature does
	k := &SigningKey{seed: seed, priv: ed25519.NewKeyFromSeed(seed[:])}
	copy(k.public[:], k.priv[SeedSize:])
	return k
}

// GenerateSigningKey draws a 32-byte seed from r (crypto/rand.Reader when
// nil).
func GenerateSigningKey(r io.Reader) (*SigningKey, error) {
	seed, err := primitive.Random32(r)
	if err != nil {
		return nil, err
	}
	defer clear(seed[:])
	return NewSigningKey(seed), nil
}

// Seed returns a copy of the 32-byte seed. The caller owns the copy.
func (k *SigningKey) Seed() [SeedSize]byte { return k.seed }

// Public returns the public key.
func (k *SigningKey) Public() PublicKey { return k.public }

// Sign signs message (pure Ed25519, RFC 8032).
func (k *SigningKey) Sign(message []byte) Signature {
	primitive.CountSign(len(message))
	var s Signature
	copy(s[:], ed25519.Sign(k.priv, message))
	return s
}

// Zero wipes the seed and the expanded private key held by k. Go gives no
// guarantee that no other copy exists.
func (k *SigningKey) Zero() {
	clear(k.seed[:])
	clear(k.priv)
}

// String describes the key without revealing the seed.
func (k *SigningKey) String() string { return fmt.Sprintf("SigningKey(public %x)", k.public[:4]) }

// Verify reports whether sig is a valid Ed25519 signature of message by pub
// (RFC 8032 verification as implemented by crypto/ed25519).
func Verify(pub PublicKey, message []byte, sig *Signature) bool {
	primitive.CountVerify(len(message))
	return ed25519.Verify(pub[:], message, sig[:])
}
