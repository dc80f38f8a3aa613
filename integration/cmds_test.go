//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel/xmpp"
)

// Helpers for the tests of the commands (mpenc-client, mpenc-bot, make
// demo): building them, configuring them for the server under test, and
// driving them as processes, in tmux or through pipes.

// cmdBound bounds waits on a command's output (a join includes a key
// agreement; the machine may be loaded).
const cmdBound = 45 * time.Second

// goTool is the go command that runs the tests.
func goTool() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// buildCommands builds mpenc-client and mpenc-bot into a temporary folder
// (the build cache makes this a link step after the first time), with the
// race detector.
func buildCommands(t *testing.T) (client, bot string) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// With the race detector: a data race makes the command exit with
	// status 66, which the tests see.
	cmd := exec.CommandContext(ctx, goTool(), "build", "-race", "-o", dir+"/", "./cmd/mpenc-client", "./cmd/mpenc-bot")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the commands: %v\n%s", err, out)
	}
	return filepath.Join(dir, "mpenc-client"), filepath.Join(dir, "mpenc-bot")
}

// cmdAccount returns account i (distinct accounts: the tests need as many
// as they use).
func (s *server) cmdAccount(t *testing.T, i int) account {
	t.Helper()
	if i >= len(s.accounts) {
		t.Skipf("needs %d accounts in MPENC_XMPP_ACCOUNTS, have %d", i+1, len(s.accounts))
	}
	return s.accounts[i]
}

// clientAddr is the address a client dials: the direct TLS port when the
// tests run with direct TLS, the other one otherwise.
func (s *server) clientAddr() string {
	if s.security == xmpp.DirectTLS {
		return s.tlsAddr
	}
	return s.addr
}

// settingsTOML is the server part of a configuration file.
func (s *server) settingsTOML(a account, store string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "account = %q\nstore = %q\ntiming = \"loopback\"\n", a.jid, store)
	if s.addr != "" {
		fmt.Fprintf(&b, "server = %q\n", s.clientAddr())
	}
	fmt.Fprintf(&b, "security = %q\n", map[xmpp.Security]string{xmpp.StartTLS: "starttls", xmpp.DirectTLS: "directtls", xmpp.UnsafePlaintext: "plaintext"}[s.security])
	if ca := os.Getenv("MPENC_XMPP_CA"); ca != "" {
		fmt.Fprintf(&b, "ca_file = %q\n", ca)
	}
	return b.String()
}

// botRoom is one [[rooms]] table.
type botRoom struct{ jid, include string }

// botConfig writes a bot configuration in dir and returns its path.
func (s *server) botConfig(t *testing.T, dir string, a account, rooms ...botRoom) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(s.settingsTOML(a, filepath.Join(dir, "bot.db")))
	fmt.Fprintf(&b, "nick = \"bot\"\nlog_file = %q\nlog_level = \"debug\"\n", filepath.Join(dir, "bot.log"))
	for _, r := range rooms {
		fmt.Fprintf(&b, "\n[[rooms]]\njid = %q\ninclude = %q\n", r.jid, r.include)
	}
	p := filepath.Join(dir, "bot.toml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// clientConfig writes a client configuration in dir and returns its path.
func (s *server) clientConfig(t *testing.T, dir, name string, a account, include string, rooms ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(s.settingsTOML(a, filepath.Join(dir, name+".db")))
	fmt.Fprintf(&b, "nick = %q\ninclude = %q\nlog_level = \"debug\"\nrooms = [", name, include)
	for i, r := range rooms {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", r)
	}
	b.WriteString("]\n")
	p := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// secretEnv is the environment of a command: the password and a
// passphrase in the variables the commands read.
func secretEnv(a account, passphrase string) []string {
	return append(os.Environ(), "MPENC_PASSWORD="+a.password, "MPENC_PASSPHRASE="+passphrase)
}

// proc is a command run in the background whose output is collected.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser // nil unless asked for

	mu     sync.Mutex
	out    bytes.Buffer
	notify chan struct{}
	done   chan struct{}
	err    error
}

// startProc starts a command; its standard output and error are
// collected, and it is killed at the end of the test if still running.
func startProc(t *testing.T, name string, env []string, stdin bool, argv ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, notify: make(chan struct{}, 1), done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = env
	if stdin {
		w, err := p.cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.in = w
	}
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.Write(sc.Bytes())
			p.out.WriteByte('\n')
			p.mu.Unlock()
			p.poke()
		}
	}()
	go func() {
		err := p.cmd.Wait()
		w.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
		p.poke()
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.output())
		}
	})
	return p
}

func (p *proc) poke() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitOutput waits until the output satisfies pred (bounded).
func (p *proc) waitOutput(what string, pred func(string) bool) string {
	p.t.Helper()
	deadline := time.After(cmdBound)
	for {
		out := p.output()
		if pred(out) {
			return out
		}
		select {
		case <-p.notify:
		case <-deadline:
			p.t.Fatalf("%s: waited %v for %s; output:\n%s", p.name, cmdBound, what, out)
		}
	}
}

