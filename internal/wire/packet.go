package wire

import (
	"github.com/mpenc/mpenc/crypto"
)

// MessageIDSize is the size of a message id: SHA-256 truncated to 20 bytes.
const MessageIDSize = 20

// MessageID identifies a data message: SHA256(signature ‖ signed bytes)[0:20].
type MessageID [MessageIDSize]byte

// sigRecordSize is the size of an encoded MESSAGE_SIGNATURE record.
const sigRecordSize = 4 + crypto.SignatureSize

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
// well-formed mpENC/1 packet.
func Decode(b []byte) (Packet, error) {
	if len(b) > MaxPacketSize {
		return nil, errAt(ErrTooLarge, 0, 0, "packet of %d bytes, cap %d", len(b), MaxPacketSize)
	}
	buf := append([]byte(nil), b...)
	recs, err := decodeRecordsNoCopy(buf)
	if err != nil {
		return nil, err
	}
	c := &cursor{recs: recs, end: len(buf)}
	// The MESSAGE_TYPE record is the second (query, unsigned error), third
	// (greeting, signed error) or fourth (data) record.
	var mt MessageType
	found := false
	for i := 1; i < len(recs) && i < 4; i++ {
		if recs[i].Type == RecMessageType && len(recs[i].Value) == 1 {
			mt, found = MessageType(recs[i].Value[0]), true
			break
		}
	}
	if !found {
		return nil, errAt(ErrLayout, RecMessageType, 0, "no message type")
	}
	switch mt {
	case MsgGreet:
		return decodeGreet(c, buf)
	case MsgData:
		return decodeData(c, buf)
	case MsgError:
		return decodeError(c, buf)
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
	return Decode(b)
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
