package crypto_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/testvectors"
)

func TestUpstreamKeys(t *testing.T) {
	u := testvectors.LoadUpstream(t)
	xk, err := crypto.NewX25519Key([32]byte(u.Key(t, "C25519_PRIV_KEY")))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := xk.Public(), u.Key(t, "C25519_PUB_KEY"); !bytes.Equal(got[:], want) {
		t.Errorf("X25519 public = %x, want %x", got, want)
	}
	sk := crypto.NewSigningKey([32]byte(u.Key(t, "ED25519_PRIV_KEY")))
	if got, want := sk.Public(), u.Key(t, "ED25519_PUB_KEY"); !bytes.Equal(got[:], want) {
		t.Errorf("Ed25519 public = %x, want %x", got, want)
	}
	if got := sk.Seed(); !bytes.Equal(got[:], u.Key(t, "ED25519_PRIV_KEY")) {
		t.Error("seed does not round-trip")
	}
}

// TestUpstreamCliquesKeyList reproduces the reference's computeKeyList: r =
// intKey (or the base point); for each contribution k, r = X25519(k, r).
func TestUpstreamCliquesKeyList(t *testing.T) {
	u := testvectors.LoadUpstream(t)
	xk, err := crypto.NewX25519Key([32]byte(u.Key(t, "C25519_PRIV_KEY")))
	if err != nil {
		t.Fatal(err)
	}
	pub := [32]byte(u.Key(t, "C25519_PUB_KEY"))
	for _, tc := range []struct {
		name  string
		start *[32]byte
		want  map[string]string
	}{
		{"no_intKey", nil, u.Cliques.NoIntKey},
		{"intKey=C25519_PUB_KEY", &pub, u.Cliques.WithIntKey},
	} {
		if len(tc.want) != 3 {
			t.Fatalf("%s: %d cases in the vectors, want 3", tc.name, len(tc.want))
		}
		for n := 1; n <= 3; n++ {
			var r [32]byte
			i := 0
			if tc.start == nil {
				r, i = xk.Public(), 1 // X25519(k, G) is the cached public key
			} else {
				r = *tc.start
			}
			for ; i < n; i++ {
				if r, err = xk.DH(r); err != nil {
					t.Fatal(err)
				}
			}
			want := tc.want[fmt.Sprintf("n=%d", n)]
			if hex.EncodeToString(r[:]) != want {
				t.Errorf("%s n=%d: %x, want %s", tc.name, n, r, want)
			}
		}
	}
}

func TestUpstreamHKDF(t *testing.T) {
	u := testvectors.LoadUpstream(t)
	if len(u.HKDF.Cases) != 2 {
		t.Fatalf("%d HKDF cases, want 2", len(u.HKDF.Cases))
	}
	for _, c := range u.HKDF.Cases {
		okm, err := crypto.HKDF(testvectors.Hex(t, c.IKM), nil, c.Info, 32)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(okm) != c.OKM {
			t.Errorf("HKDF(info %q) = %x, want %s", c.Info, okm, c.OKM)
		}
	}
}
