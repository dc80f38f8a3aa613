package conformance

import (
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/internal/wire"
)

// CheckMisc checks derived_misc.json through internal/wire and message:
// packet ids, chain hashes and the leave id, the padding table, the code
// tables, the body encodings and the SIDKEY_HINT rule.
func CheckMisc(m *Misc, r *Report) {
	r.check(len(m.ServerOrder) > 0, "no packet-id cases")
	for _, c := range m.ServerOrder {
		id := wire.PacketID(c.Packet, c.Sender, c.ChannelMembers)
		r.check(hex.EncodeToString(id[:]) == c.PacketID, "packetId(%q, %q, %v) = %x, want %s", c.Packet, c.Sender, c.ChannelMembers, id, c.PacketID)
	}
	r.check(len(m.ChainHash) > 0, "no chain-hash cases")
	for i, c := range m.ChainHash {
		switch {
		case strings.Contains(c.Fn, "syncNew"):
			pid, err := unhex32(c.PID)
			got := wire.SyncChainHash(pid)
			r.check(err == nil && hex.EncodeToString(got[:]) == c.Result, "chain case %d (sync): %x, want %s", i, got, c.Result)
		case strings.Contains(c.Fn, "acceptLeavePacket"):
			pi, err := unhex32(c.PrevPi)
			got := wire.LeavePacketID(pi, c.Leavers, c.ChannelMembers)
			r.check(err == nil && hex.EncodeToString(got[:]) == c.PacketID, "chain case %d (leave id): %x, want %s", i, got, c.PacketID)
		default:
			ptype := map[string]string{"2": wire.PTypeInitial, "1": wire.PTypeFinal, "3": wire.PTypeBoth}[c.PType]
			prev, err1 := unhex(c.PrevCh)
			pid, err2 := unhex32(c.PID)
			if !r.check(ptype != "" && err1 == nil && err2 == nil, "chain case %d: bad input", i) {
				continue
			}
			got := wire.ChainHash(prev, pid, ptype)
			r.check(hex.EncodeToString(got[:]) == c.Result, "chain case %d (ptype %s): %x, want %s", i, c.PType, got, c.Result)
		}
	}
	r.check(len(m.Padding) > 0, "no padding cases")
	for _, c := range m.Padding {
		r.equal("padding base", c.Base, wire.PaddingBase)
		r.check(wire.PaddedSize(c.Inner) == c.Ciphertext, "PaddedSize(%d) = %d, want %d", c.Inner, wire.PaddedSize(c.Inner), c.Ciphertext)
		if c.Inner >= 4 { // one MESSAGE_BODY record of Inner-4 bytes
			b, err := (&wire.Plaintext{Body: make([]byte, c.Inner-4)}).Marshal()
			r.check(err == nil && len(b) == c.Ciphertext, "plaintext of inner %d padded to %d, want %d", c.Inner, len(b), c.Ciphertext)
		}
	}
	r.check(len(m.GreetTypes) > 0, "no greeting types")
	for name, g := range m.GreetTypes {
		v, err := strconv.ParseUint(strings.TrimPrefix(g.Value, "0x"), 16, 16)
		gt := wire.GreetType(v)
		r.check(err == nil && gt.String() == name && gt.Known(), "greeting type %s: named %q", g.Value, gt.String())
		r.check(gt.Init() == g.Init && gt.SKE() == g.SKE && gt.GKA() == g.GKA && gt.Down() == g.Down && gt.Aux() == g.Aux && gt.Op().String() == g.Op,
			"greeting type %s: flags differ", name)
	}
	r.check(len(m.TLVTypes) > 0, "no record types")
	for name, code := range m.TLVTypes {
		v, err := strconv.ParseUint(strings.TrimPrefix(code, "0x"), 16, 16)
		r.check(err == nil && wire.RecordType(v).String() == name, "record %s: named %q, want %q", code, wire.RecordType(v).String(), name)
	}
	for name, v := range m.MessageTypes {
		r.equal("message type "+strconv.Itoa(v), wire.MessageType(v).String(), name)
	}
	// Body encodings: each decodes, and re-encodes to the same bytes.
	r.check(len(m.BodyCodec) > 0, "no body encodings")
	for _, c := range m.BodyCodec {
		b, err := unhex(c.EncodedHex)
		if !r.check(err == nil, "body %s: bad hex", c.EncodedHex) {
			continue
		}
		body, err := message.DecodeBody(b)
		if !r.check(err == nil, "body %s: %v", c.EncodedHex, err) {
			continue
		}
		enc, err := message.EncodeBody(body)
		r.check(err == nil && hex.EncodeToString(enc) == c.EncodedHex, "body %s re-encodes as %x (%v)", c.EncodedHex, enc, err)
	}
	r.check(strings.Contains(m.SidkeyHint, "SHA256(sessionId || groupKey)[0]"), "SIDKEY_HINT rule changed: %q", m.SidkeyHint)
	h := wire.SidKeyHash([]byte("sid"), []byte("gk"))
	r.check(h[0] == wire.SidKeyHash([]byte("sidgk"), nil)[0], "SIDKEY_HINT must hash the concatenation")
}
