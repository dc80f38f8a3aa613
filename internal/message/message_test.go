package message_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/transcript"
)

func TestBodyRejectsNonCanonical(t *testing.T) {
	bad := []string{
		"", "\x00", "\x00[]", "\x00[\"a\" ]", "\x00[ \"a\"]", "\x00[\"a\"] ", "\x00[\"a\",\"b\"]", "\x00[1]",
		"\x00[\"\\u0068\"]", "\x00[\"\\u001F\"]", "\x00[\"\\u000a\"]", "\x00[\"\\/\"]", "\x00[\"\\x41\"]",
		"\x00[\"\n\"]", "\x00[\"\xff\"]", "\x00[\"\xed\xa0\x80\"]", "\x00[\"a\\\"]", "\x00[\"a\"\"]", "\x00\"a\"",
		"\x00[\"\\u00\"]", "\x00[\"\\ud800\"]", "\x00[\"a\"]]",
		"\x01[]", "\x01[true,false]", "\x01[1]", "\x01[True]", "\x01[ true]", "\x01[null]", "\x01[true]x",
		"\x02[true]", "\x02", "\x03[]", "\x03[\"x\"]", "\x04[]", "\xff[]",
	}
	for _, s := range bad {
		if b, err := message.DecodeBody([]byte(s)); !errors.Is(err, message.ErrBody) {
			t.Errorf("DecodeBody(%q) = %+v, %v; want ErrBody", s, b, err)
		}
	}
	good := map[string]message.Body{
		"\x00[\"\"]":                 {Kind: causal.KindPayload},
		"\x00[\"a\\\"b\\\\c\"]":      {Kind: causal.KindPayload, Text: "a\"b\\c"},
		"\x00[\"\\b\\f\\n\\r\\t\"]":  {Kind: causal.KindPayload, Text: "\b\f\n\r\t"},
		"\x00[\"\\u0000\\u001f\"]":   {Kind: causal.KindPayload, Text: "\x00\x1f"},
		"\x00[\"<&>\u2028\x7f/é😀\"]": {Kind: causal.KindPayload, Text: "<&>\u2028\x7f/é😀"},
		"\x02[]":                     {Kind: causal.KindHeartBeat},
	}
	for s, want := range good {
		b, err := message.DecodeBody([]byte(s))
		if err != nil || b != want {
			t.Errorf("DecodeBody(%q) = %+v, %v; want %+v", s, b, err, want)
		}
		if enc, err := message.AppendBodyForTest(nil, b); err != nil || string(enc) != s {
			t.Errorf("re-encoding %q gives %q, %v", s, enc, err)
		}
	}
	if _, err := message.EncodeBody(message.Body{Kind: causal.KindHeartBeat}); !errors.Is(err, message.ErrNotSendable) {
		t.Error("a HeartBeat must not be sendable")
	}
	if _, err := message.EncodeBody(message.Body{Kind: causal.KindPayload, Text: "\xff"}); !errors.Is(err, message.ErrNotSendable) {
		t.Error("invalid UTF-8 must not be sendable")
	}
	if _, err := message.EncodeBody(message.Body{Kind: causal.KindFin, Text: "x"}); !errors.Is(err, message.ErrNotSendable) {
		t.Error("text on a FIN must not be sendable")
	}
}

