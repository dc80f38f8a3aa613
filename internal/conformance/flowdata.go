package conformance

import (
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/transcript"
)

// securityFor builds the MessageSecurity of a member's subsession from its
// greeter state: members sorted bytewise with their ephemeral keys.
func securityFor(s *greeting.State, self string, rand *drawReader) (*message.Security, error) {
	members := slices.Sorted(slices.Values(s.Members))
	pubs := make([]crypto.PublicKey, len(members))
	for i, m := range members {
		pubs[i] = s.EphemeralKeys[s.Position(m)]
	}
	cfg := message.Config{Members: members, PublicKeys: pubs, Self: -1, SID: s.SID[:], GroupKey: s.GroupKey[:]}
	if rand != nil {
		cfg.Rand = rand
	}
	if self != "" {
		cfg.Self = slices.Index(members, self)
		cfg.SigningKey = s.OwnEphemeralKey()
	}
	return message.New(cfg)
}

// checkFlowData checks a data message of a flow's final subsession through
// package message: the author, with its recorded IV injected, seals the
// recorded body into exactly the recorded wire string and message id;
// every reader verifies and decrypts it back.
func checkFlowData(i int, dm *FlowDataMessage, f *Flow, states map[string]*greeting.State, r *Report) {
	where := fmt.Sprintf("data message %d by %s", i, dm.Author)
	as := states[dm.Author]
	if !r.check(as != nil, "%s: the author has no subsession", where) {
		return
	}
	// Optional fields: checked when the record has them.
	if dm.SessionID != "" {
		r.equal(where+" sid", hex.EncodeToString(as.SID[:]), dm.SessionID)
	}
	if dm.GroupKey != "" {
		r.equal(where+" group key", hex.EncodeToString(as.GroupKey[:]), dm.GroupKey)
	}
	p, err := wire.DecodeWire(dm.Wire)
	if !r.check(err == nil, "%s: decode: %v", where, err) {
		return
	}
	dp, ok := p.(*wire.DataPacket)
	if !r.check(ok, "%s: not a data packet", where) {
		return
	}
	body, err := unhex(dm.Body)
	if !r.check(err == nil, "%s: bad body hex", where) {
		return
	}
	var parents []transcript.ID
	for _, p := range dm.Parents {
		b, err := unhex(p)
		if !r.check(err == nil && len(b) == 20, "%s: bad parent %q", where, p) {
			return
		}
		parents = append(parents, transcript.ID(b))
	}
	// The IV: the recorded draw, or else the packet's own.
	draws := dm.RNGDraws
	if len(draws) == 0 {
		draws = []Draw{{Label: "IV from the packet", N: len(dp.IV), Hex: hex.EncodeToString(dp.IV[:])}}
	}
	rnd := &drawReader{draws: draws}
	sec, err := securityFor(as, dm.Author, rnd)
	if !r.check(err == nil, "%s: %v", where, err) {
		return
	}
	sealed, err := sec.Seal(parents, body)
	if r.check(err == nil, "%s: seal: %v (draws: %v)", where, err, rnd.err) {
		r.equal(where+" wire", sealed.Wire, dm.Wire)
		r.equal(where+" message id", hex.EncodeToString(sealed.ID[:]), dm.MessageID)
	}
	if dm.Padding != 0 {
		r.equal(where+" padding base", dm.Padding, wire.PaddingBase)
	}
	want, _ := unhex(dm.Plaintext)
	for _, reader := range dm.Readers {
		rs := states[reader]
		if !r.check(rs != nil, "%s: reader %s has no subsession", where, reader) {
			continue
		}
		rsec, err := securityFor(rs, "", nil)
		if !r.check(err == nil, "%s: reader %s: %v", where, reader, err) {
			continue
		}
		o, err := rsec.Open(dp, dm.Author)
		if !r.check(err == nil, "%s: %s cannot open it: %v", where, reader, err) {
			continue
		}
		r.equal(fmt.Sprintf("%s at %s: author", where, reader), rsec.Members()[o.Author], dm.Author)
		r.equal(fmt.Sprintf("%s at %s: message id", where, reader), hex.EncodeToString(o.ID[:]), dm.MessageID)
		r.equal(fmt.Sprintf("%s at %s: body", where, reader), hex.EncodeToString(o.Body), dm.Body)
		inner := 24*len(o.Parents) + 4 + len(o.Body) // MESSAGE_PARENT records and the MESSAGE_BODY record
		r.equal(fmt.Sprintf("%s at %s: padded size", where, reader), o.Size, wire.PaddedSize(inner))
		r.equal(fmt.Sprintf("%s at %s: parents", where, reader), len(o.Parents), len(dm.Parents))
		if len(want) > 0 {
			pt := wire.Plaintext{Parents: make([]wire.MessageID, len(o.Parents)), Body: o.Body, Size: o.Size}
			for k, q := range o.Parents {
				pt.Parents[k] = wire.MessageID(q)
			}
			b, err := pt.Marshal()
			r.check(err == nil && hex.EncodeToString(b) == dm.Plaintext, "%s at %s: plaintext differs from the record", where, reader)
		}
	}
}