// waitFor waits until the output contains s, counting from offset from.
func (p *proc) waitFor(s string) string {
	p.t.Helper()
	return p.waitOutput(fmt.Sprintf("%q", s), func(out string) bool { return strings.Contains(out, s) })
}

// writeLine writes a line to the command's standard input.
func (p *proc) writeLine(s string) {
	p.t.Helper()
	if _, err := io.WriteString(p.in, s+"\n"); err != nil {
		p.t.Fatalf("%s: writing input: %v", p.name, err)
	}
}

// stop sends SIGTERM and waits (bounded) for the exit; it returns the
// exit error.
func (p *proc) stop() error {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait()
}

// wait waits (bounded) for the command to exit and returns its error.
func (p *proc) wait() error {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(cmdBound):
		p.t.Fatalf("%s did not exit within %v; output:\n%s", p.name, cmdBound, p.output())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// term is a tmux server with one session: a real terminal to drive a
// full-screen program with send-keys and read with capture-pane.
type term struct {
	t       *testing.T
	socket  string
	session string
}

// newTerm starts a tmux server of its own (its own socket, no user
// configuration) with a shell-less session of the given size; the
// session runs script (a shell script file). It is killed at the end of
// the test.
func newTerm(t *testing.T, width, height int) *term {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (apt-get install tmux); .ci/run installs it")
	}
	tm := &term{t: t, socket: fmt.Sprintf("mpenc-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9), session: "client"}
	tm.run("-f", "/dev/null", "new-session", "-d", "-s", tm.session, "-x", fmt.Sprint(width), "-y", fmt.Sprint(height), "sleep 3600")
	tm.run("set-option", "-g", "remain-on-exit", "on")
	sock := strings.TrimSpace(tm.run("display-message", "-p", "#{socket_path}"))
	t.Cleanup(func() {
		_ = exec.Command("tmux", "-L", tm.socket, "kill-server").Run()
		if strings.Contains(sock, "mpenc-test-") {
			_ = os.Remove(sock)
		}
	})
	return tm
}

func (tm *term) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", tm.socket}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// exec replaces what runs in the terminal with script (run by sh).
func (tm *term) exec(script string) {
	tm.t.Helper()
	tm.run("respawn-pane", "-k", "-t", tm.session, "sh "+script)
}

// screen returns what the terminal shows.
func (tm *term) screen() string {
	tm.t.Helper()
	return tm.run("capture-pane", "-p", "-t", tm.session)
}

// typeLine types text and Enter.
func (tm *term) typeLine(text string) {
	tm.t.Helper()
	tm.run("send-keys", "-t", tm.session, "-l", text)
	tm.run("send-keys", "-t", tm.session, "Enter")
}

// waitScreen polls the screen until pred holds (bounded).
func (tm *term) waitScreen(what string, pred func(string) bool) string {
	tm.t.Helper()
	deadline := time.Now().Add(cmdBound)
	for {
		s := tm.screen()
		if pred(s) {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("terminal: waited %v for %s; screen:\n%s", cmdBound, what, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitText waits until the screen shows s.
func (tm *term) waitText(s string) string {
	tm.t.Helper()
	return tm.waitScreen(fmt.Sprintf("%q", s), func(scr string) bool { return strings.Contains(scr, s) })
}

// waitExit waits (bounded) until the script in the terminal reports that
// its program exited, and returns the status.
func (tm *term) waitExit() string {
	tm.t.Helper()
	re := regexp.MustCompile(`\[exited with status (\d+)\]`)
	scr := tm.waitScreen("the program's exit", func(s string) bool { return re.MatchString(s) })
	return re.FindStringSubmatch(scr)[1]
}

// writeScript writes a shell script that runs argv with the secrets in
// its environment (mode 0700, in the test's folder).
func writeScript(t *testing.T, dir, name string, a account, passphrase string, argv ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	fmt.Fprintf(&b, "export MPENC_PASSWORD=%s MPENC_PASSPHRASE=%s TERM=xterm-256color\n", shellQuote(a.password), shellQuote(passphrase))
	for _, s := range argv {
		b.WriteString(shellQuote(s) + " ")
	}
	b.WriteString("\necho \"[exited with status $?]\"\n")
	p := filepath.Join(dir, name+".sh")
	if err := os.WriteFile(p, []byte(b.String()), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// logOnFailure prints the last lines of log files if the test failed.
func logOnFailure(t *testing.T, files ...string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			t.Logf("%s (last %d lines):\n%s", f, min(len(lines), 60), strings.Join(lines[max(len(lines)-60, 0):], "\n"))
		}
	})
}
