package store

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/text/unicode/norm"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

// KDFParams are the Argon2id parameters that turn a passphrase into the
// key that seals an identity key. They are recorded with each sealed key,
// so they can be raised later without losing old keys.
type KDFParams struct {
	Time      uint32 // passes
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // lanes
}

// defaultKDF is RFC 9106's second recommended option (§4: t=3, 64 MiB,
// p=4), for machines that cannot spare 2 GiB. Unlocking takes about
// 0.4 s on a 2-core virtual machine (docs/STORE.md has figures); every
// guess costs an attacker the same work.
var defaultKDF = KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4}

// Bounds on parameters read back from disk: a damaged or hostile file
// must not make Unlock allocate without limit or run for hours.
const (
	maxKDFTime    = 64
	maxKDFMemory  = 2 << 20 // KiB: 2 GiB
	maxKDFCost    = 8 << 20 // Time × MemoryKiB: e.g. 4 passes over 2 GiB
	maxKDFThreads = 64
)

func (p KDFParams) check() error {
	if p.Time < 1 || p.Time > maxKDFTime || p.Threads < 1 || p.Threads > maxKDFThreads ||
		p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemory ||
		uint64(p.Time)*uint64(p.MemoryKiB) > maxKDFCost {
		return fmt.Errorf("argon2id parameters t=%d m=%d KiB p=%d out of range", p.Time, p.MemoryKiB, p.Threads)
	}
	return nil
}

// Sealed key layout, version 1 (all integers big-endian):
//
//	0   magic "MPKS"
//	4   version 1
//	5   KDF id 1 (Argon2id, version 0x13)
//	6   time (4)  memory KiB (4)  threads (1)
//	15  salt (16)
//	31  check (32): SHA-256("mpenc/v1/key-check" ‖ K[32:64])
//	63  nonce (24)
//	87  XChaCha20-Poly1305 ciphertext of the 32-byte seed, with tag (48)
//	135 end
//
// K = Argon2id(NFC(passphrase), salt, time, memory, threads, 64 bytes).
// K[0:32] is the AEAD key; the additional data is bytes 0..87 (the whole
// header) followed by the 32-byte public key, so that neither the
// parameters nor the key's public half can be swapped unnoticed. The check
// value tells a wrong passphrase (ErrWrongPassphrase) from a damaged
// ciphertext (ErrCorrupt); it gives a guesser nothing the AEAD tag does
// not: each guess still costs one Argon2id run.
const (
	sealedMagic   = "MPKS"
	sealedVersion = 1
	kdfArgon2id   = 1
	saltSize      = 16
	checkSize     = 32
	headerSize    = 4 + 1 + 1 + 4 + 4 + 1 + saltSize + checkSize + chacha20poly1305.NonceSizeX
	sealedSize    = headerSize + crypto.SeedSize + chacha20poly1305.Overhead

	checkLabel = "mpenc/v1/key-check"
)

// sealedKey is a decoded sealed key blob.
type sealedKey struct {
	kdf        KDFParams
	salt       [saltSize]byte
	check      [checkSize]byte
	nonce      [chacha20poly1305.NonceSizeX]byte
	ciphertext [crypto.SeedSize + chacha20poly1305.Overhead]byte
}

var errSealed = errors.New("malformed sealed key")

// decodeSealed parses a blob strictly: exact length, known magic, version
// and KDF, parameters within bounds.
func decodeSealed(b []byte) (*sealedKey, error) {
	if len(b) != sealedSize || string(b[:4]) != sealedMagic || b[4] != sealedVersion || b[5] != kdfArgon2id {
		return nil, errSealed
	}
	k := &sealedKey{kdf: KDFParams{
		Time:      binary.BigEndian.Uint32(b[6:]),
		MemoryKiB: binary.BigEndian.Uint32(b[10:]),
		Threads:   b[14],
	}}
	if err := k.kdf.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", errSealed, err)
	}
	off := 15
	off += copy(k.salt[:], b[off:])
	off += copy(k.check[:], b[off:])
	off += copy(k.nonce[:], b[off:])
	copy(k.ciphertext[:], b[off:])
	return k, nil
}

