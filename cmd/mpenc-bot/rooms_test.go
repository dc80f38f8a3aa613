package main

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/internal/trusttest"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/trust"
)

const testRoom = "r@muc.example.org"

// TestRejoinBackoff: rejoins come 5 s after the first removal, doubling
// to 5 minutes; a stay of three minutes starts the count again; a second
// removal while a rejoin is scheduled schedules nothing more.
func TestRejoinBackoff(t *testing.T) {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	rs := newRooms([]string{testRoom}, true, t0)
	rs.jitter = func(int64) int64 { return 0 }
	now := t0
	if d := rs.entered(testRoom, now); d != 0 {
		t.Errorf("first entry: back after %v", d)
	}
	var got []time.Duration
	for range 9 {
		now = now.Add(time.Minute) // shorter than a stay that resets
		d, ok := rs.out(testRoom, "kicked", now)
		if !ok {
			t.Fatal("not scheduled")
		}
		if _, again := rs.out(testRoom, "kicked again", now); again {
			t.Fatal("scheduled twice")
		}
		if due := rs.due(now.Add(d - time.Millisecond)); len(due) != 0 {
			t.Fatalf("due early: %v", due)
		}
		now = now.Add(d)
		if due := rs.due(now); !slices.Equal(due, []string{testRoom}) {
			t.Fatalf("not due after %v: %v", d, due)
		}
		got = append(got, d)
		if back := rs.entered(testRoom, now); back != d {
			t.Errorf("back after %v, want %v", back, d)
		}
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	if !slices.Equal(got, want) {
		t.Errorf("delays %v, want %v", got, want)
	}
	// A stay of three minutes: the next removal starts again at 5 s.
	now = now.Add(rejoinStable)
	if d, _ := rs.out(testRoom, "kicked", now); d != rejoinMin {
		t.Errorf("after a long stay: %v", d)
	}
	// A passing absence (a server restart) schedules nothing.
	rs.due(now.Add(time.Hour))
	rs.entered(testRoom, now)
	rs.lost(testRoom, "connection lost", now)
	if due := rs.due(now.Add(time.Hour)); len(due) != 0 {
		t.Errorf("a passing absence scheduled a rejoin: %v", due)
	}
	// Jitter adds at most 10 %.
	rs = newRooms([]string{testRoom}, true, t0)
	for range 100 {
		rs.m[testRoom] = &roomState{attempts: 3}
		if d, _ := rs.out(testRoom, "x", t0); d < 40*time.Second || d >= 44*time.Second {
			t.Fatalf("jittered delay %v", d)
		}
	}
}

// TestRejoinOffAndStale: with rejoin off a removal schedules nothing and
// the bot knows when it is out of every room; a room the bot is out of is
// reported after five minutes, and every five minutes while it lasts.
func TestRejoinOffAndStale(t *testing.T) {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	rs := newRooms([]string{testRoom, "s@muc.example.org"}, false, t0)
	rs.entered(testRoom, t0)
	rs.entered("s@muc.example.org", t0)
	if _, ok := rs.out(testRoom, "kicked", t0); ok || rs.allGone() {
		t.Fatal("scheduled with rejoin off, or gone with a room left")
	}
	rs.out("s@muc.example.org", "room destroyed", t0)
	if !rs.allGone() {
		t.Error("not gone from every room")
	}

	rs = newRooms([]string{testRoom}, true, t0)
	for _, tt := range []struct {
		after time.Duration
		want  bool
	}{{4 * time.Minute, false}, {5 * time.Minute, true}, {6 * time.Minute, false}, {10 * time.Minute, true}, {11 * time.Minute, false}} {
		if got := len(rs.stale(t0.Add(tt.after))) == 1; got != tt.want {
			t.Errorf("out %v: reported %v, want %v", tt.after, got, tt.want)
		}
	}
	rs.entered(testRoom, t0.Add(12*time.Minute))
	if len(rs.stale(t0.Add(time.Hour))) != 0 {
		t.Error("reported while in")
	}
}

// TestBotStaysInItsRooms follows the events of a room through a server
// restart (a passing absence: nothing to do but say so), a kick (out for
// good: rejoin after the backoff) and the return, with the log lines an
// operator reads.
func TestBotStaysInItsRooms(t *testing.T) {
	var buf bytes.Buffer
	_, log := newLogger(&buf, zerolog.InfoLevel)
	cfg := &Config{Prefix: "!", Rooms: []RoomConfig{{JID: testRoom, Include: "manual"}}}
	b := newBot(nil, cfg, log)
	b.rooms.jitter = func(int64) int64 { return 0 }
	b.selfIn = func(string) string { return "bot@example.org/b" }
	var joins []string
	b.join = func(_ context.Context, room string) { joins = append(joins, room) }
	ctx := context.Background()
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	kicked := errors.New("xmpp: removed from r@muc.example.org: kicked")
	note := func(n session.Notice) app.Event { return app.Event{Room: testRoom, Kind: app.EventNotice, Notice: n} }
	steps := []struct {
		at   time.Duration
		ev   app.Event // zero: a tick
		want string    // in the log lines of the step; "" for none
	}{
		{0, app.Event{Room: testRoom, Kind: app.EventJoined}, ""},
		{time.Second, note(session.Notice{Kind: session.StateChanged, State: session.StateJoined}), ""},
		{time.Minute, note(session.Notice{Kind: session.Gap, Err: errors.New("xmpp: connection lost")}),
			`{"level":"warn","cmd":"mpenc-bot","room":"r@muc.example.org","err":"xmpp: connection lost","time":"T","message":"lost the room (connection lost, server restarting, or the room forgot us): reconnecting; the session re-forms by itself"}`},
		{time.Minute, note(session.Notice{Kind: session.StateChanged, State: session.StateParted}), ""},
		{2 * time.Minute, note(session.Notice{Kind: session.StateChanged, State: session.StateJoined}),
			`"after":"1m0s","time":"T","message":"in the session again"`},
		{3 * time.Minute, note(session.Notice{Kind: session.StateChanged, State: session.StateParted}),
			`"state":"PARTED","time":"T","message":"out of the room"`},
		{3 * time.Minute, app.Event{Room: testRoom, Kind: app.EventOut, Err: kicked},
			`{"level":"warn","cmd":"mpenc-bot","room":"r@muc.example.org","err":"xmpp: removed from r@muc.example.org: kicked","in":"5s","attempt":1,"time":"T","message":"out of the room; rejoining"}`},
		{3*time.Minute + 4*time.Second, app.Event{}, ""},
		{3*time.Minute + 5*time.Second, app.Event{}, `"attempt":1,"time":"T","message":"rejoining the room"`},
		{3*time.Minute + 6*time.Second, note(session.Notice{Kind: session.Kicked, Members: []string{"bot@example.org/b"}, Err: kicked, Until: t0.Add(4 * time.Minute)}),
			`"err":"xmpp: removed from r@muc.example.org: kicked","entering_again_at":"2026-03-04T05:10:07Z","time":"T","message":"the room removed us while we waited to be included"`},
		{3*time.Minute + 7*time.Second, note(session.Notice{Kind: session.StateChanged, State: session.StateJoining, Until: t0.Add(8 * time.Minute)}),
			`"until":"2026-03-04T05:14:07Z","time":"T","message":"waiting to be included"`},
		{3*time.Minute + 8*time.Second, app.Event{Room: testRoom, Kind: app.EventJoined}, `"message":"in the session again"`},
		{4 * time.Minute, note(session.Notice{Kind: session.Kicked, Members: []string{"mallory@example.org/m"}, Text: "was excluded from the session"}),
			`"members":["mallory@example.org/m"],"reason":"was excluded from the session","time":"T","message":"removing members from the room"`},
		{4 * time.Minute, app.Event{Room: testRoom, Kind: app.EventEntry, Entry: app.Entry{Kind: session.Queued, Own: true, NotDelivered: []string{"alice@example.org/a"}}},
			`"not_delivered":["alice@example.org/a"],"time":"T","message":"a reply of ours was never sent (typed while out of the room; nobody came back in time)"`},
	}
	for i, st := range steps {
		buf.Reset()
		now := t0.Add(st.at)
		if st.ev.Kind == 0 {
			b.tick(ctx, now)
		} else {
			b.event(ctx, st.ev, now)
		}
		got := timeRE(buf.String())
		if st.want == "" && got != "" || st.want != "" && !strings.Contains(got, st.want) {
			t.Errorf("step %d: log\n%s\nwant\n%s", i, got, st.want)
		}
	}
	if !slices.Equal(joins, []string{testRoom}) {
		t.Errorf("rejoins %v", joins)
	}
}

// timeRE replaces the log lines' wall-clock times by T.
func timeRE(s string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if i := strings.Index(l, `"time":"`); i >= 0 {
			if j := strings.Index(l[i+8:], `"`); j >= 0 {
				l = l[:i+8] + "T" + l[i+8+j:]
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// TestBotLogsClaimedKey: a member announcing a key another account has is
// logged as a warning naming those accounts, one announcing a key another
// member of its account in the room announced first as one naming that
// member; a new key is information.
func TestBotLogsClaimedKey(t *testing.T) {
	var buf bytes.Buffer
	_, log := newLogger(&buf, zerolog.InfoLevel)
	b := newBot(nil, &Config{Prefix: "!", Rooms: []RoomConfig{{JID: testRoom, Include: "manual"}}}, log)
	ctx := context.Background()
	key := trusttest.Key(1)
	fp := trust.FingerprintOf(key).String()
	b.event(ctx, app.Event{Room: testRoom, Kind: app.EventDecision, Decision: trust.Decision{Kind: trust.KeyClaimed, Member: "ghost@evil.example/r",
		JID: "ghost@evil.example", Key: key, Previous: []trust.Record{{JID: "bob@example.org", Key: key}}}}, time.Now())
	want := `{"level":"warn","cmd":"mpenc-bot","room":"r@muc.example.org","member":"ghost@evil.example/r","decision":"claimed","fingerprint":"` + fp +
		`","trusted":false,"also_key_of":["bob@example.org"],"time":"T","message":"key"}`
	if got := timeRE(buf.String()); got != want {
		t.Errorf("log\n%s\nwant\n%s", got, want)
	}
	buf.Reset()
	b.event(ctx, app.Event{Room: testRoom, Kind: app.EventDecision, Decision: trust.Decision{Kind: trust.KeyNew, Member: "bob@example.org/b",
		JID: "bob@example.org", Key: key, Trusted: true}}, time.Now())
	if got := timeRE(buf.String()); !strings.HasPrefix(got, `{"level":"info"`) || strings.Contains(got, "also_key_of") {
		t.Errorf("a new key logged as %s", got)
	}
	// A key another member of the account in the room announced first:
	// that member is named, by its full JID.
	buf.Reset()
	b.event(ctx, app.Event{Room: testRoom, Kind: app.EventDecision, Decision: trust.Decision{Kind: trust.KeyClaimed, Member: "bob@example.org/ghost",
		JID: "bob@example.org", Key: key, Previous: []trust.Record{{JID: "bob@example.org", Key: key, Member: "bob@example.org/b"}}}}, time.Now())
	want = `{"level":"warn","cmd":"mpenc-bot","room":"r@muc.example.org","member":"bob@example.org/ghost","decision":"claimed","fingerprint":"` + fp +
		`","trusted":false,"also_announced_in_room_by":["bob@example.org/b"],"time":"T","message":"key"}`
	if got := timeRE(buf.String()); got != want {
		t.Errorf("log\n%s\nwant\n%s", got, want)
	}
}

// TestBotLogsFailedInclusion: an inclusion that failed with a pause for
// its newcomers (the session's OpFailed notice with Until) is a warning
// in the bot's log saying until when. Before, the session never set
// Until on OpFailed, so a bot retrying a refused newcomer logged nothing
// (found by a new-user trial).
func TestBotLogsFailedInclusion(t *testing.T) {
	var buf bytes.Buffer
	_, log := newLogger(&buf, zerolog.InfoLevel)
	b := newBot(nil, &Config{Prefix: "!", Rooms: []RoomConfig{{JID: testRoom, Include: "everyone"}}}, log)
	b.selfIn = func(string) string { return "bot@example.org/b" }
	until := time.Date(2026, 3, 4, 5, 7, 0, 0, time.UTC)
	b.event(context.Background(), app.Event{Room: testRoom, Kind: app.EventNotice, Notice: session.Notice{Kind: session.OpFailed,
		Include: []string{"dave@example.org/d"}, Until: until, Err: errors.New("session: operation aborted: ended early by bob")}}, until.Add(-time.Minute))
	got := timeRE(buf.String())
	for _, want := range []string{`"level":"warn"`, `"include":["dave@example.org/d"]`, `"until":"2026-03-04T05:07:00Z"`, "ended early by bob", "an inclusion failed"} {
		if !strings.Contains(got, want) {
			t.Errorf("log %s lacks %s", got, want)
		}
	}
}
