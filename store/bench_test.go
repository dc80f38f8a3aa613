package store

import (
	"fmt"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/trusttest"
	"github.com/mpenc/mpenc/trust"
)

// BenchmarkUnlockDefaultKDF: what a user waits for at start, and what each
// passphrase guess costs an attacker with the same hardware.
func BenchmarkUnlockDefaultKDF(b *testing.B) {
	var seed [32]byte
	sk := crypto.NewSigningKey(seed)
	blob, err := seal(&seed, sk.Public(), []byte("passphrase"), defaultKDF, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		k, err := open(blob, sk.Public(), []byte("passphrase"))
		if err != nil {
			b.Fatal(err)
		}
		k.Zero()
	}
}

// BenchmarkAppend: one history entry of 200 bytes per transaction, fsync'd
// (synchronous=FULL).
func BenchmarkAppend(b *testing.B) {
	st, err := Open(b.TempDir()+"/bench.db", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	a, _ := st.CreateAccount(ctx, "alice@example.org", "alice")
	h := st.roomHistory(a.ID, "room@muc.example.org")
	text := string(make([]byte, 200))
	i := 0
	for b.Loop() {
		if _, err := h.append(ctx, Entry{Kind: "message", ID: msgID(i), Author: "bob@example.org/r", Text: text,
			Members: []string{"alice@example.org/r", "bob@example.org/r"}, LogParents: []int{1}}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkPage50: the last 50 entries of a 10 000-entry history.
func BenchmarkPage50(b *testing.B) {
	st, err := Open(b.TempDir()+"/bench.db", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	a, _ := st.CreateAccount(ctx, "alice@example.org", "alice")
	h := st.roomHistory(a.ID, "room@muc.example.org")
	for i := range 10000 {
		if _, err := h.append(ctx, Entry{Kind: "message", ID: msgID(i), Author: "bob@example.org/r", Text: fmt.Sprint("message ", i),
			Members: []string{"alice@example.org/r", "bob@example.org/r"}, LogParents: []int{1}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		p, err := h.page(ctx, 0, 50)
		if err != nil || len(p) != 50 {
			b.Fatal(err)
		}
	}
}

// BenchmarkObserveKnown: a presence with a known key (one write
// transaction: last-seen is refreshed).
func BenchmarkObserveKnown(b *testing.B) {
	st, err := Open(b.TempDir()+"/bench.db", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	a, _ := st.CreateAccount(ctx, "alice@example.org", "alice")
	dir := &trust.Directory{Store: st.Trust(a.ID, trust.Config{})}
	dir.ObserveKey("bob@example.org/r", trusttest.Key(1))
	for b.Loop() {
		if err := dir.ObserveKey("bob@example.org/r", trusttest.Key(1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdentityKey: the directory's answer (one read transaction).
func BenchmarkIdentityKey(b *testing.B) {
	st, err := Open(b.TempDir()+"/bench.db", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	a, _ := st.CreateAccount(ctx, "alice@example.org", "alice")
	dir := &trust.Directory{Store: st.Trust(a.ID, trust.Config{})}
	dir.ObserveKey("bob@example.org/r", trusttest.Key(1))
	for b.Loop() {
		if _, err := dir.IdentityKey("bob@example.org/r"); err != nil {
			b.Fatal(err)
		}
	}
}
