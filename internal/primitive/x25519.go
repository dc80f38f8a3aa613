package primitive

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
)

// errLowOrderPoint is returned by [X25519Key.DH] when the peer value is a
// low-order point, so that the shared value would be all zeros. A peer that
// sends one is either broken or malicious; callers treat it as a protocol
// failure.
var errLowOrderPoint = errors.New("crypto: X25519 input is a low-order point")

// X25519Key is an X25519 private scalar together with the crypto/ecdh object
// built from it. Scalars, public values and shared values are 32 bytes. Build it once and reuse it: constructing the object costs
// one fixed-base scalar multiplication (the public key), after which each
// [X25519Key.DH] costs one Montgomery ladder. (By contrast,
// x/crypto/curve25519.X25519 rebuilds the object on every call on Go 1.26,
// paying two ladders.)
//
// The zero value is not usable. An X25519Key is safe for concurrent use.
type X25519Key struct {
	key    *ecdh.PrivateKey
	scalar [32]byte
	public [32]byte
}

// NewX25519Key wraps a 32-byte scalar. Any 32 bytes are valid: the scalar is
// clamped when used, as RFC 7748 specifies.
func NewX25519Key(scalar [32]byte) (*X25519Key, error) {
	opCounts.x25519.Add(1)
	k, err := ecdh.X25519().NewPrivateKey(scalar[:])
	if err != nil {
		return nil, fmt.Errorf("crypto: building X25519 key: %w", err)
	}
	x := &X25519Key{key: k, scalar: scalar}
	copy(x.public[:], k.PublicKey().Bytes())
	return x, nil
}

// GenerateX25519Key draws a scalar of 32 bytes from r (crypto/rand.Reader
// when nil), exactly as the reference draws a nacl.box key pair.
func GenerateX25519Key(r io.Reader) (*X25519Key, error) {
	s, err := Random32(r)
	if err != nil {
		return nil, err
	}
	defer clear(s[:])
	return NewX25519Key(s)
}

// Scalar returns a copy of the private scalar. The caller owns the copy and
// should zero it when done.
func (k *X25519Key) Scalar() [32]byte { return k.scalar }

// Public returns X25519(scalar, base point). It costs nothing: the value was
// computed when the key was built.
func (k *X25519Key) Public() [32]byte { return k.public }

// DH returns X25519(scalar, peer). The high bit of peer is ignored, as RFC
// 7748 specifies. It returns an error when peer is a low-order point, so
// that the result would be all zeros: a peer that sends one is either broken
// or malicious, and callers treat it as a protocol failure.
func (k *X25519Key) DH(peer [32]byte) ([32]byte, error) {
	var out [32]byte
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil { // cannot happen for 32 bytes; kept for safety
		return out, fmt.Errorf("crypto: X25519 peer value: %w", err)
	}
	opCounts.x25519.Add(1)
	shared, err := k.key.ECDH(pub)
	if err != nil {
		return out, errLowOrderPoint
	}
	copy(out[:], shared)
	clear(shared)
	return out, nil
}

// Zero wipes the copy of the scalar held by k. The crypto/ecdh object keeps
// its own copy, which Go gives no way to wipe; drop every reference to k so
// that it can be collected.
func (k *X25519Key) Zero() { clear(k.scalar[:]) }

// String describes the key without revealing the scalar.
func (k *X25519Key) String() string { return fmt.Sprintf("X25519Key(public %x)", k.public[:4]) }
