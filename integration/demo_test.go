//go:build integration

package integration

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestIntegrationDemo runs scripts/demo.sh (make demo) as a new user
// would, with its input from a pipe (so the client runs in line mode): the
// bot greets, answers !ping, and when the input ends the client leaves,
// the script stops the bot and its own Prosody and deletes its folders.
// It starts its own server, whatever the tests' one is.
func TestIntegrationDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a server of its own")
	}
	env := append(os.Environ(), "GO="+goTool())
	demo := startProc(t, "demo", env, true, "../scripts/demo.sh")
	out := demo.waitOutput("the bot's greeting", func(s string) bool { return strings.Contains(s, "I am an mpENC bot") })
	if !strings.Contains(out, "joined the session: messages are end-to-end encrypted") {
		t.Errorf("no join line:\n%s", out)
	}
	demo.writeLine("!ping")
	demo.waitOutput("pong", func(s string) bool { return regexp.MustCompile(`#\d+ user1@localhost: pong`).MatchString(s) })
	demo.in.Close()
	if err := demo.wait(); err != nil {
		t.Fatalf("demo: %v\n%s", err, demo.output())
	}
	out = demo.output()
	m := regexp.MustCompile(`server folder (\S+), demo folder (\S+) `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the demo did not name its folders:\n%s", out)
	}
	for _, dir := range m[1:] {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", dir, err)
		}
	}
	for _, want := range []string{"demo: stopping the bot", "demo: stopping the server"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
