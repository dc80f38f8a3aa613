package wire_test

import (
	"bytes"
	"testing"

	"github.com/mpenc/mpenc/internal/testvectors"
	"github.com/mpenc/mpenc/internal/wire"
)

// seedPackets returns every packet of the vectors as fuzz seeds.
func seedPackets(f *testing.F) [][]byte {
	u := testvectors.LoadUpstream(f)
	var seeds [][]byte
	for name := range u.Packets {
		seeds = append(seeds, testvectors.Packet(f, u, name))
	}
	var flow struct {
		Operations []struct {
			Packets []struct{ Wire string } `json:"packets"`
		} `json:"operations"`
		DataMessages []struct{ Wire string } `json:"dataMessages"`
	}
	testvectors.Load(f, "derived_greeter_flow.json", &flow)
	for _, op := range flow.Operations {
		for _, p := range op.Packets {
			b, err := wire.Dearmour(p.Wire)
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, b)
		}
	}
	for _, d := range flow.DataMessages {
		b, err := wire.Dearmour(d.Wire)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzDecode: no panic; whatever is accepted re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, s := range seedPackets(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := wire.Decode(b)
		if err != nil {
			return
		}
		enc, err := p.Marshal()
		if err != nil {
			t.Fatalf("accepted packet does not re-encode: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded\n%x\nfrom\n%x", enc, b)
		}
	})
}

// FuzzDecodeRecords: no panic; records re-encode to the input.
func FuzzDecodeRecords(f *testing.F) {
	for _, s := range seedPackets(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := wire.DecodeRecords(b)
		if err != nil {
			return
		}
		enc, err := wire.EncodeRecords(recs)
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("records do not re-encode: %v", err)
		}
	})
}

// FuzzDearmour: no panic; only the canonical armour of a packet is accepted.
func FuzzDearmour(f *testing.F) {
	for _, s := range seedPackets(f) {
		f.Add(wire.Armour(s))
	}
	f.Add("?mpENC:.")
	f.Add("?mpENC:QQ==.")
	f.Add("hello")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := wire.Dearmour(s)
		if err != nil {
			return
		}
		if wire.Armour(b) != s {
			t.Fatalf("accepted a non-canonical armour %q", s)
		}
	})
}

// FuzzDecodePlaintext: no panic; accepted plaintexts re-encode exactly.
func FuzzDecodePlaintext(f *testing.F) {
	f.Add([]byte("\x00\x07\x00\x14\x00\x03foo"))
	p := &wire.Plaintext{Parents: []wire.MessageID{{1}}, Body: []byte("\x00[\"hi\"]")}
	b, _ := p.Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := wire.DecodePlaintext(b)
		if err != nil {
			return
		}
		enc, err := p.Marshal()
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("plaintext does not re-encode: %v", err)
		}
	})
}
