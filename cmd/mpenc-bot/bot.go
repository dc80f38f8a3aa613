package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/trust"
)

// Bot answers commands in its rooms.
type Bot struct {
	app      *app.App
	cfg      *Config
	prefix   string
	commands map[string]Command
	log      *slog.Logger
}

// run starts the bot and serves until ctx ends; then it parts every room
// properly and returns.
func run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	password, passphrase, err := cfg.secrets()
	if err != nil {
		return err
	}
	acfg, err := cfg.Settings.Config()
	if err != nil {
		return err
	}
	acfg.Password = password
	acfg.Logger = log
	acfg.Passphrase = func(bool) ([]byte, error) { return passphrase, nil }
	a, err := app.Open(ctx, acfg)
	crypto.Zero(passphrase)
	if err != nil {
		return err
	}
	b := &Bot{app: a, cfg: cfg, prefix: cfg.Prefix, commands: commands(), log: log}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Close(cctx); err != nil {
			log.Error("close", "err", err)
		}
	}()
	for _, rc := range cfg.Rooms {
		if _, err := a.Join(ctx, rc.JID, app.RoomOptions{Nick: rc.Nick, Include: rc.Include, StayIfLastMember: true}); err != nil {
			return fmt.Errorf("room %s: %w", rc.JID, err)
		}
	}
	log.Info("bot started", "account", a.Account(), "fingerprint", trust.FingerprintOf(a.PublicKey()).String(), "rooms", len(cfg.Rooms))
	return b.serve(ctx)
}

// serve handles events until ctx ends.
func (b *Bot) serve(ctx context.Context) error {
	retries := map[string]int{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-b.app.Events():
			if !ok {
				return errors.New("events closed")
			}
			r := b.app.Room(ev.Room)
			switch ev.Kind {
			case app.EventJoined:
				if ev.Err == nil {
					retries[ev.Room] = 0
					continue
				}
				// Nobody included us, or the room refused: try again
				// later, with backoff, while we run.
				retries[ev.Room]++
				d := min(time.Duration(1<<min(retries[ev.Room], 6))*time.Second, time.Minute)
				d += time.Duration(rand.Int64N(int64(d / 4)))
				b.log.Warn("join failed; retrying", "room", ev.Room, "err", ev.Err, "in", d.String())
				if r != nil {
					room := ev.Room
					time.AfterFunc(d, func() {
						if ctx.Err() == nil {
							// A room we are in: Join joins its session again.
							if _, err := b.app.Join(ctx, room, app.RoomOptions{}); err != nil {
								b.log.Warn("rejoin", "room", room, "err", err)
							}
						}
					})
				}
			case app.EventDecision:
				lvl := slog.LevelInfo
				if ev.Decision.Warning() {
					lvl = slog.LevelWarn
				}
				b.log.Log(ctx, lvl, "key", "room", ev.Room, "member", ev.Decision.Member, "decision", ev.Decision.Kind.String(),
					"fingerprint", trust.FingerprintOf(ev.Decision.Key).String(), "trusted", ev.Decision.Trusted)
			case app.EventEntry:
				if r != nil {
					b.entry(ctx, r, ev.Entry)
				}
			case app.EventInfo:
				kv := []any{"room", ev.Room}
				if ev.Err != nil { // a step that went well has no "err"
					kv = append(kv, "err", ev.Err)
				}
				b.log.Info(ev.Text, kv...)
			case app.EventInvitation:
				// A bot joins the rooms of its configuration only: anyone
				// can send an invitation.
				b.log.Info("invitation ignored", "room", ev.Invitation.Room, "from", ev.Invitation.From)
			}
		}
	}
}

// entry answers commands and greets newcomers. A message delivered again
// (its acknowledgement state changed) is not answered twice.
func (b *Bot) entry(ctx context.Context, r *app.Room, n app.Entry) {
	switch n.Kind {
	case session.Message:
		if n.Own || n.Ack != 0 {
			return
		}
		name, args, ok := parseCommand(b.prefix, n.Text)
		if !ok {
			return
		}
		go b.answer(ctx, r, n.Author, name, args)
	case session.Membership:
		if b.cfg.Greeting == "" {
			return
		}
		var names []string
		for _, m := range n.Include {
			if m != r.Self() {
				names = append(names, trust.Bare(m))
			}
		}
		if len(names) == 0 {
			return
		}
		names = slices.Compact(slices.Sorted(slices.Values(names)))
		text := strings.ReplaceAll(b.cfg.Greeting, "{name}", strings.Join(names, ", "))
		go b.send(ctx, r, text, "greeting")
	}
}

func (b *Bot) answer(ctx context.Context, r *app.Room, from, name, args string) {
	cmd, ok := b.commands[name]
	if !ok {
		b.send(ctx, r, fmt.Sprintf("unknown command %s%s; try %shelp", b.prefix, name, b.prefix), name)
		return
	}
	b.log.Info("command", "room", r.JID(), "from", from, "command", name)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	reply, err := cmd.Run(cctx, Request{Bot: b, Room: r, From: from, Name: name, Args: args})
	if err != nil {
		reply = "error: " + err.Error()
	}
	if reply != "" {
		b.send(ctx, r, reply, name)
	}
}

func (b *Bot) send(ctx context.Context, r *app.Room, text, what string) {
	if _, err := r.Send(ctx, text); err != nil {
		b.log.Warn("reply not sent", "room", r.JID(), "what", what, "err", err)
	}
}
