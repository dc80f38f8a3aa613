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
	k1, k2 := crypto.PublicKey{1}, crypto.PublicKey{2}
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
