package conformance

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/greeter"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/wire"
)

// CheckUpstream reproduces every value of the reference's known answers
// (upstream_kat.json) through crypto, internal/wire, greeter and message.
func CheckUpstream(u *Upstream, r *Report) {
	key := func(name string) []byte {
		b, err := u.Key(name)
		r.check(err == nil, "%v", err)
		return b
	}
	as32 := func(b []byte) [32]byte {
		var a [32]byte
		copy(a[:], b)
		return a
	}
	// Keys.
	xk, err := primitive.NewX25519Key(as32(key("C25519_PRIV_KEY")))
	if !r.check(err == nil, "X25519 key: %v", err) {
		return
	}
	xpub := xk.Public()
	r.equal("C25519_PUB_KEY", hex.EncodeToString(xpub[:]), hex.EncodeToString(key("C25519_PUB_KEY")))
	sign := crypto.NewSigningKey(as32(key("ED25519_PRIV_KEY")))
	pub := sign.Public()
	r.equal("ED25519_PUB_KEY", hex.EncodeToString(pub[:]), hex.EncodeToString(key("ED25519_PUB_KEY")))
	sid, gk := key("SESSION_ID"), key("GROUP_KEY")
	skh := wire.SidKeyHash(sid, gk)

	// CLIQUES key-list chains: r = intKey (or the base point), then
	// r = X25519(k, r) for each of n copies of the key.
	for _, tc := range []struct {
		name  string
		start *[32]byte
		want  map[string]string
	}{{"no_intKey", nil, u.Cliques.NoIntKey}, {"intKey=C25519_PUB_KEY", &xpub, u.Cliques.WithIntKey}} {
		r.check(len(tc.want) > 0, "cliques %s: no cases", tc.name)
		for name, want := range tc.want {
			n, err := strconv.Atoi(name[len("n="):])
			if !r.check(err == nil && n > 0, "cliques %s: bad case %q", tc.name, name) {
				continue
			}
			v, i := xk.Public(), 1
			if tc.start != nil {
				v, i = *tc.start, 0
			}
			for ; i < n && err == nil; i++ {
				v, err = xk.DH(v)
			}
			r.check(err == nil && hex.EncodeToString(v[:]) == want, "cliques %s %s: %x, want %s", tc.name, name, v, want)
		}
	}
	// HKDF.
	r.check(len(u.HKDF.Cases) > 0, "no HKDF cases")
	for _, c := range u.HKDF.Cases {
		ikm, _ := unhex(c.IKM)
		okm, err := primitive.HKDF(ikm, nil, c.Info, 32)
		r.check(err == nil && hex.EncodeToString(okm) == c.OKM, "HKDF(info %q) = %x, want %s", c.Info, okm, c.OKM)
	}
	// ASKE session id and session signature.
	var nonces [][]byte
	for _, n := range u.SID.Nonces {
		nonces = append(nonces, []byte(n))
	}
	gotSID := greeter.SessionID(u.SID.Members, nonces)
	r.equal("sid", hex.EncodeToString(gotSID[:]), u.SID.SID)
	r.equal("SESSION_ID", hex.EncodeToString(gotSID[:]), hex.EncodeToString(sid))
	ss := greeter.SignSession(sign, "1", pub, pub[:], as32(sid))
	r.equal("session signature", hex.EncodeToString(ss[:]), u.SessionSig.Signature)
	r.equal("SIGNATURE", hex.EncodeToString(ss[:]), hex.EncodeToString(key("SIGNATURE")))
	r.check(greeter.VerifySession(pub, "1", pub, pub[:], as32(sid), &ss), "session signature does not verify")
	r.check(!greeter.VerifySession(pub, "2", pub, pub[:], as32(sid), &ss), "session signature verifies for another member")

	// Greet and data signatures, and the reference's negative case: each
	// message with the next one's signature.
	cases := u.Sign.Cases
	r.check(len(cases) > 0, "no signature cases")
	for i, c := range cases {
		data := []byte(c.Data)
		g := wire.SignGreet(sign, data)
		d := wire.SignData(sign, &skh, data)
		r.equal(fmt.Sprintf("greet signature %d", i), hex.EncodeToString(g[:]), c.GreetSig)
		r.equal(fmt.Sprintf("data signature %d", i), hex.EncodeToString(d[:]), c.DataSig)
		next := cases[(i+1)%len(cases)]
		ng, err1 := unhex(next.GreetSig)
		nd, err2 := unhex(next.DataSig)
		if !r.check(err1 == nil && err2 == nil && len(ng) == primitive.SignatureSize && len(nd) == primitive.SignatureSize,
			"signature case %d: the next case's signatures are not %d-byte hex", i, primitive.SignatureSize) {
			continue
		}
		r.check(!wire.VerifyGreet(pub, data, (*crypto.Signature)(ng)) && !wire.VerifyData(pub, &skh, data, (*crypto.Signature)(nd)),
			"signature case %d: a shifted signature verifies", i)
		r.check(!wire.VerifyData(pub, &skh, data, &g) && !wire.VerifyGreet(pub, data, &d),
			"signature case %d: a signature verifies under the other context", i)
	}
	checkUpstreamPackets(u, sign, pub, sid, gk, xpub, r)
	checkUpstreamTLV(u, r)
}

