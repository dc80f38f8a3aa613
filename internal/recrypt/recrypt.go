// Package recrypt is the split-key recryption of seed 003 (issue [N],
// docs/PROTOCOL.md "History: recryption"), on the prime-order subgroup of
// edwards25519 instead of the seed's Z_p*.
//
// An admin holds a secret scalar a and publishes A = [a]B. Each member m
// gets a random x_m; the service gets r_m = a − x_m. A writer seals a page
// under a fresh t: T = [t]B, S = [t]A, and the page key from S. The service
// turns T into R_m = [r_m]T for member m, who computes
// S = R_m + [x_m]T = [t(a − x_m) + t·x_m]B = [ta]B and opens the page.
//
// The scheme's stated limit (seed 003 §3.1): the service and any one
// member together know a = r_m + x_m, and with it every page of the group
// and epoch (TestCollusionRecoversAdminSecret keeps this visible). The
// service alone holds only r_m; recovering S from T and R_m is CDH-hard.
//
// Every point decoded from outside is checked: a canonical encoding, not
// the identity, in the prime-order subgroup. Randomness comes from the
// caller.
package recrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"filippo.io/edwards25519"
)

// Errors callers branch on.
var (
	// ErrBadPoint: a point that is not a canonical encoding of an
	// element of the prime-order subgroup other than the identity.
	ErrBadPoint = errors.New("recrypt: not a valid group element")
	// ErrBadScalar: a scalar that is not canonical, or zero.
	ErrBadScalar = errors.New("recrypt: not a valid scalar")
	// ErrOpen: a page that does not open under the derived key (the
	// wrong member share, a wrong R, or a changed page).
	ErrOpen = errors.New("recrypt: the page does not open")
)

// Point is an encoded group element, Scalar an encoded scalar (little
// endian, reduced mod ℓ).
type (
	Point  [32]byte
	Scalar [32]byte
)

// Overhead is what Seal adds to a page: the AES-256-GCM tag.
const Overhead = 16

// pageInfo starts the HKDF info of a page key (docs/PROTOCOL.md).
const pageInfo = "mpenc archive page v1"

// randomScalar draws a scalar uniformly mod ℓ (64 random bytes, reduced),
// never zero.
func randomScalar(rand io.Reader) (*edwards25519.Scalar, error) {
	var b [64]byte
	for {
		if _, err := io.ReadFull(rand, b[:]); err != nil {
			return nil, fmt.Errorf("recrypt: randomness: %w", err)
		}
		s, err := edwards25519.NewScalar().SetUniformBytes(b[:])
		if err != nil {
			return nil, err
		}
		if s.Equal(edwards25519.NewScalar()) == 0 {
			return s, nil
		}
	}
}

// DecodePoint decodes and checks a point from outside.
func DecodePoint(p Point) (*edwards25519.Point, error) {
	q, err := new(edwards25519.Point).SetBytes(p[:])
	if err != nil {
		return nil, fmt.Errorf("%w: not on the curve", ErrBadPoint)
	}
	// SetBytes takes non-canonical encodings too: only the one encoding
	// of each point is accepted.
	if subtle.ConstantTimeCompare(q.Bytes(), p[:]) != 1 {
		return nil, fmt.Errorf("%w: not canonical", ErrBadPoint)
	}
	id := edwards25519.NewIdentityPoint()
	if q.Equal(id) == 1 {
		return nil, fmt.Errorf("%w: the identity", ErrBadPoint)
	}
	// In the prime-order subgroup iff [ℓ]Q = O, that is [ℓ−1]Q + Q = O.
	check := new(edwards25519.Point).ScalarMult(lMinusOne, q)
	if check.Add(check, q).Equal(id) != 1 {
		return nil, fmt.Errorf("%w: not in the prime-order subgroup", ErrBadPoint)
	}
	return q, nil
}

// lMinusOne is ℓ − 1, little endian.
var lMinusOne = func() *edwards25519.Scalar {
	b := [32]byte{0xec, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}
	s, err := edwards25519.NewScalar().SetCanonicalBytes(b[:])
	if err != nil {
		panic(err)
	}
	return s
}()

// decodeScalar decodes a canonical, non-zero scalar.
func decodeScalar(s Scalar) (*edwards25519.Scalar, error) {
	x, err := edwards25519.NewScalar().SetCanonicalBytes(s[:])
	if err != nil || x.Equal(edwards25519.NewScalar()) == 1 {
		return nil, ErrBadScalar
	}
	return x, nil
}

func pointOf(p *edwards25519.Point) (out Point) {
	copy(out[:], p.Bytes())
	return out
}

func scalarOf(s *edwards25519.Scalar) (out Scalar) {
	copy(out[:], s.Bytes())
	return out
}

// NewAdmin draws an admin secret a and returns it with A = [a]B.
func NewAdmin(rand io.Reader) (a Scalar, A Point, err error) {
	s, err := randomScalar(rand)
	if err != nil {
		return Scalar{}, Point{}, err
	}
	return scalarOf(s), pointOf(new(edwards25519.Point).ScalarBaseMult(s)), nil
}

// Split draws a member's share x and the service's share r = a − x.
func Split(a Scalar, rand io.Reader) (x, r Scalar, err error) {
	as, err := decodeScalar(a)
	if err != nil {
		return Scalar{}, Scalar{}, err
	}
	for {
		xs, err := randomScalar(rand)
		if err != nil {
			return Scalar{}, Scalar{}, err
		}
		rs := edwards25519.NewScalar().Subtract(as, xs)
		if rs.Equal(edwards25519.NewScalar()) == 0 {
			return scalarOf(xs), scalarOf(rs), nil
		}
	}
}

