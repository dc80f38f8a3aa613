package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/archive"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/trust"
)

// Bot answers commands in its rooms, and stays in them: it rejoins a room
// it was removed from (rooms.go).
type Bot struct {
	app      *app.App
	cfg      *Config
	prefix   string
	commands map[string]Command
	log      *slog.Logger

	rooms *rooms
	// join rejoins a room (in the background: it must not block); the
	// App's Join unless a test replaces it. A failure comes back on
	// joinFailed.
	join       func(ctx context.Context, room string)
	joinFailed chan joinFailure
	// selfIn is our participant id in a room ("" if unknown); the App's
	// unless a test replaces it.
	selfIn func(room string) string
}

// joinFailure is a rejoin that could not even start (no connection).
type joinFailure struct {
	room string
	err  error
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
	if cfg.HistoryService != "" {
		svc, err := archive.Open(expandHome(cfg.HistoryService), nil)
		if err != nil {
			return fmt.Errorf("the history service: %w", err)
		}
		defer svc.Close()
		acfg.XMPP = func(xc *xmpp.Config) {
			xc.OnHistoryRequest = func(from string, req []byte) []byte {
				// The receive loop waits for this: bounded.
				hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				ans := svc.Handle(hctx, from, req)
				log.Debug("history request", "from", from, "bytes", len(req), "answer_bytes", len(ans))
				return ans
			}
		}
		log.Info("history service on", "database", cfg.HistoryService)
	}
	a, err := app.Open(ctx, acfg)
	crypto.Zero(passphrase)
	if err != nil {
		return err
	}
	b := newBot(a, cfg, log)
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Close(cctx); err != nil {
			log.Error("close", "err", err)
		}
	}()
	if len(cfg.Rooms) == 0 {
		// A history service only: connect without a room.
		if err := a.Connect(ctx); err != nil {
			return err
		}
	}
	for _, rc := range cfg.Rooms {
		if _, err := a.Join(ctx, rc.JID, b.roomOptions(rc.JID)); err != nil {
			return fmt.Errorf("room %s: %w", rc.JID, err)
		}
	}
	log.Info("bot started", "account", a.Account(), "fingerprint", trust.FingerprintOf(a.PublicKey()).String(), "rooms", len(cfg.Rooms))
	return b.serve(ctx)
}

func newBot(a *app.App, cfg *Config, log *slog.Logger) *Bot {
	var jids []string
	for _, rc := range cfg.Rooms {
		jids = append(jids, rc.JID)
	}
	b := &Bot{app: a, cfg: cfg, prefix: cfg.Prefix, commands: commands(), log: log,
		rooms: newRooms(jids, cfg.rejoin(), time.Now()), joinFailed: make(chan joinFailure, len(jids)+1)}
	b.selfIn = func(room string) string {
		if r := b.app.Room(room); r != nil {
			return r.Self()
		}
		return ""
	}
	b.join = func(ctx context.Context, room string) {
		go func() {
			jctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			// A room the App has: Join enters it and joins its session
			// again (a new session if it stopped on an error).
			if _, err := b.app.Join(jctx, room, b.roomOptions(room)); err != nil && ctx.Err() == nil {
				select {
				case b.joinFailed <- joinFailure{room, err}:
				case <-ctx.Done():
				}
			}
		}()
	}
	return b
}

// roomOptions are the options of a room of the configuration.
func (b *Bot) roomOptions(room string) app.RoomOptions {
	for _, rc := range b.cfg.Rooms {
		if rc.JID == room {
			return app.RoomOptions{Nick: rc.Nick, Include: rc.Include, StayIfLastMember: true}
		}
	}
	return app.RoomOptions{StayIfLastMember: true}
}

// serve handles events until ctx ends. It returns an error when the bot
// is out of every room for good and does not rejoin (rejoin = false):
// a bot in no room is of no use, and must not look alive.
func (b *Bot) serve(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-b.app.Events():
			if !ok {
				return errors.New("events closed")
			}
			b.event(ctx, ev, time.Now())
		case f := <-b.joinFailed:
			b.outOf(f.room, "rejoin failed", f.err, time.Now())
		case now := <-tick.C:
			b.tick(ctx, now)
		}
		if b.rooms.allGone() {
			return errors.New("out of every room for good, and rejoin is off: nothing left to do")
		}
	}
}

// tick rejoins the rooms whose backoff is over, and reports the rooms the
// bot has been out of for long.
func (b *Bot) tick(ctx context.Context, now time.Time) {
	for _, room := range b.rooms.due(now) {
		s := b.rooms.get(room)
		b.log.Info("rejoining the room", "room", room, "attempt", s.attempts)
		b.join(ctx, room)
	}
	for _, room := range b.rooms.stale(now) {
		s := b.rooms.get(room)
		b.log.Error("still out of the room", "room", room, "since", s.since.Format(time.RFC3339), "why", s.why)
	}
}

