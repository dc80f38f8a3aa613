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