// Seal encrypts page for the group whose public key is A: a fresh t,
// T = [t]B, S = [t]A, the key and nonce from HKDF-SHA256(S, salt A‖T,
// info pageInfo‖context), AES-256-GCM over page with ad. It returns T
// and the ciphertext; t is dropped.
func Seal(A Point, context, page, ad []byte, rand io.Reader) (T Point, ciphertext []byte, err error) {
	Ap, err := DecodePoint(A)
	if err != nil {
		return Point{}, nil, err
	}
	t, err := randomScalar(rand)
	if err != nil {
		return Point{}, nil, err
	}
	T = pointOf(new(edwards25519.Point).ScalarBaseMult(t))
	S := pointOf(new(edwards25519.Point).ScalarMult(t, Ap))
	aead, nonce, err := pageAEAD(S, A, T, context)
	if err != nil {
		return Point{}, nil, err
	}
	return T, aead.Seal(nil, nonce, page, ad), nil
}

// Recrypt is the service's step for a member whose share is r: R = [r]T,
// after checking T.
func Recrypt(r Scalar, T Point) (Point, error) {
	rs, err := decodeScalar(r)
	if err != nil {
		return Point{}, err
	}
	Tp, err := DecodePoint(T)
	if err != nil {
		return Point{}, err
	}
	return pointOf(new(edwards25519.Point).ScalarMult(rs, Tp)), nil
}

// SharedPoint is the member's step: S = R + [x]T, after checking both
// points.
func SharedPoint(x Scalar, T, R Point) (Point, error) {
	xs, err := decodeScalar(x)
	if err != nil {
		return Point{}, err
	}
	Tp, err := DecodePoint(T)
	if err != nil {
		return Point{}, err
	}
	Rp, err := DecodePoint(R)
	if err != nil {
		return Point{}, err
	}
	S := new(edwards25519.Point).ScalarMult(xs, Tp)
	return pointOf(S.Add(S, Rp)), nil
}

// Open opens a page sealed under A for the member whose share is x, with
// the service's R for it.
func Open(x Scalar, A, T, R Point, context, ciphertext, ad []byte) ([]byte, error) {
	S, err := SharedPoint(x, T, R)
	if err != nil {
		return nil, err
	}
	aead, nonce, err := pageAEAD(S, A, T, context)
	if err != nil {
		return nil, err
	}
	p, err := aead.Open(nil, nonce, ciphertext, ad)
	if err != nil {
		return nil, ErrOpen
	}
	return p, nil
}

// PageKey returns the page key and nonce derived from S (for the known
// answers).
func PageKey(S, A, T Point, context []byte) (key [32]byte, nonce [12]byte, err error) {
	salt := append(append([]byte{}, A[:]...), T[:]...)
	okm, err := hkdf.Key(sha256.New, S[:], salt, pageInfo+string(context), 44)
	if err != nil {
		return key, nonce, err
	}
	copy(key[:], okm[:32])
	copy(nonce[:], okm[32:])
	return key, nonce, nil
}

func pageAEAD(S, A, T Point, context []byte) (cipher.AEAD, []byte, error) {
	key, nonce, err := PageKey(S, A, T, context)
	if err != nil {
		return nil, nil, err
	}
	b, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(b)
	if err != nil {
		return nil, nil, err
	}
	return aead, nonce[:], nil
}

// A member's share x_m reaches its device sealed to the device's X25519
// key (its identity key in Montgomery form): HPKE (RFC 9180) base mode,
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, info
// shareInfo ‖ context (the group, epoch and member). The sealed share is
// 32 + 32 + 16 = 80 bytes; the service stores it and hands it to the
// member with its pages.

// SealedShareSize is the size of a sealed share.
const SealedShareSize = 80

const shareInfo = "mpenc recrypt entry v1"

// SealShare seals x for the device whose X25519 public key is device.
func SealShare(device [32]byte, context []byte, x Scalar) ([]byte, error) {
	if _, err := decodeScalar(x); err != nil {
		return nil, err
	}
	pub, err := ecdh.X25519().NewPublicKey(device[:])
	if err != nil {
		return nil, fmt.Errorf("recrypt: device key: %w", err)
	}
	pk, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return hpke.Seal(pk, hpke.HKDFSHA256(), hpke.AES256GCM(), append([]byte(shareInfo), context...), x[:])
}

// OpenShare opens a sealed share with the device's X25519 private key.
func OpenShare(device *ecdh.PrivateKey, context, sealed []byte) (Scalar, error) {
	if len(sealed) != SealedShareSize {
		return Scalar{}, fmt.Errorf("%w: a sealed share of %d bytes", ErrOpen, len(sealed))
	}
	k, err := hpke.NewDHKEMPrivateKey(device)
	if err != nil {
		return Scalar{}, err
	}
	p, err := hpke.Open(k, hpke.HKDFSHA256(), hpke.AES256GCM(), append([]byte(shareInfo), context...), sealed)
	if err != nil || len(p) != 32 {
		return Scalar{}, ErrOpen
	}
	x := Scalar(p)
	if _, err := decodeScalar(x); err != nil {
		return Scalar{}, err
	}
	return x, nil
}
