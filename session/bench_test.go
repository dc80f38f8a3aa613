package session_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/memhub"
	"github.com/mpenc/mpenc/internal/sim"
	"github.com/mpenc/mpenc/session"
)

// fixedHop is a room with a fixed 10 ms delay per hop (sender to server,
// server to each recipient): 20 ms per broadcast.
var fixedHop = memhub.Faults{Uplink: 10 * time.Millisecond, Downlink: 10 * time.Millisecond}

func benchWorld(b *testing.B, n int) (*sim.World, []string) {
	w := sim.NewWorld(uint64(n), fixedHop, session.LoopbackTiming())
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("member%02d@example.org/dev", i)
		w.Add(ids[i], nil)
	}
	return w, ids
}

// enterAll: the first member founds the session alone; the others enter
// together right after (they wait to be included).
func enterAll(w *sim.World, ids []string) {
	w.Do(ids[0], func(c *session.Core, now time.Time) { c.Join(now) })
	w.RunFor(100 * time.Millisecond)
	for _, id := range ids[1:] {
		w.Do(id, func(c *session.Core, now time.Time) { c.Join(now) })
	}
	w.RunFor(100 * time.Millisecond)
}

// opFigures runs op until every member in want has the session, and
// reports the virtual time, the deliveries, the packets broadcast and the
// CPU per member.
func opFigures(b *testing.B, w *sim.World, want []string, op func()) (time.Duration, int, int, time.Duration) {
	before, beforeOrdered := w.Hub.Stats().Deliveries, w.Hub.Stats().Ordered
	start := w.Now()
	cpu := time.Now()
	op()
	for {
		done := true
		var sid [32]byte
		for i, id := range want {
			s, ok := w.Members[id].Core.SessionID()
			if !ok || !slices.Equal(w.Members[id].Core.Members(), want) || i > 0 && s != sid {
				done = false
				break
			}
			sid = s
		}
		if done {
			break
		}
		if ok, err := w.Step(); err != nil || !ok {
			b.Fatalf("stuck: %v", err)
		}
	}
	elapsed := time.Since(cpu)
	st := w.Hub.Stats()
	return w.Now().Sub(start), st.Deliveries - before, st.Ordered - beforeOrdered, elapsed / time.Duration(len(want))
}

// BenchmarkStartSession: a solo member starts a session with n−1 others
// present (one START); virtual time, packet deliveries, CPU per member.
func BenchmarkStartSession(b *testing.B) {
	for _, n := range []int{5, 10, 30} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var vt time.Duration
			var del, sent int
			var cpu time.Duration
			for b.Loop() {
				w, ids := benchWorld(b, n)
				enterAll(w, ids)
				want := slices.Sorted(slices.Values(ids))
				vt, del, sent, cpu = opFigures(b, w, want, func() {
					w.Do(ids[0], func(c *session.Core, now time.Time) { c.Include(ids[1:], now) })
				})
			}
			b.ReportMetric(float64(vt.Milliseconds()), "virtual-ms")
			b.ReportMetric(float64(del), "deliveries")
			b.ReportMetric(float64(sent), "broadcasts")
			b.ReportMetric(float64(cpu.Microseconds()), "cpu-µs/member")
		})
	}
}

// BenchmarkIncludeOneSession: include one member into a session of n.
func BenchmarkIncludeOneSession(b *testing.B) {
	for _, n := range []int{10, 30} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var vt time.Duration
			var del, sent int
			var cpu time.Duration
			for b.Loop() {
				w, ids := benchWorld(b, n+1)
				enterAll(w, ids)
				first := slices.Sorted(slices.Values(ids[:n]))
				opFigures(b, w, first, func() {
					w.Do(ids[0], func(c *session.Core, now time.Time) { c.Include(ids[1:n], now) })
				})
				w.RunFor(10 * time.Second) // settle: acks, previous subsessions
				all := slices.Sorted(slices.Values(ids))
				vt, del, sent, cpu = opFigures(b, w, all, func() {
					w.Do(ids[1], func(c *session.Core, now time.Time) { c.Include([]string{ids[n]}, now) })
				})
			}
			b.ReportMetric(float64(vt.Milliseconds()), "virtual-ms")
			b.ReportMetric(float64(del), "deliveries")
			b.ReportMetric(float64(sent), "broadcasts")
			b.ReportMetric(float64(cpu.Microseconds()), "cpu-µs/member")
		})
	}
}

// BenchmarkRekeySession: a fresh START among the n members of a session
// (what Config.RekeyOps runs for forward secrecy), next to
// BenchmarkIncludeOneSession: virtual time, deliveries, CPU per member.
func BenchmarkRekeySession(b *testing.B) {
	for _, n := range []int{5, 10, 30} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var vt time.Duration
			var del, sent int
			var cpu time.Duration
			for b.Loop() {
				w, ids := benchWorld(b, n)
				enterAll(w, ids)
				all := slices.Sorted(slices.Values(ids))
				opFigures(b, w, all, func() {
					w.Do(ids[0], func(c *session.Core, now time.Time) { c.Include(ids[1:], now) })
				})
				w.RunFor(10 * time.Second) // settle
				before, _ := w.Members[ids[0]].Core.SessionID()
				d0, s0 := w.Hub.Stats().Deliveries, w.Hub.Stats().Ordered
				start, clock := w.Now(), time.Now()
				w.Do(ids[1], func(c *session.Core, now time.Time) { session.Rekey(c, now) })
				for !allRekeyed(w, all, before) {
					if ok, err := w.Step(); err != nil || !ok {
						b.Fatalf("stuck: %v", err)
					}
				}
				vt, cpu = w.Now().Sub(start), time.Since(clock)/time.Duration(n)
				del, sent = w.Hub.Stats().Deliveries-d0, w.Hub.Stats().Ordered-s0
			}
			b.ReportMetric(float64(vt.Milliseconds()), "virtual-ms")
			b.ReportMetric(float64(del), "deliveries")
			b.ReportMetric(float64(sent), "broadcasts")
			b.ReportMetric(float64(cpu.Microseconds()), "cpu-µs/member")
		})
	}
}

// allRekeyed reports whether every member holds a session other than before.
func allRekeyed(w *sim.World, ids []string, before [32]byte) bool {
	for _, id := range ids {
		if s, ok := w.Members[id].Core.SessionID(); !ok || s == before {
			return false
		}
	}
	return true
}
