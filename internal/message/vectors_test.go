package message_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/testvectors"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/transcript"
)

// fixedReader returns its bytes, then fails.
type fixedReader struct{ b []byte }

func (r *fixedReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, errors.New("fixedReader: exhausted")
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func otherKey(t *testing.T, b byte) *crypto.SigningKey {
	t.Helper()
	var seed [32]byte
	seed[0] = b
	return crypto.NewSigningKey(seed)
}

// TestUpstreamDataPackets verifies and decrypts the reference's three data
// packets ("foo", AES-128-CTR, sent by Moe to Moe, Larry and Curly) and
// rebuilds each one byte for byte from its IV and plaintext with Moe's key.
func TestUpstreamDataPackets(t *testing.T) {
	u := testvectors.LoadUpstream(t)
	moe := crypto.NewSigningKey([32]byte(testvectors.Key(t, u, "ED25519_PRIV_KEY")))
	if moe.Public() != crypto.PublicKey(testvectors.Key(t, u, "ED25519_PUB_KEY")) {
		t.Fatal("Moe's key does not match")
	}
	members := []string{"Curly", "Larry", "Moe"}
	pubs := []crypto.PublicKey{otherKey(t, 1).Public(), otherKey(t, 2).Public(), moe.Public()}
	sec, err := message.New(message.Config{Members: members, PublicKeys: pubs, Self: 2, SigningKey: moe,
		SID: testvectors.Key(t, u, "SESSION_ID"), GroupKey: testvectors.Key(t, u, "GROUP_KEY")})
	if err != nil {
		t.Fatal(err)
	}
	wantIDs := map[string]string{"DATA_MESSAGE_STRING": "001e2d20778a66d8199f5c3e190fa220956d8b6c"}
	for _, name := range []string{"DATA_MESSAGE_STRING", "DATA_MESSAGE_STRING2", "DATA_MESSAGE_STRING32"} {
		raw := testvectors.Packet(t, u, name)
		p, err := wire.DecodeData(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// The channel sender's key first; a third party's resend is
		// identified by trying the other keys.
		for _, sender := range []string{"Moe", "Larry", "nobody"} {
			o, err := sec.Open(p, sender)
			if err != nil {
				t.Fatalf("%s from %s: %v", name, sender, err)
			}
			if o.Author != 2 || len(o.Parents) != 0 || string(o.Body) != "foo" || o.Size != 9 {
				t.Errorf("%s: author %d parents %d body %q size %d", name, o.Author, len(o.Parents), o.Body, o.Size)
			}
			if want, ok := wantIDs[name]; ok && hex.EncodeToString(o.ID[:]) != want {
				t.Errorf("%s: id %x, want %s", name, o.ID, want)
			}
		}
		// The other way: same IV, same (unpadded) size, Moe's key.
		s, err := sec.SealIV(nil, []byte("foo"), 9, &p.IV)
		if err != nil {
			t.Fatal(err)
		}
		if s.Wire != wire.Armour(raw) {
			t.Errorf("%s: rebuilt packet differs:\n got %s\nwant %s", name, s.Wire, wire.Armour(raw))
		}
		if s.ID != transcript.ID(p.ID()) {
			t.Errorf("%s: rebuilt id differs", name)
		}
	}
}

type flowVector struct {
	Operations []struct {
		Results map[string]struct {
			SessionID        string   `json:"sessionId"`
			GroupKey         string   `json:"groupKey"`
			EphSeed          string   `json:"ephemeralPrivKey_seed"`
			EphPubs          []string `json:"ephemeralPubKeys"`
			Members          []string `json:"members"`
			SidkeyHint       string   `json:"sidkeyHint"`
			EphemeralPubKey  string   `json:"ephemeralPubKey"`
			OperationStateNm string   `json:"opState"`
		} `json:"results"`
	} `json:"operations"`
	DataMessages []struct {
		Author    string   `json:"author"`
		Readers   []string `json:"readers"`
		Parents   []string `json:"parents"`
		Padding   int      `json:"paddingSize"`
		Body      string   `json:"bodyEncodedByDefaultMessageCodec_utf8"`
		Wire      string   `json:"wire"`
		MID       string   `json:"mId"`
		Plaintext string   `json:"decryptedPlaintextIncludingLengthPrefixAndPadding"`
		RngDraws  []struct {
			Hex string `json:"hex"`
		} `json:"rngDraws"`
	} `json:"dataMessages"`
}

// TestGreeterFlowDataMessages opens the two data messages of the final
// subsession of derived_greeter_flow.json (AES-256, padding 128) with its
// recorded keys, checks ids, parents, plaintext and body, and rebuilds
// them: the first with its recorded IV, the second from its own IV (the
// reference's draw is recorded only for the first).
func TestGreeterFlowDataMessages(t *testing.T) {
	var v flowVector
	testvectors.Load(t, "derived_greeter_flow.json", &v)
	if len(v.DataMessages) != 2 || len(v.Operations) == 0 {
		t.Fatalf("%d data messages", len(v.DataMessages))
	}
	final := v.Operations[len(v.Operations)-1].Results
	members := final["0"].Members
	if !slices.Equal(members, []string{"0", "2", "4"}) {
		t.Fatalf("members %v", members)
	}
	pubs := make([]crypto.PublicKey, len(members))
	for i, m := range members {
		pubs[i] = crypto.PublicKey(testvectors.Hex(t, final[m].EphemeralPubKey))
	}
	secs := map[string]*message.Security{}
	for i, m := range members {
		r := final[m]
		key := crypto.NewSigningKey(testvectors.Hex32(t, r.EphSeed))
		s, err := message.New(message.Config{Members: members, PublicKeys: pubs, Self: i, SigningKey: key,
			SID: testvectors.Hex(t, r.SessionID), GroupKey: testvectors.Hex(t, r.GroupKey)})
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString([]byte{s.Hint()}) != r.SidkeyHint {
			t.Errorf("member %s: hint %02x, want %s", m, s.Hint(), r.SidkeyHint)
		}
		secs[m] = s
	}
	var prev []transcript.ID
	for k, d := range v.DataMessages {
		pk, err := wire.DecodeWire(d.Wire)
		if err != nil {
			t.Fatal(err)
		}
		p := pk.(*wire.DataPacket)
		reader := d.Readers[0]
		o, err := secs[reader].Open(p, d.Author)
		if err != nil {
			t.Fatalf("message %d: %v", k, err)
		}
		if members[o.Author] != d.Author || hex.EncodeToString(o.ID[:]) != d.MID || o.Size != d.Padding {
			t.Errorf("message %d: author %s id %x size %d", k, members[o.Author], o.ID, o.Size)
		}
		var parents []string
		for _, q := range o.Parents {
			parents = append(parents, hex.EncodeToString(q[:]))
		}
		if !slices.Equal(parents, d.Parents) && len(d.Parents)+len(parents) > 0 {
			t.Errorf("message %d: parents %v, want %v", k, parents, d.Parents)
		}
		if hex.EncodeToString(o.Body) != d.Body {
			t.Errorf("message %d: body %x, want %s", k, o.Body, d.Body)
		}
		b, err := message.DecodeBody(o.Body)
		if err != nil || b.Kind != causal.KindPayload {
			t.Fatalf("message %d: body %v %v", k, b, err)
		}
		if enc, _ := message.EncodeBody(b); !bytes.Equal(enc, o.Body) {
			t.Errorf("message %d: body re-encodes to %x", k, enc)
		}
		if k == 0 && b.Text != "Hello, mpENC! é" {
			t.Errorf("text %q", b.Text)
		}
		// The plaintext, length prefix and padding included.
		if d.Plaintext != "" {
			pt := make([]byte, len(p.Payload))
			gk := testvectors.Hex(t, final[reader].GroupKey)
			primitive.XORKeyStreamCTR(pt, p.Payload, gk, &p.IV)
			if hex.EncodeToString(pt) != d.Plaintext {
				t.Errorf("message %d: plaintext differs", k)
			}
		}
		// Rebuild it with the recorded (or its own) IV.
		iv := p.IV
		if len(d.RngDraws) > 0 {
			iv = [12]byte(testvectors.Hex(t, d.RngDraws[0].Hex))
		}
		s, err := secs[d.Author].SealIV(o.Parents, o.Body, 0, &iv)
		if err != nil {
			t.Fatal(err)
		}
		if s.Wire != d.Wire {
			t.Errorf("message %d: rebuilt wire string differs", k)
		}
		// Sealing with the IV drawn from an injected reader is the same.
		sec := *secs[d.Author]
		sec.SetRandForTest(&fixedReader{b: iv[:]})
		if s2, err := sec.Seal(o.Parents, o.Body); err != nil || s2.Wire != d.Wire {
			t.Errorf("message %d: Seal with the injected IV: %v", k, err)
		}
		if k == 1 && !slices.Equal(o.Parents, prev) {
			t.Errorf("second message does not cite the first")
		}
		prev = []transcript.ID{o.ID}
	}
}

// TestBodyCodecVectors: derived_misc.json messageBodyCodec, both ways.
func TestBodyCodecVectors(t *testing.T) {
	m := testvectors.LoadMisc(t)
	if len(m.BodyCodec) != 5 {
		t.Fatalf("%d body vectors, want 5", len(m.BodyCodec))
	}
	want := []message.Body{{Kind: causal.KindPayload, Text: "hi"}, {Kind: causal.KindManualAck},
		{Kind: causal.KindAutoAck}, {Kind: causal.KindFin}, {Kind: causal.KindFlush}}
	for i, c := range m.BodyCodec {
		enc := testvectors.Hex(t, c.EncodedHex)
		b, err := message.DecodeBody(enc)
		if err != nil || b != want[i] {
			t.Errorf("vector %d (%s): %+v %v, want %+v", i, c.Body, b, err, want[i])
		}
		got, err := message.EncodeBody(want[i])
		if err != nil || !bytes.Equal(got, enc) {
			t.Errorf("vector %d: encoded %x, want %x", i, got, enc)
		}
	}
}

// hybridTrace is the part of derived_hybrid_trace.json this package reads.
type hybridTrace struct {
	Trace []struct {
		I           int    `json:"i"`
		Kind        string `json:"kind"`
		Sender      string `json:"sender"`
		MessageType string `json:"messageType"`
		Wire        string `json:"wire"`
	} `json:"trace"`
	Snapshots []struct {
		Label   string `json:"label"`
		After   int    `json:"afterTraceIndex"`
		Members map[string]struct {
			Subsession *struct {
				SID        string      `json:"sId"`
				GroupKey   string      `json:"groupKey"`
				Seed       string      `json:"ephemeralPrivKey_seed"`
				Pubs       [][2]string `json:"ephemeralPubKeys"`
				Transcript []struct {
					MID     string          `json:"mId"`
					Author  string          `json:"author"`
					Parents []string        `json:"parents"`
					Fields  json.RawMessage `json:"bodyFields"`
				} `json:"transcript"`
			} `json:"subsession"`
		} `json:"members"`
	} `json:"snapshots"`
}

// TestHybridTraceDataPackets opens every data packet of the reference's
// recorded HybridSession run by trial decryption over the two subsessions
// whose keys the snapshots give, checks that every body decodes and
// re-encodes byte for byte, that every message passes our acceptance
// checks in server order (the reference's honest run raises nothing), and
// that the recorded transcript of the first subsession matches.
func TestHybridTraceDataPackets(t *testing.T) {
	var h hybridTrace
	testvectors.Load(t, "derived_hybrid_trace.json", &h)
	type sub struct {
		sec   *message.Security
		graph *causal.Graph
	}
	var subs []*sub
	var cands []*message.Security
	seen := map[string]bool{}
	for _, s := range h.Snapshots {
		for _, m := range s.Members {
			ss := m.Subsession
			if ss == nil || seen[ss.SID+ss.GroupKey] {
				continue
			}
			seen[ss.SID+ss.GroupKey] = true
			var members []string
			var pubs []crypto.PublicKey
			for _, p := range ss.Pubs {
				members = append(members, p[0])
				pubs = append(pubs, crypto.PublicKey(testvectors.Hex(t, p[1])))
			}
			sec, err := message.New(message.Config{Members: members, PublicKeys: pubs, Self: -1,
				SID: testvectors.Hex(t, ss.SID), GroupKey: testvectors.Hex(t, ss.GroupKey)})
			if err != nil {
				t.Fatal(err)
			}
			g, err := causal.New(members, causal.Options{})
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, &sub{sec, g})
			cands = append(cands, sec)
		}
	}
	if len(subs) != 2 {
		t.Fatalf("%d subsessions with keys, want 2", len(subs))
	}
	kinds := map[causal.Kind]int{}
	opened := 0
	for _, ev := range h.Trace {
		if ev.Kind != "packet" || ev.MessageType != "MPENC_DATA_MESSAGE" {
			continue
		}
		pk, err := wire.DecodeWire(ev.Wire)
		if err != nil {
			t.Fatalf("event %d: %v", ev.I, err)
		}
		k, o, err := message.Trial(cands, pk.(*wire.DataPacket), ev.Sender)
		if err != nil {
			t.Fatalf("event %d: no subsession opens it: %v", ev.I, err)
		}
		opened++
		b, err := message.DecodeBody(o.Body)
		if err != nil {
			t.Fatalf("event %d: body %q: %v", ev.I, o.Body, err)
		}
		enc, err := message.AppendBodyForTest(nil, b)
		if err != nil || !bytes.Equal(enc, o.Body) {
			t.Errorf("event %d: body %q re-encodes to %q", ev.I, o.Body, enc)
		}
		kinds[b.Kind]++
		g := subs[k].graph
		if _, err := g.Accept(causal.Message{ID: o.ID, Author: o.Author, Parents: o.Parents, Kind: b.Kind}); err != nil {
			t.Errorf("event %d: our checks reject the reference's message: %v", ev.I, err)
		}
	}
	t.Logf("%d data packets opened; kinds %v", opened, kinds)
	if kinds[causal.KindPayload] == 0 || kinds[causal.KindAutoAck] == 0 || kinds[causal.KindFin] == 0 {
		t.Errorf("the trace lacks some kinds: %v", kinds)
	}
	// The first subsession's transcript as recorded after the messages.
	for _, s := range h.Snapshots {
		for name, m := range s.Members {
			ss := m.Subsession
			if ss == nil || len(ss.Transcript) == 0 {
				continue
			}
			g := subs[0].graph
			for _, e := range ss.Transcript {
				i, ok := g.Lookup(transcript.ID(testvectors.Hex(t, e.MID)))
				if !ok {
					t.Fatalf("%s/%s: %s not accepted", s.Label, name, e.MID)
				}
				if g.Member(g.Author(i)) != e.Author {
					t.Errorf("%s: author %s, want %s", e.MID, g.Member(g.Author(i)), e.Author)
				}
				var ps []string
				for _, p := range g.Parents(i) {
					id := g.ID(p)
					ps = append(ps, hex.EncodeToString(id[:]))
				}
				// Parents are a set: the reference's wire order is not
				// always bytewise (d38f… sends e052… before 4090…), while
				// the snapshot lists them sorted.
				slices.Sort(ps)
				if strings.Join(ps, ",") != strings.Join(e.Parents, ",") {
					t.Errorf("%s: parents %v, want %v", e.MID, ps, e.Parents)
				}
			}
		}
	}
}
