//go:build integration

package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/session"
)

// logLines collects an App's XMPP diagnostics (app.Config.XMPP's Logf),
// after the App's own logger has seen them.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) tweak(c *app.Config) {
	prev := c.XMPP
	c.XMPP = func(x *xmpp.Config) {
		if prev != nil {
			prev(x)
		}
		logf := x.Logf
		x.Logf = func(format string, args ...any) {
			l.mu.Lock()
			l.lines = append(l.lines, fmt.Sprintf(format, args...))
			l.mu.Unlock()
			if logf != nil {
				logf(format, args...)
			}
		}
	}
}

func (l *logLines) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

// TestIntegrationResumption: a member's connection breaks in the middle of
// a conversation (the socket closes under it: no stream end, no
// unavailable presence). It connects again and resumes its stream
// (XEP-0198): nobody sees it leave or come back, the session goes on
// unchanged, and what it typed during the outage and what the others
// sent meanwhile both arrive. Then the same once more: a second outage is
// resumed on the resumed stream. The third outage lasts 8 s (connections
// fail, without a refusal) while the others send five messages: the
// server resends them marked as delayed, and they are taken as live (no
// message waits for older ones, none is dropped).
func TestIntegrationResumption(t *testing.T) {
	s := serverFromEnv(t)
	addr := s.clientAddr()
	px := newProxy(t, addr)
	var logs logLines
	ps := []*appPeer{
		s.newAppPeer(t, s.cmdAccount(t, 3), t.TempDir(), shortWindow),
		s.newAppPeer(t, s.cmdAccount(t, 4), t.TempDir(), shortWindow),
		s.newAppPeer(t, s.cmdAccount(t, 5), t.TempDir(), shortWindow, via(px), logs.tweak),
	}
	room := s.newRoom(t)
	rs := formApps(t, room, ps)
	// The session of three settled everywhere: what follows must change
	// nothing of it.
	for _, p := range ps {
		p.waitJoined(0, room)
		p.waitEvent(0, "the membership of three", func(ev app.Event) bool {
			return ev.Kind == app.EventEntry && ev.Entry.Kind == session.Membership && len(ev.Entry.Members)+len(ev.Entry.Include) == 3
		})
	}
	for round := 1; round <= 3; round++ {
		marks := []int{ps[0].mark(), ps[1].mark(), ps[2].mark()}
		if round == 3 {
			px.setDown(true)
		}
		if n := px.drop(); n != 1 {
			t.Fatalf("round %d: %d connections through the proxy, want 1", round, n)
		}
		var burst []string
		if round == 3 {
			ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
			for i := range 5 {
				text := fmt.Sprintf("while member 2 is away for a while (%d)", i)
				if _, err := rs[1].Send(ctx, text); err != nil {
					t.Fatal(err)
				}
				burst = append(burst, text)
				time.Sleep(time.Second)
			}
			cancel()
			time.Sleep(3 * time.Second)
			px.setDown(false)
		}
		// Both sides talk while the connection is down: the others at
		// once, the cut member right after its own sending side found out.
		ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
		away := fmt.Sprintf("sent while member 2 was away (%d)", round)
		if _, err := rs[0].Send(ctx, away); err != nil {
			t.Fatal(err)
		}
		during := fmt.Sprintf("typed during the outage (%d)", round)
		if _, err := rs[2].Send(ctx, during); err != nil {
			t.Fatal(err)
		}
		cancel()
		ps[2].waitMessage(marks[2], room, bare(rs[0].Self()), "the message sent during the outage", func(s string) bool { return s == away })
		ps[1].waitMessage(marks[1], room, bare(rs[0].Self()), "the message sent during the outage", func(s string) bool { return s == away })
		for i := range 2 {
			ps[i].waitMessage(marks[i], room, bare(rs[2].Self()), "the message typed during the outage", func(s string) bool { return s == during })
		}
		for _, text := range burst {
			ps[2].waitMessage(marks[2], room, bare(rs[1].Self()), "a message of the long outage", func(s string) bool { return s == text })
		}
		ps[0].waitEvent(marks[0], "the message acknowledged by everyone", func(ev app.Event) bool {
			return ev.Kind == app.EventEntry && ev.Entry.Text == away && ev.Entry.Ack == session.FullyAcked
		})
		if got := logs.count("connection resumed"); got != round {
			t.Fatalf("round %d: %d resumptions logged, want %d", round, got, round)
		}
		if n := px.open(); n != 1 {
			t.Fatalf("round %d: %d connections after resumption, want 1", round, n)
		}
		// Nobody saw a departure, an arrival, a membership change, or a
		// change of the session's state.
		for i, p := range ps {
			p.mu.Lock()
			for _, ev := range p.evs[marks[i]:] {
				k := ev.Notice.Kind
				if ev.Kind == app.EventEntry {
					k = ev.Entry.Kind
				}
				switch k {
				case session.ChannelLeave, session.ChannelEnter, session.Membership, session.StateChanged, session.Gap,
					session.Waiting, session.Dropped:
					t.Errorf("round %d: member %d saw %v (event %d, entry %+v)", round, i, k, ev.Kind, ev.Entry)
				}
			}
			p.mu.Unlock()
		}
	}
}

