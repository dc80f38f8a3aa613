package message

import (
	"math/rand/v2"
	"testing"

	"github.com/mpenc/mpenc/internal/wire"
)

func TestArmourMatchesWire(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 3, 767, 768, 769, 1535, 1536, 1537, 4000, wire.MaxPacketSize} {
		for range 3 {
			raw := make([]byte, n)
			for i := range raw {
				raw[i] = byte(rng.Uint32())
			}
			if got, want := armour(raw), wire.Armour(raw); got != want {
				t.Fatalf("%d bytes: armour differs from wire.Armour", n)
			}
		}
	}
}
