package message

import (
	"encoding/base64"
	"strings"

	"github.com/mpenc/mpenc/internal/wire"
)

// armour returns wire.Armour(raw) with one allocation instead of three: the
// send path's cost is the signature plus small change, and wire.Armour
// (EncodeToString, then a three-way concatenation) was a third of the small
// change. TestArmourMatchesWire checks the bytes are the same.
func armour(raw []byte) string {
	enc := base64.StdEncoding
	var sb strings.Builder
	sb.Grow(len(wire.ArmourPrefix) + enc.EncodedLen(len(raw)) + len(wire.ArmourSuffix))
	sb.WriteString(wire.ArmourPrefix)
	var chunk [1024]byte // 768 input bytes encode to exactly 1024, no padding mid-stream
	for len(raw) > 0 {
		n := min(len(raw), 768)
		enc.Encode(chunk[:], raw[:n])
		sb.Write(chunk[:enc.EncodedLen(n)])
		raw = raw[n:]
	}
	sb.WriteString(wire.ArmourSuffix)
	return sb.String()
}
