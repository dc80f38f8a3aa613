//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/store"
	"github.com/mpenc/mpenc/trust"
)

// appPeer is a member driven through package app (what the client is
// built on), with every event it delivered.
type appPeer struct {
	t *testing.T
	a *app.App

	mu     sync.Mutex
	evs    []app.Event
	notify chan struct{}
	done   chan struct{}
	// recent keeps the peer's last Info lines, shown when a wait fails
	// (Warn lines go to the test's output at once).
	recent *ringLog
}

// ringLog keeps the last lines written to it.
type ringLog struct {
	mu    sync.Mutex
	lines []string
}

const ringLogLines = 300

func (r *ringLog) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, strings.TrimRight(string(b), "\n"))
	if len(r.lines) > 2*ringLogLines {
		r.lines = append(r.lines[:0], r.lines[len(r.lines)-ringLogLines:]...)
	}
	return len(b), nil
}

func (r *ringLog) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines[max(0, len(r.lines)-ringLogLines):], "\n")
}

// teeHandler sends every record to each of its handlers that takes it.
type teeHandler []slog.Handler

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return slices.ContainsFunc(h, func(x slog.Handler) bool { return x.Enabled(ctx, l) })
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	for _, x := range h {
		if x.Enabled(ctx, r.Level) {
			if err := x.Handle(ctx, r.Clone()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(teeHandler, len(h))
	for i, x := range h {
		out[i] = x.WithAttrs(as)
	}
	return out
}

func (h teeHandler) WithGroup(name string) slog.Handler {
	out := make(teeHandler, len(h))
	for i, x := range h {
		out[i] = x.WithGroup(name)
	}
	return out
}

// newAppPeer opens an App for account a in dir (small key-derivation
// parameters: this is a test), adjusted by tweaks, and collects its
// events until the end of the test, when it is closed (parting properly).
func (s *server) newAppPeer(t *testing.T, a account, dir string, tweaks ...func(*app.Config)) *appPeer {
	t.Helper()
	recent := &ringLog{}
	logs := teeHandler{
		slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}),
		slog.NewTextHandler(recent, &slog.HandlerOptions{Level: slog.LevelInfo}),
	}
	cfg := app.Config{
		Store: filepath.Join(dir, "peer.db"), Account: a.jid, Password: a.password,
		Passphrase: func(bool) ([]byte, error) { return []byte("peer passphrase"), nil },
		KDF:        store.KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1},
		Server:     s.addr, Security: s.security, RootCAs: s.roots,
		Timing: session.LoopbackTiming(), PartTimeout: 10 * time.Second,
		Logger: slog.New(logs).With("peer", a.jid),
	}
	if s.security == xmpp.DirectTLS {
		cfg.Server = s.tlsAddr
	}
	for _, f := range tweaks {
		f(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	ap, err := app.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &appPeer{t: t, a: ap, notify: make(chan struct{}, 1), done: make(chan struct{}), recent: recent}
	go func() {
		defer close(p.done)
		for ev := range ap.Events() {
			p.mu.Lock()
			p.evs = append(p.evs, ev)
			p.mu.Unlock()
			select {
			case p.notify <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
		defer cancel()
		if err := ap.Close(ctx); err != nil {
			t.Logf("peer close: %v", err)
		}
		<-p.done
	})
	return p
}

func (p *appPeer) join(room string, inc string) *app.Room {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	r, err := p.a.Join(ctx, room, app.RoomOptions{Include: inc, StayIfLastMember: true})
	if err != nil {
		p.t.Fatalf("peer: join %s: %v", room, err)
	}
	return r
}

// mark is a position in the peer's events.
func (p *appPeer) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.evs)
}

// waitEvent waits for an event after position from that satisfies pred.
func (p *appPeer) waitEvent(from int, what string, pred func(app.Event) bool) app.Event {
	p.t.Helper()
	deadline := time.After(cmdBound)
	for {
		p.mu.Lock()
		evs := p.evs[min(from, len(p.evs)):]
		for _, ev := range evs {
			if pred(ev) {
				p.mu.Unlock()
				return ev
			}
		}
		p.mu.Unlock()
		select {
		case <-p.notify:
		case <-deadline:
			p.t.Fatalf("peer: waited %v for %s; events:\n%s\nits last log lines:\n%s", cmdBound, what, p.dump(), p.recent)
		}
	}
}

