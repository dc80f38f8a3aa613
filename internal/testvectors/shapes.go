package testvectors

import (
	"testing"

	"github.com/mpenc/mpenc/internal/conformance"
)

// The vector shapes, defined once in internal/conformance.
type (
	Upstream   = conformance.Upstream
	Misc       = conformance.Misc
	Flow       = conformance.Flow
	FlowOp     = conformance.FlowOp
	FlowResult = conformance.FlowResult
	Draw       = conformance.Draw
	Trace      = conformance.Trace
)

// LoadUpstream loads upstream_kat.json.
func LoadUpstream(tb testing.TB) *Upstream {
	tb.Helper()
	u := new(Upstream)
	Load(tb, "upstream_kat.json", u)
	return u
}

// LoadMisc loads derived_misc.json.
func LoadMisc(tb testing.TB) *Misc {
	tb.Helper()
	m := new(Misc)
	Load(tb, "derived_misc.json", m)
	return m
}

// LoadFlow loads a greeter flow file.
func LoadFlow(tb testing.TB, name string) *Flow {
	tb.Helper()
	f := new(Flow)
	Load(tb, name, f)
	if len(f.Operations) == 0 {
		tb.Fatalf("testvectors: %s has no operations", name)
	}
	return f
}

// Key returns a named key of the upstream vectors or fails tb.
func Key(tb testing.TB, u *Upstream, name string) []byte {
	tb.Helper()
	b, err := u.Key(name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Packet returns a named packet of the upstream vectors or fails tb.
func Packet(tb testing.TB, u *Upstream, name string) []byte {
	tb.Helper()
	b, err := u.Packet(name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TLVField decodes a codec_tlv field or fails tb.
func TLVField(tb testing.TB, u *Upstream, name string, v any) {
	tb.Helper()
	if err := u.TLVField(name, v); err != nil {
		tb.Fatal(err)
	}
}