// event handles one App event.
func (b *Bot) event(ctx context.Context, ev app.Event, now time.Time) {
	var r *app.Room
	if b.app != nil {
		r = b.app.Room(ev.Room)
	}
	switch ev.Kind {
	case app.EventJoined:
		if ev.Err != nil {
			b.outOf(ev.Room, "join failed", ev.Err, now)
		} else if d := b.rooms.entered(ev.Room, now); d > 0 {
			b.log.Info("in the session again", "room", ev.Room, "after", d.Round(time.Second).String())
		}
	case app.EventOut:
		b.outOf(ev.Room, "out of the room", ev.Err, now)
	case app.EventNotice:
		if ev.Notice.Kind == session.Gap && ev.Err != nil {
			return // removed for good: the EventOut that follows says it
		}
		b.notice(ev.Room, ev.Notice, now)
	case app.EventDecision:
		lvl := slog.LevelInfo
		if ev.Decision.Warning() {
			lvl = slog.LevelWarn
		}
		kv := []any{"room", ev.Room, "member", ev.Decision.Member, "decision", ev.Decision.Kind.String(),
			"fingerprint", trust.FingerprintOf(ev.Decision.Key).String(), "trusted", ev.Decision.Trusted}
		if ev.Decision.Kind == trust.KeyClaimed {
			// The accounts that have the key too: one may be posing as
			// the other; or the members of its own account in the room
			// that announced it first (ours included): one is not the
			// device it claims to be (a warning, by Warning).
			var others, here []string
			for _, p := range ev.Decision.Previous {
				if p.JID == ev.Decision.JID {
					here = append(here, p.Member)
				} else {
					others = append(others, p.JID)
				}
			}
			if len(others) > 0 {
				kv = append(kv, "also_key_of", others)
			}
			if len(here) > 0 {
				kv = append(kv, "also_announced_in_room_by", here)
			}
		}
		b.log.Log(ctx, lvl, "key", kv...)
	case app.EventEntry:
		if e := ev.Entry; e.Own && len(e.NotDelivered) > 0 && e.Ack == 0 {
			what := "a reply of ours did not reach every member (typed while out of the room)"
			if e.Kind == session.Queued {
				what = "a reply of ours was never sent (typed while out of the room; nobody came back in time)"
			}
			b.log.Warn(what, "room", ev.Room, "not_delivered", e.NotDelivered)
		}
		if r != nil {
			b.entry(ctx, r, ev.Entry)
		}
	case app.EventInfo:
		kv := []any{"room", ev.Room}
		if ev.Err != nil { // a step that went well has no "err"
			kv = append(kv, "err", ev.Err)
		}
		b.log.Info(ev.Text, kv...)
	case app.EventClosed:
		if ev.Err != nil {
			b.log.Error("room closed", "room", ev.Room, "err", ev.Err)
		}
	case app.EventInvitation:
		// A bot joins the rooms of its configuration only: anyone
		// can send an invitation.
		b.log.Info("invitation ignored", "room", ev.Invitation.Room, "from", ev.Invitation.From)
	}
}

// notice logs what an operator needs to know of a session notice, and
// follows the bot's presence in the room.
func (b *Bot) notice(room string, n session.Notice, now time.Time) {
	self := b.selfIn(room)
	switch n.Kind {
	case session.Gap:
		b.rooms.lost(room, errText(n.Err), now)
		b.log.Warn("lost the room (connection lost, server restarting, or the room forgot us): reconnecting; the session re-forms by itself",
			"room", room, "err", n.Err)
	case session.Kicked:
		if len(n.Members) == 1 && n.Members[0] == self {
			b.rooms.lost(room, errText(n.Err), now)
			kv := []any{"room", room, "err", n.Err}
			if !n.Until.IsZero() {
				kv = append(kv, "entering_again_at", n.Until.Format(time.RFC3339))
			}
			b.log.Warn("the room removed us while we waited to be included", kv...)
			return
		}
		b.log.Info("removing members from the room", "room", room, "members", n.Members, "reason", n.Text)
	case session.StateChanged:
		switch {
		case n.State == session.StateJoined, n.State == session.StateJoining && n.Until.IsZero():
			// In the session, or alone in the room holding it.
			if d := b.rooms.entered(room, now); d > 0 {
				b.log.Info("in the session again", "room", room, "after", d.Round(time.Second).String())
			}
		case n.State == session.StateJoining:
			b.log.Info("waiting to be included", "room", room, "until", n.Until.Format(time.RFC3339))
		case n.State != session.StateParting && b.rooms.get(room).in:
			// Out of the room: for good if EventOut follows; otherwise
			// the channel re-enters by itself.
			b.rooms.lost(room, "session state "+n.State.String(), now)
			b.log.Info("out of the room", "room", room, "state", n.State.String())
		}
	case session.OpFailed:
		if !n.Until.IsZero() {
			b.log.Warn("an inclusion failed (a newcomer did not answer, or a member refused its key): its newcomers are left out of automatic inclusions for a while",
				"room", room, "include", n.Include, "until", n.Until.Format(time.RFC3339), "err", n.Err)
		}
	}
}

// outOf records that the bot is out of a room for good and schedules
// its rejoin (or says it will not).
func (b *Bot) outOf(room, what string, err error, now time.Time) {
	d, scheduled := b.rooms.out(room, errText(err), now)
	switch {
	case !b.rooms.rejoin:
		b.log.Error(what+"; not rejoining (rejoin = false)", "room", room, "err", err)
	case scheduled:
		b.log.Warn(what+"; rejoining", "room", room, "err", err, "in", d.Round(time.Second).String(), "attempt", b.rooms.get(room).attempts)
	default:
		b.log.Info(what+"; a rejoin is already scheduled", "room", room, "err", err)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
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