// checkUpstreamPackets decodes, verifies and re-encodes the reference's six
// packets, rebuilds and re-signs them from their fields, and opens the data
// packets through message to the body "foo".
func checkUpstreamPackets(u *Upstream, sign *crypto.SigningKey, pub crypto.PublicKey, sid, gk []byte, xpub [32]byte, r *Report) {
	skh := wire.SidKeyHash(sid, gk)
	r.check(len(u.Packets) > 0, "no packets")
	for name := range u.Packets {
		raw, err := u.Packet(name)
		if !r.check(err == nil, "%s: %v", name, err) {
			continue
		}
		s := wire.Armour(raw)
		back, err := wire.Dearmour(s)
		r.check(err == nil && bytes.Equal(back, raw), "%s: armour round trip", name)
		p, err := wire.DecodeWire(s)
		if !r.check(err == nil, "%s: decode: %v", name, err) {
			continue
		}
		enc, err := p.Marshal()
		r.check(err == nil && bytes.Equal(enc, raw), "%s: does not re-encode byte for byte", name)
		switch p := p.(type) {
		case *wire.GreetPacket:
			r.check(p.Verify(pub), "%s: signature does not verify", name)
			rebuilt := *p
			rebuilt.Signed = nil
			b, err := rebuilt.Sign(sign)
			r.check(err == nil && bytes.Equal(b, raw), "%s: rebuilt and re-signed packet differs", name)
			if p.Type == wire.GreetInitInitiatorUp {
				r.check(len(p.IntKeys) == 2 && p.IntKeys[0].IsBase() && p.IntKeys[1] == wire.IntKey(xpub),
					"%s: intermediate keys %x", name, p.IntKeys)
			}
		case *wire.ErrorPacket:
			r.check(p.Verify(pub), "%s: signature does not verify", name)
			r.check(len(raw) > 68 && bytes.Equal(p.Signed, raw[68:]), "%s: the unsigned form is not bytes [68:]", name)
			unsigned := &wire.ErrorPacket{Source: p.Source, Severity: p.Severity, Message: p.Message}
			b, _ := unsigned.Marshal()
			r.check(bytes.Equal(b, raw[68:]), "%s: unsigned encoding differs", name)
			b, err := unsigned.Sign(sign)
			r.check(err == nil && bytes.Equal(b, raw), "%s: re-signed packet differs", name)
		case *wire.DataPacket:
			r.equal(name+" hint", fmt.Sprintf("%02x", p.SidkeyHint), fmt.Sprintf("%02x", skh[0]))
			sec, err := message.New(message.Config{Members: []string{"Moe"}, PublicKeys: []crypto.PublicKey{pub}, Self: -1, SID: sid, GroupKey: gk})
			if !r.check(err == nil, "%s: %v", name, err) {
				continue
			}
			o, err := sec.Open(p, "Moe")
			if r.check(err == nil, "%s: cannot open: %v", name, err) {
				r.equal(name+" body", string(o.Body), "foo")
				if name == "DATA_MESSAGE_STRING" {
					r.equal(name+" message id", hex.EncodeToString(o.ID[:]), "001e2d20778a66d8199f5c3e190fa220956d8b6c")
				}
			}
			rebuilt := &wire.DataPacket{IV: p.IV, Payload: p.Payload}
			b, err := rebuilt.Sign(sign, &skh)
			r.check(err == nil && bytes.Equal(b, raw), "%s: re-signed packet differs", name)
		default:
			r.fail("%s: unexpected packet type %v", name, p.MessageType())
		}
	}
}

func checkUpstreamTLV(u *Upstream, r *Report) {
	var short2bin map[string]string
	var encodeTLV [][2]string
	var array string
	r.check(u.TLVField("_short2bin", &short2bin) == nil, "codec_tlv _short2bin")
	r.check(u.TLVField("encodeTLV", &encodeTLV) == nil, "codec_tlv encodeTLV")
	r.check(u.TLVField("_encodeTlvArray(42, ['1','22','333'])", &array) == nil, "codec_tlv array")
	for n, want := range short2bin {
		v, _ := strconv.Atoi(n)
		b, _ := wire.AppendRecord(nil, wire.RecordType(v), nil)
		r.equal("type "+n, hex.EncodeToString(b[:2]), want)
	}
	// The encodeTLV cases describe their input in words; these are their
	// values, checked against the recorded encodings.
	inputs := map[string]wire.Record{
		"type 0, 'hello'":           {Type: 0, Value: []byte("hello")},
		"type 42, \"Don't panic!\"": {Type: 42, Value: []byte("Don't panic!")},
		"type 14, '' / null":        {Type: 14},
		"type 1, '\\x01'":           {Type: 1, Value: []byte{1}},
		"type 14, number 0 -> '0'":  {Type: 14, Value: []byte("0")},
	}
	for _, c := range encodeTLV {
		in, ok := inputs[c[0]]
		if !r.check(ok, "encodeTLV: unknown case %q", c[0]) {
			continue
		}
		b, err := wire.AppendRecord(nil, in.Type, in.Value)
		r.check(err == nil && hex.EncodeToString(b) == c[1], "encodeTLV %s: %x, want %s", c[0], b, c[1])
		recs, err := wire.DecodeRecords(b)
		r.check(err == nil && len(recs) == 1 && recs[0].Type == in.Type && bytes.Equal(recs[0].Value, in.Value), "decodeTLV %s", c[0])
	}
	arr, _ := wire.EncodeRecords([]wire.Record{{Type: 42, Value: []byte("1")}, {Type: 42, Value: []byte("22")}, {Type: 42, Value: []byte("333")}})
	r.equal("TLV array", hex.EncodeToString(arr), array)
	_, err := wire.DecodeRecords([]byte("\x00\x00\x00\x05hell"))
	r.check(err != nil, "a truncated TLV decodes")
}
