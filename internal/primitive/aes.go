package primitive

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
)

// IVSize is the size of the data-packet nonce. The AES-CTR counter block is
// the 12-byte IV followed by a 32-bit big-endian block counter starting at 0.
const IVSize = 12

// errKeySize is returned for an AES key that is neither 16 nor 32 bytes.
var errKeySize = errors.New("crypto: AES key must be 16 or 32 bytes")

// XORKeyStreamCTR encrypts or decrypts src into dst with AES in CTR mode.
// The key length selects the cipher: 16 bytes AES-128 (the reference's test
// vectors), 32 bytes AES-256 (the 32-byte group key of every real session);
// any other length is an error.
// dst and src must overlap entirely or not at all, and len(dst) >= len(src).
//
// CTR has no integrity: mpENC authenticates the ciphertext with the
// message signature, which callers must check before decrypting.
func XORKeyStreamCTR(dst, src, key []byte, iv *[IVSize]byte) error {
	if len(key) != 16 && len(key) != 32 {
		return errKeySize
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	var counter [aes.BlockSize]byte
	copy(counter[:], iv[:])
	// The counter's last four bytes start at zero. Go's CTR increments the
	// whole 128-bit block; it never carries out of the low 32 bits here,
	// since a packet is at most 64 KiB (4,096 blocks).
	cipher.NewCTR(block, counter[:]).XORKeyStream(dst[:len(src)], src)
	return nil
}
