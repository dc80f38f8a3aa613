package wire_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/testvectors"
	"github.com/mpenc/mpenc/internal/wire"
)

func allPackets(t *testing.T) map[string][]byte {
	u := testvectors.LoadUpstream(t)
	out := map[string][]byte{}
	for name := range u.Packets {
		out[name] = testvectors.Packet(t, u, name)
	}
	q, _ := (&wire.QueryPacket{}).Marshal()
	out["QUERY"] = q
	return out
}

// Every strict prefix of every packet is rejected: by the decoder when the
// cut falls inside a record, and by the signature when it falls between two
// records (a greeting with fewer members is well-formed, but not signed).
func TestTruncationRejected(t *testing.T) {
	u := testvectors.LoadUpstream(t)
	k := loadKeys(t, u)
	for name, raw := range allPackets(t) {
		recs, _ := wire.DecodeRecords(raw)
		boundary := map[int]bool{}
		for _, r := range recs {
			boundary[r.Offset] = true
		}
		for n := 0; n < len(raw); n++ {
			p, err := wire.Decode(raw[:n])
			if err == nil && !boundary[n] {
				t.Errorf("%s: prefix of %d/%d bytes, cut inside a record, accepted", name, n, len(raw))
			}
			if err != nil {
				continue
			}
			verified := false
			switch p := p.(type) {
			case *wire.GreetPacket:
				verified = p.Verify(k.pub)
			case *wire.DataPacket:
				verified = p.Verify(k.pub, &k.sidKeyHash)
			case *wire.ErrorPacket:
				verified = p.Verify(k.pub)
			}
			if verified {
				t.Errorf("%s: prefix of %d/%d bytes verifies", name, n, len(raw))
			}
		}
	}
}

// Appending anything to a packet is rejected: a record, or stray bytes.
func TestTrailingRejected(t *testing.T) {
	for name, raw := range allPackets(t) {
		for _, tail := range [][]byte{{0}, {0, 0x14, 0, 0}, {0x01, 0x07, 0, 32}} {
			b := append(bytes.Clone(raw), tail...)
			if _, err := wire.Decode(b); err == nil {
				t.Errorf("%s + %x accepted", name, tail)
			}
		}
	}
}

