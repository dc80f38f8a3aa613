package store

import (
	"bytes"
	"testing"

	"github.com/mpenc/mpenc/crypto"
)

// FuzzDecodeSealed: the sealed-key decoder never panics, accepts only
// blobs of the exact size with bounded parameters, and what it accepts
// re-encodes to the same bytes (one encoding per value).
func FuzzDecodeSealed(f *testing.F) {
	var seed [32]byte
	sk := crypto.NewSigningKey(seed)
	blob, err := seal(&seed, sk.Public(), []byte("passphrase"), fastKDF, &seqReader{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(blob)
	f.Add(blob[:40])
	f.Add([]byte("MPKS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := decodeSealed(b)
		if err != nil {
			return
		}
		if len(b) != sealedSize || k.kdf.check() != nil {
			t.Fatalf("accepted a blob of %d bytes with %v", len(b), k.kdf)
		}
		if !bytes.Equal(k.encode(), b) {
			t.Fatal("re-encoding differs")
		}
	})
}

// FuzzOpenSealed: opening any blob whose parameters are cheap never
// panics and never returns a key that is not the stored public key's.
func FuzzOpenSealed(f *testing.F) {
	var seed [32]byte
	seed[3] = 9
	sk := crypto.NewSigningKey(seed)
	blob, err := seal(&seed, sk.Public(), []byte("passphrase"), fastKDF, &seqReader{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(blob, []byte("passphrase"))
	f.Add(blob, []byte("passphrasf"))
	f.Fuzz(func(t *testing.T, b, pass []byte) {
		k, err := decodeSealed(b)
		if err != nil || uint64(k.kdf.Time)*uint64(k.kdf.MemoryKiB) > 4096 || k.kdf.Threads > 4 {
			return // keep each run cheap; the bounds themselves are checked above
		}
		got, err := open(b, sk.Public(), pass)
		if err == nil && got.Public() != sk.Public() {
			t.Fatal("opened a key that is not the stored public key's")
		}
	})
}

// FuzzDecodeLists: the JSON list decoders for history rows never panic
// and enforce their caps.
func FuzzDecodeLists(f *testing.F) {
	f.Add(`["a@b/c","d@e/f"]`)
	f.Add(`[1,2,3]`)
	f.Add(`[]`)
	f.Add(`{"x":1}`)
	f.Fuzz(func(t *testing.T, s string) {
		if l, err := decodeStrings(s); err == nil {
			if len(l) > maxListMembers {
				t.Fatal("list over its cap")
			}
			for _, m := range l {
				if m == "" {
					t.Fatal("empty JID accepted")
				}
			}
		}
		if l, err := decodeInts(s); err == nil && len(l) > maxLogParents {
			t.Fatal("parents over their cap")
		}
	})
}
