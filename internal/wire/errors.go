package wire

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every decoding error wraps exactly one of them (inside an
// [*Error]); callers branch with errors.Is.
var (
	// ErrNotMpENC: the string does not start with "?mpENC:"; it is a plain
	// (non-mpENC) message, not a malformed packet.
	ErrNotMpENC = errors.New("wire: not an mpENC packet")
	// ErrArmour: the string starts with "?mpENC:" but is not "?mpENC:" ‖
	// canonical base64 ‖ ".".
	ErrArmour = errors.New("wire: malformed armour")
	// ErrTooLarge: a packet, a record value or a plaintext exceeds its cap.
	ErrTooLarge = errors.New("wire: too large")
	// ErrTooMany: more records, or more repetitions of one record type, than
	// the caps allow.
	ErrTooMany = errors.New("wire: too many records")
	// ErrTruncated: a record header or value runs past the end of the input.
	ErrTruncated = errors.New("wire: truncated")
	// ErrLength: a fixed-size record has the wrong length.
	ErrLength = errors.New("wire: wrong record length")
	// ErrLayout: a record is missing, repeated, unexpected or out of order for
	// the packet type, or bytes follow the last record.
	ErrLayout = errors.New("wire: unexpected record layout")
	// ErrValue: a record has a value this version does not accept (an unknown
	// message or greeting type, an all-zero key, non-zero padding).
	ErrValue = errors.New("wire: invalid record value")
	// ErrVersion: PROTOCOL_VERSION is not 0x01.
	ErrVersion = errors.New("wire: unsupported protocol version")
)

// Error describes a decoding failure: what went wrong (Err, one of the
// sentinels), the record concerned (zero if none) and the byte offset in the
// decoded (not armoured) input.
type Error struct {
	Err    error
	Record RecordType
	Offset int
	Detail string
}

func (e *Error) Error() string {
	s := e.Err.Error()
	if e.Record != 0 {
		s += " in " + e.Record.String()
	}
	s += fmt.Sprintf(" at offset %d", e.Offset)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

func errAt(err error, rec RecordType, off int, format string, args ...any) *Error {
	return &Error{Err: err, Record: rec, Offset: off, Detail: fmt.Sprintf(format, args...)}
}
