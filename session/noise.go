package session

import (
	"fmt"
	"slices"
	"time"
)

// noise is what the warning limiter owns: for each sender whose packets
// made us warn (undecodable, forged, not for us, error reports), how many
// such notices it caused in the current minute. Anyone in a room can send
// garbage; a flood of it must not become a flood of warnings on the
// user's screen and in the logs (docs/SESSION.md, "Warnings").
type noise struct {
	noisy map[string]*noiseWindow
}

// noiseWindow counts one sender's notices in one minute.
type noiseWindow struct {
	start      time.Time
	shown      int
	suppressed int
}

const (
	noiseWindowLen = time.Minute
	noiseShown     = 3   // notices shown per sender and minute; the rest are counted, then summed up
	maxNoisy       = 256 // senders followed at once
)

// limited notifies n, a notice a sender's packet caused, unless that
// sender already caused noiseShown of them this minute; those beyond are
// counted and summed up in one warning when the minute ends.
func (c *Core) limited(n Notice) {
	if c.noisy == nil {
		c.noisy = map[string]*noiseWindow{}
	}
	w := c.noisy[n.Author]
	if w != nil && !c.now.Before(w.start.Add(noiseWindowLen)) {
		if w.suppressed > 0 {
			c.notify(Notice{Kind: SecurityWarning, Author: n.Author,
				Err: fmt.Errorf("session: %d more notices about packets from %s in the last minute, not shown one by one", w.suppressed, n.Author)})
		}
		delete(c.noisy, n.Author)
		w = nil
	}
	if w == nil {
		if len(c.noisy) >= maxNoisy {
			c.sumUpNoise(true)
		}
		w = &noiseWindow{start: c.now}
		c.noisy[n.Author] = w
	}
	if w.shown < noiseShown {
		w.shown++
		c.notify(n)
		return
	}
	w.suppressed++
}

// sumUpNoise ends the windows that are over (all of them if all): a sender
// whose notices were held back gets one warning that says how many.
func (c *Core) sumUpNoise(all bool) {
	senders := make([]string, 0, len(c.noisy))
	for a := range c.noisy {
		senders = append(senders, a)
	}
	slices.Sort(senders) // notices come in one order: the simulator replays them
	for _, a := range senders {
		w := c.noisy[a]
		if !all && c.now.Before(w.start.Add(noiseWindowLen)) {
			continue
		}
		if w.suppressed > 0 {
			c.notify(Notice{Kind: SecurityWarning, Author: a,
				Err: fmt.Errorf("session: %d more notices about packets from %s in the last minute, not shown one by one", w.suppressed, a)})
		}
		delete(c.noisy, a)
	}
}

// noiseDeadline is when the first window with notices held back ends.
func (c *Core) noiseDeadline() (time.Time, bool) {
	var t time.Time
	for _, w := range c.noisy {
		if end := w.start.Add(noiseWindowLen); w.suppressed > 0 && (t.IsZero() || end.Before(t)) {
			t = end
		}
	}
	return t, !t.IsZero()
}
