//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIntegrationClientHistoryTmux: the own archive as a user meets it,
// in real terminals on a real server. mpenc-bot serves as the history
// service (no room). Alice's laptop is in a room with Bob's desk;
// `/history on BOT` says what it means first, `/history on BOT yes` turns
// it on; Bob says something; Alice's new phone, in no room, pairs with
// the laptop (the words read from both screens) and shows what Bob said,
// marked as read from the history, under the rule that starts such a
// run; `/history` on the phone says where it is kept.
func TestIntegrationClientHistoryTmux(t *testing.T) {
	s := serverFromEnv(t)
	botAcct, aAcct, bAcct := s.cmdAccount(t, 0), s.cmdAccount(t, 1), s.cmdAccount(t, 2)
	botName := bare(botAcct.jid)
	room := s.newRoom(t)
	clientBin, botBin := buildCommands(t)
	dir := t.TempDir()
	botLog := filepath.Join(dir, "bot.log")
	logOnFailure(t, botLog)
	var cfg strings.Builder
	cfg.WriteString(s.settingsTOML(botAcct, filepath.Join(dir, "bot.db")))
	fmt.Fprintf(&cfg, "nick = \"bot\"\nlog_file = %q\nhistory_service = %q\n", botLog, filepath.Join(dir, "history.db"))
	cfgPath := filepath.Join(dir, "bot.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	startProc(t, "bot", secretEnv(botAcct, "the bot's passphrase"), false, botBin, "-config", cfgPath)
	waitFile(t, botLog, `"message":"connected"`, 1)

	start := func(name string, rooms ...string) *term {
		tm := newTerm(t, 200, 60)
		cfg := s.clientConfig(t, dir, name, aAcct, "everyone", rooms...)
		tm.exec(writeScript(t, dir, name, aAcct, "passphrase of the "+name, clientBin, "-label", name, "-config", cfg))
		return tm
	}
	laptop := start("laptop", room)
	laptop.waitText("joined the session")
	desk := startProc(t, "desk", secretEnv(bAcct, "passphrase of the desk"), true, clientBin, "-plain", "-config",
		s.clientConfig(t, dir, "desk", bAcct, "everyone", room))
	desk.waitFor("joined the session")

	laptop.typeLine("/history")
	laptop.waitText("history: off on this device")
	laptop.typeLine("/history on " + botName)
	laptop.waitText("lose forward secrecy")
	laptop.typeLine("/history on " + botName + " yes")
	laptop.waitText("history on: your rooms' messages are kept at " + botName)
	desk.writeLine("said before the phone existed")
	laptop.waitText("said before the phone existed")

	phone := start("phone")
	phone.waitText("you: ")
	laptop.typeLine("/devices pair")
	phone.typeLine("/devices pair")
	sl := laptop.waitText("pairing with your device")
	sp := phone.waitText("pairing with your device")
	if wl, wp := screenWords(t, sl), screenWords(t, sp); wl != wp {
		t.Fatalf("laptop %q, phone %q", wl, wp)
	}
	laptop.typeLine("/devices accept")
	phone.typeLine("/devices accept")
	phone.waitText("in a device group with")
	phone.waitText("history from " + botName)
	// The room's tab, made by the pairing (the laptop is in the room)
	// and the history read.
	phone.typeLine("/room " + room)
	scr := phone.waitText("said before the phone existed (from your history")
	if !strings.Contains(scr, "from your history: messages your other devices saw") {
		t.Fatalf("no rule before the archived lines:\n%s", scr)
	}
	phone.typeLine("/history")
	phone.waitText("history: kept at " + botName)
}
