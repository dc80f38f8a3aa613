package primitive

import (
	"crypto/ed25519"
	"testing"
)

// TestX25519FromEd25519: the converted private key's public half is the
// converted public key, and two converted keys agree on their DH.
func TestX25519FromEd25519(t *testing.T) {
	var seeds [2][32]byte
	seeds[0][0], seeds[1][0] = 1, 2
	var xs [2]*X25519Key
	var pubs [2][32]byte
	for i, seed := range seeds {
		edPub := [32]byte(ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey))
		x, err := X25519FromEd25519Seed(seed)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := X25519PublicFromEd25519(edPub)
		if err != nil {
			t.Fatal(err)
		}
		if x.Public() != pub {
			t.Fatalf("key %d: converted private gives %x, converted public is %x", i, x.Public(), pub)
		}
		xs[i], pubs[i] = x, pub
	}
	ab, err := xs[0].DH(pubs[1])
	if err != nil {
		t.Fatal(err)
	}
	ba, err := xs[1].DH(pubs[0])
	if err != nil || ab != ba {
		t.Fatalf("DH disagrees: %x, %x (%v)", ab, ba, err)
	}
	if _, err := X25519PublicFromEd25519([32]byte{1}); err == nil { // the identity point
		t.Fatal("a small-order key converted")
	}
}
