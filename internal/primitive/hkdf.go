package primitive

import (
	"crypto/hkdf"
	"crypto/sha256"
)

// HKDF derives length bytes with HKDF-SHA256 (RFC 5869) from secret, salt
// and info. An empty salt means a string of zeros of hash length, as the RFC
// says.
func HKDF(secret, salt []byte, info string, length int) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, salt, info, length)
}
