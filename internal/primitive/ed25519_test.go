package primitive_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"testing"

	"github.com/mpenc/mpenc/internal/primitive"
)

func key(t *testing.T, s string) [32]byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("bad test key %q", s)
	}
	return [32]byte(b)
}

func TestCheckEd25519PublicKey(t *testing.T) {
	// The eight points of small order, canonically encoded (the 8-torsion
	// of edwards25519, as listed with the cofactor tests of the Ed25519
	// literature), and non-canonical encodings of some of them.
	smallOrder := []string{
		"0100000000000000000000000000000000000000000000000000000000000000", // identity
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
		"0000000000000000000000000000000000000000000000000000000000000000", // order 4
		"0000000000000000000000000000000000000000000000000000000000000080", // order 4, x sign set (non-canonical)
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", // order 8
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", // order 8
	}
	for _, s := range smallOrder {
		if err := primitive.CheckEd25519PublicKey(key(t, s)); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
	nonCanonical := []string{
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p + 1 (the identity's y, unreduced)
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p
		"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // y = 2^255 − 1, sign set
		"0100000000000000000000000000000000000000000000000000000000000080", // the identity with the sign of x = 0 set
	}
	for _, s := range nonCanonical {
		if err := primitive.CheckEd25519PublicKey(key(t, s)); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
	// Real keys pass.
	for i := range 64 {
		var seed [32]byte
		seed[0], seed[1] = byte(i), 0x5a
		pub := ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
		if err := primitive.CheckEd25519PublicKey([32]byte(pub)); err != nil {
			t.Errorf("a real key was refused: %x: %v", pub, err)
		}
	}
	// The RFC 8032 test 1 key.
	if err := primitive.CheckEd25519PublicKey(key(t, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")); err != nil {
		t.Errorf("RFC 8032 test 1: %v", err)
	}
}

func TestSmallOrderKeyForgesAnything(t *testing.T) {
	// Why it matters: under the identity point as public key, the
	// signature R = identity, S = 0 verifies for every message in Go's
	// crypto/ed25519 (cofactorless but it accepts small-order A).
	id := key(t, "0100000000000000000000000000000000000000000000000000000000000000")
	sig := make([]byte, 64)
	copy(sig, id[:])
	if !ed25519.Verify(ed25519.PublicKey(id[:]), []byte("anything at all"), sig) {
		t.Fatal("Go's ed25519.Verify now refuses the identity key: CheckEd25519PublicKey's doc says it accepts it")
	}
}
