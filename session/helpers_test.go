package session_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/memhub"
	"github.com/mpenc/mpenc/internal/sim"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/session"
)

// ref is the reference timing profile, as in the scenarios of
// docs/SESSION.md and docs/MESSAGE-LAYER.md §8 (BC 5 s, MI 16 s).
var ref = session.NewTiming(5*time.Second, 16*time.Second)

// joinWindow is session.Config.JoinWindow's default.
const joinWindow = 5 * time.Minute

// hop is the room's per-hop delay in scenarios: well inside BC.
var hop = memhub.Faults{Uplink: 20 * time.Millisecond, Downlink: 20 * time.Millisecond, Jitter: 10 * time.Millisecond}

func world(t *testing.T, seed uint64, faults memhub.Faults, ids ...string) *sim.World {
	t.Helper()
	w := sim.NewWorld(seed, faults, ref)
	for _, id := range ids {
		w.Add(id, nil)
	}
	return w
}

func auto(c *session.Config) { c.AutoInclude = true }

func run(t *testing.T, w *sim.World, d time.Duration) {
	t.Helper()
	if err := w.RunFor(d); err != nil {
		t.Fatal(err)
	}
}

func join(t *testing.T, w *sim.World, id string) *session.Op {
	t.Helper()
	var op *session.Op
	var err error
	w.Do(id, func(c *session.Core, now time.Time) { op, err = c.Join(now) })
	if err != nil {
		t.Fatalf("%s join: %v", id, err)
	}
	return op
}

func letters(w *sim.World, ids ...string) string {
	var out []string
	for _, id := range ids {
		out = append(out, id+":"+session.LettersOf(w.Members[id].Core))
	}
	return strings.Join(out, " ")
}

func noWarnings(t *testing.T, w *sim.World) {
	t.Helper()
	for _, id := range w.Order() {
		for _, n := range w.Members[id].Warnings() {
			t.Errorf("%s: unexpected warning %v", id, n)
		}
	}
}

// sameSession checks that the members share one subsession: same sid,
// members and group key.
func sameSession(t *testing.T, w *sim.World, ids ...string) {
	t.Helper()
	first := w.Members[ids[0]].Core
	sid, ok := first.SessionID()
	if !ok {
		t.Fatalf("%s has no session (%s)", ids[0], session.LettersOf(first))
	}
	for _, id := range ids {
		c := w.Members[id].Core
		s, ok := c.SessionID()
		if !ok || s != sid {
			t.Fatalf("%s: session %x (ok %v), %s has %x", id, s[:4], ok, ids[0], sid[:4])
		}
		if !slices.Equal(c.Members(), slices.Sorted(slices.Values(ids))) {
			t.Fatalf("%s: members %v, want %v", id, c.Members(), ids)
		}
		if session.GroupStateOf(c).GroupKey != session.GroupStateOf(first).GroupKey {
			t.Fatalf("%s: group key differs", id)
		}
	}
}

func notices(m *sim.Member, kind session.NoticeKind) []session.Notice {
	var out []session.Notice
	for _, n := range m.Notices {
		if n.Kind == kind {
			out = append(out, n)
		}
	}
	return out
}

func texts(m *sim.Member) []string {
	var out []string
	for _, n := range notices(m, session.Message) {
		out = append(out, fmt.Sprintf("%s:%s", n.Author, n.Text))
	}
	return out
}

// session forms a session of ids (all auto-including), the first founding it.
func formSession(t *testing.T, w *sim.World, ids ...string) {
	t.Helper()
	for _, id := range ids {
		join(t, w, id)
		run(t, w, 15*time.Second)
	}
	sameSession(t, w, ids...)
}

func addAll(w *sim.World, configure func(*session.Config), ids ...string) {
	for _, id := range ids {
		w.Add(id, configure)
	}
}

func opOf(t *testing.T, w *sim.World, id string, f func(c *session.Core, now time.Time) (*session.Op, error)) *session.Op {
	t.Helper()
	var op *session.Op
	var err error
	w.Do(id, func(c *session.Core, now time.Time) { op, err = f(c, now) })
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	return op
}

func include(ms ...string) func(*session.Core, time.Time) (*session.Op, error) {
	return func(c *session.Core, now time.Time) (*session.Op, error) { return c.Include(ms, now) }
}

func exclude(ms ...string) func(*session.Core, time.Time) (*session.Op, error) {
	return func(c *session.Core, now time.Time) (*session.Op, error) { return c.Exclude(ms, now) }
}

func part(c *session.Core, now time.Time) (*session.Op, error) { return c.Part(now) }

// holdFirst makes the interceptor keep back the first packet member id
// sends for which pick is true, returning a function that releases it.
func holdFirst(w *sim.World, id string, pick func(wire string) bool) (release func()) {
	var held []session.Action
	done := false
	prev := w.Intercept
	w.Intercept = func(who string, a session.Action) []session.Action {
		if !done && who == id && a.Kind == session.ActSend && pick(a.Wire) {
			done = true
			held = append(held, a)
			return nil
		}
		if prev != nil {
			return prev(who, a)
		}
		return []session.Action{a}
	}
	return func() {
		for _, a := range held {
			w.Act(id, a)
		}
		held = nil
	}
}

func isGreet(t wire.GreetType) func(string) bool {
	return func(w string) bool {
		p, err := wire.DecodeWire(w)
		if err != nil {
			return false
		}
		g, ok := p.(*wire.GreetPacket)
		return ok && g.Type == t
	}
}

func chainLen(w *sim.World, id string) int {
	ids, _ := w.Members[id].Core.Chain()
	return len(ids)
}