// waitLog waits until the peer's recent log has a line with every one
// of parts.
func (p *appPeer) waitLog(what string, parts ...string) {
	p.t.Helper()
	deadline := time.Now().Add(cmdBound)
	for {
		for _, l := range strings.Split(p.recent.String(), "\n") {
			ok := true
			for _, part := range parts {
				ok = ok && strings.Contains(l, part)
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("peer: waited %v for %s; its last log lines:\n%s", cmdBound, what, p.recent)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *appPeer) dump() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, ev := range p.evs {
		fmt.Fprintf(&b, "%s kind=%d", ev.Room, ev.Kind)
		switch ev.Kind {
		case app.EventNotice:
			b.WriteString(" " + ev.Notice.String())
		case app.EventEntry:
			fmt.Fprintf(&b, " %v seq=%d author=%s ack=%v own=%v", ev.Entry.Kind, ev.Entry.Seq, ev.Entry.Author, ev.Entry.Ack, ev.Entry.Own)
		case app.EventDecision:
			b.WriteString(" " + ev.Decision.String())
		case app.EventTrust:
			b.WriteString(" " + ev.Trust.String())
		case app.EventHistory:
			fmt.Fprintf(&b, " history %q warning=%v", ev.Text, ev.Warning)
		case app.EventPairing, app.EventVerify:
			fmt.Fprintf(&b, " device=%s text=%q words=%d warning=%v", ev.Device, ev.Text, len(ev.Words), ev.Warning)
		}
		if ev.Err != nil {
			b.WriteString(" err=" + ev.Err.Error())
		}
		b.WriteString("\n")
	}
	return b.String()
}

// waitMessage waits for a message from author's account in room after
// position from whose text satisfies pred; it returns the text.
func (p *appPeer) waitMessage(from int, room, author, what string, pred func(string) bool) string {
	p.t.Helper()
	ev := p.waitEvent(from, what, func(ev app.Event) bool {
		e := ev.Entry
		return ev.Room == room && ev.Kind == app.EventEntry && e.Kind == session.Message && !e.Own &&
			trust.Bare(e.Author) == author && pred(e.Text)
	})
	return ev.Entry.Text
}

// ask sends a command and waits for the bot's answer that satisfies pred.
func (p *appPeer) ask(r *app.Room, bot, text string, pred func(string) bool) string {
	p.t.Helper()
	from := p.mark()
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	if _, err := r.Send(ctx, text); err != nil {
		p.t.Fatalf("peer: send %q: %v", text, err)
	}
	return p.waitMessage(from, r.JID(), bot, "the answer to "+text, pred)
}

func contains(s string) func(string) bool {
	return func(t string) bool { return strings.Contains(t, s) }
}

// TestIntegrationBot runs mpenc-bot in two rooms against the server and
// a member built on package app: the bot founds each room, includes the
// newcomer (policy "everyone"), greets it, and answers !help, !ping,
// !echo, !members, !fingerprint (its own and the member's) and an unknown
// command, in both rooms. SIGTERM makes it part properly (the member sees
// it excluded, and exits 0); started again, it rejoins both rooms, is
// included back, and answers again. Its JSON logs hold no message text
// and no secret.
func TestIntegrationBot(t *testing.T) {
	s := serverFromEnv(t)
	botAcct, peerAcct := s.cmdAccount(t, 0), s.cmdAccount(t, 1)
	botName := bare(botAcct.jid)
	room1, room2 := s.newRoom(t), s.newRoom(t)
	_, botBin := buildCommands(t)
	dir := t.TempDir()
	botLog := filepath.Join(dir, "bot.log")
	logOnFailure(t, botLog)
	cfg := s.botConfig(t, dir, botAcct, botRoom{room1, "everyone"}, botRoom{room2, "everyone"})
	env := secretEnv(botAcct, "the bot's passphrase")
	bot := startProc(t, "bot", env, false, botBin, "-config", cfg)
	waitFile(t, botLog, `"message":"joined"`, 2)

	p := s.newAppPeer(t, peerAcct, dir)
	from := p.mark()
	r1 := p.join(room1, "everyone")
	greeting := p.waitMessage(from, room1, botName, "the greeting", contains("Hello "+bare(peerAcct.jid)+"!"))
	if !strings.Contains(greeting, "!help") {
		t.Errorf("greeting: %q", greeting)
	}
	botKey := p.waitEvent(0, "the bot's key", func(ev app.Event) bool {
		return ev.Kind == app.EventDecision && trust.Bare(ev.Decision.Member) == botName
	}).Decision.Key

	p.ask(r1, botName, "!ping", func(s string) bool { return s == "pong" })
	p.ask(r1, botName, "!echo a text the bot must not log", func(s string) bool { return s == "a text the bot must not log" })
	help := p.ask(r1, botName, "!help", contains("commands:"))
	for _, c := range []string{"!help", "!ping", "!echo", "!members", "!fingerprint"} {
		if !strings.Contains(help, c+" ") {
			t.Errorf("!help lacks %s:\n%s", c, help)
		}
	}
	members := p.ask(r1, botName, "!members", contains("in the room or session"))
	for _, want := range []string{r1.Self() + ": member (blindly-trusted)", ": member (this bot)"} {
		if !strings.Contains(members, want) {
			t.Errorf("!members lacks %q:\n%s", want, members)
		}
	}
	p.ask(r1, botName, "!fingerprint", contains(trust.FingerprintOf(botKey).String()))
	p.ask(r1, botName, "!fingerprint "+bare(peerAcct.jid), contains(trust.FingerprintOf(p.a.PublicKey()).String()))
	p.ask(r1, botName, "!frobnicate", contains("unknown command !frobnicate"))

	// Several rooms.
	from = p.mark()
	r2 := p.join(room2, "everyone")
	p.waitMessage(from, room2, botName, "the greeting in room 2", contains("Hello "))
	p.ask(r2, botName, "!ping", func(s string) bool { return s == "pong" })

	// SIGTERM: the bot parts properly, which the member sees as the bot
	// leaving the session in both rooms.
	from = p.mark()
	if err := bot.stop(); err != nil {
		t.Fatalf("the bot's exit after SIGTERM: %v\n%s", err, bot.output())
	}
	for _, room := range []string{room1, room2} {
		p.waitEvent(from, "the bot excluded from "+room, func(ev app.Event) bool {
			return ev.Room == room && ev.Kind == app.EventEntry && ev.Entry.Kind == session.Membership &&
				len(ev.Entry.Exclude) == 1 && trust.Bare(ev.Entry.Exclude[0]) == botName
		})
	}

	// Started again: it rejoins both rooms and answers.
	from = p.mark()
	bot = startProc(t, "bot (restarted)", env, false, botBin, "-config", cfg)
	for _, r := range []*app.Room{r1, r2} {
		p.waitMessage(from, r.JID(), botName, "the greeting after the restart in "+r.JID(), contains("Hello "))
		p.ask(r, botName, "!ping", func(s string) bool { return s == "pong" })
	}
	if err := bot.stop(); err != nil {
		t.Errorf("the restarted bot's exit: %v", err)
	}

	// The logs: JSON lines, no message text, no secret.
	data, err := os.ReadFile(botLog)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("log line %d is not JSON: %q", i+1, l)
		}
	}
	for _, secret := range []string{"a text the bot must not log", "!echo", botAcct.password, "the bot's passphrase"} {
		if strings.Contains(string(data), secret) {
			t.Errorf("the bot's log contains %q", secret)
		}
	}
}

// waitFile waits until a file contains s at least n times.
func waitFile(t *testing.T, path, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(cmdBound)
	for {
		data, _ := os.ReadFile(path)
		if strings.Count(string(data), s) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %d× %q in %s:\n%s", cmdBound, n, s, path, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
