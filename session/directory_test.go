package session_test

import (
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/session"
)

func TestMemoryDirectory(t *testing.T) {
	var d session.MemoryDirectory
	if _, err := d.IdentityKey("a"); err == nil {
		t.Fatal("unknown member has a key")
	}
	key := func(b byte) crypto.PublicKey {
		var seed [crypto.SeedSize]byte
		seed[0] = b
		return crypto.NewSigningKey(seed).Public()
	}
	k1, k2 := key(1), key(2)
	// A point of small order (the identity): anyone could sign under it.
	if err := d.ObserveKey("b", crypto.PublicKey{1}); err == nil {
		t.Fatal("a small-order key was accepted")
	}
	if err := d.ObserveKey("a", k1); err != nil {
		t.Fatal(err)
	}
	if err := d.ObserveKey("a", k1); err != nil {
		t.Fatal(err)
	}
	if err := d.ObserveKey("a", k2); err == nil {
		t.Fatal("a changed key was accepted")
	}
	if k, _ := d.IdentityKey("a"); k != k1 {
		t.Fatal("a changed key replaced the first")
	}
}
