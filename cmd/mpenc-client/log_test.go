package main

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestLogLines checks a line of the log file as package app writes it
// (log/slog through zerolog's handler) against the line the zerolog adapter
// it replaced wrote, and that the client's own lines and the level filter
// are unchanged. The bot's TestLogLines checks every kind of value.
func TestLogLines(t *testing.T) {
	old := zerolog.TimestampFunc
	zerolog.TimestampFunc = func() time.Time { return time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC) }
	t.Cleanup(func() { zerolog.TimestampFunc = old })

	var buf bytes.Buffer
	log, alog := newLogger(&buf, zerolog.InfoLevel)
	alog.Debug("notice", "room", "r@conf.example.org", "kind", "Joined")
	alog.Warn("join failed", "room", "r@conf.example.org", "err", errors.New("muc: nick in use"))
	log.Info().Msg("exit")
	want := `{"level":"warn","cmd":"mpenc-client","room":"r@conf.example.org","err":"muc: nick in use","time":"2025-03-04T05:06:07Z","message":"join failed"}
{"level":"info","cmd":"mpenc-client","time":"2025-03-04T05:06:07Z","message":"exit"}
`
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
