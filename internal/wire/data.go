package wire

import (
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

// DataPacket is a data packet (MESSAGE_TYPE 0x03). Its records, in order:
//
//	SIDKEY_HINT, MESSAGE_SIGNATURE, PROTOCOL_VERSION, MESSAGE_TYPE,
//	MESSAGE_IV, MESSAGE_PAYLOAD
//
// The signature covers "datamsgsig" ‖ SHA256(sid ‖ groupKey) ‖ the bytes from
// PROTOCOL_VERSION to the end ([SignData]); the hint is not covered.
type DataPacket struct {
	SidkeyHint byte
	Signature  crypto.Signature
	IV         [primitive.IVSize]byte
	Payload    []byte // the ciphertext of a padded Plaintext

	// Signed holds, for a decoded or signed packet, the exact bytes the
	// MESSAGE_SIGNATURE covers. Marshal ignores it.
	Signed []byte
}

// MessageType returns MsgData.
func (*DataPacket) MessageType() MessageType { return MsgData }

// MarshalSigned encodes the records the MESSAGE_SIGNATURE covers.
func (p *DataPacket) MarshalSigned() ([]byte, error) {
	out, err := p.marshal()
	if err != nil {
		return nil, err
	}
	return out[dataPrefixSize:], nil
}

// Marshal encodes the whole packet.
func (p *DataPacket) Marshal() ([]byte, error) {
	out, err := p.marshal()
	if err != nil {
		return nil, err
	}
	p.putPrefix(out)
	return out, nil
}

// dataPrefixSize is the size of the SIDKEY_HINT and MESSAGE_SIGNATURE
// records that precede the signed part of a data packet.
const dataPrefixSize = 5 + sigRecordSize

// marshal encodes the packet in one buffer, leaving room for the records
// before the signed part (see putPrefix): the send path signs every
// message, so it allocates once.
func (p *DataPacket) marshal() ([]byte, error) {
	if len(p.Payload) > MaxValueSize {
		return nil, errAt(ErrTooLarge, RecMessagePayload, 0, "value of %d bytes", len(p.Payload))
	}
	// PROTOCOL_VERSION and MESSAGE_TYPE (one byte each), IV, PAYLOAD.
	size := dataPrefixSize + 2*(4+1) + 4 + len(p.IV) + 4 + len(p.Payload)
	if size > MaxPacketSize {
		return nil, errAt(ErrTooLarge, 0, 0, "packet of %d bytes, cap %d", size, MaxPacketSize)
	}
	w := builder{b: make([]byte, dataPrefixSize, size)}
	w.header(MsgData)
	w.add(RecMessageIV, p.IV[:])
	w.add(RecMessagePayload, p.Payload)
	return w.bytes()
}

// putPrefix writes SIDKEY_HINT and MESSAGE_SIGNATURE into the room marshal
// left at the start of out.
func (p *DataPacket) putPrefix(out []byte) {
	b, _ := AppendRecord(out[:0], RecSidkeyHint, []byte{p.SidkeyHint})
	AppendRecord(b, RecMessageSignature, p.Signature[:])
}

// Sign signs the packet with the ephemeral key k for the subsession whose
// SHA256(sid ‖ groupKey) is sidKeyHash, sets p.SidkeyHint, p.Signature and
// p.Signed, and returns the encoded packet.
func (p *DataPacket) Sign(k *crypto.SigningKey, sidKeyHash *[32]byte) ([]byte, error) {
	out, err := p.marshal()
	if err != nil {
		return nil, err
	}
	// The signature input of SignData, "datamsgsig" ‖ sidKeyHash ‖ signed,
	// is built in place in the room left for the prefix, which putPrefix
	// then fills (TestSignInPlace checks both give the same signature).
	in := out[dataPrefixSize-len(dataSigContext)-len(sidKeyHash):]
	copy(in, dataSigContext)
	copy(in[len(dataSigContext):], sidKeyHash[:])
	p.SidkeyHint = sidKeyHash[0]
	p.Signature = k.Sign(in)
	p.Signed = out[dataPrefixSize:]
	p.putPrefix(out)
	return out, nil
}

// Verify reports whether p.Signed carries a valid data signature by pub for
// the subsession whose SHA256(sid ‖ groupKey) is sidKeyHash.
func (p *DataPacket) Verify(pub crypto.PublicKey, sidKeyHash *[32]byte) bool {
	return p.Signed != nil && VerifyData(pub, sidKeyHash, p.Signed, &p.Signature)
}

// ID returns the message id: SHA256(signature ‖ signed bytes)[0:20]. It is
// meaningful only for a decoded or signed packet.
func (p *DataPacket) ID() MessageID {
	h := crypto.Hash(p.Signature[:], p.Signed)
	var id MessageID
	copy(id[:], h[:MessageIDSize])
	return id
}

// DecodeData decodes a data packet.
func DecodeData(b []byte) (*DataPacket, error) {
	p, err := Decode(b)
	if err != nil {
		return nil, err
	}
	d, ok := p.(*DataPacket)
	if !ok {
		return nil, errAt(ErrLayout, RecMessageType, 0, "%v, want %v", p.MessageType(), MsgData)
	}
	return d, nil
}

func decodeData(c *cursor) (*DataPacket, error) {
	p := &DataPacket{}
	hint, err := c.requireSize(RecSidkeyHint, 1)
	if err != nil {
		return nil, err
	}
	p.SidkeyHint = hint[0]
	sig, err := c.requireSize(RecMessageSignature, primitive.SignatureSize)
	if err != nil {
		return nil, err
	}
	copy(p.Signature[:], sig)
	signedStart := c.off
	if err := c.header(MsgData); err != nil {
		return nil, err
	}
	iv, err := c.requireSize(RecMessageIV, primitive.IVSize)
	if err != nil {
		return nil, err
	}
	copy(p.IV[:], iv)
	if p.Payload, err = c.require(RecMessagePayload); err != nil {
		return nil, err
	}
	if err := c.done(); err != nil {
		return nil, err
	}
	p.Signed = c.buf[signedStart:]
	return p, nil
}
