package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParseInput(t *testing.T) {
	for i, tt := range []struct {
		in   string
		name string
		args []string
		rest string
		ok   bool
		err  string
	}{
		0:  {in: "hello world", rest: "hello world", ok: true},
		1:  {in: "   ", ok: false},
		2:  {in: "/join room@muc", name: "join", args: []string{"room@muc"}, rest: "room@muc", ok: true},
		3:  {in: "/J room@muc nick", name: "join", args: []string{"room@muc", "nick"}, rest: "room@muc nick", ok: true},
		4:  {in: "/join", err: "usage: /join ROOM [NICK]"},
		5:  {in: "/join a b c", err: "usage: /join"},
		6:  {in: "//not a command", rest: "/not a command", ok: true},
		7:  {in: "/frobnicate", err: "unknown command /frobnicate"},
		8:  {in: "/quit", name: "quit", ok: true},
		9:  {in: "/q", name: "quit", ok: true},
		10: {in: "/verify bob@x 9841 6545 49ca", name: "verify", args: []string{"bob@x", "9841", "6545", "49ca"}, rest: "bob@x 9841 6545 49ca", ok: true},
		11: {in: "/info #12", name: "info", args: []string{"#12"}, rest: "#12", ok: true},
		12: {in: "/info twelve", err: "N is a message number"},
		13: {in: "/kick", err: "usage: /kick JID"},
		14: {in: "/refresh now", err: "usage: /refresh"},
		15: {in: "/who\r\n", name: "who", ok: true},
		16: {in: "/fp", name: "fingerprint", ok: true},
		17: {in: "/part", name: "part", ok: true},
		18: {in: "/help", name: "help", ok: true},
		19: {in: "/invite carol@example.org", name: "invite", args: []string{"carol@example.org"}, rest: "carol@example.org", ok: true},
		20: {in: "/trust bob@x", name: "trust", args: []string{"bob@x"}, rest: "bob@x", ok: true},
		21: {in: "/room 2", name: "room", args: []string{"2"}, rest: "2", ok: true},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			cmd, ok, err := parseInput(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseInput(%q) error %v, want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || ok != tt.ok || cmd.name != tt.name || cmd.rest != tt.rest || !slices.Equal(cmd.args, tt.args) {
				t.Fatalf("parseInput(%q) = %+v, %v, %v; want name=%q args=%q rest=%q ok=%v", tt.in, cmd, ok, err, tt.name, tt.args, tt.rest, tt.ok)
			}
		})
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	h := helpText()
	for _, want := range []string{"/join", "/part", "/invite", "/kick", "/refresh", "/who", "/fingerprint", "/verify", "/trust", "/help", "/quit"} {
		if !strings.Contains(h, want+" ") {
			t.Errorf("help lacks %s", want)
		}
		if _, ok := findSpec(strings.TrimPrefix(want, "/")); !ok {
			t.Errorf("%s is not a command", want)
		}
	}
}