// TestBodyAgreesWithJSON: for random strings our encoding is valid JSON
// that encoding/json decodes to the same text, and it round-trips.
func TestBodyAgreesWithJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune{'a', '"', '\\', '/', '<', '>', '&', 0, 1, 8, 9, 10, 12, 13, 0x1f, 0x7f, 'é', 0x2028, 0x1f600, 0xfffd}
	for range 2000 {
		var sb strings.Builder
		for range rng.IntN(20) {
			sb.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		text := sb.String()
		enc, err := message.EncodeBody(message.Body{Kind: causal.KindPayload, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		var arr []string
		if err := json.Unmarshal(enc[1:], &arr); err != nil || len(arr) != 1 || arr[0] != text {
			t.Fatalf("%q: encoding/json reads %q (%v)", text, arr, err)
		}
		b, err := message.DecodeBody(enc)
		if err != nil || b.Text != text {
			t.Fatalf("%q: round trip %q %v", text, b.Text, err)
		}
	}
}

// testGroup is a subsession's keys for n members, built deterministically.
type testGroup struct {
	members []string
	keys    []*crypto.SigningKey
	pubs    []crypto.PublicKey
	sid, gk []byte
}

func newTestGroup(n int, salt byte) *testGroup {
	g := &testGroup{sid: bytes.Repeat([]byte{salt}, 32), gk: bytes.Repeat([]byte{salt + 1}, 32)}
	for i := range n {
		g.members = append(g.members, string(rune('a'+i))+"@example.org/r")
		var seed [32]byte
		seed[0], seed[1] = byte(i), 0x55
		k := crypto.NewSigningKey(seed)
		g.keys = append(g.keys, k)
		g.pubs = append(g.pubs, k.Public())
	}
	return g
}

func (g *testGroup) sec(t testing.TB, self int, seed uint64) *message.Security {
	s, err := message.New(message.Config{Members: g.members, PublicKeys: g.pubs, Self: self, SigningKey: g.keys[self],
		SID: g.sid, GroupKey: g.gk, Rand: rand.NewChaCha8([32]byte{byte(seed)})})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func decode(t testing.TB, s string) *wire.DataPacket {
	p, err := wire.DecodeWire(s)
	if err != nil {
		t.Fatal(err)
	}
	return p.(*wire.DataPacket)
}

func TestSealOpen(t *testing.T) {
	g := newTestGroup(3, 7)
	a, b := g.sec(t, 0, 1), g.sec(t, 1, 2)
	parents := []transcript.ID{{1}, {2}}
	body, _ := message.EncodeBody(message.Body{Kind: causal.KindPayload, Text: strings.Repeat("x", 150)})
	s, err := a.Seal(parents, body)
	if err != nil {
		t.Fatal(err)
	}
	p := decode(t, s.Wire)
	if len(p.Payload) != 256 {
		t.Errorf("padded to %d, want 256", len(p.Payload))
	}
	// Received from the author, and resent by a third member.
	for _, sender := range []string{g.members[0], g.members[2], "stranger"} {
		o, err := b.Open(p, sender)
		if err != nil || o.Author != 0 || o.ID != s.ID || !bytes.Equal(o.Body, body) || len(o.Parents) != 2 || o.Parents[1] != parents[1] {
			t.Fatalf("from %s: %+v %v", sender, o, err)
		}
	}
	// Two seals of the same message differ (fresh IVs) and have other ids.
	s2, _ := a.Seal(parents, body)
	if s2.Wire == s.Wire || s2.ID == s.ID {
		t.Error("IV not fresh")
	}
	// A flipped bit anywhere in the signed part: not verified.
	raw, _ := wire.Dearmour(s.Wire)
	for _, off := range []int{len(raw) - 1, len(raw) - 200, 90} {
		c := bytes.Clone(raw)
		c[off] ^= 1
		q, err := wire.DecodeData(c)
		if err != nil {
			continue
		}
		if _, err := b.Open(q, g.members[0]); !errors.Is(err, message.ErrNotVerified) {
			t.Errorf("flip at %d: %v", off, err)
		}
	}
	// A payload too short is refused before any cryptography, whatever the
	// signature.
	short := &wire.DataPacket{SidkeyHint: a.Hint(), Payload: []byte{0, 1, 2}}
	signed, _ := short.MarshalSigned()
	short.Signed = signed
	if _, err := b.Open(short, g.members[0]); !errors.Is(err, message.ErrPacket) {
		t.Errorf("short payload: %v", err)
	}
	if _, err := b.Open(&wire.DataPacket{SidkeyHint: a.Hint()}, g.members[0]); !errors.Is(err, message.ErrPacket) {
		t.Errorf("undecoded packet: %v", err)
	}
	// Failing randomness fails the seal.
	a.SetRandForTest(&fixedReader{})
	if _, err := a.Seal(nil, body); err == nil {
		t.Error("seal without randomness")
	}
}

// TestReplayFromAnotherSubsession: the ephemeral keys are kept across
// subsessions, but the signature covers SHA256(sid ‖ gk), so a packet of
// one subsession never verifies in another, even with the same hint.
func TestReplayFromAnotherSubsession(t *testing.T) {
	g1 := newTestGroup(3, 7)
	// Same members and keys, another sid and group key, searched until
	// the hints collide.
	var g2 *testGroup
	for salt := byte(20); ; salt++ {
		g2 = newTestGroup(3, 7)
		g2.sid = bytes.Repeat([]byte{salt}, 32)
		if wire.SidKeyHash(g2.sid, g2.gk)[0] == wire.SidKeyHash(g1.sid, g1.gk)[0] {
			break
		}
	}
	old := g1.sec(t, 0, 1)
	cur := g2.sec(t, 1, 2)
	s, _ := old.Seal(nil, []byte("\x00[\"old\"]"))
	p := decode(t, s.Wire)
	if p.SidkeyHint != cur.Hint() {
		t.Fatal("hints should collide")
	}
	if _, err := cur.Open(p, g1.members[0]); !errors.Is(err, message.ErrNotVerified) {
		t.Errorf("replay into another subsession: %v", err)
	}
	// Trial over (current, previous) finds the right one.
	prev := g1.sec(t, 1, 3)
	k, o, err := message.Trial([]*message.Security{cur, prev}, p, g1.members[0])
	if err != nil || k != 1 || o.Author != 0 {
		t.Errorf("trial: %d %v", k, err)
	}
	if k, _, err := message.Trial([]*message.Security{cur}, p, g1.members[0]); k != -1 || !errors.Is(err, message.ErrNotVerified) {
		t.Errorf("trial without the right key: %d %v", k, err)
	}
	other := newTestGroup(3, 99).sec(t, 0, 4)
	if other.Hint() != p.SidkeyHint {
		if k, _, err := message.Trial([]*message.Security{other}, p, g1.members[0]); k != -1 || !errors.Is(err, message.ErrHint) {
			t.Errorf("trial with no matching hint: %d %v", k, err)
		}
		if _, err := other.Open(p, g1.members[0]); !errors.Is(err, message.ErrHint) {
			t.Errorf("open with another hint: %v", err)
		}
	}
}

// TestAuthorError: a member who signs garbage is named.
func TestAuthorError(t *testing.T) {
	g := newTestGroup(3, 7)
	a, b := g.sec(t, 2, 1), g.sec(t, 0, 2)
	// A ciphertext of non-zero padding, validly signed by member 2.
	pt := []byte{0, 4, 0, 0x14, 0, 0, 1, 1}
	iv := [12]byte{9}
	primitive.XORKeyStreamCTR(pt, pt, g.gk, &iv)
	dp := &wire.DataPacket{IV: iv, Payload: pt}
	raw, err := dp.Sign(g.keys[2], ptr(a.SidKeyHashForTest()))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := wire.DecodeData(raw)
	_, err = b.Open(p, g.members[2])
	var ae *message.AuthorError
	if !errors.As(err, &ae) || ae.Author != 2 || !errors.Is(err, message.ErrPlaintext) || ae.ID != transcript.ID(p.ID()) {
		t.Errorf("garbage plaintext: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	g := newTestGroup(3, 7)
	base := message.Config{Members: g.members, PublicKeys: g.pubs, Self: 0, SigningKey: g.keys[0], SID: g.sid, GroupKey: g.gk}
	bad := []func(c *message.Config){
		func(c *message.Config) { c.Members = nil },
		func(c *message.Config) { c.PublicKeys = c.PublicKeys[:2] },
		func(c *message.Config) { c.Members = []string{"c", "b", "a"} },
		func(c *message.Config) { c.GroupKey = c.GroupKey[:20] },
		func(c *message.Config) { c.SID = nil },
		func(c *message.Config) { c.Self = 3 },
		func(c *message.Config) { c.SigningKey = nil },
		func(c *message.Config) { c.SigningKey = g.keys[1] },
	}
	for i, f := range bad {
		c := base
		f(&c)
		if _, err := message.New(c); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
	s, err := message.New(base)
	if err != nil {
		t.Fatal(err)
	}
	// Too many parents are refused.
	if _, err := s.Seal(make([]transcript.ID, 4), []byte("\x01[false]")); err == nil {
		t.Error("4 parents for 3 members")
	}
	s.Zero()
	if s.GroupKeyForTest()[0] != 0 {
		t.Error("Zero left the key")
	}
	if !utf8.ValidString(s.Members()[0]) {
		t.Error("members")
	}
}

func ptr[T any](v T) *T { return &v }
