package devchan

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Packet layout (all integers big-endian), docs/PROTOCOL.md "The device
// channel":
//
//	0   version (1)
//	1   type: 1 request, 2 response, 3 data
//	2   sender's device id (8)
//	10  receiver's device id (8)
//	18  initiator's ephemeral key id (8)
//	26  responder's ephemeral key id (8)
//	34  sequence (8): 0 in a request and a response; the sender's counter of
//	    data packets in this session, from 0
//	42  body length (4)
//	46  body
//
// The key ids name the session: the same two in every packet of it,
// whoever sends. The seed's header names the sender's key first; a fixed
// order is one rule less.
const (
	version    = 1
	headerSize = 46
	// MaxPacket bounds a packet's size; larger ones are refused before
	// anything else is read.
	MaxPacket = 64 << 10
)

// Type is a packet's type.
type Type uint8

const (
	TypeRequest  Type = 1
	TypeResponse Type = 2
	TypeData     Type = 3
)

// Header is what every packet starts with.
type Header struct {
	Type      Type
	From, To  DeviceID
	InitKey   KeyID // the initiator's ephemeral key
	RespKey   KeyID // the responder's ephemeral key (its published digest's id)
	Sequence  uint64
	bodyBytes int
}

// DeviceID names a device: the first 8 bytes of its identity key's
// fingerprint.
type DeviceID [8]byte

// KeyID names an ephemeral key: the first 8 bytes of its digest.
type KeyID [8]byte

// Errors. Every refusal of a packet wraps ErrMalformed or one of the
// session's errors (session.go); nothing is changed by a refused packet.
var ErrMalformed = errors.New("devchan: malformed packet")

func (h *Header) encode(body []byte) []byte {
	b := make([]byte, headerSize, headerSize+len(body))
	b[0], b[1] = version, byte(h.Type)
	copy(b[2:], h.From[:])
	copy(b[10:], h.To[:])
	copy(b[18:], h.InitKey[:])
	copy(b[26:], h.RespKey[:])
	binary.BigEndian.PutUint64(b[34:], h.Sequence)
	binary.BigEndian.PutUint32(b[42:], uint32(len(body)))
	return append(b, body...)
}

// ParseHeader reads a packet's header, with the cheap checks: size,
// version, type, and a body length that matches. It returns the body.
func ParseHeader(p []byte) (Header, []byte, error) {
	var h Header
	if len(p) > MaxPacket {
		return h, nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(p), MaxPacket)
	}
	if len(p) < headerSize {
		return h, nil, fmt.Errorf("%w: %d bytes, shorter than a header", ErrMalformed, len(p))
	}
	if p[0] != version {
		return h, nil, fmt.Errorf("%w: version %d", ErrMalformed, p[0])
	}
	h.Type = Type(p[1])
	if h.Type < TypeRequest || h.Type > TypeData {
		return h, nil, fmt.Errorf("%w: type %d", ErrMalformed, p[1])
	}
	copy(h.From[:], p[2:])
	copy(h.To[:], p[10:])
	copy(h.InitKey[:], p[18:])
	copy(h.RespKey[:], p[26:])
	h.Sequence = binary.BigEndian.Uint64(p[34:])
	n := binary.BigEndian.Uint32(p[42:])
	if int64(n) != int64(len(p)-headerSize) {
		return h, nil, fmt.Errorf("%w: body of %d bytes announced, %d present", ErrMalformed, n, len(p)-headerSize)
	}
	if h.Type != TypeData && h.Sequence != 0 {
		return h, nil, fmt.Errorf("%w: a handshake packet with sequence %d", ErrMalformed, h.Sequence)
	}
	h.bodyBytes = int(n)
	return h, p[headerSize:], nil
}

// request is the body of a request:
//
//	initiator's identity key (32) ‖ initiator's ephemeral key (32) ‖
//	the digest of the responder's ephemeral key it picked (32)
//
// (the seed's clientid is the header's sender; its name, the label, is
// in the published device list; the identity key is a deviation that
// saves the responder a fetch.)
type request struct {
	identity  [32]byte
	ephemeral [32]byte
	digest    [32]byte
}

const requestSize = 96

func (r *request) encode() []byte {
	b := make([]byte, 0, requestSize)
	b = append(b, r.identity[:]...)
	b = append(b, r.ephemeral[:]...)
	return append(b, r.digest[:]...)
}

func parseRequest(b []byte) (request, error) {
	var r request
	if len(b) != requestSize {
		return r, fmt.Errorf("%w: request body of %d bytes", ErrMalformed, len(b))
	}
	copy(r.identity[:], b)
	copy(r.ephemeral[:], b[32:])
	copy(r.digest[:], b[64:])
	return r, nil
}

// Status of a response, with the seed's messages.
const (
	statusOkay byte = 0
	statusFail byte = 1

	messageOkay     = "ephemeral key okay"
	messageMismatch = "ephemeral key mismatch"
)

// response is the body of a response:
//
//	status (1) ‖ message length (1) ‖ message ‖
//	okay only: responder's ephemeral key (32) ‖ its confirmation (32)
type response struct {
	status    byte
	message   string
	ephemeral [32]byte
	auth      [32]byte
}

func (r *response) encode() []byte {
	b := []byte{r.status, byte(len(r.message))}
	b = append(b, r.message...)
	if r.status == statusOkay {
		b = append(b, r.ephemeral[:]...)
		b = append(b, r.auth[:]...)
	}
	return b
}

func parseResponse(b []byte) (response, error) {
	var r response
	if len(b) < 2 {
		return r, fmt.Errorf("%w: response body of %d bytes", ErrMalformed, len(b))
	}
	n := int(b[1])
	r.status = b[0]
	want := 2 + n
	switch r.status {
	case statusOkay:
		want += 64
	case statusFail:
	default:
		return r, fmt.Errorf("%w: response status %d", ErrMalformed, r.status)
	}
	if len(b) != want {
		return r, fmt.Errorf("%w: response body of %d bytes, want %d", ErrMalformed, len(b), want)
	}
	r.message = string(b[2 : 2+n])
	if want := map[byte]string{statusOkay: messageOkay, statusFail: messageMismatch}[r.status]; r.message != want {
		return r, fmt.Errorf("%w: response message %.40q", ErrMalformed, r.message)
	}
	if r.status == statusOkay {
		copy(r.ephemeral[:], b[2+n:])
		copy(r.auth[:], b[2+n+32:])
	}
	return r, nil
}

// Data body:
//
//	flags (1) ‖ [the initiator's confirmation (32)] ‖ AES-256-GCM
//	ciphertext and tag
//
// Flags: bit 0 (initiator → responder), the confirmation follows; bit 1
// (responder → initiator), the responder has checked it. The associated
// data is the header, the flags byte and the confirmation when present.
const (
	flagConfirm   = 1
	flagConfirmed = 2
)

// minData: flags and an empty padded plaintext's tag.
const minData = 1 + 16
