package wire

import (
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

// ErrorPacket is an error packet (MESSAGE_TYPE 0x04). Its records, in order:
//
//	[MESSAGE_SIGNATURE], PROTOCOL_VERSION, MESSAGE_TYPE, SOURCE, SEVERITY,
//	MESSAGE_PAYLOAD
//
// The optional signature covers "errormsgsig" ‖ the bytes from
// PROTOCOL_VERSION to the end ([SignError]).
type ErrorPacket struct {
	Signature *crypto.Signature
	Source    string
	Severity  Severity
	Message   []byte // human-readable text; display it escaped

	// Signed holds, for a decoded or signed packet, the exact bytes the
	// signature covers (or would cover). Marshal ignores it.
	Signed []byte
}

// MessageType returns MsgError.
func (*ErrorPacket) MessageType() MessageType { return MsgError }

// MarshalSigned encodes the records the signature covers.
func (p *ErrorPacket) MarshalSigned() ([]byte, error) {
	var w builder
	w.header(MsgError)
	w.add(RecSource, []byte(p.Source))
	w.add(RecSeverity, []byte{byte(p.Severity)})
	w.add(RecMessagePayload, p.Message)
	return w.bytes()
}

// Marshal encodes the whole packet, signed if p.Signature is set.
func (p *ErrorPacket) Marshal() ([]byte, error) {
	signed, err := p.MarshalSigned()
	if err != nil {
		return nil, err
	}
	if p.Signature == nil {
		return signed, nil
	}
	return finishSigned(*p.Signature, signed)
}

// Sign signs the packet with k and returns the encoded packet.
func (p *ErrorPacket) Sign(k *crypto.SigningKey) ([]byte, error) {
	signed, err := p.MarshalSigned()
	if err != nil {
		return nil, err
	}
	sig := SignError(k, signed)
	p.Signature = &sig
	p.Signed = signed
	return finishSigned(sig, signed)
}

// Verify reports whether the packet carries a valid error signature by pub.
func (p *ErrorPacket) Verify(pub crypto.PublicKey) bool {
	return p.Signature != nil && p.Signed != nil && VerifyError(pub, p.Signed, p.Signature)
}

func decodeError(c *cursor) (*ErrorPacket, error) {
	p := &ErrorPacket{}
	if v, ok, err := c.optionalSize(RecMessageSignature, primitive.SignatureSize); err != nil {
		return nil, err
	} else if ok {
		p.Signature = new(crypto.Signature)
		copy(p.Signature[:], v)
	}
	signedStart := c.off
	if err := c.header(MsgError); err != nil {
		return nil, err
	}
	v, err := c.require(RecSource)
	if err != nil {
		return nil, err
	}
	if p.Source, err = c.id(RecSource, v, false); err != nil {
		return nil, err
	}
	sev, err := c.requireSize(RecSeverity, 1)
	if err != nil {
		return nil, err
	}
	p.Severity = Severity(sev[0])
	if p.Severity > SeverityTerminal {
		return nil, errAt(ErrValue, RecSeverity, c.prev, "unknown severity %d", sev[0])
	}
	if p.Message, err = c.require(RecMessagePayload); err != nil {
		return nil, err
	}
	if err := c.done(); err != nil {
		return nil, err
	}
	p.Signed = c.buf[signedStart:]
	return p, nil
}
