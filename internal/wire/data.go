package wire

import (
	"github.com/mpenc/mpenc/crypto"
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
	IV         [crypto.IVSize]byte
	Payload    []byte // the ciphertext of a padded Plaintext

	// Signed holds, for a decoded or signed packet, the exact bytes the
	// MESSAGE_SIGNATURE covers. Marshal ignores it.
	Signed []byte
}

// MessageType returns MsgData.
func (*DataPacket) MessageType() MessageType { return MsgData }

// MarshalSigned encodes the records the MESSAGE_SIGNATURE covers.
func (p *DataPacket) MarshalSigned() ([]byte, error) {
	var w builder
	w.header(MsgData)
	w.add(RecMessageIV, p.IV[:])
	w.add(RecMessagePayload, p.Payload)
	return w.bytes()
}

// Marshal encodes the whole packet.
func (p *DataPacket) Marshal() ([]byte, error) {
	signed, err := p.MarshalSigned()
	if err != nil {
		return nil, err
	}
	return p.finish(signed)
}

func (p *DataPacket) finish(signed []byte) ([]byte, error) {
	out := make([]byte, 0, 5+sigRecordSize+len(signed))
	out, _ = AppendRecord(out, RecSidkeyHint, []byte{p.SidkeyHint})
	out, _ = AppendRecord(out, RecMessageSignature, p.Signature[:])
	out = append(out, signed...)
	if len(out) > MaxPacketSize {
		return nil, errAt(ErrTooLarge, 0, 0, "packet of %d bytes, cap %d", len(out), MaxPacketSize)
	}
	return out, nil
}

// Sign signs the packet with the ephemeral key k for the subsession whose
// SHA256(sid ‖ groupKey) is sidKeyHash, sets p.SidkeyHint, p.Signature and
// p.Signed, and returns the encoded packet.
func (p *DataPacket) Sign(k *crypto.SigningKey, sidKeyHash *[32]byte) ([]byte, error) {
	signed, err := p.MarshalSigned()
	if err != nil {
		return nil, err
	}
	p.SidkeyHint = sidKeyHash[0]
	p.Signature = SignData(k, sidKeyHash, signed)
	p.Signed = signed
	return p.finish(signed)
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
	sig, err := c.requireSize(RecMessageSignature, crypto.SignatureSize)
	if err != nil {
		return nil, err
	}
	copy(p.Signature[:], sig)
	signedStart := c.off
	if err := c.header(MsgData); err != nil {
		return nil, err
	}
	iv, err := c.requireSize(RecMessageIV, crypto.IVSize)
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
