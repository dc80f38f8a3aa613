package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mpenc/mpenc/channel/memchan"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/subsession"
)

// Scenario is a random run, derived from its seed.
type Scenario struct {
	Seed    uint64
	Members int
	Active  time.Duration // random actions during this long
	Quiet   time.Duration // then nothing but the protocol, this long
	Crashes bool          // members drop and come back
	Hostile bool          // the server drops, duplicates, reorders and injects
	Faults  memchan.Faults
}

// NewScenario derives a scenario from a seed: mostly small rooms (2–5
// members), some medium (6–12), a few large (13–30); crashes in a third of
// the runs.
func NewScenario(seed uint64, hostile bool) Scenario {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	s := Scenario{Seed: seed, Hostile: hostile, Active: 3 * time.Minute, Quiet: 5 * time.Minute}
	switch p := r.Float64(); {
	case p < 0.70:
		s.Members = 2 + r.IntN(4)
	case p < 0.95:
		s.Members = 6 + r.IntN(7)
	default:
		s.Members = 13 + r.IntN(18)
		s.Active = time.Minute
	}
	s.Crashes = r.Float64() < 1.0/3
	// Every delivery within BC (5 s): a few ms to a few hundred.
	s.Faults = memchan.Faults{
		Uplink:   time.Duration(1+r.IntN(30)) * time.Millisecond,
		Downlink: time.Duration(1+r.IntN(30)) * time.Millisecond,
		Jitter:   time.Duration(1+r.IntN(200)) * time.Millisecond,
	}
	if hostile {
		s.Faults.Drop = 0.02 * r.Float64()
		s.Faults.Duplicate = 0.05 * r.Float64()
		s.Faults.Reorder = 0.02 * r.Float64()
		inj := rand.New(rand.NewPCG(seed, 0x1ec7))
		s.Faults.Inject = func(sender, w string) (string, []string) {
			if inj.Float64() > 0.05 || len(w) < 20 {
				return "", nil
			}
			// A corrupted copy attributed to the real sender: it must be
			// refused (and noticed), never accepted.
			b := []byte(w)
			i := 7 + inj.IntN(len(b)-8)
			b[i] ^= byte(1 + inj.IntN(255))
			return sender, []string{string(b)}
		}
	}
	return s
}

func (s Scenario) String() string {
	return fmt.Sprintf("seed %d: %d members, crashes %v, hostile %v", s.Seed, s.Members, s.Crashes, s.Hostile)
}

// warnedSince reports whether m got a warning at or after t (or shortly
// before: the divergence is noticed at the step that makes it visible).
func warnedSince(m *Member, t time.Time) bool {
	for _, n := range m.Notices {
		if n.IsWarning() && !n.At.Before(t.Add(-time.Minute)) {
			return true
		}
	}
	return false
}

// detectWithin bounds how long after a divergence a warning must come.
const detectWithin = 2 * time.Minute

// Hook, when set, runs after every step of Scenario.Run (debugging aid).
var Hook func(*World)

// Run plays the scenario, checking CheckStep after every step and CheckEnd
// at the end, and, for an honest run without crashes, that nobody got a
// warning at all. It returns the world and the first violation.
func (s Scenario) Run() (*World, error) {
	w := NewWorld(s.Seed, s.Faults, subsession.ReferenceTiming())
	r := rand.New(rand.NewPCG(s.Seed, 0xac7))
	ids := make([]string, s.Members)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%02d@example.org/dev", i)
		autoInc := r.Float64() < 0.8
		w.Add(ids[i], func(c *session.Config) { c.AutoInclude = autoInc })
	}
	// Under a hostile server, members may be shown different orders: the
	// divergences are recorded and must all be detected by the end.
	var diverged []*DivergenceError
	seen := map[[2]string]bool{}
	w.OnStep = func(w *World) error {
		if Hook != nil {
			Hook(w)
		}
		err := CheckStep(w)
		var d *DivergenceError
		if s.Hostile && errors.As(err, &d) {
			if k := [2]string{d.A, d.B}; !seen[k] {
				seen[k] = true
				diverged = append(diverged, d)
			}
			return nil
		}
		return err
	}
	end := w.Now().Add(s.Active)
	msg := 0
	for w.Now().Before(end) {
		// The next action, on average every 3 s.
		next := w.Now().Add(time.Duration(r.ExpFloat64() * float64(3*time.Second)))
		if err := w.RunUntil(next); err != nil {
			return w, err
		}
		id := ids[r.IntN(len(ids))]
		c := w.Members[id].Core
		inRoom := slices.Contains(w.Hub.Members(), id)
		switch p := r.Float64(); {
		case !inRoom:
			if p < 0.5 {
				w.Do(id, func(c *session.Core, now time.Time) { c.Join(now) })
			}
		case c.Subsession() != nil && p < 0.55:
			msg++
			w.Send(id, fmt.Sprintf("message %d from %s", msg, id))
		case p < 0.62:
			// Include someone in the room but not in the session.
			var cand []string
			for _, m := range w.Hub.Members() {
				if !slices.Contains(c.Members(), m) {
					cand = append(cand, m)
				}
			}
			if len(cand) > 0 {
				w.Do(id, func(c *session.Core, now time.Time) { c.Include([]string{cand[r.IntN(len(cand))]}, now) })
			}
		case p < 0.66:
			if ms := c.Members(); len(ms) > 1 {
				var others []string
				for _, m := range ms {
					if m != id {
						others = append(others, m)
					}
				}
				w.Do(id, func(c *session.Core, now time.Time) { c.Exclude([]string{others[r.IntN(len(others))]}, now) })
			}
		case p < 0.69:
			w.Do(id, func(c *session.Core, now time.Time) { c.Refresh(now) })
		case p < 0.72:
			w.Do(id, func(c *session.Core, now time.Time) { c.Part(now) })
		case p < 0.75 && s.Crashes:
			w.Crash(id)
			back := w.Now().Add(time.Duration(5+r.IntN(30)) * time.Second)
			w.Later(back, func() { w.Do(id, func(c *session.Core, now time.Time) { c.Join(now) }) })
		}
	}
	if err := w.RunFor(s.Quiet); err != nil {
		return w, err
	}
	// A divergence shortly before the end (an automatic operation in the
	// quiet time) gets the time its detection needs: the chain check's
	// wait is FA, far below this.
	for _, d := range diverged {
		if until := d.At.Add(detectWithin); w.Now().Before(until) {
			if err := w.RunUntil(until); err != nil {
				return w, err
			}
		}
	}
	if err := CheckEnd(w); err != nil {
		return w, err
	}
	for _, d := range diverged {
		if !warnedSince(w.Members[d.A], d.At) && !warnedSince(w.Members[d.B], d.At) {
			return w, fmt.Errorf("undetected: %v (at %v): neither was warned", d, d.At.Sub(Start))
		}
	}
	if !s.Hostile && !s.Crashes {
		if ws := w.Warnings(); len(ws) > 0 {
			for id, list := range ws {
				return w, fmt.Errorf("honest run without crashes: %s got %d warnings, first %v", id, len(list), list[0])
			}
		}
	}
	return w, nil
}
