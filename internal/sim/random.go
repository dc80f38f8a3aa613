package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mpenc/mpenc/internal/memhub"
	"github.com/mpenc/mpenc/internal/subsession"
	"github.com/mpenc/mpenc/session"
)

// Scenario is a random run, derived from its seed.
type Scenario struct {
	Seed    uint64
	Members int
	Active  time.Duration // random actions during this long
	Quiet   time.Duration // then nothing but the protocol, this long
	Crashes bool          // members drop and come back
	Hostile bool          // the server drops, duplicates, reorders and injects
	Faults  memhub.Faults
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
	s.Faults = memhub.Faults{
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

// divergenceKey identifies a divergence: a pair of members and the
// subsession they share.
type divergenceKey struct {
	a, b string
	sid  [32]byte
}

// warnedOfSplit reports whether m was told of a split at or after t (or
// just before: the step that makes a divergence visible to the checker may
// come after the one that warned): a warning wrapping ErrServerSplit or
// ErrOrderUnconfirmed, or a session ended by ErrServerSplit. Any other
// warning does not count: a hostile run raises many.
func warnedOfSplit(m *Member, t time.Time) bool {
	if errors.Is(m.Core.Err(), session.ErrServerSplit) {
		return true
	}
	for _, n := range m.Notices {
		if n.Kind == session.SecurityWarning && !n.At.Before(t.Add(-10*time.Second)) &&
			(errors.Is(n.Err, session.ErrServerSplit) || errors.Is(n.Err, session.ErrOrderUnconfirmed)) {
			return true
		}
	}
	return false
}

// leftWithin reports whether m was out of the room within detectWithin
// after t: a divergence that ends with one side leaving (crashed, kicked,
// or excluded for stalling the operation the split made it refuse) before
// anything was built on the split chain needs no warning; its chain is
// gone, and it resynchronises when it joins again.
func leftWithin(m *Member, t time.Time) bool {
	for _, l := range m.Left {
		if !l.Before(t) && l.Before(t.Add(detectWithin)) {
			return true
		}
	}
	return false
}

// detectWithin bounds how long after a divergence a warning must come: a
// split that never completes an operation is found at the abort of a
// stalled one, which comes after the operation timeout, (2 + n)·(BC + 1 s),
// over three minutes for 30 members.
const detectWithin = 5 * time.Minute

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
	// divergences are recorded (once per pair of members and subsession)
	// and each must be detected by the end.
	var diverged []*DivergenceError
	seen := map[divergenceKey]bool{}
	w.OnStep = func(w *World) error {
		if Hook != nil {
			Hook(w)
		}
		divs, err := checkStep(w)
		if err != nil {
			return err
		}
		if !s.Hostile && len(divs) > 0 {
			return divs[0] // only a lying server can cause one
		}
		for _, d := range divs {
			if k := (divergenceKey{d.A, d.B, d.SID}); !seen[k] {
				seen[k] = true
				diverged = append(diverged, d)
			}
		}
		return nil
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
		case inSubsession(c) && p < 0.55:
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
	// wait is FA, far below this. A divergence found while waiting for an
	// earlier one's detection is appended and gets its own time too.
	for i := 0; i < len(diverged); i++ {
		d := diverged[i]
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
		a, b := w.Members[d.A], w.Members[d.B]
		if !warnedOfSplit(a, d.At) && !warnedOfSplit(b, d.At) && !leftWithin(a, d.At) && !leftWithin(b, d.At) {
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

// inSubsession reports whether c has a current subsession.
func inSubsession(c *session.Core) bool { _, ok := c.SessionID(); return ok }
