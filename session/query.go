package session

import (
	"slices"
	"time"

	"github.com/mpenc/mpenc/transcript"
)

// Read helpers for Session's snapshots ([Session.Roster],
// [Session.Unacked]). They only read the core and return copies, so what
// they give stays consistent after the event loop moves on.

// roster returns the room's occupants, the session's members and when
// each member of the current subsession was last seen.
func (c *Core) roster() Roster {
	r := Roster{Occupants: slices.Clone(c.channel), Members: c.Members()}
	if c.cur == nil {
		return r
	}
	for _, m := range r.Members {
		if t, ok := c.cur.base.LastSeen(m); ok {
			if r.LastSeen == nil {
				r.LastSeen = map[string]time.Time{}
			}
			r.LastSeen[m] = t
		}
	}
	return r
}

// unacked returns the members that have not acknowledged message id, and
// whether id is in the message log at all. The newest entries are
// searched first: a message asked about is usually recent.
func (c *Core) unacked(id transcript.ID) ([]string, bool) {
	if c.log == nil {
		return nil, false
	}
	for pos := c.log.Len() - 1; pos >= c.log.First(); pos-- {
		e := c.log.Entry(pos)
		if e.ID != id {
			continue
		}
		g := c.log.Graph(e.Transcript)
		if g == nil {
			return nil, false // its subsession finished: its final state is in the history
		}
		var out []string
		for _, k := range g.UnackedBy(e.Index, nil) {
			out = append(out, g.Member(k))
		}
		return out, true
	}
	return nil, false
}
