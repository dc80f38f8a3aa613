package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mpenc/mpenc/internal/memhub"
	"github.com/mpenc/mpenc/internal/subsession"
	"github.com/mpenc/mpenc/session"
)

// RestartScenario is a server restart in the middle of a conversation: a
// room of members (by default none includes anyone automatically: the
// include policy "manual") forms a session and talks; the server restarts;
// members come back one by one, as their transports reconnect, some not at
// all, and some type while they are out. Derived from its seed.
type RestartScenario struct {
	Seed    uint64
	Members int
	Auto    []bool          // per member: AutoInclude
	Back    []time.Duration // per member: when its transport enters again after the restart; < 0: never
	Typed   []int           // per member: messages typed while out of the session
	Hostile bool
	Faults  memhub.Faults
}

// NewRestartScenario derives a restart scenario from a seed: 2–8 members,
// in half the runs nobody includes automatically, each back within 20 s
// or (one in ten) never.
func NewRestartScenario(seed uint64, hostile bool) RestartScenario {
	r := rand.New(rand.NewPCG(seed, 0x7e57a7))
	s := RestartScenario{Seed: seed, Members: 2 + r.IntN(7), Hostile: hostile}
	manual := r.Float64() < 0.5
	for range s.Members {
		s.Auto = append(s.Auto, !manual && r.Float64() < 0.5)
		back := time.Duration(500+r.IntN(20_000)) * time.Millisecond
		if r.Float64() < 0.1 {
			back = -1
		}
		s.Back = append(s.Back, back)
		s.Typed = append(s.Typed, r.IntN(3))
	}
	s.Faults = memhub.Faults{
		Uplink:   time.Duration(1+r.IntN(30)) * time.Millisecond,
		Downlink: time.Duration(1+r.IntN(30)) * time.Millisecond,
		Jitter:   time.Duration(1+r.IntN(200)) * time.Millisecond,
	}
	if hostile {
		s.Faults.Drop = 0.02 * r.Float64()
		s.Faults.Duplicate = 0.05 * r.Float64()
		s.Faults.Reorder = 0.02 * r.Float64()
	}
	return s
}

func (s RestartScenario) String() string {
	return fmt.Sprintf("restart seed %d: %d members, auto %v, back %v, typed %v, hostile %v",
		s.Seed, s.Members, s.Auto, s.Back, s.Typed, s.Hostile)
}

// defaultJoinWindow is session.Config.JoinWindow's default.
const defaultJoinWindow = 5 * time.Minute

// restartFormed bounds how long after the last member's return the members
// that came back must share one subsession: each inclusion takes a few
// broadcast rounds, one after another.
const restartFormed = 3 * time.Minute

