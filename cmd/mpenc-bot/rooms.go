package main

import (
	"math/rand/v2"
	"time"
)

// Backoff of the rejoins: the first after rejoinMin, doubling to
// rejoinMax; a stay of rejoinStable or more starts the count again.
const (
	rejoinMin    = 5 * time.Second
	rejoinMax    = 5 * time.Minute
	rejoinStable = 3 * time.Minute
	// staleAfter: a room the bot has been out of for this long is
	// reported again (at error level), every staleAfter while it lasts:
	// the bot never sits silently in no room.
	staleAfter = 5 * time.Minute
)

// roomState is what the bot knows of one of its rooms: whether it is in
// (in the session, or alone in the room holding it), since when, and the
// rejoins it has made since its last stay that lasted.
type roomState struct {
	in       bool
	since    time.Time // when the current stay or absence began
	why      string    // why it is out (the latest reason)
	attempts int       // rejoins since the last stay of rejoinStable or more
	retryAt  time.Time // a rejoin is due then (zero: none scheduled)
	reported time.Time // when the absence was last reported
	gone     bool      // out for good and not rejoining (rejoin is off)
	been     bool      // the bot was in the room at least once
}

// rooms keeps the state of the bot's rooms and decides when to rejoin.
// Its methods are called from the bot's event loop only, with the time.
type rooms struct {
	m      map[string]*roomState
	rejoin bool              // rejoin rooms the bot is out of for good
	jitter func(int64) int64 // a random number in [0, n); nil: math/rand
}

func newRooms(jids []string, rejoin bool, now time.Time) *rooms {
	rs := &rooms{m: map[string]*roomState{}, rejoin: rejoin}
	for _, j := range jids {
		rs.m[j] = &roomState{since: now, why: "not joined yet"}
	}
	return rs
}

func (rs *rooms) get(room string) *roomState {
	s, ok := rs.m[room]
	if !ok {
		s = &roomState{}
		rs.m[room] = s
	}
	return s
}

// entered records that the bot is in the room (joined, or alone holding
// the session). It returns how long it was out if it is back (zero the
// first time, and if it was in).
func (rs *rooms) entered(room string, now time.Time) time.Duration {
	s := rs.get(room)
	if s.in {
		return 0
	}
	var d time.Duration
	if s.been {
		d = max(now.Sub(s.since), time.Nanosecond)
	}
	s.in, s.been, s.since, s.retryAt, s.reported, s.why, s.gone = true, true, now, time.Time{}, time.Time{}, "", false
	return d
}

// lost records that the bot is out of the room for now: the channel and
// the session bring it back by themselves (a lost connection, a server
// restart, a removal while joining).
func (rs *rooms) lost(room, why string, now time.Time) {
	s := rs.get(room)
	if s.in {
		rs.leaveStay(s, now)
	}
	s.why = why
}

// leaveStay ends a stay: one long enough resets the backoff.
func (rs *rooms) leaveStay(s *roomState, now time.Time) {
	if now.Sub(s.since) >= rejoinStable {
		s.attempts = 0
	}
	s.in, s.since, s.reported = false, now, time.Time{}
}

// out records that the bot is out of the room for good (kicked, banned,
// the room destroyed, a failed join, the session stopped): nothing brings
// it back but a Join. With rejoin on, it returns the delay after which
// the bot rejoins and true, unless a rejoin is scheduled already.
func (rs *rooms) out(room, why string, now time.Time) (time.Duration, bool) {
	s := rs.get(room)
	if s.in {
		rs.leaveStay(s, now)
	}
	s.why = why
	if !rs.rejoin {
		s.gone = true
		return 0, false
	}
	if !s.retryAt.IsZero() {
		return s.retryAt.Sub(now), false
	}
	s.attempts++
	d := rejoinMin << min(s.attempts-1, 10)
	d = min(d, rejoinMax)
	if n := int64(d / 10); n > 0 { // up to +10 %: bots kicked together do not come back together
		if rs.jitter != nil {
			d += time.Duration(rs.jitter(n))
		} else {
			d += time.Duration(rand.Int64N(n))
		}
	}
	s.retryAt = now.Add(d)
	return d, true
}

// due returns the rooms whose rejoin is due, and clears their schedule.
func (rs *rooms) due(now time.Time) []string {
	var out []string
	for j, s := range rs.m {
		if !s.retryAt.IsZero() && !now.Before(s.retryAt) {
			s.retryAt = time.Time{}
			out = append(out, j)
		}
	}
	return out
}

// stale returns the rooms the bot has been out of for staleAfter or more
// and has not reported for as long, marking them reported now.
func (rs *rooms) stale(now time.Time) []string {
	var out []string
	for j, s := range rs.m {
		if s.in || now.Sub(s.since) < staleAfter || !s.reported.IsZero() && now.Sub(s.reported) < staleAfter {
			continue
		}
		s.reported = now
		out = append(out, j)
	}
	return out
}

// allGone reports whether the bot is out of every room for good, with
// rejoin off: nothing will ever bring it back.
func (rs *rooms) allGone() bool {
	for _, s := range rs.m {
		if !s.gone {
			return false
		}
	}
	return len(rs.m) > 0
}
