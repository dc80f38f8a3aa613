package main

import (
	"strings"
	"testing"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/internal/trusttest"
	"github.com/mpenc/mpenc/trust"
)

// TestClientWhy: /why shows each known key of an account with every
// decision about it, and follows the key that caused one (here TOAKAFA:
// the blindly trusted key was automatically distrusted when another was
// verified).
func TestClientWhy(t *testing.T) {
	c, f, ts, _ := trustRoom(t)
	const bob = "bob@example.net"
	k1, k2 := trusttest.Key(41), trusttest.Key(42)
	if _, err := ts.Trust(bob, k2); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Verify(bob, k1); err != nil {
		t.Fatal(err)
	}
	c.input("/why " + bob)
	if len(f.notes) != 1 {
		t.Fatalf("notes %q, warnings %q", f.notes, f.warnings)
	}
	out := f.notes[0]
	fp1, fp2 := trust.FingerprintOf(k1).String(), trust.FingerprintOf(k2).String()
	for _, want := range []string{
		bob + ", key " + fp1 + ": verified\n  verified by you on ",
		bob + ", key " + fp2 + ": auto-distrusted\n  trusted by you without verification on ",
		"no longer trusted blindly from ",
		"when the account's key " + fp1[:9] + " was verified\n  " + bob + "'s key " + fp1[:9] + ": verified by you on ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/why lacks %q:\n%s", want, out)
		}
	}
	c.input("/why " + bob + " " + fp2[:4])
	if len(f.notes) != 2 || strings.Contains(f.notes[1], bob+", key "+fp1) {
		t.Errorf("/why with a fingerprint: %q", f.notes[1:])
	}
	c.input("/why carol@example.net")
	if len(f.warnings) != 1 || !strings.Contains(f.warnings[0], "no key of carol@example.net is known") {
		t.Errorf("/why of an unknown account: %q", f.warnings)
	}
}

// TestClientTrustNotice: a decision a trust message brought is a line in
// the system pane, a warning when it leaves the key untrusted; the
// user's own decisions (no By) are not repeated.
func TestClientTrustNotice(t *testing.T) {
	c, f, ts, _ := trustRoom(t)
	const bob = "bob@example.net"
	k, by := trusttest.Key(43), trusttest.Key(44)
	if _, err := ts.Verify(bob, k); err != nil {
		t.Fatal(err)
	}
	c.handle(app.Event{Kind: app.EventTrust, Trust: trust.Event{JID: bob, Key: k, Kind: 10}})
	if len(f.notes)+len(f.warnings) != 0 {
		t.Fatalf("the user's own decision repeated: %q %q", f.notes, f.warnings)
	}
	c.handle(app.Event{Kind: app.EventTrust, Trust: trust.Event{JID: bob, Key: k, Kind: 13, By: by, Member: "alice@example.org/mpenc-1"}})
	if len(f.notes) != 1 || !strings.Contains(f.notes[0], "verified automatically") || !strings.Contains(f.notes[0], "vouched for by alice@example.org/mpenc-1") {
		t.Fatalf("notes %q", f.notes)
	}
	if _, err := ts.Distrust(bob, k); err != nil {
		t.Fatal(err)
	}
	c.handle(app.Event{Kind: app.EventTrust, Trust: trust.Event{JID: bob, Key: k, Kind: 14, By: by, Member: "alice@example.org/mpenc-1"}})
	if len(f.warnings) != 1 || !strings.Contains(f.warnings[0], "distrusted automatically") {
		t.Fatalf("warnings %q", f.warnings)
	}
}

// TestClientVerifyAnswers: only a well-formed fingerprint that matches no
// key is the man-in-the-middle warning; an answer that is not one says
// so; "same" for an account with words shown for two of its devices is
// refused (each device's words are compared on their own); the words
// commands need a JID.
func TestClientVerifyAnswers(t *testing.T) {
	c, f, _, _ := trustRoom(t)
	for _, tt := range []struct{ input, want string }{
		{"/verify bob@example.org/b yes", "is not a fingerprint"},
		{"/verify bob@example.org/b rebuilt lioness epidemic tiebreaker sacrifice", "is not a fingerprint"},
		{"/verify bob@example.org/b 0000 0000 0000 0000 0000 0000 0000 0000", "does NOT match"},
		{"/verify live", "whom?"},
		{"/verify bob live", "is not a JID"},
		{"/verify bob@example.org Same", "no words are shown for bob@example.org"},
	} {
		n := len(f.warnings)
		c.input(tt.input)
		if len(f.warnings) != n+1 || !strings.Contains(f.warnings[n], tt.want) {
			t.Errorf("%s: %q, want %q", tt.input, f.warnings[n:], tt.want)
		}
	}
	c.comparing["bob@example.org/b"], c.comparing["bob@example.org/phone"] = true, true
	n := len(f.warnings)
	c.input("/verify bob@example.org same")
	if len(f.warnings) != n+1 || !strings.Contains(f.warnings[n], "words are shown for 2 devices of bob@example.org") ||
		!c.comparing["bob@example.org/b"] || !c.comparing["bob@example.org/phone"] {
		t.Errorf("an answer for an account: %q", f.warnings[n:])
	}
	for _, s := range []string{"9841 6545 49ca a879 78e5 515a db40 7d6b", "98416545:49CA-a879 78e5515adb407d6b",
		strings.Repeat("word ", 16), "xmpp:a@b?trust-message"} {
		if !fingerprintLike(s) {
			t.Errorf("%q is not taken for a fingerprint", s)
		}
	}
	for _, s := range []string{"yes", "9841 6545", strings.Repeat("word ", 5), "zz41 6545 49ca a879 78e5 515a db40 7d6b"} {
		if fingerprintLike(s) {
			t.Errorf("%q is taken for a fingerprint", s)
		}
	}
}

// TestClientWhyDevice: /why with a full JID shows that device's key only.
func TestClientWhyDevice(t *testing.T) {
	c, f, _, _ := trustRoom(t)
	c.input("/why bob@example.org/phone")
	if len(f.notes) != 1 || strings.Count(f.notes[0], ", key ") != 1 ||
		!strings.Contains(f.notes[0], trust.FingerprintOf(trusttest.Key(5)).String()) {
		t.Fatalf("/why of a device: %q %q", f.notes, f.warnings)
	}
	c.input("/why bob@example.org")
	if len(f.notes) != 2 || strings.Count(f.notes[1], ", key ") != 3 {
		t.Fatalf("/why of an account: %q", f.notes[1:])
	}
}
