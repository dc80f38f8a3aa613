package devchan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

// detRand is a deterministic reader: SHA-256 in counter mode over a seed.
type detRand struct {
	seed string
	n    int
	buf  []byte
}

func (r *detRand) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		h := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", r.seed, r.n)))
		r.n++
		r.buf = append(r.buf, h[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

type device struct {
	key   *crypto.SigningKey
	party Party
}

func newDevice(account string, n byte) device {
	var seed [32]byte
	seed[0], seed[31] = n, 0xdc
	k := crypto.NewSigningKey(seed)
	pub := k.Public()
	fp := crypto.Hash([]byte("mpenc/v1/fingerprint"), pub[:]) // as trust.FingerprintOf
	return device{key: k, party: Party{Account: account, Device: DeviceID(fp[:8]), Identity: k.Public()}}
}

// pair runs a handshake between a fresh alice device and a fresh bob
// device and returns both sessions, established.
func pair(t testing.TB, seed string) (a, b *Session, alice, bob device) {
	t.Helper()
	alice, bob = newDevice("alice@example.org", 1), newDevice("bob@example.org", 2)
	rnd := &detRand{seed: seed}
	be, err := primitive.GenerateX25519Key(rnd)
	if err != nil {
		t.Fatal(err)
	}
	a, req, err := Initiate(alice.party, alice.key, bob.party, Digest(be.Public()), rnd)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRequest(req, bob.party.Device)
	if err != nil {
		t.Fatal(err)
	}
	if r.Identity != alice.party.Identity || r.From != alice.party.Device {
		t.Fatalf("request from %v with key %x", r.From, r.Identity)
	}
	b, resp, err := Accept(bob.party, bob.key, alice.party, r, be)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.HandleResponse(resp, alice.key); err != nil {
		t.Fatal(err)
	}
	return a, b, alice, bob
}

func mustSeal(t testing.TB, s *Session, text string) []byte {
	t.Helper()
	p, err := s.Seal([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustOpen(t testing.TB, s *Session, p []byte, want string) {
	t.Helper()
	got, err := s.Open(p)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if string(got) != want {
		t.Fatalf("opened %q, want %q", got, want)
	}
}

func TestHandshakeAndConfirmation(t *testing.T) {
	a, b, _, _ := pair(t, "handshake")
	if a.State() != Established || b.State() != Established {
		t.Fatalf("states %v %v", a.State(), b.State())
	}
	sa, _ := a.SAS()
	sb, _ := b.SAS()
	if sa != sb {
		t.Fatalf("SAS differ: %v %v", sa, sb)
	}
	// The responder may speak first; the initiator reads it and stays
	// Established (it has not learnt that its confirmation arrived).
	mustOpen(t, a, mustSeal(t, b, "early"), "early")
	if a.State() != Established {
		t.Fatal("the initiator confirmed without an acknowledgement")
	}
	p1 := mustSeal(t, a, "one")
	mustOpen(t, b, p1, "one")
	if b.State() != Confirmed {
		t.Fatalf("responder %v after the confirmation", b.State())
	}
	mustOpen(t, a, mustSeal(t, b, "two"), "two")
	if a.State() != Confirmed {
		t.Fatalf("initiator %v after the acknowledgement", a.State())
	}
	p3 := mustSeal(t, a, "three")
	if p3[headerSize]&flagConfirm != 0 {
		t.Fatal("the initiator still sends its confirmation")
	}
	mustOpen(t, b, p3, "three")
	// Empty and maximal plaintexts.
	mustOpen(t, b, mustSeal(t, a, ""), "")
	big := string(bytes.Repeat([]byte{'x'}, MaxPlaintext))
	mustOpen(t, b, mustSeal(t, a, big), big)
	if _, err := a.Seal(make([]byte, MaxPlaintext+1)); err == nil {
		t.Fatal("an oversized plaintext sealed")
	}
}

// TestLostConfirmation: the initiator's first data packet (with its
// confirmation) is lost; the next one carries it again.
func TestLostConfirmation(t *testing.T) {
	a, b, _, _ := pair(t, "lost")
	_ = mustSeal(t, a, "lost")
	mustOpen(t, b, mustSeal(t, a, "second"), "second")
	if b.State() != Confirmed {
		t.Fatal("not confirmed by the second packet")
	}
	if b.Skipped() != 1 {
		t.Fatalf("%d keys kept for the lost packet", b.Skipped())
	}
}

func TestRefusedRequest(t *testing.T) {
	alice, bob := newDevice("alice@example.org", 1), newDevice("bob@example.org", 2)
	rnd := &detRand{seed: "refuse"}
	var digest [32]byte
	digest[0] = 7
	a, req, err := Initiate(alice.party, alice.key, bob.party, digest, rnd)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRequest(req, bob.party.Device)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := primitive.GenerateX25519Key(rnd)
	if _, _, err := Accept(bob.party, bob.key, alice.party, r, other); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("accept with another key: %v", err)
	}
	if err := a.HandleResponse(Refuse(bob.party.Device, r), alice.key); !errors.Is(err, ErrRefused) || a.State() != Failed {
		t.Fatalf("refusal: %v, %v", err, a.State())
	}
	if _, err := a.Seal([]byte("x")); !errors.Is(err, ErrState) {
		t.Fatalf("seal after failure: %v", err)
	}
}

// TestSwappedIdentity: the server replaces the initiator's identity key in
// the request with one it holds. The responder derives other keys; the
// initiator refuses the response, and nothing is established.
func TestSwappedIdentity(t *testing.T) {
	alice, bob, mallory := newDevice("alice@example.org", 1), newDevice("bob@example.org", 2), newDevice("alice@example.org", 9)
	rnd := &detRand{seed: "swap"}
	be, _ := primitive.GenerateX25519Key(rnd)
	a, req, _ := Initiate(alice.party, alice.key, bob.party, Digest(be.Public()), rnd)
	forged := bytes.Clone(req)
	copy(forged[headerSize:], mallory.party.Identity[:])
	r, err := ParseRequest(forged, bob.party.Device)
	if err != nil {
		t.Fatal(err)
	}
	peer := alice.party
	peer.Identity = mallory.party.Identity // what bob was told
	_, resp, err := Accept(bob.party, bob.key, peer, r, be)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.HandleResponse(resp, alice.key); !errors.Is(err, ErrAuth) || a.State() != Failed {
		t.Fatalf("response to a swapped key: %v, %v", err, a.State())
	}
}

// TestSwappedResponderKey: a response whose ephemeral key is not the one
// whose digest we picked is refused.
func TestSwappedResponderKey(t *testing.T) {
	alice, bob := newDevice("alice@example.org", 1), newDevice("bob@example.org", 2)
	rnd := &detRand{seed: "swap-b"}
	be, _ := primitive.GenerateX25519Key(rnd)
	a, req, _ := Initiate(alice.party, alice.key, bob.party, Digest(be.Public()), rnd)
	r, _ := ParseRequest(req, bob.party.Device)
	_, resp, _ := Accept(bob.party, bob.key, alice.party, r, be)
	forged := bytes.Clone(resp)
	forged[len(forged)-64] ^= 1 // the key
	if err := a.HandleResponse(forged, alice.key); !errors.Is(err, ErrAuth) {
		t.Fatalf("a changed responder key: %v", err)
	}
}

func TestReplayAndReorder(t *testing.T) {
	a, b, _, _ := pair(t, "replay")
	var ps [][]byte
	for i := range 5 {
		ps = append(ps, mustSeal(t, a, fmt.Sprint(i)))
	}
	mustOpen(t, b, ps[0], "0")
	if _, err := b.Open(ps[0]); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	mustOpen(t, b, ps[3], "3")
	mustOpen(t, b, ps[1], "1")
	mustOpen(t, b, ps[4], "4")
	mustOpen(t, b, ps[2], "2")
	for _, p := range ps {
		if _, err := b.Open(p); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay after reordering: %v", err)
		}
	}
	if b.Skipped() != 0 {
		t.Fatalf("%d keys kept after every packet came", b.Skipped())
	}
}

// TestTamperedChangesNothing: a packet with any byte changed is refused,
// and the session then opens the genuine packet.
func TestTamperedChangesNothing(t *testing.T) {
	a, b, _, _ := pair(t, "tamper")
	p := mustSeal(t, a, "genuine")
	for i := range p {
		bad := bytes.Clone(p)
		bad[i] ^= 0x40
		if _, err := b.Open(bad); err == nil {
			t.Fatalf("byte %d changed: accepted", i)
		}
	}
	mustOpen(t, b, p, "genuine")
}

func TestSkipBounds(t *testing.T) {
	a, b, _, _ := pair(t, "skip")
	mustOpen(t, b, mustSeal(t, a, "first"), "first")
	for range maxSkip {
		_ = mustSeal(t, a, "lost")
	}
	mustOpen(t, b, mustSeal(t, a, "far"), "far")
	if b.Skipped() != maxSkip {
		t.Fatalf("%d keys kept, want %d", b.Skipped(), maxSkip)
	}
	for range maxSkip + 1 {
		_ = mustSeal(t, a, "lost")
	}
	if _, err := b.Open(mustSeal(t, a, "too far")); !errors.Is(err, ErrReplay) {
		t.Fatalf("a packet %d ahead: %v", maxSkip+1, err)
	}
	if b.Skipped() != maxSkip {
		t.Fatalf("a refused packet changed the kept keys: %d", b.Skipped())
	}
	// More skips than the cap: the oldest keys go.
	a2, b2, _, _ := pair(t, "skip2")
	for round := range 3 {
		for range 600 {
			_ = mustSeal(t, a2, "lost")
		}
		mustOpen(t, b2, mustSeal(t, a2, "x"), "x")
		if b2.Skipped() > maxSkipped {
			t.Fatalf("round %d: %d keys kept", round, b2.Skipped())
		}
	}
}

func TestParseHeaderRefusals(t *testing.T) {
	a, _, _, _ := pair(t, "header")
	p := mustSeal(t, a, "x")
	cases := map[string][]byte{
		"short":          p[:headerSize-1],
		"version":        append([]byte{2}, p[1:]...),
		"type 0":         append([]byte{1, 0}, p[2:]...),
		"type 4":         append([]byte{1, 4}, p[2:]...),
		"length too big": append(bytes.Clone(p[:42]), append([]byte{0, 0, 0xff, 0xff}, p[46:]...)...),
		"trailing":       append(bytes.Clone(p), 0),
		"oversized":      append(bytes.Clone(p), make([]byte, MaxPacket)...),
	}
	for name, c := range cases {
		if _, _, err := ParseHeader(c); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

var update = flag.Bool("update", false, "rewrite testdata/devchan/kat.json from the code")

// kat is the known-answer record of one handshake and three messages.
type kat struct {
	AliceSeed, BobSeed string
	Rand               string // detRand seed
	Request, Response  string
	TranscriptHash     string
	ChainAB, ChainBA   string
	ConfirmA, ConfirmB string
	SASKey             string
	SAS                [SASWords]int
	Messages           []string // A→B "one", B→A "two", A→B "three"
}

// TestKnownAnswers: fixed keys and randomness give the recorded bytes
// (testdata/devchan/kat.json, generated by this code with -update: a
// second implementation checks itself against them).
func TestKnownAnswers(t *testing.T) {
	a, b, alice, bob := pair(t, "kat")
	rnd := &detRand{seed: "kat"}
	be, _ := primitive.GenerateX25519Key(rnd)
	_, req, _ := Initiate(alice.party, alice.key, bob.party, Digest(be.Public()), rnd)
	r, _ := ParseRequest(req, bob.party.Device)
	_, resp, _ := Accept(bob.party, bob.key, alice.party, r, be)
	sas, _ := a.SAS()
	as, bs := alice.key.Seed(), bob.key.Seed()
	got := kat{
		AliceSeed: hex.EncodeToString(as[:]), BobSeed: hex.EncodeToString(bs[:]), Rand: "kat",
		Request: hex.EncodeToString(req), Response: hex.EncodeToString(resp),
		TranscriptHash: hex.EncodeToString(a.th[:]),
		ChainAB:        hex.EncodeToString(a.k.chainAB[:]), ChainBA: hex.EncodeToString(a.k.chainBA[:]),
		ConfirmA: hex.EncodeToString(a.k.confirmA[:]), ConfirmB: hex.EncodeToString(a.k.confirmB[:]),
		SASKey: hex.EncodeToString(a.k.sas[:]), SAS: sas,
	}
	m1 := mustSeal(t, a, "one")
	mustOpen(t, b, m1, "one")
	m2 := mustSeal(t, b, "two")
	mustOpen(t, a, m2, "two")
	m3 := mustSeal(t, a, "three")
	mustOpen(t, b, m3, "three")
	for _, m := range [][]byte{m1, m2, m3} {
		got.Messages = append(got.Messages, hex.EncodeToString(m))
	}
	if b.th != a.th || b.k != a.k {
		t.Fatal("the two sides derived different keys")
	}
	path := filepath.Join("..", "..", "testdata", "devchan", "kat.json")
	data, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if !bytes.Equal(bytes.TrimSpace(want), data) {
		t.Fatalf("known answers changed:\n%s\nwant:\n%s", data, want)
	}
}

func FuzzParsePackets(f *testing.F) {
	alice, bob := newDevice("alice@example.org", 1), newDevice("bob@example.org", 2)
	rnd := &detRand{seed: "fuzz"}
	be, _ := primitive.GenerateX25519Key(rnd)
	_, req, _ := Initiate(alice.party, alice.key, bob.party, Digest(be.Public()), rnd)
	r, _ := ParseRequest(req, bob.party.Device)
	_, resp, _ := Accept(bob.party, bob.key, alice.party, r, be)
	f.Add(req)
	f.Add(resp)
	f.Add(Refuse(bob.party.Device, r))
	f.Fuzz(func(t *testing.T, p []byte) {
		h, body, err := ParseHeader(p)
		if err != nil {
			return
		}
		if len(body) != h.bodyBytes || len(p) > MaxPacket {
			t.Fatalf("body %d of %d", len(body), h.bodyBytes)
		}
		if req, err := ParseRequest(p, h.To); err == nil {
			again := Header{Type: TypeRequest, From: req.From, To: req.To, InitKey: req.InitKey, RespKey: req.RespKey}
			rr := request{identity: req.Identity, ephemeral: req.ephemeral, digest: req.Digest}
			if !bytes.Equal(again.encode(rr.encode()), p) {
				t.Fatal("a request does not re-encode to itself")
			}
		}
		if h.Type == TypeResponse {
			if r, err := parseResponse(body); err == nil && !bytes.Equal(r.encode(), body) {
				t.Fatal("a response does not re-encode to itself")
			}
		}
	})
}

// FuzzOpen: any packet into an established pair is refused or opened;
// a refused one changes nothing (the genuine next packet still opens).
func FuzzOpen(f *testing.F) {
	a, _, _, _ := pair(f, "fuzz-open")
	f.Add(mustSeal(f, a, "hello"), uint8(0))
	f.Add(mustSeal(f, a, ""), uint8(3))
	f.Fuzz(func(t *testing.T, p []byte, which uint8) {
		a, b, _, _ := pair(t, "fuzz-open")
		var genuine [][]byte
		for i := range 4 {
			genuine = append(genuine, mustSeal(t, a, fmt.Sprint("m", i)))
		}
		if _, err := b.Open(p); err == nil {
			return // the fuzzer built a valid packet (a genuine one, in effect)
		}
		mustOpen(t, b, genuine[which%4], fmt.Sprint("m", which%4))
	})
}

// TestMarshalRoundTrip: a session saved and restored at any point goes on
// as if it had never stopped (both sides, mid-conversation, with kept
// keys and a replay window), and a cut or padded blob is refused.
func TestMarshalRoundTrip(t *testing.T) {
	a, b, alice, bob := pair(t, "marshal")
	restore := func(s *Session) *Session {
		t.Helper()
		got, err := Unmarshal(s.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Marshal(), s.Marshal()) {
			t.Fatal("a restored session saves differently")
		}
		return got
	}
	p1 := mustSeal(t, a, "one")
	_ = mustSeal(t, a, "lost")
	p3 := mustSeal(t, a, "three")
	a = restore(a)
	mustOpen(t, b, p3, "three")
	b = restore(b)
	mustOpen(t, b, p1, "one")
	if _, err := b.Open(p3); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay after a restore: %v", err)
	}
	mustOpen(t, a, mustSeal(t, restore(b), "back"), "back")
	if b.Skipped() != 1 {
		t.Fatalf("%d kept keys", b.Skipped())
	}
	// An initiator waiting for its response, saved and restored.
	rnd := &detRand{seed: "marshal-await"}
	be, _ := primitive.GenerateX25519Key(rnd)
	w, req, _ := Initiate(alice.party, alice.key, bob.party, Digest(be.Public()), rnd)
	w = restore(w)
	r, _ := ParseRequest(req, bob.party.Device)
	_, resp, _ := Accept(bob.party, bob.key, alice.party, r, be)
	if err := w.HandleResponse(resp, alice.key); err != nil {
		t.Fatalf("response to a restored initiator: %v", err)
	}
	blob := a.Marshal()
	for _, bad := range [][]byte{blob[:len(blob)-1], append(bytes.Clone(blob), 0), nil, {2}} {
		if _, err := Unmarshal(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d bytes: %v", len(bad), err)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	a, _, _, _ := pair(f, "fuzz-unmarshal")
	_ = mustSeal(f, a, "x")
	f.Add(a.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Unmarshal(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Marshal(), b) {
			t.Fatal("a restored session saves differently")
		}
	})
}

// TestReplayWindowEdges: at every offset of top within its word, the
// oldest sequence the window still covers keeps its own state, and
// anything older is refused.
func TestReplayWindowEdges(t *testing.T) {
	for off := range uint64(64) {
		var f replayFilter
		first := 64 + off
		f.mark(first)
		top := first + windowSize - 1
		f.mark(top)
		if f.fresh(first) {
			t.Fatalf("offset %d: %d marked, then fresh after %d", off, first, top)
		}
		if !f.fresh(first + 1) {
			t.Fatalf("offset %d: %d never marked, not fresh", off, first+1)
		}
		f.mark(top + 1)
		if f.fresh(first) || f.fresh(first-1) {
			t.Fatalf("offset %d: a sequence out of the window is fresh", off)
		}
		if !f.fresh(first + 2) {
			t.Fatalf("offset %d: %d, in the window and never marked, is not fresh", off, first+2)
		}
	}
}

// TestWords: the word list is the EFF short list #2 in its order, 1,296
// distinct words with distinct three-letter prefixes (so a user may type
// or read only those).
func TestWords(t *testing.T) {
	if Word(0) != "aardvark" || Word(1) != "abandoned" || Word(SASSize-1) != "zucchini" {
		t.Fatalf("ends: %q %q %q", Word(0), Word(1), Word(SASSize-1))
	}
	seen := map[string]bool{}
	prefixes := map[string]bool{}
	for n := range SASSize {
		w := Word(n)
		if w == "" || seen[w] || prefixes[w[:3]] {
			t.Fatalf("word %d %q: empty or repeated", n, w)
		}
		seen[w], prefixes[w[:3]] = true, true
	}
}

// TestVerifyMAC: both ends of a session compute the same MAC for one
// direction and id; the other direction, another id, or another session
// (a man in the middle has one with each side) gives another.
func TestVerifyMAC(t *testing.T) {
	a, b, alice, bob := pair(t, "verify")
	id := [8]byte{1, 2, 3}
	ma, err := a.VerifyMAC(alice.party.Identity, bob.party.Identity, id)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := b.VerifyMAC(alice.party.Identity, bob.party.Identity, id)
	if err != nil || ma != mb {
		t.Fatalf("the two ends differ: %x %x %v", ma, mb, err)
	}
	back, _ := b.VerifyMAC(bob.party.Identity, alice.party.Identity, id)
	other, _ := b.VerifyMAC(alice.party.Identity, bob.party.Identity, [8]byte{9})
	c, _, _, _ := pair(t, "another")
	third, _ := c.VerifyMAC(alice.party.Identity, bob.party.Identity, id)
	if back == ma || other == ma || third == ma {
		t.Fatal("a MAC repeats across directions, ids or sessions")
	}
	wa, _ := a.Words()
	wb, _ := b.Words()
	wc, _ := c.Words()
	if wa != wb || wa == wc {
		t.Fatalf("words %v %v %v", wa, wb, wc)
	}
}

// TestBundleSwapWordsDiffer: a server that swaps bundles (and device
// lists) sits between two devices of one account, A1 and A2, as M: A1
// begins a session with M (M's key and one-time key under A2's name), M
// one with A2 (under A1's). Each pair of screens shows its own session's
// words, and M cannot make the two sets agree: it sends its ephemeral
// key to A2 before A2's one-time key (published only as a digest) is
// revealed in the response, and A1's ephemeral key reaches it only after
// M's one-time key was committed by its digest. Over 500 runs the words
// never match (a match is 2^-51.7 per run), so the users reject, and
// package keysync's TestReject shows that nothing the group shares then
// leaves either device.
func TestBundleSwapWordsDiffer(t *testing.T) {
	a1, a2 := newDevice("alice@example.org", 1), newDevice("alice@example.org", 2)
	m := newDevice("alice@example.org", 9)
	m.party.Device = a2.party.Device // M answers under A2's device id
	for i := range 500 {
		rnd := &detRand{seed: fmt.Sprintf("swap-%d", i)}
		// Session 1: A1 → "A2", the server having given it M's bundle.
		mOneTime, _ := primitive.GenerateX25519Key(rnd)
		s1, req1, err := Initiate(a1.party, a1.key, m.party, Digest(mOneTime.Public()), rnd)
		if err != nil {
			t.Fatal(err)
		}
		r1, err := ParseRequest(req1, m.party.Device)
		if err != nil {
			t.Fatal(err)
		}
		m1, resp1, err := Accept(m.party, m.key, a1.party, r1, mOneTime)
		if err != nil {
			t.Fatal(err)
		}
		if err := s1.HandleResponse(resp1, a1.key); err != nil {
			t.Fatal(err)
		}
		// Session 2: M → A2 under A1's device id, with M's key (the
		// server gave A2 M's key for A1).
		mAsA1 := newDevice("alice@example.org", 9)
		mAsA1.party.Device = a1.party.Device
		a2OneTime, _ := primitive.GenerateX25519Key(rnd)
		m2, req2, err := Initiate(mAsA1.party, mAsA1.key, a2.party, Digest(a2OneTime.Public()), rnd)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseRequest(req2, a2.party.Device)
		if err != nil {
			t.Fatal(err)
		}
		s2, resp2, err := Accept(a2.party, a2.key, mAsA1.party, r2, a2OneTime)
		if err != nil {
			t.Fatal(err)
		}
		if err := m2.HandleResponse(resp2, mAsA1.key); err != nil {
			t.Fatal(err)
		}
		w1, _ := s1.Words()
		wm1, _ := m1.Words()
		w2, _ := s2.Words()
		if w1 != wm1 {
			t.Fatal("the two ends of one session show different words")
		}
		if w1 == w2 {
			t.Fatalf("run %d: the screens of A1 and A2 agree through a man in the middle: %v", i, w1)
		}
	}
}
