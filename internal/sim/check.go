package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/mpenc/mpenc/internal/sessionpeek"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/transcript"
)

// CheckStep runs the invariants that must hold after every step:
//
//   - members in the same subsession (same sid) agree on the group key and
//     the membership;
//   - their ServerOrder chains agree at every common position;
//   - nobody has shown a message whose author is not a member of its
//     subsession.
func CheckStep(w *World) error {
	divs, err := checkStep(w)
	if err == nil && len(divs) > 0 {
		return divs[0]
	}
	return err
}

// checkStep is CheckStep returning apart every divergence it saw (each pair
// of members of one subsession whose chains differ) and the first other
// violation: the other checks still run while members diverge.
func checkStep(w *World) ([]*DivergenceError, error) {
	type view struct {
		id      string
		members []string
	}
	// A subsession is identified by its sid and group key together: a
	// refresh keeps the sid and changes the key, so for a moment members
	// that have and have not processed it share a sid.
	type subID struct{ sid, gk [32]byte }
	bySub := map[subID][]view{}
	var keys []subID
	for _, id := range w.order {
		c := w.Members[id].Core
		sid, ok := c.SessionID()
		if !ok {
			continue
		}
		gk, _ := c.UnsafeGroupKey()
		k := subID{sid, gk}
		if _, seen := bySub[k]; !seen {
			keys = append(keys, k)
		}
		bySub[k] = append(bySub[k], view{id, c.Members()})
	}
	var divs []*DivergenceError
	var first error
	fail := func(err error) {
		if first == nil {
			first = err
		}
	}
	for _, k := range keys {
		vs := bySub[k]
		for _, v := range vs[1:] {
			if !slices.Equal(v.members, vs[0].members) {
				fail(fmt.Errorf("subsession %x: %s and %s disagree on the members (%v / %v)",
					k.sid[:4], vs[0].id, v.id, vs[0].members, v.members))
			}
			if err := chainsAgree(w.Members[vs[0].id].Core, w.Members[v.id].Core); err != nil {
				d := &DivergenceError{A: vs[0].id, B: v.id, SID: k.sid, At: w.Now(),
					Err: fmt.Errorf("subsession %x: %s and %s: %w", k.sid[:4], vs[0].id, v.id, err)}
				divs = append(divs, d)
			}
		}
	}
	for _, id := range w.order {
		m := w.Members[id]
		for _, n := range m.Notices[m.checked:] {
			if n.Kind == session.Message && !slices.Contains(n.Members, n.Author) {
				fail(fmt.Errorf("%s accepted a message by %s, not a member of %v", id, n.Author, n.Members))
			}
		}
		m.checked = len(m.Notices)
	}
	return divs, first
}

// DivergenceError: two members of one subsession hold different
// ServerOrder chains. Only a hostile server can cause it; it must then be
// detected (a warning at one of them).
type DivergenceError struct {
	A, B string
	SID  [32]byte
	At   time.Time
	Err  error
}

func (e *DivergenceError) Error() string { return e.Err.Error() }

// chainsAgree checks that two ServerOrder chains are equal at every common
// position (aligned at the first id they share).
func chainsAgree(a, b *session.Core) error {
	ia, ha := a.Chain()
	ib, hb := b.Chain()
	if len(ib) > len(ia) {
		ia, ha, ib, hb = ib, hb, ia, ha
	}
	off, found := 0, false
	for k := range ib {
		if i := slices.Index(ia, ib[k]); i >= 0 {
			off, found = i-k, true // may be negative: ib starts earlier
			break
		}
	}
	if !found {
		return fmt.Errorf("chains share no position")
	}
	common := 0
	for k := range ib {
		i := off + k
		if i < 0 || i >= len(ia) {
			continue
		}
		if ia[i] != ib[k] || ha[i] != hb[k] {
			return fmt.Errorf("chains differ at a common position")
		}
		common++
	}
	if common == 0 {
		return fmt.Errorf("chains do not overlap")
	}
	return nil
}

// msgView is what a member's log says about a message.
type msgView struct {
	author, text string
	parents      string
}

