package wire

import "github.com/mpenc/mpenc/internal/primitive"

// MessageIDSize is the size of a message id: SHA-256 truncated to 20 bytes.
const MessageIDSize = 20

// MessageID identifies a data message: SHA256(signature ‖ signed bytes)[0:20].
type MessageID [MessageIDSize]byte

// sigRecordSize is the size of an encoded MESSAGE_SIGNATURE record.
const sigRecordSize = 4 + primitive.SignatureSize

// Packet is a decoded mpENC packet: *GreetPacket, *DataPacket, *ErrorPacket
// or *QueryPacket.
type Packet interface {
	MessageType() MessageType
	// Marshal encodes the packet; for a decoded packet it returns the
	// decoded bytes exactly.
	Marshal() ([]byte, error)
}

// Decode decodes one packet of any type. It returns an error wrapping a
// sentinel of this package for anything that is not exactly one
// well-formed mpENC/1 packet. The result does not alias b.
func Decode(b []byte) (Packet, error) {
	if len(b) > MaxPacketSize {
		return nil, errAt(ErrTooLarge, 0, 0, "packet of %d bytes, cap %d", len(b), MaxPacketSize)
	}
	return decodeOwned(append([]byte(nil), b...))
}

// decodeOwned decodes a buffer nobody else holds; the packet aliases it.
func decodeOwned(buf []byte) (Packet, error) {
	// The MESSAGE_TYPE record is the second (query, unsigned error), third
	// (greeting, signed error) or fourth (data) record.
	scan := &cursor{buf: buf}
	var mt MessageType
	found := false
	for i := 0; i < 4 && !found; i++ {
		t, v, ok, err := scan.peek()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if i > 0 && t == RecMessageType && len(v) == 1 {
			mt, found = MessageType(v[0]), true
		}
		scan.advance(v)
	}
	if !found {
		return nil, errAt(ErrLayout, RecMessageType, 0, "no message type")
	}
	c := &cursor{buf: buf}
	switch mt {
	case MsgGreet:
		return decodeGreet(c)
	case MsgData:
		return decodeData(c)
	case MsgError:
		return decodeError(c)
	case MsgQuery:
		if err := c.header(MsgQuery); err != nil {
			return nil, err
		}
		if err := c.done(); err != nil {
			return nil, err
		}
		return &QueryPacket{}, nil
	}
	return nil, errAt(ErrValue, RecMessageType, 0, "unknown message type %v", mt)
}

// DecodeWire dearmours and decodes a wire string.
func DecodeWire(s string) (Packet, error) {
	b, err := Dearmour(s)
	if err != nil {
		return nil, err
	}
	return decodeOwned(b) // Dearmour's result is ours alone: no second copy
}

// QueryPacket is an MPENC_QUERY packet: PROTOCOL_VERSION, MESSAGE_TYPE only.
type QueryPacket struct{}

// MessageType returns MsgQuery.
func (*QueryPacket) MessageType() MessageType { return MsgQuery }

// Marshal encodes the packet.
func (*QueryPacket) Marshal() ([]byte, error) {
	var w builder
	w.header(MsgQuery)
	return w.bytes()
}
