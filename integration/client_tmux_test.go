//go:build integration

package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestIntegrationClientTmux drives the full-screen client in a real
// terminal (tmux send-keys and capture-pane) against the server, with the
// bot: the client founds a room (so it is the room's moderator), invites
// the bot, which greets; the bot's encrypted answers to !ping and !echo
// appear on screen; a message is selected to show its details; a second
// client (line mode) is invited, talks, and is kicked; the client quits
// properly and, restarted, shows the history again, then verifies the
// bot's key with the line /verify shows (an abbreviated JID names
// nobody). No log holds message text or secrets.
func TestIntegrationClientTmux(t *testing.T) {
	s := serverFromEnv(t)
	botAcct, aAcct, bAcct := s.cmdAccount(t, 0), s.cmdAccount(t, 1), s.cmdAccount(t, 2)
	room := s.newRoom(t)
	clientBin, botBin := buildCommands(t)
	dir := t.TempDir()
	botName, aName, bName := bare(botAcct.jid), bare(aAcct.jid), bare(bAcct.jid)

	tm := newTerm(t, 220, 60)
	cfgA := s.clientConfig(t, dir, "a", aAcct, "manual", room)
	scriptA := writeScript(t, dir, "a", aAcct, "passphrase of a", clientBin, "-config", cfgA)
	tm.exec(scriptA)
	tm.waitText("joined the session")

	// The bot includes nobody by itself here, so the second client waits
	// for our invitation.
	botCfg := s.botConfig(t, dir, botAcct, botRoom{room, "manual"})
	bot := startProc(t, "bot", secretEnv(botAcct, "passphrase of the bot"), false, botBin, "-config", botCfg)
	logOnFailure(t, filepath.Join(dir, "bot.log"), filepath.Join(dir, "a.db.log"), filepath.Join(dir, "b.db.log"))
	tm.waitText(botName + "/")
	tm.waitText("waits to be included: /invite " + botName)
	tm.typeLine("/invite " + botName)
	tm.waitScreen("the bot's greeting", func(scr string) bool {
		return regexp.MustCompile(`#\d+ ` + regexp.QuoteMeta(botName) + `: Hello ` + regexp.QuoteMeta(aName) + `!`).MatchString(scr)
	})
	tm.typeLine("!ping")
	tm.waitText(botName + ": pong")
	tm.typeLine("!echo words only the room can read")
	tm.waitScreen("the echo", func(scr string) bool {
		return regexp.MustCompile(`#\d+ ` + regexp.QuoteMeta(botName) + `: words only the room can read`).MatchString(scr)
	})

	// Select the last message: its details show.
	tm.key("Up")
	scr := tm.waitText("selected message")
	for _, want := range []string{"sent to: ", botName, "answers: #", "by " + botName} {
		if !strings.Contains(scr, want) {
			t.Errorf("details lack %q:\n%s", want, scr)
		}
	}
	tm.key("Escape")
	tm.waitScreen("the details closed", func(scr string) bool { return !strings.Contains(scr, "selected message") })

	tm.typeLine("/who")
	tm.waitScreen("the member list", func(scr string) bool {
		return regexp.MustCompile(regexp.QuoteMeta(botName) + `/\S+ “[^”]+”: member \(unverified, key [0-9a-f]{4}… \(not for verification\)`).MatchString(scr)
	})

	tm.typeLine("/fingerprint")
	scr = tm.waitText("your fingerprint")
	if !strings.Contains(scr, "████") {
		t.Errorf("no QR code on screen:\n%s", scr)
	}

	// A second client, in line mode: invited, talks, kicked.
	cfgB := s.clientConfig(t, dir, "b", bAcct, "manual", room)
	b := startProc(t, "client b", secretEnv(bAcct, "passphrase of b"), true, clientBin, "-plain", "-config", cfgB)
	tm.waitText("waits to be included: /invite " + bName)
	tm.typeLine("/invite " + bName)
	b.waitFor("joined the session")
	b.writeLine("hello from the line mode")
	tm.waitText(bName + ": hello from the line mode")
	tm.typeLine("/kick " + bName)
	tm.waitText("(−" + bName + ")")
	// We created the room, so we are its moderator: b is kicked from the
	// room once the old subsession has shut down.
	tm.waitText(bName + "/")
	b.waitFor("out of the session")
	tm.waitScreen("b out of the room", func(scr string) bool {
		return regexp.MustCompile(regexp.QuoteMeta(bName) + `/\S+ left the room`).MatchString(scr)
	})
	// Removed from its only room, the line mode ends by itself with the
	// status for that (docs/USAGE.md "Exit status").
	b.in.Close()
	var ee *exec.ExitError
	if err := b.wait(); !errors.As(err, &ee) || ee.ExitCode() != 5 {
		t.Errorf("client b: %v, want exit status 5", err)
	}

	// Quit properly, then start again: the history is back, and each
	// message reads as it did live (author, text, marks: one rendering).
	live := messageRows(tm.screen(), false)
	tm.typeLine("/quit")
	if st := tm.waitExit(); st != "0" {
		t.Fatalf("the client exited with status %s; screen:\n%s", st, tm.screen())
	}
	tm.exec(scriptA)
	scr = tm.waitText("end of history")
	restarted := messageRows(scr, true)
	same := 0
	for num, l := range live {
		if r, ok := restarted[num]; ok {
			same++
			if r != l {
				t.Errorf("message #%s live:\n%s\nafter the restart:\n%s", num, l, r)
			}
		}
	}
	if same < 4 {
		t.Errorf("only %d messages both live and after the restart:\nlive %q\nrestarted %q", same, live, restarted)
	}
	for _, want := range []string{botName + ": pong", botName + ": words only the room can read", bName + ": hello from the line mode"} {
		if !strings.Contains(scr, want) {
			t.Errorf("history lacks %q:\n%s", want, scr)
		}
	}
	// The acknowledgements were recorded too: no message of ours from the
	// first run is shown as unconfirmed.
	if strings.Contains(scr, "?unconfirmed") {
		t.Errorf("acknowledged messages shown as unconfirmed after the restart:\n%s", scr)
	}
	// In the restarted client (so that the lines compared above stayed
	// on screen), verify the bot's key: an abbreviation of its JID names
	// nobody; /verify shows the fingerprint with the line that confirms
	// it, and that line verifies the key shown.
	short := botName[:len(botName)-2]
	tm.typeLine("/verify " + short)
	tm.waitText("no member " + short + " announced a key")
	tm.typeLine("/verify " + botName)
	var confirm []string
	tm.waitScreen("the bot's fingerprint and the line confirming it", func(scr string) bool {
		confirm = regexp.MustCompile(`/verify (` + regexp.QuoteMeta(botName) + `/\S+) confirm ([0-9a-f]{4} [0-9a-f]{4})`).FindStringSubmatch(scr)
		return confirm != nil
	})
	tm.typeLine("/verify " + confirm[1] + " confirm " + confirm[2])
	tm.waitText("is now verified")
	tm.typeLine("/who")
	tm.waitScreen("the bot verified", func(scr string) bool {
		return regexp.MustCompile(regexp.QuoteMeta(botName) + `/\S+ “[^”]+”: [^(\n]*\(verified, key`).MatchString(scr)
	})
	tm.typeLine("/quit")
	if st := tm.waitExit(); st != "0" {
		t.Fatalf("the restarted client exited with status %s; screen:\n%s", st, tm.screen())
	}
	if err := bot.stop(); err != nil {
		t.Errorf("bot: %v", err)
	}

	// Logs: never message text, passwords or passphrases.
	for _, f := range []string{filepath.Join(dir, "a.db.log"), filepath.Join(dir, "b.db.log"), filepath.Join(dir, "bot.log")} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"words only the room can read", "hello from the line mode", aAcct.password, bAcct.password, botAcct.password,
			"passphrase of a", "passphrase of b", "passphrase of the bot"} {
			if strings.Contains(string(data), secret) {
				t.Errorf("%s contains %q", f, secret)
			}
		}
	}
}

// messageRows returns the message lines in the messages pane of a
// screen, by number (the first row of each: long ones wrap the same way
// at the same width). history: only those above "end of history".
func messageRows(scr string, history bool) map[string]string {
	re := regexp.MustCompile(`^\d\d:\d\d #(\d+) `)
	out := map[string]string{}
	for _, row := range strings.Split(scr, "\n") {
		_, rest, ok := strings.Cut(row, "│")
		if !ok {
			continue
		}
		text, _, _ := strings.Cut(rest, "│")
		text = strings.TrimRight(text, " ")
		if history && strings.Contains(text, "end of history") {
			break
		}
		if m := re.FindStringSubmatch(text); m != nil {
			out[m[1]] = text
		}
	}
	return out
}

// key presses a named key (tmux key names: Up, Escape, C-c...).
func (tm *term) key(name string) {
	tm.t.Helper()
	tm.run("send-keys", "-t", tm.session, name)
}

// bare returns a JID without its resource.
func bare(j string) string {
	b, _, _ := strings.Cut(j, "/")
	return b
}