// Run plays the scenario. Besides the invariants of every run (CheckStep
// after every step, CheckEnd at the end), it checks that the members that
// came back re-formed one session without anyone typing a command, that
// none of them gave up joining, and that every message typed while out
// reached every member it was meant for that came back, or its author was
// told whom it did not reach (CheckEnd). An honest run raises no security
// warning.
func (s RestartScenario) Run() (*World, error) {
	w := NewWorld(s.Seed, s.Faults, subsession.ReferenceTiming())
	ids := make([]string, s.Members)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%02d@example.org/dev", i)
		auto := s.Auto[i]
		w.Add(ids[i], func(c *session.Config) { c.AutoInclude = auto })
	}
	w.OnStep = func(w *World) error {
		if Hook != nil {
			Hook(w)
		}
		divs, err := checkStep(w)
		if err != nil {
			return err
		}
		if !s.Hostile && len(divs) > 0 {
			return divs[0]
		}
		return nil
	}
	// Form the session: the first founds, the others wait and are
	// included (by hand, one request for all, as a user would).
	w.Do(ids[0], func(c *session.Core, now time.Time) { c.Join(now) })
	if err := w.RunFor(2 * time.Second); err != nil {
		return w, err
	}
	for _, id := range ids[1:] {
		w.Do(id, func(c *session.Core, now time.Time) { c.Join(now) })
	}
	if err := w.RunFor(2 * time.Second); err != nil {
		return w, err
	}
	if len(ids) > 1 {
		w.Do(ids[0], func(c *session.Core, now time.Time) { c.Include(ids[1:], now) })
	}
	if err := w.RunFor(time.Minute); err != nil {
		return w, err
	}
	for i, id := range ids {
		err := w.Send(id, fmt.Sprintf("before the restart, from %d", i))
		if err != nil && !s.Hostile { // (a hostile server may have kept it out)
			return w, fmt.Errorf("%s could not send before the restart: %w", id, err)
		}
	}
	if err := w.RunFor(30 * time.Second); err != nil {
		return w, err
	}

	// The restart. Members type while they are out: right after it, and
	// just before their transport is back.
	restart := w.Now()
	w.Restart(func(id string) time.Duration { return s.Back[slices.Index(ids, id)] })
	last := restart
	for i, id := range ids {
		back := s.Back[i]
		for k := range s.Typed[i] {
			at := restart.Add(time.Second)
			if k == 1 && back > 2*time.Second {
				at = restart.Add(back - time.Second)
			}
			w.Later(at, func() { w.Send(id, fmt.Sprintf("typed while out, %d from %d", k, i)) })
		}
		if back >= 0 && restart.Add(back).After(last) {
			last = restart.Add(back)
		}
	}
	if err := w.RunUntil(last.Add(restartFormed)); err != nil {
		return w, err
	}
	var back []string
	for i, id := range ids {
		if s.Back[i] >= 0 {
			back = append(back, id)
		}
	}
	if err := s.formed(w, back); err != nil {
		return w, err
	}
	// Quiet: every queued message's wait (the join window) ends.
	if err := w.RunFor(defaultJoinWindow + time.Minute); err != nil {
		return w, err
	}
	if err := CheckEnd(w); err != nil {
		return w, err
	}
	if !s.Hostile {
		for _, id := range w.order {
			for _, n := range w.Members[id].Notices {
				if n.Kind == session.SecurityWarning {
					return w, fmt.Errorf("honest restart: %s got %v", id, n)
				}
			}
		}
	}
	return w, nil
}

// formed checks that the members that came back share one subsession and
// that none gave up joining. Under a hostile server, it is enough that
// every one of them is in a session or was warned.
func (s RestartScenario) formed(w *World, back []string) error {
	if len(back) < 2 {
		return nil
	}
	var sid [32]byte
	for i, id := range back {
		m := w.Members[id]
		if m.Core.State() == session.StateJoinFailed {
			return fmt.Errorf("%s gave up joining after the restart", id)
		}
		got, ok := m.Core.SessionID()
		if s.Hostile {
			continue
		}
		if !ok {
			return fmt.Errorf("%s is in no session %v after the restart (members back: %v)", id, restartFormed, back)
		}
		if i == 0 {
			sid = got
		} else if got != sid {
			return fmt.Errorf("%s and %s are in different sessions after the restart", back[0], id)
		}
		if ms := m.Core.Members(); !slices.Equal(ms, back) {
			return fmt.Errorf("%s's session has %v after the restart, want every member back: %v", id, ms, back)
		}
	}
	return nil
}

// SilentScenario is a room with a silent occupant: it entered and
// announced an identity key the others accept, and never answers
// anything. A member that includes everyone automatically (a bot) keeps
// the room; honest newcomers enter one after another. Derived from its
// seed.
type SilentScenario struct {
	Seed      uint64
	Newcomers int
	Arrivals  []time.Duration // when each newcomer enters, after the silent one
	Faults    memhub.Faults
}

