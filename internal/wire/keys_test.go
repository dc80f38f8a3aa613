package wire_test

import (
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/testvectors"
	"github.com/mpenc/mpenc/internal/wire"
)

type katKeys struct {
	sign       *crypto.SigningKey
	pub        crypto.PublicKey
	sid, gk    []byte
	sidKeyHash [32]byte
}

func loadKeys(t *testing.T, u *testvectors.Upstream) katKeys {
	k := katKeys{
		sign: crypto.NewSigningKey([32]byte(testvectors.Key(t, u, "ED25519_PRIV_KEY"))),
		pub:  crypto.PublicKey(testvectors.Key(t, u, "ED25519_PUB_KEY")),
		sid:  testvectors.Key(t, u, "SESSION_ID"),
		gk:   testvectors.Key(t, u, "GROUP_KEY"),
	}
	k.sidKeyHash = wire.SidKeyHash(k.sid, k.gk)
	return k
}