// header returns the encoded header (the AEAD's additional data prefix).
func (k *sealedKey) header() []byte {
	b := make([]byte, 0, sealedSize)
	b = append(b, sealedMagic...)
	b = append(b, sealedVersion, kdfArgon2id)
	b = binary.BigEndian.AppendUint32(b, k.kdf.Time)
	b = binary.BigEndian.AppendUint32(b, k.kdf.MemoryKiB)
	b = append(b, k.kdf.Threads)
	b = append(b, k.salt[:]...)
	b = append(b, k.check[:]...)
	b = append(b, k.nonce[:]...)
	return b
}

func (k *sealedKey) encode() []byte { return append(k.header(), k.ciphertext[:]...) }

// normPassphrase applies Unicode NFC to a UTF-8 passphrase, so the same
// passphrase typed on systems that compose characters differently unlocks
// the same key. The caller zeroes the result.
func normPassphrase(p []byte) []byte {
	if utf8.Valid(p) {
		return norm.NFC.Bytes(p)
	}
	return append([]byte(nil), p...)
}

// deriveKeys runs Argon2id and returns the AEAD key and the check value.
func deriveKeys(passphrase []byte, salt []byte, p KDFParams) (aeadKey [32]byte, check [checkSize]byte) {
	pw := normPassphrase(passphrase)
	k := argon2.IDKey(pw, salt, p.Time, p.MemoryKiB, p.Threads, 64)
	crypto.Zero(pw)
	copy(aeadKey[:], k[:32])
	check = crypto.Hash([]byte(checkLabel), k[32:])
	crypto.Zero(k)
	return aeadKey, check
}

// seal encrypts seed under passphrase, bound to pub.
func seal(seed *[crypto.SeedSize]byte, pub crypto.PublicKey, passphrase []byte, p KDFParams, r io.Reader) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	k := &sealedKey{kdf: p}
	if err := primitive.RandomBytes(r, k.salt[:]); err != nil {
		return nil, err
	}
	if err := primitive.RandomBytes(r, k.nonce[:]); err != nil {
		return nil, err
	}
	aeadKey, check := deriveKeys(passphrase, k.salt[:], p)
	defer crypto.Zero(aeadKey[:])
	k.check = check
	aead, err := chacha20poly1305.NewX(aeadKey[:])
	if err != nil {
		return nil, err
	}
	ad := append(k.header(), pub[:]...)
	aead.Seal(k.ciphertext[:0], k.nonce[:], seed[:], ad)
	return k.encode(), nil
}

// open decrypts a sealed seed. It returns ErrWrongPassphrase when the
// check value does not match and ErrCorrupt when the blob is malformed,
// fails authentication, or holds a seed that is not pub's.
func open(blob []byte, pub crypto.PublicKey, passphrase []byte) (*crypto.SigningKey, error) {
	k, err := decodeSealed(blob)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	aeadKey, check := deriveKeys(passphrase, k.salt[:], k.kdf)
	defer crypto.Zero(aeadKey[:])
	if subtle.ConstantTimeCompare(check[:], k.check[:]) != 1 {
		return nil, errWrongPassphrase
	}
	aead, err := chacha20poly1305.NewX(aeadKey[:])
	if err != nil {
		return nil, err
	}
	ad := append(k.header(), pub[:]...)
	plain, err := aead.Open(nil, k.nonce[:], k.ciphertext[:], ad)
	if err != nil || len(plain) != crypto.SeedSize {
		return nil, fmt.Errorf("%w: the sealed identity key fails authentication", ErrCorrupt)
	}
	var seed [crypto.SeedSize]byte
	copy(seed[:], plain)
	crypto.Zero(plain)
	sk := crypto.NewSigningKey(seed)
	crypto.Zero(seed[:])
	got := sk.Public()
	if subtle.ConstantTimeCompare(got[:], pub[:]) != 1 {
		sk.Zero()
		return nil, fmt.Errorf("%w: the sealed identity key does not match its public key", ErrCorrupt)
	}
	return sk, nil
}

// errWrongPassphrase is returned by Unlock and ChangePassphrase when the
// passphrase is not the one the key was sealed with. Nothing is decrypted.
var errWrongPassphrase = errors.New("store: wrong passphrase")
