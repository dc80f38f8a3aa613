package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestLogLines checks the bot's log lines byte for byte against lines
// written by the zerolog adapter of app's own logging vocabulary that
// log/slog replaced (internal/applog, deleted): the same JSON fields in the
// same order, an "err" that is nil left out (by the callers now), the
// levels filtered the same way. The calls are those of app and of the bot.
func TestLogLines(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	old := zerolog.TimestampFunc
	zerolog.TimestampFunc = func() time.Time { return at }
	t.Cleanup(func() { zerolog.TimestampFunc = old })

	const room = "r@conf.example.org"
	emit := func(log *slog.Logger) {
		log.Info("device ready", "account", "bot@example.org", "device", "mpenc-0a1b2c3d", "fingerprint", "ABCD 1234")
		log.Info("left", "room", room) // app leaves out a nil err
		log.Warn("join failed", "room", room, "err", errors.New(`muc: "nick" in use`))
		log.Log(context.Background(), slog.LevelDebug, "notice", "room", room, "kind", "Joined", "author", room+"/al")
		log.Debug(fmt.Sprintf("xmpp: connected as %s", "bot@example.org/x"), "room", room)
		log.Log(context.Background(), slog.LevelInfo, "key", "room", room, "member", room+"/bob", "decision", "KeyNew", "fingerprint", "ABCD", "trusted", true)
		log.Info("bot started", "account", "bot@example.org", "fingerprint", "ABCD", "rooms", 3)
		log.Info("including bob (invited)", "room", room) // the bot leaves out a nil err
		log.Error("history not recorded", "room", room, "kind", "Message", "err", errors.New("store: disk full"))
		log.Info("invitation", "room", "a<b>&c@conf", "from", "é\t\x01@x", "via", "bad\xffutf8")
	}
	// Written with internal/applog before it was replaced (same calls,
	// the nil errors passed as "err", nil).
	info := `{"level":"info","cmd":"mpenc-bot","account":"bot@example.org","device":"mpenc-0a1b2c3d","fingerprint":"ABCD 1234","time":"2025-03-04T05:06:07Z","message":"device ready"}
{"level":"info","cmd":"mpenc-bot","room":"r@conf.example.org","time":"2025-03-04T05:06:07Z","message":"left"}
{"level":"warn","cmd":"mpenc-bot","room":"r@conf.example.org","err":"muc: \"nick\" in use","time":"2025-03-04T05:06:07Z","message":"join failed"}
{"level":"info","cmd":"mpenc-bot","room":"r@conf.example.org","member":"r@conf.example.org/bob","decision":"KeyNew","fingerprint":"ABCD","trusted":true,"time":"2025-03-04T05:06:07Z","message":"key"}
{"level":"info","cmd":"mpenc-bot","account":"bot@example.org","fingerprint":"ABCD","rooms":3,"time":"2025-03-04T05:06:07Z","message":"bot started"}
{"level":"info","cmd":"mpenc-bot","room":"r@conf.example.org","time":"2025-03-04T05:06:07Z","message":"including bob (invited)"}
{"level":"error","cmd":"mpenc-bot","room":"r@conf.example.org","kind":"Message","err":"store: disk full","time":"2025-03-04T05:06:07Z","message":"history not recorded"}
{"level":"info","cmd":"mpenc-bot","room":"a<b>&c@conf","from":"é\t\u0001@x","via":"bad\ufffdutf8","time":"2025-03-04T05:06:07Z","message":"invitation"}
`
	debugOnly := `{"level":"debug","cmd":"mpenc-bot","room":"r@conf.example.org","kind":"Joined","author":"r@conf.example.org/al","time":"2025-03-04T05:06:07Z","message":"notice"}
{"level":"debug","cmd":"mpenc-bot","room":"r@conf.example.org","time":"2025-03-04T05:06:07Z","message":"xmpp: connected as bot@example.org/x"}
`
	lines := strings.SplitAfter(info, "\n")
	debug := strings.Join(lines[:3], "") + debugOnly + strings.Join(lines[3:], "")
	for _, tt := range []struct {
		level zerolog.Level
		want  string
	}{{zerolog.InfoLevel, info}, {zerolog.DebugLevel, debug}, {zerolog.ErrorLevel, lines[6]}} {
		var buf bytes.Buffer
		_, log := newLogger(&buf, tt.level)
		emit(log)
		if got := buf.String(); got != tt.want {
			t.Errorf("level %s: got\n%s\nwant\n%s", tt.level, got, tt.want)
		}
	}
}

// TestLogRotation: the bot's log file is mode 0600 (also an existing one
// made readable by others), and rotates at 10 MiB: the file becomes .1,
// and logging goes on in a new one.
func TestLogRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "bot.log")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	_, log := newLogger(f, zerolog.InfoLevel)
	pad := strings.Repeat("x", 1000)
	for range 11 << 10 { // 11 Ki lines of about 1 KiB: past 10 MiB
		log.Info("notice", "room", pad)
	}
	log.Info("after the rotation")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + ".1"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() > 10<<20 {
			t.Fatalf("%s: %v, %v", p, fi, err)
		}
	}
	cur, _ := os.ReadFile(path)
	if !strings.HasSuffix(string(cur), "\"message\":\"after the rotation\"}\n") || !strings.HasPrefix(string(cur), "{\"level\"") {
		t.Errorf("the current file does not start with a whole line and end with the last one")
	}
}
