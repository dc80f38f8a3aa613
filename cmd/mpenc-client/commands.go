package main

import (
	"fmt"
	"strconv"
	"strings"
)

// command is a parsed input line: a slash command, or a message to send
// (name "").
type command struct {
	name string   // without the slash, lower case; "" for a message
	args []string // whitespace-separated arguments
	rest string   // everything after the name, trimmed (for messages: the text)
}

// cmdSpec describes a command for parsing and /help.
type cmdSpec struct {
	name     string
	aliases  []string
	usage    string
	help     string
	min, max int // argument counts; max < 0: any
}

var cmdSpecs = []cmdSpec{
	{name: "join", aliases: []string{"j"}, usage: "/join ROOM [NICK]", help: "join a room (room@conference.example.org) and remember it", min: 1, max: 2},
	{name: "part", aliases: []string{"leave"}, usage: "/part [ROOM]", help: "leave the session properly, then the room, and forget it", min: 0, max: 1},
	{name: "invite", usage: "/invite JID", help: "include JID's devices present in the room; otherwise include them when they enter", min: 1, max: 1},
	{name: "kick", aliases: []string{"exclude"}, usage: "/kick JID", help: "exclude from the session (and from the room once done, if we are moderator)", min: 1, max: 1},
	{name: "refresh", usage: "/refresh", help: "renew the group key", min: 0, max: 0},
	{name: "who", aliases: []string{"members"}, usage: "/who", help: "list members: session status and trust", min: 0, max: 0},
	{name: "devices", usage: "/devices [pair|accept|reject|cancel|remove DEVICE|leave]", help: "list the devices in your rooms, yours first: label, address, device id, fingerprint, trust, last seen, device group; pair: join this device with your other devices (KeySync: compare the words both show, then accept, reject or cancel); remove: distrust one of your devices everywhere and take it off your device list; leave: this device leaves your device group for good (asks first)", min: 0, max: 2},
	{name: "history", usage: "/history [on BOT|off|fetch]", help: "your own archive: on keeps your rooms' messages, encrypted, at the history service BOT (a bot's address; asks first), where your other devices, and devices you pair later, read them; off: this device stops writing there; fetch: read what your other devices wrote, now; alone: where it stands", min: 0, max: 3},
	{name: "info", usage: "/info N", help: "show message #N: who it went to, what it answers, who has not acknowledged it", min: 1, max: 1},
	{name: "resend", usage: "/resend [N|qN]", help: "send again a message not delivered to everyone (#N), or never sent (qN); default: the latest", min: 0, max: 1},
	{name: "fingerprint", aliases: []string{"fp"}, usage: "/fingerprint [JID]", help: "show your key's fingerprint (or JID's) as hex, words and a QR code", min: 0, max: 1},
	{name: "verify", usage: "/verify JID [live|same|differ|confirm 1a2b 3c4d|FINGERPRINT|WORDS]", help: "live: compare five words with each of JID's devices (then same or differ; both sides must say same); otherwise show JID's fingerprints, and after comparing one in full out of band, confirm it (the line shown) or type it: the key is authenticated", min: 1, max: -1},
	{name: "trust", usage: "/trust JID", help: "trust the current key of JID's devices without verifying it", min: 1, max: 1},
	{name: "distrust", usage: "/distrust JID", help: "never use the current key of JID's devices", min: 1, max: 1},
	{name: "why", usage: "/why JID [FINGERPRINT]", help: "why each known key of JID (or the one whose fingerprint starts so) is trusted or not: every decision about it, and about the keys that vouched for it", min: 1, max: 2},
	{name: "rooms", usage: "/rooms", help: "list your rooms", min: 0, max: 0},
	{name: "room", aliases: []string{"switch", "go"}, usage: "/room N|ROOM", help: "switch to a room (also Alt-1..9, Ctrl-N, Ctrl-P)", min: 1, max: 1},
	{name: "help", aliases: []string{"h", "?"}, usage: "/help", help: "this list", min: 0, max: 0},
	{name: "quit", aliases: []string{"q", "exit"}, usage: "/quit", help: "leave every room properly and exit", min: 0, max: 0},
}

func findSpec(name string) (cmdSpec, bool) {
	for _, s := range cmdSpecs {
		if s.name == name {
			return s, true
		}
		for _, a := range s.aliases {
			if a == name {
				return s, true
			}
		}
	}
	return cmdSpec{}, false
}

// parseInput parses one input line. A line starting with "/" is a
// command ("//" sends a message starting with "/"); anything else is a
// message. An empty line is (command{}, false, nil).
func parseInput(s string) (cmd command, ok bool, err error) {
	s = strings.TrimRight(s, "\r\n")
	if strings.TrimSpace(s) == "" {
		return command{}, false, nil
	}
	if !strings.HasPrefix(s, "/") {
		return command{rest: s}, true, nil
	}
	if strings.HasPrefix(s, "//") {
		return command{rest: s[1:]}, true, nil
	}
	body := strings.TrimSpace(s[1:])
	name, rest, _ := strings.Cut(body, " ")
	name = strings.ToLower(name)
	spec, known := findSpec(name)
	if !known {
		return command{}, false, fmt.Errorf("unknown command /%s (/help lists them; // starts a message with /)", name)
	}
	rest = strings.TrimSpace(rest)
	args := strings.Fields(rest)
	if len(args) < spec.min || spec.max >= 0 && len(args) > spec.max {
		return command{}, false, fmt.Errorf("usage: %s", spec.usage)
	}
	if spec.name == "info" {
		if _, err := strconv.Atoi(strings.TrimPrefix(args[0], "#")); err != nil {
			return command{}, false, fmt.Errorf("usage: %s (N is a message number, as in #12)", spec.usage)
		}
	}
	if spec.name == "resend" && len(args) == 1 {
		n := strings.TrimPrefix(strings.TrimPrefix(args[0], "#"), "q")
		if _, err := strconv.Atoi(n); err != nil {
			return command{}, false, fmt.Errorf("usage: %s (#12 or 12 for a message, q3 for a queued one)", spec.usage)
		}
	}
	return command{name: spec.name, args: args, rest: rest}, true, nil
}

// helpText lists the commands.
func helpText() string {
	var b strings.Builder
	b.WriteString("commands:")
	for _, s := range cmdSpecs {
		fmt.Fprintf(&b, "\n  %-40s %s", s.usage, s.help)
	}
	b.WriteString("\nJID: a full JID names one device, a bare JID every device of exactly that account (no abbreviations)")
	b.WriteString("\nanything else is sent to the current room, encrypted; // sends a message starting with /")
	return b.String()
}