// TestIntegrationRestartWhileHeld: a device loses its network, quits
// (its session cannot part properly), and starts again while the server
// still holds its stream for resumption. Its new login replaces the held
// session, so the others see it leave and enter in one instant; the
// member that stayed keeps the room, and the device is in its session
// again. (Found by a new-user trial: the member that stayed used to leave
// the room, leaving the device alone.)
func TestIntegrationRestartWhileHeld(t *testing.T) {
	s := serverFromEnv(t)
	addr := s.clientAddr()
	px := newProxy(t, addr)
	aAcct, bAcct := s.cmdAccount(t, 3), s.cmdAccount(t, 4)
	bDir := t.TempDir()
	a := s.newAppPeer(t, aAcct, t.TempDir(), shortWindow)
	b := s.newAppPeer(t, bAcct, bDir, shortWindow, via(px))
	room := s.newRoom(t)
	rs := formApps(t, room, []*appPeer{a, b})
	bID := rs[1].Self()
	for _, p := range []*appPeer{a, b} {
		p.waitJoined(0, room)
	}
	// The network goes; the device quits (it cannot part: it waits for its
	// part to time out) and starts again once the network is back, well
	// within the 60 s the server holds its session.
	px.setDown(true)
	px.drop()
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	if err := b.a.Close(ctx); err != nil {
		t.Logf("closing b: %v", err)
	}
	<-b.done
	px.setDown(false)
	from := a.mark()
	b2 := s.newAppPeer(t, bAcct, bDir, shortWindow, via(px))
	r2 := b2.join(room, "everyone")
	if r2.Self() != bID {
		t.Fatalf("b came back as %s, not %s", r2.Self(), bID)
	}
	b2.waitJoined(0, room)
	a.waitEvent(from, "b in the session again", func(ev app.Event) bool {
		return ev.Kind == app.EventEntry && ev.Entry.Kind == session.Membership && slices.Contains(ev.Entry.Include, bID)
	})
	a.mu.Lock()
	for _, ev := range a.evs[from:] {
		if ev.Kind == app.EventOut || ev.Kind == app.EventClosed {
			t.Errorf("a left the room: %+v", ev)
		}
	}
	a.mu.Unlock()
	ctx2, cancel2 := context.WithTimeout(context.Background(), cmdBound)
	defer cancel2()
	if _, err := rs[0].Send(ctx2, "still here"); err != nil {
		t.Fatal(err)
	}
	b2.waitMessage(0, room, bare(rs[0].Self()), "a's message after the restart", func(s string) bool { return s == "still here" })
}
