package message

import (
	"encoding/hex"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/mpenc/mpenc/internal/causal"
)

// Body type bytes of MESSAGE_BODY (docs/PROTOCOL.md §4): one type byte,
// then a UTF-8 JSON array of the fields.
const (
	bodyPayload     byte = 0
	bodyExplicitAck byte = 1
	bodyHeartBeat   byte = 2
	bodyConsistency byte = 3
	// bodyChainCheck is our addition: `\x04["<packet id hex>","<chain
	// hash hex>"]`, lowercase hex of 32 bytes each. A reference peer cannot
	// decode it; sessions with reference peers must not send it.
	bodyChainCheck byte = 4
)

// chainCheckSize is the length of an encoded ChainCheck body.
const chainCheckSize = 1 + len(`["`) + 64 + len(`","`) + 64 + len(`"]`)

var (
	// ErrBody: a MESSAGE_BODY that is not exactly one canonical encoding of
	// a known body.
	ErrBody = errors.New("message: malformed body")
	// ErrNotSendable: the body cannot be sent (a HeartBeat, which the
	// reference cannot decode: docs/MESSAGE-LAYER.md §4.7; or text that is not
	// valid UTF-8).
	ErrNotSendable = errors.New("message: body cannot be sent")
)

// Body is a decoded MESSAGE_BODY.
type Body struct {
	Kind causal.Kind
	// Text is the content of a Payload, valid UTF-8; empty for other kinds.
	Text string
	// Chain is the position a ChainCheck states; nil for other kinds.
	Chain *ChainPosition
}

// ChainPosition is a position in the ServerOrder chain: the id of the
// packet that created a subsession and the chain hash after it.
type ChainPosition struct {
	PacketID, ChainHash [32]byte
}

// The fixed encodings of the field-less or boolean bodies.
var (
	encAutoAck   = []byte("\x01[false]")
	encManualAck = []byte("\x01[true]")
	encHeartBeat = []byte("\x02[]")
	encFlush     = []byte("\x03[false]")
	encFin       = []byte("\x03[true]")
)

// EncodeBody encodes a body as the reference does: the type byte, then
// JSON.stringify of the fields (so `\x00["hi"]`, `\x01[false]`,
// `\x03[true]`). It refuses a HeartBeat (decode-only) and text that is not
// valid UTF-8.
func EncodeBody(b Body) ([]byte, error) {
	if b.Kind == causal.KindHeartBeat {
		return nil, fmt.Errorf("%w: HeartBeat is decode-only", ErrNotSendable)
	}
	return appendBody(make([]byte, 0, len(b.Text)+8), b)
}

func appendBody(dst []byte, b Body) ([]byte, error) {
	if b.Kind != causal.KindPayload && b.Text != "" {
		return nil, fmt.Errorf("%w: %v with text", ErrNotSendable, b.Kind)
	}
	switch b.Kind {
	case causal.KindPayload:
		if !utf8.ValidString(b.Text) {
			return nil, fmt.Errorf("%w: text is not valid UTF-8", ErrNotSendable)
		}
		dst = append(dst, bodyPayload, '[')
		dst = appendJSONString(dst, b.Text)
		return append(dst, ']'), nil
	case causal.KindAutoAck:
		return append(dst, encAutoAck...), nil
	case causal.KindManualAck:
		return append(dst, encManualAck...), nil
	case causal.KindHeartBeat:
		return append(dst, encHeartBeat...), nil
	case causal.KindFlush:
		return append(dst, encFlush...), nil
	case causal.KindFin:
		return append(dst, encFin...), nil
	case causal.KindChainCheck:
		if b.Chain == nil {
			return nil, fmt.Errorf("%w: ChainCheck without a position", ErrNotSendable)
		}
		dst = append(dst, bodyChainCheck, '[', '"')
		dst = hex.AppendEncode(dst, b.Chain.PacketID[:])
		dst = append(dst, '"', ',', '"')
		dst = hex.AppendEncode(dst, b.Chain.ChainHash[:])
		return append(dst, '"', ']'), nil
	}
	return nil, fmt.Errorf("%w: unknown kind %v", ErrNotSendable, b.Kind)
}

// appendJSONString appends s as JSON.stringify writes a string: quotes,
// `\"` and `\\`, the short escapes \b \f \n \r \t, `\u00xx` (lowercase hex)
// for the other control characters, everything else literal (no escaping of
// <, >, & or U+2028/2029, unlike encoding/json).
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c >= 0x20:
			dst = append(dst, c)
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
	}
	return append(dst, '"')
}

