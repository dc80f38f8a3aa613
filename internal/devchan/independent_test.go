package devchan

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"testing"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/curve25519"

	"github.com/mpenc/mpenc/internal/primitive"
)

// TestDerivationIndependently recomputes a session's transcript hash,
// keys, confirmations and first data packet from the protocol's text
// (docs/PROTOCOL.md "The device channel") with other code than the
// package's: x/crypto's curve25519, crypto/ecdh, edwards25519 directly,
// crypto/hkdf and crypto/hmac, and compares.
func TestDerivationIndependently(t *testing.T) {
	alice, bob := newDevice("alice@example.org", 1), newDevice("bob@example.org", 2)
	rnd := &detRand{seed: "independent"}
	be, _ := primitive.GenerateX25519Key(rnd)
	a, req, _ := Initiate(alice.party, alice.key, bob.party, Digest(be.Public()), rnd)
	r, _ := ParseRequest(req, bob.party.Device)
	_, resp, err := Accept(bob.party, bob.key, alice.party, r, be)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.HandleResponse(resp, alice.key); err != nil {
		t.Fatal(err)
	}
	ae := [32]byte(req[headerSize+32 : headerSize+64])
	bePub := be.Public()

	// Identity keys in Montgomery form, and the scalars of the seeds.
	mont := func(pub [32]byte) []byte {
		p, err := new(edwards25519.Point).SetBytes(pub[:])
		if err != nil {
			t.Fatal(err)
		}
		return p.BytesMontgomery()
	}
	scalar := func(seed [32]byte) []byte {
		h := sha512.Sum512(seed[:])
		return h[:32]
	}
	aliceSeed := alice.key.Seed()
	bobSeed := bob.key.Seed()
	// DH(IK_A, BE) from alice's side, DH(AE, IK_B) and DH(AE, BE) from
	// bob's (he holds BE's scalar and his identity's).
	dh1, err := curve25519.X25519(scalar(aliceSeed), bePub[:])
	if err != nil {
		t.Fatal(err)
	}
	dh2, err := curve25519.X25519(scalar(bobSeed), ae[:])
	if err != nil {
		t.Fatal(err)
	}
	beScalar := be.Scalar()
	bePriv, _ := ecdh.X25519().NewPrivateKey(beScalar[:])
	aePub, _ := ecdh.X25519().NewPublicKey(ae[:])
	dh3, err := bePriv.ECDH(aePub)
	if err != nil {
		t.Fatal(err)
	}
	// Bob's identity in Montgomery form is his scalar's public point.
	if pub, _ := curve25519.X25519(scalar(bobSeed), curve25519.Basepoint); string(pub) != string(mont(bob.party.Identity)) {
		t.Fatal("the Montgomery form of bob's key is not his scalar's point")
	}

	h := sha256.New()
	h.Write([]byte("mpenc/v1/p2p-th"))
	for _, b := range [][]byte{alice.party.Identity[:], bob.party.Identity[:], ae[:], bePub[:], alice.party.Device[:], bob.party.Device[:]} {
		h.Write(b)
	}
	for _, j := range []string{alice.party.Account, bob.party.Account} {
		h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(j))))
		h.Write([]byte(j))
	}
	th := h.Sum(nil)
	if string(th) != string(a.th[:]) {
		t.Fatalf("th %x, want %x", a.th, th)
	}
	ikm := append(append(append([]byte{}, dh1...), dh2...), dh3...)
	okm, err := hkdf.Key(sha256.New, ikm, th, "mpenc/v1/p2p-keys", 160)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range [][32]byte{a.k.chainAB, a.k.chainBA, a.k.confirmA, a.k.confirmB, a.k.sas} {
		if string(okm[32*i:32*i+32]) != string(k[:]) {
			t.Fatalf("key %d differs", i)
		}
	}
	hm := func(key, msg []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(msg)
		return m.Sum(nil)
	}
	if auth := hm(okm[96:128], append([]byte("responder confirms"), th...)); string(auth) != string(resp[len(resp)-32:]) {
		t.Fatal("the responder's confirmation differs")
	}
	// The first data packet: message key, AES-256-GCM key and nonce, and
	// the confirmation and flags in the associated data.
	p := mustSeal(t, a, "independent")
	mk := hm(okm[0:32], []byte{1})
	kn, _ := hkdf.Key(sha256.New, mk, nil, "mpenc/v1/p2p-msg", 44)
	block, _ := aes.NewCipher(kn[:32])
	g, _ := cipher.NewGCM(block)
	adLen := headerSize + 1 + 32
	if p[headerSize] != 1 || string(p[headerSize+1:adLen]) != string(hm(okm[64:96], append([]byte("initiator confirms"), th...))) {
		t.Fatal("the initiator's confirmation differs")
	}
	pt, err := g.Open(nil, kn[32:], p[adLen:], p[:adLen])
	if err != nil {
		t.Fatalf("the first data packet does not open independently: %v", err)
	}
	if n := binary.BigEndian.Uint32(pt); string(pt[4:4+n]) != "independent" || len(pt) != 256 {
		t.Fatalf("plaintext %q (%d bytes)", pt[4:], len(pt))
	}
}
