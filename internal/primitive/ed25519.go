package primitive

import (
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
