package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/trust"
)

// Command is one bot command. Adding one is a few lines: implement it (or
// use Func) and register it in commands().
type Command interface {
	// Help is one line: the arguments and what the command does.
	Help() string
	// Run answers a request; the reply is sent to the room (nothing if
	// empty). An error is reported to the room as "error: ...".
	Run(ctx context.Context, req Request) (reply string, err error)
}

// Request is a command as received: who sent it, in which room, with what
// arguments (the text after the command's name, trimmed).
type Request struct {
	Bot  *Bot
	Room *app.Room
	From string // the sender's participant id (full JID)
	Name string // the command's name, without the prefix
	Args string
}

// Func makes a Command from a help line and a function.
type Func struct {
	HelpText string
	F        func(ctx context.Context, req Request) (string, error)
}

func (f Func) Help() string { return f.HelpText }
func (f Func) Run(ctx context.Context, req Request) (string, error) {
	return f.F(ctx, req)
}

// commands returns the built-in commands by name.
func commands() map[string]Command {
	return map[string]Command{
		"help": Func{"list the commands", cmdHelp},
		"ping": Func{"answer pong (the round trip is encrypted both ways)", func(context.Context, Request) (string, error) {
			return "pong", nil
		}},
		"echo": Func{"TEXT: say TEXT back", func(_ context.Context, req Request) (string, error) {
			if req.Args == "" {
				return "", fmt.Errorf("usage: %secho TEXT", req.Bot.prefix)
			}
			return req.Args, nil
		}},
		"members":     Func{"list the session's members and the room's occupants, with their status and trust", cmdMembers},
		"fingerprint": Func{"[JID]: the bot's identity key fingerprint, or the one JID announced here", cmdFingerprint},
	}
}

// parseCommand splits "!name args" into name and args; ok is false if text
// is not a command.
func parseCommand(prefix, text string) (name, args string, ok bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(text), prefix)
	if !ok || rest == "" {
		return "", "", false
	}
	name, args, _ = strings.Cut(rest, " ")
	name = strings.ToLower(name)
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r < 'a' || r > 'z' }) {
		return "", "", false
	}
	return name, strings.TrimSpace(args), true
}

func cmdHelp(_ context.Context, req Request) (string, error) {
	var names []string
	for n := range req.Bot.commands {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("commands:")
	for _, n := range names {
		fmt.Fprintf(&b, "\n%s%s %s", req.Bot.prefix, n, req.Bot.commands[n].Help())
	}
	return b.String(), nil
}

func cmdMembers(ctx context.Context, req Request) (string, error) {
	ms, err := req.Room.Members(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d in the room or session:", len(ms))
	for _, m := range ms {
		t := "no key"
		if m.HasKey {
			t = m.Trust.State.String()
		}
		if m.Self {
			t = "this bot"
		}
		fmt.Fprintf(&b, "\n%s: %s (%s)", m.ID, m.Status, t)
	}
	return b.String(), nil
}

func cmdFingerprint(ctx context.Context, req Request) (string, error) {
	if req.Args == "" {
		fp := trust.FingerprintOf(req.Bot.app.PublicKey())
		return fmt.Sprintf("%s: %s (%s)", req.Room.Self(), fp, fp.Words()), nil
	}
	ms, err := req.Room.Members(ctx)
	if err != nil {
		return "", err
	}
	var lines []string
	for _, m := range ms {
		if (m.ID == req.Args || trust.Bare(m.ID) == req.Args) && m.HasKey {
			fp := trust.FingerprintOf(m.Trust.Key)
			lines = append(lines, fmt.Sprintf("%s: %s (%s)", m.ID, fp, m.Trust.State))
		}
	}
	if len(lines) == 0 {
		return "", fmt.Errorf("no key announced by %s in this room", req.Args)
	}
	return strings.Join(lines, "\n"), nil
}
