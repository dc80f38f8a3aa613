package message_test

import (
	"strings"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/transcript"
)

// The cost of one 128-byte message (a Payload of 128 bytes of text citing
// two parents: 256 bytes of padded plaintext) sent and received, and, in
// the same run, the primitives it cannot avoid on exactly the same sizes:
//
//	go test -run '^$' -bench 'Primitive|Seal|Open' -benchmem ./message/
//
// Goals (issue [C]): Open ≤ 1.15 × (Verify + CTR + SHA256),
// Seal ≤ 1.15 × (Sign + CTR + SHA256).

func benchSetup(b *testing.B) (*message.Security, *message.Security, []transcript.ID, []byte, message.Sealed) {
	g := newTestGroup(3, 7)
	a, r := g.sec(b, 0, 1), g.sec(b, 1, 2)
	parents := []transcript.ID{{1}, {2}}
	body, err := message.EncodeBody(message.Body{Kind: causal.KindPayload, Text: strings.Repeat("m", 128)})
	if err != nil {
		b.Fatal(err)
	}
	s, err := a.Seal(parents, body)
	if err != nil {
		b.Fatal(err)
	}
	return a, r, parents, body, s
}

// signedInput returns what the signature and the message id cover for the
// benchmark packet: "datamsgsig" ‖ SHA256(sid ‖ gk) ‖ signed bytes, and
// signature ‖ signed bytes.
func signedInput(b *testing.B, s message.Sealed, a *message.Security) ([]byte, []byte, *wire.DataPacket) {
	pk, err := wire.DecodeWire(s.Wire)
	if err != nil {
		b.Fatal(err)
	}
	p := pk.(*wire.DataPacket)
	sigInput := append(append([]byte("datamsgsig"), skhOf(a)...), p.Signed...)
	idInput := append(p.Signature[:len(p.Signature):len(p.Signature)], p.Signed...)
	return sigInput, idInput, p
}

func BenchmarkPrimitiveEd25519Sign(b *testing.B) {
	a, _, _, _, s := benchSetup(b)
	in, _, _ := signedInput(b, s, a)
	for b.Loop() {
		a.SigningKeyForTest().Sign(in)
	}
}

func BenchmarkPrimitiveEd25519Verify(b *testing.B) {
	a, _, _, _, s := benchSetup(b)
	in, _, p := signedInput(b, s, a)
	pub := a.SigningKeyForTest().Public()
	for b.Loop() {
		if !crypto.Verify(pub, in, &p.Signature) {
			b.Fatal("verify")
		}
	}
}

func BenchmarkPrimitiveAES256CTR(b *testing.B) {
	a, _, _, _, s := benchSetup(b)
	_, _, p := signedInput(b, s, a)
	buf := make([]byte, len(p.Payload))
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if err := primitive.XORKeyStreamCTR(buf, p.Payload, a.GroupKeyForTest(), &p.IV); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPrimitiveSHA256(b *testing.B) {
	a, _, _, _, s := benchSetup(b)
	_, in, _ := signedInput(b, s, a)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		crypto.Hash(in)
	}
}

// BenchmarkSeal128 is the whole send path below the session: encode the
// body, pad, draw the IV, encrypt, sign, armour, compute the id.
func BenchmarkSeal128(b *testing.B) {
	a, _, parents, _, _ := benchSetup(b)
	text := strings.Repeat("m", 128)
	for b.Loop() {
		body, err := message.EncodeBody(message.Body{Kind: causal.KindPayload, Text: text})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.Seal(parents, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen128 is the whole receive path below the session: dearmour,
// decode, verify (the sender's key first), decrypt, decode plaintext and
// body, compute the id.
func BenchmarkOpen128(b *testing.B) {
	a, r, _, _, s := benchSetup(b)
	sender := a.Members()[0]
	for b.Loop() {
		pk, err := wire.DecodeWire(s.Wire)
		if err != nil {
			b.Fatal(err)
		}
		o, err := r.Open(pk.(*wire.DataPacket), sender)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := message.DecodeBody(o.Body); err != nil {
			b.Fatal(err)
		}
	}
}

func skhOf(s *message.Security) []byte { h := s.SidKeyHashForTest(); return h[:] }
