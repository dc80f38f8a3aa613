package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	for i, tt := range []struct {
		in, name, args string
		ok             bool
	}{
		0: {"!ping", "ping", "", true},
		1: {"  !echo hello world  ", "echo", "hello world", true},
		2: {"!ECHO x", "echo", "x", true},
		3: {"hello", "", "", false},
		4: {"!", "", "", false},
		5: {"! ping", "", "", false},
		6: {"!pi-ng", "", "", false},
		7: {"!fingerprint bob@example.org", "fingerprint", "bob@example.org", true},
	} {
		name, args, ok := parseCommand("!", tt.in)
		if name != tt.name || args != tt.args || ok != tt.ok {
			t.Errorf("%d: parseCommand(%q) = %q, %q, %v", i, tt.in, name, args, ok)
		}
	}
}

// TestCommandsWithoutRoom runs the commands that need no session.
func TestCommandsWithoutRoom(t *testing.T) {
	b := &Bot{prefix: "!", commands: commands()}
	ctx := context.Background()
	for name, want := range map[string]string{"ping": "pong", "echo": "hi there"} {
		got, err := b.commands[name].Run(ctx, Request{Bot: b, Name: name, Args: "hi there"})
		if err != nil || got != want {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	if _, err := b.commands["echo"].Run(ctx, Request{Bot: b, Name: "echo"}); err == nil {
		t.Error("echo without text: no error")
	}
	help, err := b.commands["help"].Run(ctx, Request{Bot: b})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"help", "ping", "members", "fingerprint", "echo"} {
		if !strings.Contains(help, "\n!"+n+" ") {
			t.Errorf("help lacks !%s:\n%s", n, help)
		}
	}
}

// ExampleFunc shows how a command is added: a few lines.
func ExampleFunc() {
	cmds := commands()
	cmds["time"] = Func{"the bot's clock", func(context.Context, Request) (string, error) {
		return "12:00", nil
	}}
	out, _ := cmds["time"].Run(context.Background(), Request{})
	fmt.Println(out)
	// Output: 12:00
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) string {
		p := filepath.Join(dir, "bot.toml")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := loadConfig(write(`
account = "bot@example.org"
timing = "loopback"
greeting = ""
[[rooms]]
jid = "a@muc.example.org"
[[rooms]]
jid = "b@muc.example.org"
include = "trusted"
nick = "b0t"
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rooms) != 2 || c.Rooms[0].Include != "everyone" || c.Rooms[1].Include != "trusted" || c.Rooms[1].Nick != "b0t" {
		t.Errorf("rooms: %+v", c.Rooms)
	}
	if c.Greeting != "" || c.Prefix != "!" || c.PasswordEnv != "MPENC_PASSWORD" || c.Store != "mpenc-bot.db" {
		t.Errorf("config: %+v", c)
	}
	if !c.rejoin() {
		t.Error("rejoin is off by default")
	}
	if c, err := loadConfig(write("account = \"a@b\"\nrejoin = false\n[[rooms]]\njid = \"r@m\"\n")); err != nil || c.rejoin() {
		t.Errorf("rejoin = false: %v, %v", c, err)
	}
	if c.RequireChannelBinding {
		t.Error("require_channel_binding is on by default")
	}
	if c, err := loadConfig(write("account = \"a@b\"\nrequire_channel_binding = true\n[[rooms]]\njid = \"r@m\"\n")); err != nil || !c.RequireChannelBinding {
		t.Errorf("require_channel_binding = true: %v, %v", c, err)
	}
	for i, tt := range []struct{ text, want string }{
		0: {`account = "a@b"`, "no [[rooms]]"},
		1: {"[[rooms]]\njid = \"r@m\"\n", "account is required"},
		2: {"account = \"a@b\"\n[[rooms]]\njid = \"r@m\"\ninclude = \"some\"\n", "include policy"},
		3: {"account = \"a@b\"\nfoo = 1\n[[rooms]]\njid = \"r@m\"\n", "unknown keys: foo"},
		4: {"account = \"a@b\"\n[[rooms]]\njid = \"r@m\"\n[[rooms]]\njid = \"r@m\"\n", "listed twice"},
		5: {"account = \"a@b\"\nsecurity = \"tls13\"\n[[rooms]]\njid = \"r@m\"\n", "security"},
		6: {"account = \"a@b\"\nrequire_channelbinding = true\n[[rooms]]\njid = \"r@m\"\n", "unknown keys: require_channelbinding"},
	} {
		if _, err := loadConfig(write(tt.text)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%d: error %v, want %q", i, err, tt.want)
		}
	}
}

func TestSecretsFromEnvironment(t *testing.T) {
	c := &Config{PasswordEnv: "MPENC_TEST_PW", PassphraseEnv: "MPENC_TEST_PP"}
	t.Setenv("MPENC_TEST_PW", "xmpp-password")
	t.Setenv("MPENC_TEST_PP", "a long passphrase")
	pw, pp, err := c.secrets()
	if err != nil || pw != "xmpp-password" || string(pp) != "a long passphrase" {
		t.Fatalf("secrets: %q %q %v", pw, pp, err)
	}
	if _, ok := os.LookupEnv("MPENC_TEST_PW"); ok {
		t.Error("the password stays in the environment")
	}
	if _, ok := os.LookupEnv("MPENC_TEST_PP"); ok {
		t.Error("the passphrase stays in the environment")
	}
	if _, _, err := c.secrets(); err == nil {
		t.Error("no error without the variables")
	}
}
