package crypto

import (
	"io"

	"github.com/mpenc/mpenc/internal/primitive"
)

// Random32 reads 32 bytes from r (crypto/rand.Reader when r is nil).
//
// Every random value the protocol draws goes through the caller's reader, so
// a test that injects a recorded stream reproduces a run byte for byte.
func Random32(r io.Reader) ([32]byte, error) { return primitive.Random32(r) }

// RandomBytes fills b from r (crypto/rand.Reader when r is nil).
func RandomBytes(r io.Reader, b []byte) error { return primitive.RandomBytes(r, b) }