func mutateRecord(t *testing.T, raw []byte, typ wire.RecordType, f func(v []byte) []byte) []byte {
	recs, err := wire.DecodeRecords(raw)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for i := range recs {
		if recs[i].Type == typ && !found {
			recs[i].Value = f(bytes.Clone(recs[i].Value))
			found = true
		}
	}
	if !found {
		t.Fatalf("no %v record", typ)
	}
	b, err := wire.EncodeRecords(recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFixedLengthsEnforced(t *testing.T) {
	pk := allPackets(t)
	cases := []struct {
		packet string
		rec    wire.RecordType
	}{
		{"UPFLOW_MESSAGE_STRING", wire.RecMessageSignature},
		{"UPFLOW_MESSAGE_STRING", wire.RecProtocolVersion},
		{"UPFLOW_MESSAGE_STRING", wire.RecGreetType},
		{"UPFLOW_MESSAGE_STRING", wire.RecNonce},
		{"UPFLOW_MESSAGE_STRING", wire.RecPubKey},
		{"DOWNFLOW_MESSAGE_STRING", wire.RecSigningKey},
		{"DATA_MESSAGE_STRING", wire.RecSidkeyHint},
		{"DATA_MESSAGE_STRING", wire.RecMessageIV},
		{"DATA_MESSAGE_STRING", wire.RecMessageType},
		{"ERROR_MESSAGE_STRING", wire.RecSeverity},
	}
	for _, c := range cases {
		for _, f := range []func([]byte) []byte{
			func(v []byte) []byte { return v[:len(v)-1] },
			func(v []byte) []byte { return append(v, 0) },
		} {
			b := mutateRecord(t, pk[c.packet], c.rec, f)
			if _, err := wire.Decode(b); !errors.Is(err, wire.ErrLength) && !errors.Is(err, wire.ErrLayout) {
				t.Errorf("%s with a resized %v: error %v, want ErrLength", c.packet, c.rec, err)
			}
		}
	}
	// INT_KEY: 0 or 32 bytes; 32 zero bytes is a low-order point.
	up := pk["UPFLOW_MESSAGE_STRING"]
	for _, v := range [][]byte{make([]byte, 31), make([]byte, 33), make([]byte, 32)} {
		b := mutateRecord(t, up, wire.RecIntKey, func([]byte) []byte { return v })
		if _, err := wire.Decode(b); err == nil {
			t.Errorf("INT_KEY of %d bytes (%x...) accepted", len(v), v[:1])
		}
	}
	// PUB_KEY (an ephemeral signing key): a point of small order, under
	// which anyone can sign, or a non-canonical encoding, is refused.
	identity := append([]byte{1}, make([]byte, 31)...)
	unreduced := append(bytes.Repeat([]byte{0xff}, 31), 0x7f) // y ≥ p
	for _, v := range [][]byte{identity, make([]byte, 32), unreduced} {
		b := mutateRecord(t, up, wire.RecPubKey, func([]byte) []byte { return v })
		if _, err := wire.Decode(b); !errors.Is(err, wire.ErrValue) {
			t.Errorf("PUB_KEY %x: error %v, want ErrValue", v[:4], err)
		}
	}
}

func TestValuesChecked(t *testing.T) {
	pk := allPackets(t)
	up := pk["UPFLOW_MESSAGE_STRING"]
	for _, tc := range []struct {
		name string
		rec  wire.RecordType
		v    []byte
		want error
	}{
		{"version 2", wire.RecProtocolVersion, []byte{2}, wire.ErrVersion},
		{"unknown greet type", wire.RecGreetType, []byte{0, 0x9d}, wire.ErrValue},
		{"empty source", wire.RecSource, nil, wire.ErrValue},
		{"empty member", wire.RecMember, nil, wire.ErrValue},
		{"huge source", wire.RecSource, make([]byte, wire.MaxIDSize+1), wire.ErrTooLarge},
		{"data type in a greeting", wire.RecMessageType, []byte{3}, wire.ErrLayout},
		{"unknown message type", wire.RecMessageType, []byte{9}, wire.ErrValue},
	} {
		b := mutateRecord(t, up, tc.rec, func([]byte) []byte { return tc.v })
		if _, err := wire.Decode(b); !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
	}
	errp := mutateRecord(t, pk["ERROR_MESSAGE_STRING"], wire.RecSeverity, func([]byte) []byte { return []byte{3} })
	if _, err := wire.Decode(errp); !errors.Is(err, wire.ErrValue) {
		t.Errorf("severity 3: %v", err)
	}
}

func TestRecordOrderEnforced(t *testing.T) {
	raw := allPackets(t)["UPFLOW_MESSAGE_STRING"]
	recs, _ := wire.DecodeRecords(raw)
	// Swap every adjacent pair of records of different types.
	for i := 0; i+1 < len(recs); i++ {
		if recs[i].Type == recs[i+1].Type {
			continue
		}
		sw := append([]wire.Record(nil), recs...)
		sw[i], sw[i+1] = sw[i+1], sw[i]
		b, _ := wire.EncodeRecords(sw)
		if _, err := wire.Decode(b); err == nil {
			t.Errorf("records %d (%v) and %d (%v) swapped: accepted", i, recs[i].Type, i+1, recs[i+1].Type)
		}
	}
	// A duplicated single record.
	for i, r := range recs {
		if r.Type == wire.RecMember || r.Type == wire.RecIntKey || r.Type == wire.RecNonce || r.Type == wire.RecPubKey {
			continue
		}
		dup := append(append(append([]wire.Record(nil), recs[:i+1]...), r), recs[i+1:]...)
		b, _ := wire.EncodeRecords(dup)
		if _, err := wire.Decode(b); err == nil {
			t.Errorf("duplicated %v accepted", r.Type)
		}
	}
}

func TestCaps(t *testing.T) {
	// Oversized packets are refused before parsing.
	big := make([]byte, wire.MaxPacketSize+1)
	if _, err := wire.Decode(big); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("oversized packet: %v", err)
	}
	if _, err := wire.DecodeRecords(big); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("oversized record list: %v", err)
	}
	if _, err := wire.Dearmour(wire.Armour(big)); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("oversized armour: %v", err)
	}
	// Too many records.
	many := bytes.Repeat([]byte{0, 9, 0, 0}, wire.MaxRecords+1)
	if _, err := wire.DecodeRecords(many); !errors.Is(err, wire.ErrTooMany) {
		t.Errorf("too many records: %v", err)
	}
	// Too many members.
	g := &wire.GreetPacket{Type: wire.GreetInitInitiatorUp, Source: "a", Members: make([]string, wire.MaxMembers+1)}
	for i := range g.Members {
		g.Members[i] = "m"
	}
	k, _ := crypto.GenerateSigningKey(nil)
	b, err := g.Sign(k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wire.Decode(b); !errors.Is(err, wire.ErrTooMany) {
		t.Errorf("too many members: %v", err)
	}
	g.Members = g.Members[:wire.MaxMembers]
	b, _ = g.Sign(k)
	if _, err := wire.Decode(b); err != nil {
		t.Errorf("MaxMembers members refused: %v", err)
	}
	// A value longer than a TLV length can hold cannot be encoded.
	if _, err := wire.AppendRecord(nil, wire.RecMessagePayload, make([]byte, 1<<16)); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("oversized value: %v", err)
	}
	// Plaintext cap.
	if _, err := (&wire.Plaintext{Body: make([]byte, wire.MaxPlaintextInner-4)}).Marshal(); err != nil {
		t.Errorf("largest plaintext refused: %v", err)
	}
	if _, err := (&wire.Plaintext{Body: make([]byte, wire.MaxPlaintextInner-3)}).Marshal(); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("oversized plaintext: %v", err)
	}
	if _, err := (&wire.Plaintext{Parents: make([]wire.MessageID, 1400), Body: []byte("x")}).Marshal(); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("too many parents: %v", err)
	}
	if _, err := (&wire.Plaintext{Body: make([]byte, 1<<16)}).Marshal(); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("body over a TLV length: %v", err)
	}
	if _, err := (&wire.Plaintext{Body: make([]byte, 100), Size: 100}).Marshal(); !errors.Is(err, wire.ErrValue) {
		t.Errorf("padded size below the content: %v", err)
	}
	// An explicit size keeps every byte past the records zero.
	pt, err := (&wire.Plaintext{Body: []byte("foo"), Size: 512}).Marshal()
	if err != nil || len(pt) != 512 || pt[0] != 0 || pt[1] != 7 || string(pt[6:9]) != "foo" {
		t.Fatalf("explicit size: %v, %d bytes, % x", err, len(pt), pt[:10])
	}
	for i, c := range pt[9:] {
		if c != 0 {
			t.Fatalf("padding byte %d is %#x", 9+i, c)
		}
	}
	// A data packet whose payload cannot be encoded.
	if _, err := (&wire.DataPacket{Payload: make([]byte, 1<<16)}).Marshal(); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("oversized payload: %v", err)
	}
}

