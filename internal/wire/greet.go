package wire

import (
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

// GreetPacket is a greeting packet (MESSAGE_TYPE 0x02). Its records, in the
// only order accepted:
//
//	MESSAGE_SIGNATURE, PROTOCOL_VERSION, MESSAGE_TYPE, GREET_TYPE, SOURCE,
//	DEST, MEMBER*, INT_KEY*, NONCE*, PUB_KEY*,
//	[PREV_PF, CHAIN_HASH, LATEST_PM*], SESSION_SIGNATURE?, SIGNING_KEY?,
//	ABORT_PI?
//
// ABORT_PI (our addition) appears on ABORT_DOWN packets and nowhere else.
// The signature covers "greetmsgsig" ‖ the bytes from PROTOCOL_VERSION to the
// end ([SignGreet]).
type GreetPacket struct {
	Signature crypto.Signature
	Type      GreetType
	Source    string
	Dest      string // empty: broadcast
	Members   []string
	// IntKeys are CLIQUES intermediate keys. The zero value stands for the
	// base point, which the reference sends as an empty INT_KEY; a 32-byte
	// all-zero INT_KEY (a low-order point) is rejected by the decoder.
	IntKeys []IntKey
	Nonces  [][32]byte
	PubKeys []crypto.PublicKey
	// Metadata is present on the initial packet of an operation only.
	Metadata *Metadata
	// SessionSignature is the ASKE confirmation, on downflow packets.
	SessionSignature *crypto.Signature
	// SigningKey is a published ephemeral signing seed (unused upstream).
	SigningKey *[32]byte
	// AbortPI is the packet id of the initial packet an ABORT_DOWN ends
	// (our addition; absent from every reference packet).
	AbortPI *[32]byte

	// Signed holds, for a decoded packet, the exact bytes the
	// MESSAGE_SIGNATURE covers (without the "greetmsgsig" context). Marshal
	// ignores it.
	Signed []byte
}

// Metadata is the proposal metadata of an operation's initial packet, read by
// the ServerOrder concurrency resolver.
type Metadata struct {
	PrevPF    [32]byte
	ChainHash [32]byte
	LatestPM  []MessageID
}

// MessageType returns MsgGreet.
func (*GreetPacket) MessageType() MessageType { return MsgGreet }

// MarshalSigned encodes the records the MESSAGE_SIGNATURE covers.
func (p *GreetPacket) MarshalSigned() ([]byte, error) {
	var w builder
	w.header(MsgGreet)
	w.add(RecGreetType, []byte{byte(p.Type >> 8), byte(p.Type)})
	w.add(RecSource, []byte(p.Source))
	w.add(RecDest, []byte(p.Dest))
	for _, m := range p.Members {
		w.add(RecMember, []byte(m))
	}
	for _, k := range p.IntKeys {
		if k.IsBase() {
			w.add(RecIntKey, nil)
		} else {
			w.add(RecIntKey, k[:])
		}
	}
	for _, n := range p.Nonces {
		w.add(RecNonce, n[:])
	}
	for _, k := range p.PubKeys {
		w.add(RecPubKey, k[:])
	}
	if m := p.Metadata; m != nil {
		w.add(RecPrevPF, m.PrevPF[:])
		w.add(RecChainHash, m.ChainHash[:])
		for _, id := range m.LatestPM {
			w.add(RecLatestPM, id[:])
		}
	}
	if p.SessionSignature != nil {
		w.add(RecSessionSignature, p.SessionSignature[:])
	}
	if p.SigningKey != nil {
		w.add(RecSigningKey, p.SigningKey[:])
	}
	if p.AbortPI != nil {
		w.add(RecAbortPI, p.AbortPI[:])
	}
	return w.bytes()
}

// Marshal encodes the whole packet with p.Signature.
func (p *GreetPacket) Marshal() ([]byte, error) {
	signed, err := p.MarshalSigned()
	if err != nil {
		return nil, err
	}
	return finishSigned(p.Signature, signed)
}

// Sign signs the packet with the ephemeral key k, sets p.Signature and
// p.Signed, and returns the whole encoded packet.
func (p *GreetPacket) Sign(k *crypto.SigningKey) ([]byte, error) {
	signed, err := p.MarshalSigned()
	if err != nil {
		return nil, err
	}
	p.Signature = SignGreet(k, signed)
	p.Signed = signed
	return finishSigned(p.Signature, signed)
}

// Verify reports whether p.Signed carries a valid greeting signature by pub.
// It is false for a packet that was not decoded or signed here.
func (p *GreetPacket) Verify(pub crypto.PublicKey) bool {
	return p.Signed != nil && VerifyGreet(pub, p.Signed, &p.Signature)
}

func finishSigned(sig crypto.Signature, signed []byte) ([]byte, error) {
	out := make([]byte, 0, sigRecordSize+len(signed))
	out, _ = AppendRecord(out, RecMessageSignature, sig[:])
	out = append(out, signed...)
	if len(out) > MaxPacketSize {
		return nil, errAt(ErrTooLarge, 0, 0, "packet of %d bytes, cap %d", len(out), MaxPacketSize)
	}
	return out, nil
}

// DecodeGreet decodes a greeting packet.
func DecodeGreet(b []byte) (*GreetPacket, error) {
	p, err := Decode(b)
	if err != nil {
		return nil, err
	}
	g, ok := p.(*GreetPacket)
	if !ok {
		return nil, errAt(ErrLayout, RecMessageType, 0, "%v, want %v", p.MessageType(), MsgGreet)
	}
	return g, nil
}

func decodeGreet(c *cursor) (*GreetPacket, error) {
	p := &GreetPacket{}
	sig, err := c.requireSize(RecMessageSignature, primitive.SignatureSize)
	if err != nil {
		return nil, err
	}
	copy(p.Signature[:], sig)
	signedStart := c.off
	if err := c.header(MsgGreet); err != nil {
		return nil, err
	}
	gt, err := c.requireSize(RecGreetType, 2)
	if err != nil {
		return nil, err
	}
	p.Type = GreetType(uint16(gt[0])<<8 | uint16(gt[1]))
	if !p.Type.Known() {
		return nil, errAt(ErrValue, RecGreetType, c.prev, "unknown greeting type %v", p.Type)
	}
	v, err := c.require(RecSource)
	if err != nil {
		return nil, err
	}
	if p.Source, err = c.id(RecSource, v, false); err != nil {
		return nil, err
	}
	if v, err = c.require(RecDest); err != nil {
		return nil, err
	}
	if p.Dest, err = c.id(RecDest, v, true); err != nil {
		return nil, err
	}
	p.Members = make([]string, 0, c.countRepeated(RecMember, MaxMembers))
	err = c.repeated(RecMember, MaxMembers, func(_ int, v []byte) error {
		m, err := c.id(RecMember, v, false)
		p.Members = append(p.Members, m)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.IntKeys = make([]IntKey, 0, c.countRepeated(RecIntKey, MaxRepeated))
	err = c.repeated(RecIntKey, MaxRepeated, func(_ int, v []byte) error {
		if len(v) == 0 {
			p.IntKeys = append(p.IntKeys, BaseIntKey)
			return nil
		}
		k, err := c.fixed32(RecIntKey, v)
		if err == nil && IntKey(k).IsBase() {
			err = errAt(ErrValue, RecIntKey, c.prev, "all-zero key")
		}
		p.IntKeys = append(p.IntKeys, k)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.Nonces = make([][32]byte, 0, c.countRepeated(RecNonce, MaxRepeated))
	err = c.repeated(RecNonce, MaxRepeated, func(_ int, v []byte) error {
		n, err := c.fixed32(RecNonce, v)
		p.Nonces = append(p.Nonces, n)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.PubKeys = make([]crypto.PublicKey, 0, c.countRepeated(RecPubKey, MaxRepeated))
	err = c.repeated(RecPubKey, MaxRepeated, func(_ int, v []byte) error {
		k, err := c.fixed32(RecPubKey, v)
		if err == nil && primitive.CheckEd25519PublicKey(k) != nil {
			// A small-order key lets anyone sign in that member's name.
			err = errAt(ErrValue, RecPubKey, c.prev, "not a valid Ed25519 public key")
		}
		p.PubKeys = append(p.PubKeys, k)
		return err
	})
	if err != nil {
		return nil, err
	}
	if v, ok, err := c.optional(RecPrevPF); err != nil {
		return nil, err
	} else if ok {
		m := &Metadata{}
		if m.PrevPF, err = c.fixed32(RecPrevPF, v); err != nil {
			return nil, err
		}
		ch, err := c.requireSize(RecChainHash, 32)
		if err != nil {
			return nil, err
		}
		copy(m.ChainHash[:], ch)
		m.LatestPM = make([]MessageID, 0, c.countRepeated(RecLatestPM, MaxRepeated))
		err = c.repeated(RecLatestPM, MaxRepeated, func(_ int, v []byte) error {
			if len(v) != MessageIDSize {
				return errAt(ErrLength, RecLatestPM, c.prev, "%d bytes, want %d", len(v), MessageIDSize)
			}
			m.LatestPM = append(m.LatestPM, MessageID(v))
			return nil
		})
		if err != nil {
			return nil, err
		}
		p.Metadata = m
	}
	if v, ok, err := c.optionalSize(RecSessionSignature, primitive.SignatureSize); err != nil {
		return nil, err
	} else if ok {
		p.SessionSignature = (*crypto.Signature)(v)
	}
	if v, ok, err := c.optionalSize(RecSigningKey, 32); err != nil {
		return nil, err
	} else if ok {
		p.SigningKey = (*[32]byte)(v)
	}
	if v, ok, err := c.optionalSize(RecAbortPI, 32); err != nil {
		return nil, err
	} else if ok {
		p.AbortPI = (*[32]byte)(v)
	}
	if (p.AbortPI != nil) != (p.Type == GreetAbortDown) {
		return nil, errAt(ErrLayout, RecAbortPI, c.off, "ABORT_PI goes with ABORT_DOWN, and only there")
	}
	if err := c.done(); err != nil {
		return nil, err
	}
	p.Signed = c.buf[signedStart:]
	return p, nil
}

// IntKey is a CLIQUES intermediate key as carried by INT_KEY: an X25519
// u-coordinate, with the zero value standing for the base point (which the
// reference encodes as an empty record).
type IntKey [32]byte

// BaseIntKey is the intermediate key of a member with no contribution yet.
var BaseIntKey IntKey

// IsBase reports whether k stands for the base point.
func (k IntKey) IsBase() bool { return k == BaseIntKey }
