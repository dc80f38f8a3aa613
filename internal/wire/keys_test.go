package wire_test

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/testvectors"
	"github.com/mpenc/mpenc/internal/wire"
)

type katKeys struct {
	sign       *crypto.SigningKey
	pub        crypto.PublicKey
	sid, gk    []byte
	sidKeyHash [32]byte
}

func loadKeys(t *testing.T, u *testvectors.Upstream) katKeys {
	k := katKeys{
		sign: crypto.NewSigningKey([32]byte(u.Key(t, "ED25519_PRIV_KEY"))),
		pub:  crypto.PublicKey(u.Key(t, "ED25519_PUB_KEY")),
		sid:  u.Key(t, "SESSION_ID"),
		gk:   u.Key(t, "GROUP_KEY"),
	}
	k.sidKeyHash = wire.SidKeyHash(k.sid, k.gk)
	return k
}

// TestUpstreamSignatures reproduces the five greet and five data signatures
// of the reference's codec test, and checks that the shifted signatures of
// its negative test do not verify.
func TestUpstreamSignatures(t *testing.T) {
	u := testvectors.LoadUpstream(t)
	k := loadKeys(t, u)
	cases := u.Sign.Cases
	if len(cases) != 5 {
		t.Fatalf("%d signature cases, want 5", len(cases))
	}
	for i, c := range cases {
		data := []byte(c.Data)
		if g := wire.SignGreet(k.sign, data); hex.EncodeToString(g[:]) != c.GreetSig {
			t.Errorf("case %d greet signature %x, want %s", i, g, c.GreetSig)
		}
		if d := wire.SignData(k.sign, &k.sidKeyHash, data); hex.EncodeToString(d[:]) != c.DataSig {
			t.Errorf("case %d data signature %x, want %s", i, d, c.DataSig)
		}
		gs := crypto.Signature(testvectors.Hex(t, c.GreetSig))
		ds := crypto.Signature(testvectors.Hex(t, c.DataSig))
		if !wire.VerifyGreet(k.pub, data, &gs) || !wire.VerifyData(k.pub, &k.sidKeyHash, data, &ds) {
			t.Errorf("case %d: reference signatures do not verify", i)
		}
		// Contexts separate the two signature kinds.
		if wire.VerifyData(k.pub, &k.sidKeyHash, data, &gs) || wire.VerifyGreet(k.pub, data, &ds) {
			t.Errorf("case %d: a signature verifies under the other context", i)
		}
		// The reference's negative test: each message with the next one's
		// signature.
		next := cases[(i+1)%len(cases)]
		ngs := crypto.Signature(testvectors.Hex(t, next.GreetSig))
		nds := crypto.Signature(testvectors.Hex(t, next.DataSig))
		if wire.VerifyGreet(k.pub, data, &ngs) || wire.VerifyData(k.pub, &k.sidKeyHash, data, &nds) {
			t.Errorf("case %d: a shifted signature verifies", i)
		}
	}
}