func TestArmourStrict(t *testing.T) {
	raw := allPackets(t)["DATA_MESSAGE_STRING"]
	good := wire.Armour(raw)
	if _, err := wire.Dearmour("hello"); !errors.Is(err, wire.ErrNotMpENC) {
		t.Errorf("plain text: %v", err)
	}
	if !wire.IsMpENC(good) || wire.IsMpENC("?mpENC") {
		t.Error("IsMpENC wrong")
	}
	body := base64.StdEncoding.EncodeToString(raw)
	bad := []string{
		"?mpENC:" + body,                               // no final dot
		"?mpENC:" + body + "..",                        // two dots
		"?mpENC:" + strings.TrimRight(body, "=") + ".", // no padding
		"?mpENC:" + body[:8] + "\n" + body[8:] + ".",   // line break
		"?mpENC:" + base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff}) + ".",
		"?mpENC:QR==.", // non-zero trailing bits ("QQ==" is canonical)
		"?mpENC: " + body + ".",
	}
	for _, s := range bad {
		if _, err := wire.Dearmour(s); !errors.Is(err, wire.ErrArmour) {
			t.Errorf("%q: error %v, want ErrArmour", s, err)
		}
	}
	if b, err := wire.Dearmour("?mpENC:."); err != nil || len(b) != 0 {
		t.Errorf("empty armour: %v", err)
	}
}

