package greeting

import (
	"fmt"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/wire"
)

// groupKeyInfo is the HKDF info of the group key (reference: "mpenc group key").
const groupKeyInfo = "mpenc group key"

// mult returns X25519(k, p), where the zero IntKey stands for the base point
// (that costs nothing: the public key was computed when k was built).
func mult(k *primitive.X25519Key, p wire.IntKey) (wire.IntKey, error) {
	if p.IsBase() {
		return wire.IntKey(k.Public()), nil
	}
	r, err := k.DH([32]byte(p))
	if err != nil {
		return wire.IntKey{}, err
	}
	return wire.IntKey(r), nil
}

// cardinal folds X25519 over every contribution, starting from the member's
// own intermediate key: the CLIQUES group secret once the key list is
// complete (docs/PROTOCOL.md §10, "Keys").
func cardinal(contributions []*primitive.X25519Key, own wire.IntKey) (wire.IntKey, error) {
	r := own
	for _, k := range contributions {
		var err error
		if r, err = mult(k, r); err != nil {
			return wire.IntKey{}, err
		}
	}
	return r, nil
}

// groupKey derives the 32-byte group key from the CLIQUES secret.
func groupKey(contributions []*primitive.X25519Key, own wire.IntKey) ([32]byte, error) {
	var gk [32]byte
	secret, err := cardinal(contributions, own)
	if err != nil {
		return gk, fmt.Errorf("greeter: computing the group secret: %w", err)
	}
	okm, err := primitive.HKDF(secret[:], nil, groupKeyInfo, 32)
	crypto.Zero(secret[:])
	if err != nil {
		return gk, err
	}
	copy(gk[:], okm)
	crypto.Zero(okm)
	return gk, nil
}

// multiplyOthers multiplies every intermediate key except the one at own by
// the fresh contribution k, in place: "renewing a contribution" (design
// document 5.2.1, Updating Private Key Contributions). own < 0 multiplies
// them all.
func multiplyOthers(keys []wire.IntKey, own int, k *primitive.X25519Key) error {
	for i := range keys {
		if i == own {
			continue
		}
		var err error
		if keys[i], err = mult(k, keys[i]); err != nil {
			return fmt.Errorf("greeter: intermediate key %d: %w", i, err)
		}
	}
	return nil
}
