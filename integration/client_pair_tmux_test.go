//go:build integration

package integration

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// screenWords are the five words the full-screen client shows last.
var screenWordsRe = regexp.MustCompile(`\b([A-Z][A-Z-]{2,}(?: [A-Z][A-Z-]{2,}){4})\b`)

func screenWords(t *testing.T, scr string) string {
	t.Helper()
	m := screenWordsRe.FindAllStringSubmatch(scr, -1)
	if m == nil {
		t.Fatalf("no words on the screen:\n%s", scr)
	}
	return m[len(m)-1][1]
}

// TestIntegrationClientPairTmux: KeySync as a user meets it, in three
// real terminals on a real server. Alice's laptop verified Bob's desk
// with words. Her laptop and phone pair (/devices pair on both, the words
// read from both screens, /devices accept on both); then her tablet joins
// them, answered by whichever grouped device is first. The tablet then
// trusts Bob's desk without any action (/why says who vouched), and when
// the laptop removes the tablet, Bob's client distrusts it and excludes
// it from the room.
func TestIntegrationClientPairTmux(t *testing.T) {
	s := serverFromEnv(t)
	aAcct, bAcct := s.cmdAccount(t, 1), s.cmdAccount(t, 2)
	room := s.newRoom(t)
	clientBin, _ := buildCommands(t)
	dir := t.TempDir()
	alice, bob := bare(aAcct.jid), bare(bAcct.jid)

	start := func(name string) *term {
		tm := newTerm(t, 200, 60)
		cfg := s.clientConfig(t, dir, name, aAcct, "everyone", room)
		tm.exec(writeScript(t, dir, name, aAcct, "passphrase of the "+name, clientBin, "-label", name, "-config", cfg))
		return tm
	}
	laptop := start("laptop")
	laptop.waitText("joined the session")
	desk := startProc(t, "desk", secretEnv(bAcct, "passphrase of the desk"), true, clientBin, "-plain", "-config",
		s.clientConfig(t, dir, "desk", bAcct, "everyone", room))
	desk.waitFor("joined the session")
	phone := start("phone")
	laptop.waitText("“phone”")
	laptop.typeLine("/invite " + alice)
	phone.waitText("joined the session")

	// The laptop verifies Bob's desk with words.
	laptop.typeLine("/verify " + bob + " live")
	desk.waitFor("asks to verify this device")
	scr := laptop.waitText("compare these words")
	if wl, wd := screenWords(t, scr), waitWords(desk); wl != wd {
		t.Fatalf("laptop %q, desk %q", wl, wd)
	}
	laptop.typeLine("/verify " + bob + " same")
	desk.writeLine("/verify " + alice + " same")
	laptop.waitText("is authenticated")

	// Laptop and phone pair.
	laptop.typeLine("/devices pair")
	phone.typeLine("/devices pair")
	sl := laptop.waitText("pairing with your device")
	sp := phone.waitText("pairing with your device")
	if wl, wp := screenWords(t, sl), screenWords(t, sp); wl != wp {
		t.Fatalf("laptop %q, phone %q", wl, wp)
	}
	laptop.typeLine("/devices accept")
	phone.typeLine("/devices accept")
	laptop.waitText("in a device group with")
	phone.waitText("in a device group with")
	phone.waitText("vouched for by " + alice + "/")

	// The tablet joins the group of two. Alice has verified devices now,
	// so her new tablet is undecided on them until it pairs: included
	// only after.
	tablet := start("tablet")
	tablet.waitText("waiting to be included")
	tablet.typeLine("/devices pair")
	st := tablet.waitText("joining the device group of")
	// Whichever grouped device answered first shows the words too.
	var active *term
	deadline := time.Now().Add(cmdBound)
	for active == nil {
		for _, tm := range []*term{laptop, phone} {
			if scr = tm.screen(); strings.Contains(scr, "asks to join your device group") {
				active = tm
				break
			}
		}
		if active == nil && time.Now().After(deadline) {
			t.Fatalf("no grouped device shows the tablet's words; laptop:\n%s\nphone:\n%s", laptop.screen(), phone.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if wt, wa := screenWords(t, st), screenWords(t, scr); wt != wa {
		t.Fatalf("tablet %q, active device %q", wt, wa)
	}
	tablet.typeLine("/devices accept")
	active.typeLine("/devices accept")
	tablet.waitText("in a device group with")
	laptop.typeLine("/invite " + alice)
	tablet.waitText("joined the session")
	tablet.typeLine("/why " + bob)
	tablet.waitText("vouched for by " + alice + "/")
	tablet.typeLine("/devices")
	tablet.waitText("3 devices in your device group")

	// The laptop removes the tablet: Bob's client distrusts it on the
	// laptop's word and excludes it.
	// Its own row of /devices (the rows of the group's other devices
	// come first: the address is taken from the one "this device" marks).
	m := regexp.MustCompile(`(` + regexp.QuoteMeta(alice) + `/mpenc-[0-9a-f]+): this device`).FindStringSubmatch(tablet.waitText(": this device"))
	if m == nil {
		t.Fatalf("no address of the tablet on its screen:\n%s", tablet.screen())
	}
	tabletID := m[1]
	laptop.typeLine("/devices remove " + tabletID)
	laptop.waitText("removed " + tabletID)
	desk.waitFor("distrusted automatically")
	desk.waitOutput("the tablet excluded", func(out string) bool {
		return strings.Contains(out, "no longer trusted: "+tabletID) && strings.Contains(out, "Excluding from the session")
	})
}
