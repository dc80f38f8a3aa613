package wire

import (
	"encoding/binary"
)

// Padding of data plaintext (design document 5.3; reference layout).
const (
	// PaddingBase is the smallest padded plaintext size.
	PaddingBase = 128
	// MaxPlaintextInner is the largest inner TLV string a data packet can
	// carry: its padded size, 32,768 bytes, is the largest power-of-two
	// multiple of 128 that still fits the 16-bit MESSAGE_PAYLOAD length.
	MaxPlaintextInner = 32766
)

// PaddedSize returns the padded plaintext size for an inner TLV string of
// inner bytes: 128·2^⌈log2(⌈(inner+2)/128⌉)⌉, so 0–126 → 128,
// 127–254 → 256, 255–510 → 512, and so on.
func PaddedSize(inner int) int {
	size := PaddingBase
	for size < inner+2 {
		size *= 2
	}
	return size
}

// Plaintext is the decrypted content of a data packet:
//
//	uint16 BE length L ‖ MESSAGE_PARENT* ‖ MESSAGE_BODY (L bytes) ‖ zero bytes
//
// The length prefix covers the whole inner TLV string (the design document
// says the body only; the reference, which is what ran, covers both).
type Plaintext struct {
	Parents []MessageID
	Body    []byte
	// Size is the total length with padding. Zero when marshalling means
	// PaddedSize of the inner length. Decoding sets it to the length found:
	// the reference's own early test packets carry no padding at all, and
	// the decoder accepts any length that leaves zero bytes after the inner
	// string.
	Size int
}

// Marshal encodes and pads the plaintext, in one allocation: the send path
// runs it for every message.
func (p *Plaintext) Marshal() ([]byte, error) {
	if len(p.Body) > MaxValueSize {
		return nil, errAt(ErrTooLarge, RecMessageBody, 0, "value of %d bytes", len(p.Body))
	}
	inner := len(p.Parents)*(4+MessageIDSize) + 4 + len(p.Body)
	if len(p.Parents) > MaxPlaintextInner || inner > MaxPlaintextInner {
		return nil, errAt(ErrTooLarge, 0, 0, "plaintext of %d bytes, cap %d", inner, MaxPlaintextInner)
	}
	size := p.Size
	if size == 0 {
		size = PaddedSize(inner)
	}
	if size < inner+2 || size > MaxValueSize {
		return nil, errAt(ErrValue, 0, 0, "padded size %d for %d bytes", size, inner)
	}
	out := make([]byte, 2, size)
	binary.BigEndian.PutUint16(out, uint16(inner))
	for _, id := range p.Parents {
		out, _ = AppendRecord(out, RecMessageParent, id[:])
	}
	out, _ = AppendRecord(out, RecMessageBody, p.Body)
	return out[:size], nil // the capacity beyond the records is still zero
}

// DecodePlaintext decodes a decrypted data payload. The result does not
// alias b.
func DecodePlaintext(b []byte) (*Plaintext, error) {
	if len(b) > MaxValueSize {
		return nil, errAt(ErrTooLarge, 0, 0, "plaintext of %d bytes", len(b))
	}
	if len(b) < 2 {
		return nil, errAt(ErrTruncated, 0, 0, "no length prefix")
	}
	n := int(binary.BigEndian.Uint16(b))
	if n > len(b)-2 {
		return nil, errAt(ErrTruncated, 0, 0, "length prefix %d, %d bytes follow", n, len(b)-2)
	}
	for i, x := range b[2+n:] {
		if x != 0 {
			return nil, errAt(ErrValue, 0, 2+n+i, "non-zero padding")
		}
	}
	c := &cursor{buf: append([]byte(nil), b[2:2+n]...)}
	p := &Plaintext{Parents: make([]MessageID, 0, c.countRepeated(RecMessageParent, MaxMembers)), Size: len(b)}
	err := c.repeated(RecMessageParent, MaxMembers, func(_ int, v []byte) error {
		if len(v) != MessageIDSize {
			return errAt(ErrLength, RecMessageParent, c.prev, "%d bytes, want %d", len(v), MessageIDSize)
		}
		p.Parents = append(p.Parents, MessageID(v))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if p.Body, err = c.require(RecMessageBody); err != nil {
		return nil, err
	}
	if err := c.done(); err != nil {
		return nil, err
	}
	return p, nil
}