func TestPlaintextStrict(t *testing.T) {
	p := &wire.Plaintext{Parents: []wire.MessageID{{1}, {2}}, Body: []byte("hi")}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 128 {
		t.Fatalf("padded to %d", len(b))
	}
	back, err := wire.DecodePlaintext(b)
	if err != nil || len(back.Parents) != 2 || back.Parents[1] != (wire.MessageID{2}) || string(back.Body) != "hi" || back.Size != 128 {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	bad := map[string][]byte{
		"empty":            {},
		"one byte":         {0},
		"length too long":  append([]byte{0, 200}, b[2:]...),
		"non-zero padding": append(bytes.Clone(b[:127]), 1),
		"no body":          {0, 0},
	}
	for name, in := range bad {
		if _, err := wire.DecodePlaintext(in); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	// Body before a parent, two bodies, a short parent.
	for name, recs := range map[string][]wire.Record{
		"body first":   {{Type: wire.RecMessageBody}, {Type: wire.RecMessageParent, Value: make([]byte, 20)}},
		"two bodies":   {{Type: wire.RecMessageBody}, {Type: wire.RecMessageBody}},
		"short parent": {{Type: wire.RecMessageParent, Value: make([]byte, 19)}, {Type: wire.RecMessageBody}},
		"stray record": {{Type: wire.RecMessageBody}, {Type: wire.RecSource, Value: []byte("x")}},
	} {
		inner, _ := wire.EncodeRecords(recs)
		pt := append([]byte{0, byte(len(inner))}, inner...)
		if _, err := wire.DecodePlaintext(pt); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// A decoded packet must not alias the caller's buffer.
func TestDecodeCopiesInput(t *testing.T) {
	raw := bytes.Clone(allPackets(t)["UPFLOW_MESSAGE_STRING"])
	p, err := wire.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	g := p.(*wire.GreetPacket)
	before := bytes.Clone(g.Signed)
	for i := range raw {
		raw[i] = 0xAA
	}
	if !bytes.Equal(g.Signed, before) || g.Source != "1" {
		t.Error("decoded packet aliases its input")
	}
}

// TestSignInPlace: DataPacket.Sign builds the signature input in its own
// buffer; it must sign exactly what SignData signs and VerifyData checks,
// and the packet must decode back to itself.
func TestSignInPlace(t *testing.T) {
	k := crypto.NewSigningKey([32]byte{1, 2, 3})
	skh := [32]byte{9, 8, 7}
	p := &wire.DataPacket{IV: [12]byte{5}, Payload: bytes.Repeat([]byte{0xab}, 256)}
	raw, err := p.Sign(k, &skh)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := (&wire.DataPacket{IV: p.IV, Payload: p.Payload}).MarshalSigned()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signed, p.Signed) || wire.SignData(k, &skh, signed) != p.Signature {
		t.Fatal("in-place signature differs from SignData's")
	}
	d, err := wire.DecodeData(raw)
	if err != nil || !d.Verify(k.Public(), &skh) || d.SidkeyHint != skh[0] {
		t.Fatalf("signed packet: %v", err)
	}
	again, err := d.Marshal()
	if err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("re-encoding differs: %v", err)
	}
}
