package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/transcript"
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

// rowScanner hands fixed column values to scanEntry, as a database row
// would.
type rowScanner []any

func (r rowScanner) Scan(dest ...any) error {
	if len(dest) != len(r) {
		return errors.New("column count")
	}
	for i, d := range dest {
		switch d := d.(type) {
		case *int64:
			*d = r[i].(int64)
		case *string:
			*d = r[i].(string)
		case *[]byte:
			*d = r[i].([]byte)
		default:
			return errors.New("column type")
		}
	}
	return nil
}

// FuzzScanEntry: a history row with any values (a damaged or hostile
// file) is read back as an entry that keeps every bound, or refused as
// corrupt; never a panic. The cut of an unencrypted message is checked
// like the rest.
func FuzzScanEntry(f *testing.F) {
	f.Add(int64(3), []byte(nil), "eve@x/r", "text", `[]`, `[]`, int64(0), int64(0), int64(100), "")
	f.Add(int64(1), make([]byte, 20), "bob@x/r", "hi", `["a@b/c"]`, `[1]`, int64(1), int64(0), int64(0), "laptop")
	f.Add(int64(1), make([]byte, 20), "bob@x/r", "hi", `[]`, `[]`, int64(0), int64(2), int64(5), strings.Repeat("x", 65))
	f.Fuzz(func(t *testing.T, kind int64, id []byte, author, body, list, ints string, own, ack, cut int64, label string) {
		row := rowScanner{int64(1), kind, id, author, body, int64(0), own, list, list, list, ints, ack, list, int64(0), int64(0), list, int64(0), cut, label}
		e, err := scanEntry(row)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if e.Cut < 0 || e.Cut > maxTextSize || e.Cut > 0 && e.Kind != kindPlain {
			t.Fatalf("cut %d on a %s entry", e.Cut, e.Kind)
		}
		if len(e.AuthorLabel) > maxAuthorLabel || !utf8.ValidString(e.AuthorLabel) {
			t.Fatalf("author label of %d bytes kept", len(e.AuthorLabel))
		}
		if len(e.Text) > maxTextSize || !utf8.ValidString(e.Text) || hasID(e.Kind) && len(id) != transcript.IDSize || !hasID(e.Kind) && id != nil {
			t.Fatalf("entry %+v from id %x", e, id)
		}
		if _, ok := code(kindCodes, e.Kind); !ok {
			t.Fatalf("kind %q", e.Kind)
		}
	})
}
