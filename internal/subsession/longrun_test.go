package subsession

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/transcript"
)

// chatScript returns (time, member) payload events over d: bursts of 1–3
// minutes in which members talk every few seconds, and quiet gaps of 2–8
// minutes.
func chatScript(rng *rand.Rand, names []string, d time.Duration) []scriptEvent {
	var ev []scriptEvent
	for at := time.Duration(0); at < d; {
		end := at + time.Minute + time.Duration(rng.Int64N(int64(2*time.Minute)))
		for at < end && at < d {
			ev = append(ev, scriptEvent{at, names[rng.IntN(len(names))]})
			at += time.Duration(rng.ExpFloat64() * float64(6*time.Second))
		}
		at += 2*time.Minute + time.Duration(rng.Int64N(int64(6*time.Minute)))
	}
	return ev
}

type scriptEvent struct {
	at   time.Duration
	name string
}

func (s *sim) play(script []scriptEvent) {
	for k, e := range script {
		s.runUntil(t0.Add(e.at))
		s.payload(e.name, fmt.Sprintf("message %d", k))
	}
}

// checkConverged: every Payload fully acked everywhere; identical
// transcripts (ids, authors, parents, full-ack state); identical log
// parents; each log consistent with causality.
func checkConverged(t *testing.T, s *sim, wantAllAcked bool) {
	t.Helper()
	ref := s.nodes[0]
	rg := ref.s.Graph()
	for _, n := range s.nodes {
		g := n.s.Graph()
		if wantAllAcked && !n.s.IsConsistent() {
			t.Fatalf("%s: not every Payload fully acked", n.name)
		}
		if g.Len() != rg.Len() {
			t.Fatalf("%s holds %d messages, %s %d", n.name, g.Len(), ref.name, rg.Len())
		}
		for i := range g.Len() {
			x := causal.Index(i)
			j, ok := rg.Lookup(g.ID(x))
			if !ok || rg.Author(j) != g.Author(x) || rg.FullyAcked(j) != g.FullyAcked(x) || len(rg.Parents(j)) != len(g.Parents(x)) {
				t.Fatalf("%s: message %x differs", n.name, g.ID(x))
			}
			for k, p := range g.Parents(x) {
				if rg.ID(rg.Parents(j)[k]) != g.ID(p) {
					t.Fatalf("%s: parents of %x differ", n.name, g.ID(x))
				}
			}
		}
		if n.s.Buffered() != 0 {
			t.Errorf("%s: %d still buffered", n.name, n.s.Buffered())
		}
		logParents := func(nd *node) map[transcript.ID][]transcript.ID {
			out := map[transcript.ID][]transcript.ID{}
			for k := range nd.log.Len() {
				e := nd.log.Entry(k)
				var ps []transcript.ID
				for _, p := range e.Parents {
					ps = append(ps, nd.log.Entry(p).ID)
				}
				slices.SortFunc(ps, func(a, b transcript.ID) int { return bytes.Compare(a[:], b[:]) })
				out[e.ID] = ps
				for _, p := range e.Parents {
					if p >= k {
						t.Fatalf("%s: log parent after its child", nd.name)
					}
				}
			}
			return out
		}
		a, b := logParents(n), logParents(ref)
		if len(a) != len(b) {
			t.Fatalf("%s: %d log entries, %s %d", n.name, len(a), ref.name, len(b))
		}
		for id, ps := range a {
			if !slices.Equal(ps, b[id]) {
				t.Fatalf("%s: log parents of %x differ", n.name, id[:4])
			}
		}
	}
}

// TestScenario11HonestBursts: 30 simulated minutes of bursts and quiet
// gaps, heartbeats on, every delivery within BC (uniform in [0, BC]): no
// warning of any kind (NotFullyAcked, NotAccepted, expiry, …), no resend,
// no buffering in the server-ordered room, every Payload fully acked, and
// per member no more automatic acks than monitored messages of others.
// Several seeds; the last ones end with every member calling fin() at the
// same moment (a rotation), which must end PARTED everywhere, silently.
func TestScenario11HonestBursts(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			names := []string{"A", "B", "C", "D", "E"}[:3+seed%3]
			s := newSim(t, seed, ReferenceTiming(), names...)
			s.minLatency, s.maxLatency = 0, 5*time.Second
			s.play(chatScript(rand.New(rand.NewPCG(seed, 11)), names, 30*time.Minute))
			s.runUntil(t0.Add(35 * time.Minute))
			s.noWarnings()
			checkConverged(t, s, true)
			for _, n := range s.nodes {
				st := n.s.Stats()
				if st.Resent != 0 || st.Buffered != 0 || st.Rejected != 0 {
					t.Errorf("%s: %d resent, %d buffered, %d rejected", n.name, st.Resent, st.Buffered, st.Rejected)
				}
				others := 0
				g := n.s.Graph()
				self, _ := g.MemberIndex(n.name)
				for i := range g.Len() {
					if x := causal.Index(i); g.Author(x) != self && g.Kind(x).Monitored() {
						others++
					}
				}
				if st.AutoAcks > others {
					t.Errorf("%s: %d automatic acks for %d monitored messages of others", n.name, st.AutoAcks, others)
				}
			}
			if seed < 3 {
				return
			}
			for _, n := range s.nodes {
				s.act(n, func(now time.Time) {
					if _, err := n.s.Fin(now); err != nil {
						t.Fatal(err)
					}
				})
			}
			s.run(2 * time.Minute)
			s.noWarnings()
			for _, n := range s.nodes {
				if n.s.State() != Parted || n.count(FinComplete, nil) != 1 {
					t.Errorf("%s: %v", n.name, n.s.State())
				}
			}
		})
	}
}

