package app

import (
	"strings"
	"testing"
)

// TestVerifyMessages: each message reads back as written; malformed ones
// are refused.
func TestVerifyMessages(t *testing.T) {
	id := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	for _, m := range []verifyMsg{
		{kind: "request", id: id},
		{kind: "mac", id: id, mac: [32]byte{9, 9, 9}},
		{kind: "cancel", id: id, reason: "mismatch"},
		{kind: "cancel", id: id, reason: "timeout"},
	} {
		got, err := parseVerifyMsg(m.encode())
		if err != nil || got != m {
			t.Errorf("%+v read back as %+v, %v", m, got, err)
		}
	}
	for _, p := range []string{
		``, `<request/>`,
		`<request xmlns='https://github.com/mpenc/mpenc/ns/verify/2' id='0102030405060708'/>`,
		`<request xmlns='https://github.com/mpenc/mpenc/ns/verify/1' id='01020304'/>`,
		`<request xmlns='https://github.com/mpenc/mpenc/ns/verify/1' id='0102030405060708'><x/></request>`,
		`<mac xmlns='https://github.com/mpenc/mpenc/ns/verify/1' id='0102030405060708'>AAAA</mac>`,
		`<mac xmlns='https://github.com/mpenc/mpenc/ns/verify/1' id='0102030405060708'>` + strings.Repeat("A", 600) + `</mac>`,
		`<hello xmlns='https://github.com/mpenc/mpenc/ns/verify/1' id='0102030405060708'/>`,
	} {
		if _, err := parseVerifyMsg([]byte(p)); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
	if m, err := parseVerifyMsg([]byte(`<cancel xmlns='https://github.com/mpenc/mpenc/ns/verify/1' id='0102030405060708' reason='whatever'/>`)); err != nil || m.reason != "declined" {
		t.Errorf("an unknown reason: %+v, %v", m, err)
	}
}

// FuzzVerifyMessage: the decoder never panics, and what it accepts
// encodes back to the same message.
func FuzzVerifyMessage(f *testing.F) {
	id := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	f.Add(verifyMsg{kind: "mac", id: id}.encode())
	f.Add(verifyMsg{kind: "request", id: id}.encode())
	f.Add(verifyMsg{kind: "cancel", id: id, reason: "timeout"}.encode())
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := parseVerifyMsg(p)
		if err != nil {
			return
		}
		q := m.encode()
		m2, err := parseVerifyMsg(q)
		if err != nil || m2 != m {
			t.Fatalf("%q → %+v → %q → %+v, %v", p, m, q, m2, err)
		}
	})
}
