package primitive

import (
	"crypto/sha512"
	"errors"

	"filippo.io/edwards25519"
)

// Reasons CheckEd25519PublicKey refuses a key.
var (
	errKeyEncoding   = errors.New("crypto: Ed25519 public key is not a canonical point encoding")
	errKeySmallOrder = errors.New("crypto: Ed25519 public key is a point of small order")
)

// CheckEd25519PublicKey refuses what no honest member ever announces and
// what lets anyone forge signatures: encodings of a point that are not its
// one canonical encoding (y not reduced modulo p, or the sign of x = 0
// set), and points of small order (the identity and the seven other
// points of the 8-torsion, under which a signature of anything can be made
// without a private key). Go's ed25519.Verify accepts both.
func CheckEd25519PublicKey(k [32]byte) error {
	if !canonicalY(k) {
		return errKeyEncoding
	}
	p, err := new(edwards25519.Point).SetBytes(k[:])
	if err != nil {
		return errKeyEncoding
	}
	// SetBytes accepts a set sign bit with x = 0; the canonical encoding
	// of such a point has it clear.
	if [32]byte(p.Bytes()) != k {
		return errKeyEncoding
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return errKeySmallOrder
	}
	return nil
}

// canonicalY reports whether the encoded y (the low 255 bits, little
// endian) is below p = 2^255 − 19.
func canonicalY(k [32]byte) bool {
	// y ≥ p only when the top 250 bits are all ones and the low byte is at
	// least 0xed: p = 0x7fff…ffed.
	if k[31]&0x7f != 0x7f {
		return true
	}
	for i := 30; i > 0; i-- {
		if k[i] != 0xff {
			return true
		}
	}
	return k[0] < 0xed
}

// X25519FromEd25519Seed is the X25519 key of the Ed25519 key with this
// seed: the scalar is the first half of SHA-512(seed), the same scalar
// Ed25519 signs with (RFC 8032 §5.1.5; clamped when used). Its public key
// is X25519PublicFromEd25519 of the Ed25519 public key: the two are the
// same point, in Montgomery form (the conversion libsodium and Signal's
// XEdDSA use). The device channel uses it to run Diffie-Hellman with the
// identity keys (docs/PROTOCOL.md "The device channel").
func X25519FromEd25519Seed(seed [32]byte) (*X25519Key, error) {
	h := sha512.Sum512(seed[:])
	defer clear(h[:])
	var s [32]byte
	copy(s[:], h[:32])
	defer clear(s[:])
	return NewX25519Key(s)
}

// X25519PublicFromEd25519 converts an Ed25519 public key to its X25519
// (Montgomery u) form, after CheckEd25519PublicKey's checks.
func X25519PublicFromEd25519(k [32]byte) ([32]byte, error) {
	if err := CheckEd25519PublicKey(k); err != nil {
		return [32]byte{}, err
	}
	p, err := new(edwards25519.Point).SetBytes(k[:])
	if err != nil {
		return [32]byte{}, errKeyEncoding
	}
	return [32]byte(p.BytesMontgomery()), nil
}
