package message_test

import (
	"bytes"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/testvectors"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/transcript"
)

// FuzzDecodeBody: DecodeBody never panics, and whatever it accepts
// re-encodes to exactly the input (one encoding per body); any valid UTF-8
// text round-trips through EncodeBody.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{"\x00[\"hi\"]", "\x01[true]", "\x01[false]", "\x02[]", "\x03[true]", "\x03[false]",
		"\x00[\"a\\\"\\\\\\n\\u0001é\"]", "\x00[\"\"]", "\x00[\"\\ud800\"]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := message.DecodeBody(data)
		if err == nil {
			enc, err := message.AppendBodyForTest(nil, b)
			if err != nil || !bytes.Equal(enc, data) {
				t.Fatalf("%q decodes to %+v which encodes to %q (%v)", data, b, enc, err)
			}
		} else if !errors.Is(err, message.ErrBody) {
			t.Fatalf("error %v does not wrap ErrBody", err)
		}
		if utf8.Valid(data) {
			enc, err := message.EncodeBody(message.Body{Kind: causal.KindPayload, Text: string(data)})
			if err != nil {
				t.Fatal(err)
			}
			b, err := message.DecodeBody(enc)
			if err != nil || b.Text != string(data) {
				t.Fatalf("text %q does not round-trip: %q %v", data, b.Text, err)
			}
		}
	})
}

// fuzzSecs returns receive-side instances: a 3-member group and the
// reference's KAT subsession (where Moe's key signs).
func fuzzSecs(tb testing.TB) ([]*message.Security, *testGroup) {
	g := newTestGroup(3, 7)
	u := testvectors.LoadUpstream(tb)
	moe := crypto.NewSigningKey([32]byte(testvectors.Key(tb, u, "ED25519_PRIV_KEY")))
	kat, err := message.New(message.Config{Members: []string{"Curly", "Larry", "Moe"},
		PublicKeys: []crypto.PublicKey{g.pubs[1], g.pubs[2], moe.Public()}, Self: 2, SigningKey: moe,
		SID: testvectors.Key(tb, u, "SESSION_ID"), GroupKey: testvectors.Key(tb, u, "GROUP_KEY")})
	if err != nil {
		tb.Fatal(err)
	}
	return []*message.Security{g.sec(tb, 0, 1), kat}, g
}

// checkOpened re-seals an opened packet with its author's key, IV and
// padded size: the result must be the packet itself (nothing malleable
// survives Open), and its body decodes or fails cleanly.
func checkOpened(t *testing.T, signers []*message.Security, p *wire.DataPacket, raw []byte, o *message.Opened) {
	s := signers[o.Author]
	if s == nil {
		return
	}
	re, err := s.SealIV(o.Parents, o.Body, o.Size, &p.IV)
	if err != nil {
		t.Fatalf("cannot re-seal an opened packet: %v", err)
	}
	if re.Wire != wire.Armour(raw) {
		t.Fatalf("opened packet does not re-seal to itself")
	}
	if b, err := message.DecodeBody(o.Body); err == nil {
		if enc, err := message.AppendBodyForTest(nil, b); err != nil || !bytes.Equal(enc, o.Body) {
			t.Fatal("body does not re-encode")
		}
	}
}

// FuzzOpen feeds raw packet bytes to the decoder and Open with keys. It
// never panics; an opened packet re-seals to itself.
func FuzzOpen(f *testing.F) {
	secs, g := fuzzSecs(f)
	u := testvectors.LoadUpstream(f)
	for _, name := range []string{"DATA_MESSAGE_STRING", "DATA_MESSAGE_STRING2", "DATA_MESSAGE_STRING32"} {
		f.Add(testvectors.Packet(f, u, name))
	}
	a := g.sec(f, 1, 9)
	for _, body := range []string{"\x00[\"hi\"]", "\x01[false]", "\x03[true]"} {
		s, _ := a.Seal([]transcript.ID{{1}}, []byte(body))
		raw, _ := wire.Dearmour(s.Wire)
		f.Add(raw)
	}
	signers := [][]*message.Security{{g.sec(f, 0, 1), g.sec(f, 1, 1), g.sec(f, 2, 1)}, {nil, nil, secs[1]}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := wire.DecodeData(raw)
		if err != nil {
			return
		}
		for k, s := range secs {
			for _, sender := range []string{s.Members()[0], s.Members()[2], ""} {
				o, err := s.Open(p, sender)
				if err != nil {
					var ae *message.AuthorError
					if !errors.Is(err, message.ErrHint) && !errors.Is(err, message.ErrPacket) && !errors.Is(err, message.ErrNotVerified) && !errors.As(err, &ae) {
						t.Fatalf("unexpected error %v", err)
					}
					continue
				}
				checkOpened(t, signers[k], p, raw, o)
			}
		}
	})
}

// FuzzOpenSigned lets the fuzzer choose the plaintext (before encryption),
// which is then validly encrypted and signed by member 1: this reaches the
// code after the signature check. Open never panics, names member 1 on
// failure, and an opened packet re-seals to itself.
func FuzzOpenSigned(f *testing.F) {
	g := newTestGroup(3, 7)
	recv := g.sec(f, 0, 1)
	author := g.sec(f, 1, 2)
	f.Add([]byte{0, 7, 0, 0x14, 0, 3, 'f', 'o', 'o'}, byte(0))
	pt, _ := (&wire.Plaintext{Parents: []wire.MessageID{{1}, {2}}, Body: []byte("\x00[\"hi\"]")}).Marshal()
	f.Add(pt, byte(1))
	f.Fuzz(func(t *testing.T, pt []byte, ivb byte) {
		if len(pt) > wire.MaxValueSize {
			return
		}
		iv := [12]byte{ivb}
		ct := bytes.Clone(pt)
		primitive.XORKeyStreamCTR(ct, ct, g.gk, &iv)
		dp := &wire.DataPacket{IV: iv, Payload: ct}
		raw, err := dp.Sign(g.keys[1], ptr(author.SidKeyHashForTest()))
		if err != nil {
			return
		}
		p, err := wire.DecodeData(raw)
		if err != nil {
			t.Fatalf("our own packet does not decode: %v", err)
		}
		o, err := recv.Open(p, g.members[1])
		if err != nil {
			var ae *message.AuthorError
			if errors.Is(err, message.ErrPacket) {
				return
			}
			if !errors.As(err, &ae) || ae.Author != 1 {
				t.Fatalf("error %v does not name the author", err)
			}
			return
		}
		if o.Author != 1 {
			t.Fatalf("author %d", o.Author)
		}
		checkOpened(t, []*message.Security{nil, author, nil}, p, raw, o)
	})
}