// TestUpstreamPackets decodes, verifies and re-encodes the six complete
// packets of the reference, and decrypts the three data packets to "foo".
func TestUpstreamPackets(t *testing.T) {
	u := testvectors.LoadUpstream(t)
	k := loadKeys(t, u)
	names := []string{"UPFLOW_MESSAGE_STRING", "DOWNFLOW_MESSAGE_STRING", "ERROR_MESSAGE_STRING",
		"DATA_MESSAGE_STRING", "DATA_MESSAGE_STRING2", "DATA_MESSAGE_STRING32"}
	if len(u.Packets) != len(names) {
		t.Fatalf("%d packets in the vectors, want %d", len(u.Packets), len(names))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			raw := u.Packet(t, name)
			s := wire.Armour(raw)
			back, err := wire.Dearmour(s)
			if err != nil || !bytes.Equal(back, raw) {
				t.Fatalf("armour round trip: %v", err)
			}
			p, err := wire.DecodeWire(s)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			enc, err := p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, raw) {
				t.Fatalf("re-encoded\n%x\nwant\n%x", enc, raw)
			}
			switch name {
			case "UPFLOW_MESSAGE_STRING":
				g := p.(*wire.GreetPacket)
				if !g.Verify(k.pub) {
					t.Error("signature does not verify")
				}
				if g.Type != wire.GreetInitInitiatorUp || g.Source != "1" || g.Dest != "2" ||
					len(g.Members) != 6 || g.Members[5] != "6" || len(g.IntKeys) != 2 ||
					!g.IntKeys[0].IsBase() || g.IntKeys[1] != wire.IntKey(u.Key(t, "C25519_PUB_KEY")) ||
					len(g.Nonces) != 1 || len(g.PubKeys) != 1 || g.PubKeys[0] != k.pub {
					t.Errorf("decoded fields wrong: %+v", g)
				}
				// Re-build from fields and re-sign: the same bytes.
				rebuilt := &wire.GreetPacket{Type: g.Type, Source: g.Source, Dest: g.Dest, Members: g.Members,
					IntKeys: g.IntKeys, Nonces: g.Nonces, PubKeys: g.PubKeys}
				signed, err := rebuilt.Sign(k.sign)
				if err != nil || !bytes.Equal(signed, raw) {
					t.Errorf("rebuilt and signed packet differs: %v", err)
				}
			case "DOWNFLOW_MESSAGE_STRING":
				g := p.(*wire.GreetPacket)
				if !g.Verify(k.pub) {
					t.Error("signature does not verify")
				}
				if g.Type != wire.GreetQuitDown || g.Source != "1" || g.Dest != "" || g.SigningKey == nil ||
					*g.SigningKey != [32]byte(u.Key(t, "ED25519_PRIV_KEY")) {
					t.Errorf("decoded fields wrong: %+v", g)
				}
			case "ERROR_MESSAGE_STRING":
				e := p.(*wire.ErrorPacket)
				if !e.Verify(k.pub) {
					t.Error("signature does not verify")
				}
				if e.Source != "a.dumbledore@hogwarts.ac.uk/android123" || e.Severity != wire.SeverityTerminal ||
					string(e.Message) != "Signature verification for q.quirrell@hogwarts.ac.uk/wp8possessed666 failed." {
					t.Errorf("decoded fields wrong: %+v", e)
				}
				if !bytes.Equal(e.Signed, raw[68:]) {
					t.Error("the unsigned form must be bytes [68:]")
				}
				unsigned := &wire.ErrorPacket{Source: e.Source, Severity: e.Severity, Message: e.Message}
				if b, _ := unsigned.Marshal(); !bytes.Equal(b, raw[68:]) {
					t.Error("unsigned encoding differs")
				}
				if b, err := unsigned.Sign(k.sign); err != nil || !bytes.Equal(b, raw) {
					t.Errorf("re-signed error packet differs: %v", err)
				}
			default:
				d := p.(*wire.DataPacket)
				if d.SidkeyHint != k.sidKeyHash[0] {
					t.Errorf("hint %02x, want %02x", d.SidkeyHint, k.sidKeyHash[0])
				}
				if !d.Verify(k.pub, &k.sidKeyHash) {
					t.Fatal("signature does not verify")
				}
				pt := make([]byte, len(d.Payload))
				if err := crypto.XORKeyStreamCTR(pt, d.Payload, k.gk, &d.IV); err != nil {
					t.Fatal(err)
				}
				plain, err := wire.DecodePlaintext(pt)
				if err != nil {
					t.Fatalf("plaintext %x: %v", pt, err)
				}
				if string(plain.Body) != "foo" || len(plain.Parents) != 0 {
					t.Errorf("plaintext %+v, want body foo", plain)
				}
				if name == "DATA_MESSAGE_STRING" {
					if hex.EncodeToString(pt) != "000700140003666f6f" {
						t.Errorf("plaintext %x", pt)
					}
					if id := d.ID(); hex.EncodeToString(id[:]) != "001e2d20778a66d8199f5c3e190fa220956d8b6c" {
						t.Errorf("message id %x", id)
					}
				}
				// Re-encrypt and re-sign from the fields: the same bytes.
				rebuilt := &wire.DataPacket{IV: d.IV, Payload: d.Payload}
				if b, err := rebuilt.Sign(k.sign, &k.sidKeyHash); err != nil || !bytes.Equal(b, raw) {
					t.Errorf("re-signed data packet differs: %v", err)
				}
			}
		})
	}
}

func TestUpstreamTLV(t *testing.T) {
	u := testvectors.LoadUpstream(t)
	var short2bin map[string]string
	var encodeTLV [][2]string
	var array string
	u.TLVField(t, "_short2bin", &short2bin)
	u.TLVField(t, "encodeTLV", &encodeTLV)
	u.TLVField(t, "_encodeTlvArray(42, ['1','22','333'])", &array)
	if len(short2bin) != 4 {
		t.Fatalf("%d _short2bin cases, want 4", len(short2bin))
	}
	for n, want := range short2bin {
		v, _ := strconv.Atoi(n)
		b, _ := wire.AppendRecord(nil, wire.RecordType(v), nil)
		if hex.EncodeToString(b[:2]) != want {
			t.Errorf("type %s encodes as %x, want %s", n, b[:2], want)
		}
	}
	values := map[string][]byte{
		"type 0, 'hello'":           []byte("hello"),
		"type 42, \"Don't panic!\"": []byte("Don't panic!"),
		"type 14, '' / null":        nil,
		"type 1, '\\x01'":           {1},
		"type 14, number 0 -> '0'":  []byte("0"),
	}
	types := map[string]wire.RecordType{
		"type 0, 'hello'": 0, "type 42, \"Don't panic!\"": 42, "type 14, '' / null": 14,
		"type 1, '\\x01'": 1, "type 14, number 0 -> '0'": 14,
	}
	if len(encodeTLV) != len(values) {
		t.Fatalf("%d encodeTLV cases, want %d", len(encodeTLV), len(values))
	}
	for _, c := range encodeTLV {
		v, ok := values[c[0]]
		if !ok {
			t.Fatalf("unknown case %q", c[0])
		}
		b, err := wire.AppendRecord(nil, types[c[0]], v)
		if err != nil || hex.EncodeToString(b) != c[1] {
			t.Errorf("%s: %x, want %s (%v)", c[0], b, c[1], err)
		}
		recs, err := wire.DecodeRecords(b)
		if err != nil || len(recs) != 1 || recs[0].Type != types[c[0]] || !bytes.Equal(recs[0].Value, v) {
			t.Errorf("%s: decode %+v %v", c[0], recs, err)
		}
	}
	arr, _ := wire.EncodeRecords([]wire.Record{{Type: 42, Value: []byte("1")}, {Type: 42, Value: []byte("22")}, {Type: 42, Value: []byte("333")}})
	if hex.EncodeToString(arr) != array {
		t.Errorf("array %x, want %s", arr, array)
	}
	// decodeTLV_error: '\x00\x00\x00\x05hell' is one byte short.
	if _, err := wire.DecodeRecords([]byte("\x00\x00\x00\x05hell")); err == nil {
		t.Error("truncated TLV accepted")
	}
}
