package wire

import (
	"encoding/base64"
	"strings"
)

// Armour framing: "?mpENC:" ‖ standard padded base64 of the packet ‖ ".".
const (
	ArmourPrefix = "?mpENC:"
	ArmourSuffix = "."
)

// MaxArmouredSize is the longest wire string a decoder looks at: the armour
// of a [MaxPacketSize] packet.
var MaxArmouredSize = len(ArmourPrefix) + base64.StdEncoding.EncodedLen(MaxPacketSize) + len(ArmourSuffix)

var strictBase64 = base64.StdEncoding.Strict()

// IsMpENC reports whether s carries the mpENC prefix. A string without it is
// a plain message from a client that does not speak mpENC.
func IsMpENC(s string) bool { return strings.HasPrefix(s, ArmourPrefix) }

// Armour returns the wire string of a packet.
func Armour(packet []byte) string {
	return ArmourPrefix + base64.StdEncoding.EncodeToString(packet) + ArmourSuffix
}

// Dearmour returns the packet bytes of a wire string. It returns
// [ErrNotMpENC] for a string without the prefix, and an error wrapping
// [ErrArmour] or [ErrTooLarge] for anything but the canonical encoding of at
// most [MaxPacketSize] bytes.
func Dearmour(s string) ([]byte, error) {
	if !IsMpENC(s) {
		return nil, ErrNotMpENC
	}
	if len(s) > MaxArmouredSize {
		return nil, errAt(ErrTooLarge, 0, 0, "wire string of %d bytes, cap %d", len(s), MaxArmouredSize)
	}
	body, ok := strings.CutSuffix(s[len(ArmourPrefix):], ArmourSuffix)
	if !ok {
		return nil, errAt(ErrArmour, 0, 0, "missing final %q", ArmourSuffix)
	}
	b, err := strictBase64.DecodeString(body)
	if err != nil {
		return nil, errAt(ErrArmour, 0, 0, "base64: %v", err)
	}
	// The decoder skips CR and LF; a canonical string has none, so its
	// length is exactly the encoded length of what it decodes to.
	if base64.StdEncoding.EncodedLen(len(b)) != len(body) {
		return nil, errAt(ErrArmour, 0, 0, "non-canonical base64")
	}
	// Base64 rounds up to whole groups: the length check above lets through
	// up to two bytes more than the cap.
	if len(b) > MaxPacketSize {
		return nil, errAt(ErrTooLarge, 0, 0, "packet of %d bytes, cap %d", len(b), MaxPacketSize)
	}
	return b, nil
}
