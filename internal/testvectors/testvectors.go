// Package testvectors finds and loads the conformance vectors for tests. It
// is imported by tests only.
//
// The folder is $MPENC_VECTORS when set, else "testdata" at the module root
// (found by walking up from the working directory to go.mod), where the
// repository keeps the vectors (testdata/README.md says where they came
// from). A missing folder fails the test with a clear message: the
// conformance tests must never pass by skipping.
package testvectors

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mpenc/mpenc/internal/conformance"
)

// Dir returns the vectors folder or fails tb.
func Dir(tb testing.TB) string {
	tb.Helper()
	d, err := conformance.VectorsDir()
	if err != nil {
		tb.Fatal(err)
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
