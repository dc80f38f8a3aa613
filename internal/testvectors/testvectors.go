// Package testvectors finds and loads the conformance vectors in
// ../shared/vectors for tests. It is imported by tests only.
//
// The folder is $MPENC_VECTORS when set, else the "shared/vectors" folder
// beside the module root (the layout CI uses: the project and shared/ side
// by side). A missing folder fails the test with a clear message: the
// conformance tests must never pass by skipping.
package testvectors

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Dir returns the vectors folder or fails tb.
func Dir(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv("MPENC_VECTORS"); d != "" {
		return mustDir(tb, d)
	}
	wd, err := os.Getwd()
	if err != nil {
		tb.Fatalf("testvectors: %v", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return mustDir(tb, filepath.Join(d, "..", "shared", "vectors"))
		}
		if filepath.Dir(d) == d {
			tb.Fatalf("testvectors: no go.mod above %s", wd)
		}
	}
}

func mustDir(tb testing.TB, d string) string {
	tb.Helper()
	if st, err := os.Stat(d); err != nil || !st.IsDir() {
		tb.Fatalf("testvectors: the conformance vectors are missing at %s (set MPENC_VECTORS, or check out shared/ beside the project): %v", d, err)
	}
	return d
}

// Load decodes the JSON file name of the vectors folder into v.
func Load(tb testing.TB, name string, v any) {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(tb), name))
	if err != nil {
		tb.Fatalf("testvectors: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("testvectors: %s: %v", name, err)
	}
}

// Hex decodes a hex string (an optional 0x prefix is allowed) or fails tb.
func Hex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil {
		tb.Fatalf("testvectors: bad hex %q: %v", s, err)
	}
	return b
}

// Hex32 decodes a 64-digit hex string into an array or fails tb.
func Hex32(tb testing.TB, s string) [32]byte {
	tb.Helper()
	var a [32]byte
	b := Hex(tb, s)
	if len(b) != 32 {
		tb.Fatalf("testvectors: %q is %d bytes, want 32", s, len(b))
	}
	copy(a[:], b)
	return a
}
