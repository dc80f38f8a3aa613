package greeting

import (
	"fmt"

	"github.com/mpenc/mpenc/internal/wire"
)

// RecomputeGroupKey is what an attacker holding s's private contributions
// (a memory image) and an intermediate key from the traffic computes: the
// group key of an operation whose intermediate key for s's member it is,
// when the member had the first n of those contributions then.
func RecomputeGroupKey(s *State, n int, ownIntKey wire.IntKey) ([32]byte, error) {
	if n < 1 || n > len(s.contributions) {
		return [32]byte{}, fmt.Errorf("no %d contributions", n)
	}
	return groupKey(s.contributions[:n], ownIntKey)
}
