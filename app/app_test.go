package app

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/store"
)

func testConfig(t *testing.T, dir string, pass string, creates *[]bool) Config {
	return Config{
		Store: filepath.Join(dir, "a.db"), Account: "alice@example.org", Password: "pw",
		Passphrase: func(create bool) ([]byte, error) {
			*creates = append(*creates, create)
			return []byte(pass), nil
		},
		KDF:    store.KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1},
		Server: "127.0.0.1:1", Security: xmpp.UnsafePlaintext, Timing: session.LoopbackTiming(),
	}
}

func TestOpenCreatesThenUnlocks(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var creates []bool
	a, err := Open(ctx, testConfig(t, dir, "correct horse", &creates))
	if err != nil {
		t.Fatal(err)
	}
	fp, dev := a.PublicKey(), a.res
	if a.Account() != "alice@example.org" || !strings.HasPrefix(dev, "mpenc-") {
		t.Errorf("account %q device %q", a.Account(), dev)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-a.Events(); ok {
		t.Error("Events not closed by Close")
	}
	a, err = Open(ctx, testConfig(t, dir, "correct horse", &creates))
	if err != nil {
		t.Fatal(err)
	}
	if a.PublicKey() != fp || a.res != dev {
		t.Error("another key or device after reopening")
	}
	a.Close(ctx)
	if len(creates) != 2 || !creates[0] || creates[1] {
		t.Errorf("passphrase asked with create = %v, want [true false]", creates)
	}
	_, err = Open(ctx, testConfig(t, dir, "wrong horse!", &creates))
	if err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("wrong passphrase: %v", err)
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	var creates []bool
	good := testConfig(t, t.TempDir(), "correct horse", &creates)
	for i, f := range []func(*Config){
		func(c *Config) { c.Account = "" },
		func(c *Config) { c.Account = "alice@example.org/res" },
		func(c *Config) { c.Account = "example.org" },
		func(c *Config) { c.Password = "" },
		func(c *Config) { c.Passphrase = nil },
		func(c *Config) { c.Store = "" },
		func(c *Config) { c.Timing = session.Timing{BC: time.Second} },
	} {
		c := good
		f(&c)
		if a, err := Open(context.Background(), c); err == nil {
			a.Close(context.Background())
			t.Errorf("%d: no error", i)
		}
	}
	if len(creates) != 0 {
		t.Error("asked for a passphrase with a bad configuration")
	}
}

func TestJoinUnreachable(t *testing.T) {
	ctx := context.Background()
	var creates []bool
	a, err := Open(ctx, testConfig(t, t.TempDir(), "correct horse", &creates))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := a.Join(jctx, "room@conference.example.org", RoomOptions{}); err == nil {
		t.Fatal("joined through a closed port")
	}
	if len(a.rooms) != 0 || a.Room("room@conference.example.org") != nil {
		t.Error("a failed room is listed")
	}
	for _, bad := range []string{"not a jid@", "room@conference.example.org/nick", "conference.example.org"} {
		if _, err := a.Join(jctx, bad, RoomOptions{}); err == nil {
			t.Errorf("joined %q", bad)
		}
	}
	if _, err := a.Join(jctx, "room@conference.example.org", RoomOptions{Include: "all"}); err == nil || !strings.Contains(err.Error(), "include policy") {
		t.Errorf("unknown include policy: %v", err)
	}
}

func TestQueueOrderAndClose(t *testing.T) {
	q := newQueue()
	for i := range 1000 {
		q.push(Event{Text: string(rune('a' + i%26))})
	}
	got := 0
	for ev := range q.out {
		if want := string(rune('a' + got%26)); ev.Text != want {
			t.Fatalf("event %d: %q, want %q", got, ev.Text, want)
		}
		got++
		if got == 1000 {
			q.close()
		}
	}
	if got != 1000 {
		t.Fatalf("%d events", got)
	}
	q.push(Event{}) // after close: dropped, no panic
}

func TestSettings(t *testing.T) {
	c, err := Settings{Account: "a@b", Security: "directtls", Timing: "loopback", Store: "~/x.db"}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.Security != xmpp.DirectTLS || c.Timing != session.LoopbackTiming() || strings.HasPrefix(c.Store, "~") || c.RequireChannelBinding {
		t.Errorf("config %+v", c)
	}
	if c, err := (Settings{Account: "a@b", RequireChannelBinding: true}).Config(); err != nil || !c.RequireChannelBinding {
		t.Errorf("require_channel_binding: %+v, %v", c, err)
	}
	for _, s := range []Settings{{}, {Account: "a@b", Security: "ssl3"}, {Account: "a@b", Timing: "slow"}, {Account: "a@b", CAFile: "/nonexistent"},
		{Account: "a@b", Security: "plaintext", RequireChannelBinding: true}} {
		if _, err := s.Config(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
}
