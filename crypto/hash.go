package crypto

import (
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

// Equal reports whether a and b are equal, in time that depends only on
// their lengths. Use it for every comparison that involves a secret or a
// value an attacker is trying to guess (MACs, signatures, key hashes).
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// Zero overwrites b with zeros. See the package documentation for what this
// does and does not guarantee.
func Zero(b []byte) { clear(b) }