// DecodeBody decodes a MESSAGE_BODY. It accepts exactly the encodings
// EncodeBody produces (plus `\x02[]` for a HeartBeat), so that one body has
// one byte string: no whitespace, no trailing data, no other escapes, no
// wrong arity or types, valid UTF-8 only. Anything else wraps [ErrBody].
func DecodeBody(b []byte) (Body, error) {
	if len(b) == 0 {
		return Body{}, fmt.Errorf("%w: empty", ErrBody)
	}
	switch b[0] {
	case bodyPayload:
		text, err := parsePayload(b[1:])
		if err != nil {
			return Body{}, err
		}
		return Body{Kind: causal.KindPayload, Text: text}, nil
	case bodyExplicitAck:
		switch string(b) {
		case string(encAutoAck):
			return Body{Kind: causal.KindAutoAck}, nil
		case string(encManualAck):
			return Body{Kind: causal.KindManualAck}, nil
		}
	case bodyHeartBeat:
		if string(b) == string(encHeartBeat) {
			return Body{Kind: causal.KindHeartBeat}, nil
		}
	case bodyConsistency:
		switch string(b) {
		case string(encFlush):
			return Body{Kind: causal.KindFlush}, nil
		case string(encFin):
			return Body{Kind: causal.KindFin}, nil
		}
	case bodyChainCheck:
		if pos, ok := parseChainCheck(b); ok {
			return Body{Kind: causal.KindChainCheck, Chain: pos}, nil
		}
	default:
		return Body{}, fmt.Errorf("%w: unknown body type %d", ErrBody, b[0])
	}
	return Body{}, fmt.Errorf("%w: fields of body type %d", ErrBody, b[0])
}

// parseChainCheck parses exactly the encoding EncodeBody writes (lowercase
// hex only: one body, one byte string).
func parseChainCheck(b []byte) (*ChainPosition, bool) {
	if len(b) != chainCheckSize || string(b[1:3]) != `["` || string(b[67:70]) != `","` || string(b[134:]) != `"]` {
		return nil, false
	}
	var pos ChainPosition
	for _, f := range []struct {
		src []byte
		dst []byte
	}{{b[3:67], pos.PacketID[:]}, {b[70:134], pos.ChainHash[:]}} {
		for _, c := range f.src {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return nil, false
			}
		}
		if _, err := hex.Decode(f.dst, f.src); err != nil {
			return nil, false
		}
	}
	return &pos, true
}

// parsePayload parses `["…"]` with the string in canonical form.
func parsePayload(b []byte) (string, error) {
	if len(b) < 4 || b[0] != '[' || b[1] != '"' || b[len(b)-1] != ']' || b[len(b)-2] != '"' {
		return "", fmt.Errorf("%w: payload is not [\"text\"]", ErrBody)
	}
	in := b[2 : len(b)-2]
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); {
		c := in[i]
		switch {
		case c == '"':
			return "", fmt.Errorf("%w: unescaped quote at %d", ErrBody, i)
		case c < 0x20:
			return "", fmt.Errorf("%w: raw control character at %d", ErrBody, i)
		case c == '\\':
			if i+1 >= len(in) {
				return "", fmt.Errorf("%w: dangling escape", ErrBody)
			}
			switch e := in[i+1]; e {
			case '"', '\\':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				// Only control characters without a short form are
				// written as \u00xx, in lowercase.
				if i+6 > len(in) || in[i+2] != '0' || in[i+3] != '0' {
					return "", fmt.Errorf("%w: non-canonical \\u escape at %d", ErrBody, i)
				}
				hi, lo := unhex(in[i+4]), unhex(in[i+5])
				v := byte(hi<<4 | lo)
				if hi > 1 || lo > 15 || v == '\b' || v == '\f' || v == '\n' || v == '\r' || v == '\t' {
					return "", fmt.Errorf("%w: non-canonical \\u escape at %d", ErrBody, i)
				}
				out = append(out, v)
				i += 6
				continue
			default:
				return "", fmt.Errorf("%w: escape \\%c at %d", ErrBody, e, i)
			}
			i += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(in[i:])
			if r == utf8.RuneError && size <= 1 {
				return "", fmt.Errorf("%w: invalid UTF-8 at %d", ErrBody, i)
			}
			out = append(out, in[i:i+size]...)
			i += size
		}
	}
	return string(out), nil
}

// unhex returns the value of a lowercase hex digit, or 16.
func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return 16
}