// record notes, for each Message notice among ns, what the member's
// message log says of it as it enters the log: author, text and parents
// (ids). The log keeps only recent text and forgets finished
// subsessions' graphs (bounded memory), so the end checks compare what
// was recorded.
func (m *Member) record(ns []session.Notice) {
	l := sessionpeek.MessageLog(m.Core)
	for _, n := range ns {
		if n.Kind != session.Message {
			continue
		}
		for pos := l.Len() - 1; pos >= l.First(); pos-- {
			e := l.Entry(pos)
			if e.ID != n.ID {
				continue
			}
			var ps []string
			if g := l.Graph(e.Transcript); g != nil {
				for _, p := range g.Parents(e.Index) {
					id := g.ID(p)
					ps = append(ps, fmt.Sprintf("%x", id[:6]))
				}
			}
			if m.views == nil {
				m.views = map[transcript.ID]msgView{}
			}
			m.views[e.ID] = msgView{author: e.Author, text: e.Text, parents: fmt.Sprint(ps)}
			break
		}
	}
}

// CheckEnd runs the invariants of a finished run (after a quiet period):
//
//   - members' transcripts agree on every message they share (author, text,
//     parents);
//   - every Payload shown as some author's was sent by that author (none is
//     forged or accepted silently);
//   - every Payload reached every reader, or its author was warned that it
//     did not (NotFullyAcked).
func CheckEnd(w *World) error {
	views := map[string]map[transcript.ID]msgView{}
	sent := map[transcript.ID]string{}
	for _, id := range w.order {
		m := w.Members[id]
		views[id] = m.views
		sentAs := m.sentAs()
		for _, s := range m.Sent {
			if s.Queued {
				if real, ok := sentAs[s.ID]; ok {
					sent[real] = id
				}
				continue
			}
			sent[s.ID] = id
		}
	}
	seen := map[transcript.ID]msgView{}
	for _, id := range w.order {
		for mid, v := range views[id] {
			if author, ok := sent[mid]; !ok || author != v.author {
				return fmt.Errorf("%s shows a message %x by %s that %s never sent", id, mid[:6], v.author, v.author)
			}
			if prev, ok := seen[mid]; ok && prev != v {
				return fmt.Errorf("message %x: members disagree: %+v / %+v", mid[:6], prev, v)
			}
			seen[mid] = v
		}
	}
	for _, id := range w.order {
		m := w.Members[id]
		warned := map[transcript.ID]bool{}
		notDelivered := map[transcript.ID][]string{}
		var gaps []session.Notice
		for _, n := range m.Notices {
			switch n.Kind {
			case session.NotFullyAcked:
				warned[n.ID] = true
			case session.NotDelivered:
				notDelivered[n.ID] = append(notDelivered[n.ID], n.Members...)
			case session.Gap:
				gaps = append(gaps, n)
			}
		}
		sentAs := m.sentAs()
		// A gap (we were cut off) after a send warns about it too: the
		// user was told messages may be lost.
		gapAfter := func(t time.Time) bool {
			return slices.ContainsFunc(gaps, func(n session.Notice) bool { return !n.At.Before(t) })
		}
		for _, s := range m.Sent {
			mid := s.ID
			if s.Queued {
				// A queued message reaches every member it was meant for,
				// or its author is told which it did not reach.
				real, sentOK := sentAs[s.ID]
				for _, r := range s.Readers {
					switch {
					case slices.Contains(notDelivered[s.ID], r):
					case !sentOK:
						return fmt.Errorf("%s's queued message %x (at %s) was neither sent nor reported undelivered to %s",
							id, s.ID[:6], s.At.Sub(Start), r)
					case slices.Contains(notDelivered[real], r), warned[real], gapAfter(s.At):
					default:
						if _, ok := views[r][real]; !ok {
							return fmt.Errorf("%s's queued message %x (at %s, sent as %x) never reached %s, and %s was not told",
								id, s.ID[:6], s.At.Sub(Start), real[:6], r, id)
						}
					}
				}
				continue
			}
			for _, r := range s.Readers {
				if _, ok := views[r][mid]; !ok && !warned[mid] && !gapAfter(s.At) {
					return fmt.Errorf("%s's message %x (at %s) never reached %s, and %s was not warned",
						id, mid[:6], s.At.Sub(Start), r, id)
				}
			}
		}
	}
	return nil
}

// Warnings returns every member's warnings, by member.
func (w *World) Warnings() map[string][]session.Notice {
	out := map[string][]session.Notice{}
	for _, id := range w.order {
		if ws := w.Members[id].Warnings(); len(ws) > 0 {
			out[id] = ws
		}
	}
	return out
}
