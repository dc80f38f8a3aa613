package conformance

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// Report is the outcome of checking one file.
type Report struct {
	File     string
	Kind     Kind
	Passed   int
	Failed   int
	Failures []string
}

// check counts one check; on failure it records the formatted line.
func (r *Report) check(ok bool, format string, args ...any) bool {
	if ok {
		r.Passed++
		return true
	}
	r.Failed++
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
	return false
}

// fail records a failure that stops a part of the checks.
func (r *Report) fail(format string, args ...any) { r.check(false, format, args...) }

// equal checks got == want as strings.
func (r *Report) equal(what string, got, want any) bool {
	g, w := fmt.Sprint(got), fmt.Sprint(want)
	return r.check(g == w, "%s: got %s, want %s", what, g, w)
}

func unhex(s string) ([]byte, error) { return hex.DecodeString(strings.TrimPrefix(s, "0x")) }

func unhex32(s string) ([32]byte, error) {
	var a [32]byte
	b, err := unhex(s)
	if err != nil {
		return a, err
	}
	if len(b) != 32 {
		return a, fmt.Errorf("%d bytes, want 32", len(b))
	}
	copy(a[:], b)
	return a, nil
}

func hexes[T ~[32]byte](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = hex.EncodeToString(x[:])
	}
	return out
}
