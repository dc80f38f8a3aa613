//go:build integration

package integration

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

var plainWordsRe = regexp.MustCompile(`\n\s+([A-Z-]+(?: [A-Z-]+){4})\n`)

// wordsAfter returns the five words the line-mode client printed after
// the last "compare these words" in out ("" if not yet printed).
func wordsAfter(out string) string {
	i := strings.LastIndex(out, "compare these words")
	if i < 0 {
		return ""
	}
	m := plainWordsRe.FindStringSubmatch(out[i:])
	if m == nil {
		return ""
	}
	return m[1]
}

// waitWords waits until p printed words after its last "compare these
// words", and returns them.
func waitWords(p *proc) string {
	p.t.Helper()
	return wordsAfter(p.waitOutput("the words", func(out string) bool { return wordsAfter(out) != "" }))
}

// TestIntegrationClientVerifyLive: the line-mode client on real servers,
// as a user types it. Alice's laptop and phone verify each other with
// words; then the laptop and Bob's desk do. The desk's verification of
// the laptop makes the phone, blindly trusted until then, automatically
// distrusted there (TOAKAFA) — and the laptop's trust message vouches
// for it a moment later: the desk must not exclude the phone meanwhile
// (a new-user trial saw it kicked), nor raise an alarm over it, and shows
// it verified automatically.
func TestIntegrationClientVerifyLive(t *testing.T) {
	s := serverFromEnv(t)
	aAcct, bAcct := s.cmdAccount(t, 1), s.cmdAccount(t, 2)
	room := s.newRoom(t)
	clientBin, _ := buildCommands(t)
	dir := t.TempDir()
	alice, bob := bare(aAcct.jid), bare(bAcct.jid)
	laptop := startProc(t, "laptop", secretEnv(aAcct, "passphrase of the laptop"), true, clientBin, "-plain", "-config",
		s.clientConfig(t, dir, "laptop", aAcct, "everyone", room))
	laptop.waitFor("joined the session")
	phone := startProc(t, "phone", secretEnv(aAcct, "passphrase of the phone"), true, clientBin, "-plain", "-config",
		s.clientConfig(t, dir, "phone", aAcct, "everyone", room))
	// Another device of the account is never included by itself (it
	// may be someone holding the password): the laptop invites it.
	laptop.waitFor(alice + "/")
	laptop.writeLine("/invite " + alice)
	phone.waitFor("joined the session")
	desk := startProc(t, "desk", secretEnv(bAcct, "passphrase of the desk"), true, clientBin, "-plain", "-config",
		s.clientConfig(t, dir, "desk", bAcct, "everyone", room))
	desk.waitFor("joined the session")

	// The laptop and the phone: the same words on both screens.
	deadline := time.Now().Add(cmdBound)
	for !strings.Contains(phone.output(), "asks to verify this device") {
		if time.Now().After(deadline) {
			t.Fatalf("no words on the phone; laptop:\n%s", laptop.output())
		}
		laptop.writeLine("/verify " + alice + " live")
		time.Sleep(3 * time.Second)
	}
	laptop.waitFor("compare these words")
	if wl, wp := waitWords(laptop), waitWords(phone); wl != wp {
		t.Fatalf("laptop %q, phone %q", wl, wp)
	}
	laptop.writeLine("/verify " + alice + " same")
	phone.writeLine("/verify " + alice + " same")
	laptop.waitFor("is authenticated")
	phone.waitFor("is authenticated")

	// The laptop and the desk.
	mark := len(desk.output())
	laptop.writeLine("/verify " + bob + " live")
	desk.waitOutput("the desk's words", func(out string) bool { return strings.Contains(out[mark:], "asks to verify this device") })
	laptop.waitOutput("the laptop's words", func(out string) bool { return strings.Count(out, "compare these words") >= 2 })
	if wl, wd := waitWords(laptop), waitWords(desk); wl != wd {
		t.Fatalf("laptop %q, desk %q", wl, wd)
	}
	desk.writeLine("/verify " + alice + " same")
	laptop.writeLine("/verify " + bob + " same")
	desk.waitFor("is authenticated")
	desk.waitOutput("the phone vouched for", func(out string) bool {
		return strings.Contains(out[mark:], "verified automatically") && strings.Contains(out[mark:], "vouched for by "+alice+"/")
	})
	time.Sleep(3 * time.Second)
	if out := desk.output()[mark:]; strings.Contains(out, "Excluding from the session") || strings.Contains(out, "no longer trusted:") ||
		strings.Contains(out, "!! "+alice+"'s key") {
		t.Fatalf("the desk excluded the phone while its vouch was on its way:\n%s", out)
	}
	// And the phone still reads the desk.
	desk.writeLine("still all here")
	phone.waitFor(bob + ": still all here")
	phone.writeLine("/why " + bob)
	phone.waitFor("vouched for by " + alice + "/")
}