// TestNoFalseAlarmLongRun: two hours of random traffic (payloads, manual
// acks, flushes) among 2 to 6 members with random latencies up to BC in
// the internet profile: not a single warning.
func TestNoFalseAlarmLongRun(t *testing.T) {
	for seed := uint64(20); seed < 23; seed++ {
		rng := rand.New(rand.NewPCG(seed, 5))
		names := []string{"a", "b", "c", "d", "e", "f"}[:2+rng.IntN(5)]
		s := newSim(t, seed, InternetTiming(), names...)
		s.minLatency, s.maxLatency = 0, 2*time.Second
		for at := time.Duration(0); at < 2*time.Hour; at += time.Duration(rng.ExpFloat64() * float64(20*time.Second)) {
			s.runUntil(t0.Add(at))
			n := s.nodes[rng.IntN(len(s.nodes))]
			s.act(n, func(now time.Time) {
				var err error
				switch rng.IntN(10) {
				case 0:
					_, err = n.s.SendAck(true, now)
				case 1:
					_, err = n.s.SendFlush(now)
				default:
					_, err = n.s.SendPayload("x", now)
				}
				if err != nil {
					t.Fatal(err)
				}
			})
		}
		s.run(10 * time.Minute)
		s.noWarnings()
		// Heartbeats keep packets in flight at any cut-off, so transcripts
		// are compared in the quiescent runs; here every Payload must be
		// fully acked everywhere.
		for _, n := range s.nodes {
			if !n.s.IsConsistent() {
				t.Errorf("seed %d %s: not consistent", seed, n.name)
			}
			if st := n.s.Stats(); st.Resent != 0 || st.Warnings != 0 {
				t.Errorf("seed %d %s: %+v", seed, n.name, st)
			}
		}
	}
}

// TestScenario26RoomVersusLoss: the honest script over the server-ordered
// room gives zero buffering and zero resends; over a lossy channel (5 %
// loss, 5 % duplication, reordering, every delivery still within BC) every
// Payload is eventually fully acked and all members end with identical
// transcripts and log parents.
func TestScenario26RoomVersusLoss(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		names := []string{"A", "B", "C", "D"}[:2+seed%3]
		script := chatScript(rand.New(rand.NewPCG(seed, 26)), names, 20*time.Minute)
		timing := ReferenceTiming()
		timing.Heartbeats = false // so that the run comes to rest
		room := newSim(t, seed, timing, names...)
		room.play(script)
		room.run(10 * time.Minute)
		room.noWarnings()
		checkConverged(t, room, true)
		for _, n := range room.nodes {
			if st := n.s.Stats(); st.Buffered != 0 || st.Resent != 0 {
				t.Errorf("room seed %d %s: %d buffered, %d resent", seed, n.name, st.Buffered, st.Resent)
			}
		}

		lossy := newSim(t, seed, timing, names...)
		lossy.lossy, lossy.loss, lossy.dup = true, 0.05, 0.05
		lossy.minLatency, lossy.maxLatency = 0, 5*time.Second
		lossy.play(script)
		lossy.run(40 * time.Minute)
		checkConverged(t, lossy, true)
		resent, buffered := 0, 0
		for _, n := range lossy.nodes {
			resent += n.s.Stats().Resent
			buffered += n.s.Stats().Buffered
			for _, w := range n.warnings() {
				if w.Kind == SecurityWarning || w.Kind == BufferOverflow {
					t.Errorf("lossy seed %d %s: %v", seed, n.name, w.Kind)
				}
			}
		}
		if resent == 0 {
			t.Errorf("lossy seed %d: no resends at all", seed)
		}
		t.Logf("seed %d, %d members, %d payloads: lossy run resent %d packets, buffered %d", seed, len(names), len(script), resent, buffered)
	}
}

// TestDeterministic: the same seed gives byte-identical packets and the
// same notices, at the same times.
func TestDeterministic(t *testing.T) {
	run := func() []string {
		s := newSim(t, 9, ReferenceTiming(), "A", "B", "C")
		s.lossy, s.loss, s.dup = true, 0.1, 0.1
		s.minLatency, s.maxLatency = 0, 5*time.Second
		s.play(chatScript(rand.New(rand.NewPCG(9, 9)), []string{"A", "B", "C"}, 10*time.Minute))
		s.run(20 * time.Minute)
		var out []string
		for _, n := range s.nodes {
			for _, p := range n.sent {
				out = append(out, fmt.Sprint(n.name, p.at.Sub(t0), p.wire))
			}
			for _, x := range n.notices {
				out = append(out, fmt.Sprint(n.name, x.Kind, x.At.Sub(t0), x.ID, x.Members, x.Author))
			}
		}
		return out
	}
	a, b := run(), run()
	if !slices.Equal(a, b) {
		t.Fatal("two runs with the same seed differ")
	}
	if len(a) < 100 {
		t.Fatalf("only %d events", len(a))
	}
}