// NewSilentScenario derives a silent-occupant scenario: 1–5 newcomers
// arriving over three minutes.
func NewSilentScenario(seed uint64) SilentScenario {
	r := rand.New(rand.NewPCG(seed, 0x5113e7))
	s := SilentScenario{Seed: seed, Newcomers: 1 + r.IntN(5)}
	for range s.Newcomers {
		s.Arrivals = append(s.Arrivals, time.Duration(r.IntN(180_000))*time.Millisecond)
	}
	slices.Sort(s.Arrivals)
	s.Faults = memhub.Faults{
		Uplink:   time.Duration(1+r.IntN(30)) * time.Millisecond,
		Downlink: time.Duration(1+r.IntN(30)) * time.Millisecond,
		Jitter:   time.Duration(1+r.IntN(200)) * time.Millisecond,
	}
	return s
}

func (s SilentScenario) String() string {
	return fmt.Sprintf("silent seed %d: %d newcomers at %v", s.Seed, s.Newcomers, s.Arrivals)
}

// silentIncluded bounds how long an honest newcomer waits to be included
// while a silent occupant is in the room: at most one stalled inclusion
// of the silent one runs when it enters, (2 + n)·(BC + 1 s) plus the
// aborts, and its own inclusion after.
const silentIncluded = 60 * time.Second

// Run plays the scenario: every honest newcomer is included within
// silentIncluded of entering, nobody honest is kicked, and the silent
// occupant, after its first stall, is proposed again only after a pause
// (which the notices say).
func (s SilentScenario) Run() (*World, error) {
	timing := subsession.LoopbackTiming()
	w := NewWorld(s.Seed, s.Faults, timing)
	bot, silent := "bot@example.org/dev", "silent@example.org/dev"
	w.Add(bot, func(c *session.Config) { c.AutoInclude, c.StayIfLastMember = true, true })
	w.Add(silent, nil)
	var newcomers []string
	for i := range s.Newcomers {
		id := fmt.Sprintf("n%02d@example.org/dev", i)
		newcomers = append(newcomers, id)
		w.Add(id, nil)
	}
	w.OnStep = func(w *World) error {
		if Hook != nil {
			Hook(w)
		}
		return CheckStep(w)
	}
	w.Do(bot, func(c *session.Core, now time.Time) { c.Join(now) })
	if err := w.RunFor(2 * time.Second); err != nil {
		return w, err
	}
	// The silent occupant enters, and is never heard of again: it handles
	// nothing, not even its own entry.
	w.Do(silent, func(c *session.Core, now time.Time) { c.Join(now) })
	w.Freeze(silent)
	start := w.Now()
	entered := map[string]time.Time{}
	for i, id := range newcomers {
		w.Later(start.Add(s.Arrivals[i]), func() {
			entered[id] = w.Now()
			w.Do(id, func(c *session.Core, now time.Time) { c.Join(now) })
		})
	}
	if err := w.RunUntil(start.Add(s.Arrivals[len(s.Arrivals)-1] + 2*silentIncluded)); err != nil {
		return w, err
	}
	for _, id := range newcomers {
		m := w.Members[id]
		var in time.Time
		for _, n := range m.Notices {
			if n.Kind == session.OpSucceeded && n.OpKind == session.OpJoin {
				in = n.At
				break
			}
		}
		switch {
		case in.IsZero():
			return w, fmt.Errorf("%s (entered at %v) was never included", id, entered[id].Sub(Start))
		case in.Sub(entered[id]) > silentIncluded:
			return w, fmt.Errorf("%s waited %v to be included", id, in.Sub(entered[id]))
		}
		for _, n := range m.Notices {
			if n.Kind == session.Kicked {
				return w, fmt.Errorf("%s, honest, was removed from the room: %v", id, n)
			}
		}
	}
	for _, id := range append([]string{bot}, newcomers...) {
		for _, n := range w.Members[id].Notices {
			if n.Kind == session.Kicked && slices.ContainsFunc(n.Members, func(m string) bool { return m != silent }) {
				return w, fmt.Errorf("%s kicked someone honest: %v", id, n)
			}
		}
	}
	return w, nil
}
