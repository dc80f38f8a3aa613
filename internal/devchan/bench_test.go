package devchan

import (
	"crypto/aes"
	"crypto/cipher"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/primitive"
)

// handshake runs one whole handshake (both sides) and returns the pair.
func handshake(b *testing.B, alice, bob device, rnd *detRand) (*Session, *Session) {
	be, _ := primitive.GenerateX25519Key(rnd)
	a, req, err := Initiate(alice.party, alice.key, bob.party, Digest(be.Public()), rnd)
	if err != nil {
		b.Fatal(err)
	}
	r, err := ParseRequest(req, bob.party.Device)
	if err != nil {
		b.Fatal(err)
	}
	s, resp, err := Accept(bob.party, bob.key, alice.party, r, be)
	if err != nil {
		b.Fatal(err)
	}
	if err := a.HandleResponse(resp, alice.key); err != nil {
		b.Fatal(err)
	}
	return a, s
}

// BenchmarkRatioHandshake measures a whole handshake (both sides: two
// key generations, two identity conversions, six Diffie-Hellman values,
// HKDF, two MACs) against one X25519 operation timed in the same loop,
// and reports the ratio: the handshake's cost in X25519 operations.
//
//	go test -run '^$' -bench Ratio -count 5 ./internal/devchan/
func BenchmarkRatioHandshake(b *testing.B) {
	alice, bob := newDevice("alice@example.org", 1), newDevice("bob@example.org", 2)
	rnd := &detRand{seed: "bench"}
	x, _ := primitive.GenerateX25519Key(rnd)
	peer, _ := primitive.GenerateX25519Key(rnd)
	var hs, dh time.Duration
	for b.Loop() {
		t0 := time.Now()
		handshake(b, alice, bob, rnd)
		t1 := time.Now()
		for range 4 {
			if _, err := x.DH(peer.Public()); err != nil {
				b.Fatal(err)
			}
		}
		t2 := time.Now()
		hs += t1.Sub(t0)
		dh += t2.Sub(t1) / 4
	}
	b.ReportMetric(float64(hs)/float64(dh), "X25519/handshake")
	b.ReportMetric(float64(hs.Nanoseconds())/float64(b.N), "ns/handshake")
	b.ReportMetric(float64(dh.Nanoseconds())/float64(b.N), "ns/X25519")
}

// BenchmarkRatioMessage measures sealing and opening a 128-byte payload
// (ratchet steps, HKDF, AES-256-GCM over the 256-byte padded plaintext,
// the replay window) against AES-256-GCM alone over 256 bytes with a
// fresh cipher (as each message has its own key), timed in the same loop.
func BenchmarkRatioMessage(b *testing.B) {
	alice, bob := newDevice("alice@example.org", 1), newDevice("bob@example.org", 2)
	a, s := handshake(b, alice, bob, &detRand{seed: "bench-msg"})
	msg := make([]byte, 128)
	// Confirm first, so that every measured packet is a plain data packet.
	p, _ := a.Seal(msg)
	if _, err := s.Open(p); err != nil {
		b.Fatal(err)
	}
	p, _ = s.Seal(msg)
	if _, err := a.Open(p); err != nil {
		b.Fatal(err)
	}
	key, nonce, plain := make([]byte, 32), make([]byte, 12), make([]byte, 256)
	var msgT, aeadT time.Duration
	for b.Loop() {
		t0 := time.Now()
		p, err := a.Seal(msg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Open(p); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		blk, _ := aes.NewCipher(key)
		g, _ := cipher.NewGCM(blk)
		ct := g.Seal(nil, nonce, plain, msg[:47])
		blk, _ = aes.NewCipher(key)
		g, _ = cipher.NewGCM(blk)
		if _, err := g.Open(nil, nonce, ct, msg[:47]); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		msgT += t1.Sub(t0)
		aeadT += t2.Sub(t1)
	}
	b.ReportMetric(float64(msgT)/float64(aeadT), "AEAD/message")
	b.ReportMetric(float64(msgT.Nanoseconds())/float64(b.N), "ns/message")
	b.ReportMetric(float64(aeadT.Nanoseconds())/float64(b.N), "ns/AEAD")
}
