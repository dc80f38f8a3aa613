package main

import (
	"strings"
	"testing"
)

func TestSanitize(t *testing.T) {
	for i, tt := range []struct {
		in, want string
		nl       bool
	}{
		0:  {"hello", "hello", false},
		1:  {"\x1b[31mred\x1b[0m", "[31mred[0m", false},
		2:  {"a\x07b\x00c\rd", "abcd", false},
		3:  {"line1\nline2", "line1 line2", false},
		4:  {"line1\nline2", "line1\nline2", true},
		5:  {"tab\there", "tab here", false},
		6:  {"\u202eevil\u202c", "evil", false},
		7:  {"csi\u009b2J", "csi2J", false},
		8:  {"bad\xffutf8", "bad\ufffdutf8", false},
		9:  {"zero\u200bwidth\u2066iso\u2069", "zerowidthiso", false},
		10: {"del\x7f", "del", false},
		11: {"héllo wörld ✓ 日本", "héllo wörld ✓ 日本", false},
		12: {"sep\u2028x", "sepx", true},
	} {
		if got := sanitize(tt.in, tt.nl); got != tt.want {
			t.Errorf("%d: sanitize(%q) = %q, want %q", i, tt.in, got, tt.want)
		}
	}
}

func TestSanitizeBounded(t *testing.T) {
	got := sanitize(strings.Repeat("x", 100000), true)
	if len(got) > maxDisplay+4 || !strings.HasSuffix(got, "…") {
		t.Fatalf("not bounded: %d bytes", len(got))
	}
}

func FuzzSanitize(f *testing.F) {
	f.Add("\x1b]0;title\x07", true)
	f.Fuzz(func(t *testing.T, s string, nl bool) {
		out := sanitize(s, nl)
		for _, r := range out {
			if nl && r == '\n' {
				continue // asked to keep newlines
			}
			if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || hiddenFormat(r) {
				t.Fatalf("sanitize(%q) kept %U", s, r)
			}
		}
	})
}
