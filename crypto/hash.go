package crypto

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
)

// Hash returns SHA-256 of the concatenation of parts.
func Hash(parts ...[]byte) [sha256.Size]byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// HKDF derives length bytes with HKDF-SHA256 (RFC 5869) from secret, salt
// and info. An empty salt means a string of zeros of hash length, as the RFC
// says.
func HKDF(secret, salt []byte, info string, length int) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, salt, info, length)
}

// Equal reports whether a and b are equal, in time that depends only on
// their lengths. Use it for every comparison that involves a secret or a
// value an attacker is trying to guess (MACs, signatures, key hashes).
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// Zero overwrites b with zeros. See the package documentation for what this
// does and does not guarantee.
func Zero(b []byte) { clear(b) }
