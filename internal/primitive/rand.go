package primitive

import (
	"crypto/rand"
	"fmt"
	"io"
)

// reader returns r, or crypto/rand.Reader when r is nil.
func reader(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// Random32 reads 32 bytes from r (crypto/rand.Reader when r is nil).
//
// Every random value the protocol draws goes through the caller's reader, so
// a test that injects a recorded stream reproduces a run byte for byte.
func Random32(r io.Reader) ([32]byte, error) {
	var b [32]byte
	if _, err := io.ReadFull(reader(r), b[:]); err != nil {
		return b, fmt.Errorf("crypto: reading randomness: %w", err)
	}
	return b, nil
}

// RandomBytes fills b from r (crypto/rand.Reader when r is nil).
func RandomBytes(r io.Reader, b []byte) error {
	if _, err := io.ReadFull(reader(r), b); err != nil {
		return fmt.Errorf("crypto: reading randomness: %w", err)
	}
	return nil
}
