package subsession

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/transcript"
)

// The scenarios of docs/MESSAGE-LAYER.md §8 at the subsession level. Setup
// unless stated: members A, B, C; reference timing (BC 5 s, FA 26 s, D 16 s);
// room delivery ≤ 1 s; virtual time from t0.

func refTiming(heartbeats bool) Timing {
	t := ReferenceTiming()
	t.Heartbeats = heartbeats
	return t
}

func abc(t *testing.T, heartbeats bool) *sim {
	return newSim(t, 1, refTiming(heartbeats), "A", "B", "C")
}

// TestScenario08AutoAck: A sends a Payload, B and C idle: each sends
// exactly one ExplicitAck(false) at accept + D; the Payload is fully
// acked at A, B and C; with heartbeats off nothing more is sent over the
// next 2·FA.
func TestScenario08AutoAck(t *testing.T) {
	s := abc(t, false)
	id := s.payload("A", "hello")
	s.run(5 * time.Second)
	for _, name := range []string{"B", "C"} {
		n := s.node(name)
		if len(n.sent) != 0 {
			t.Fatalf("%s sent before D", name)
		}
	}
	s.run(20 * time.Second) // up to t = 25 s: acks at accept (≤ 1 s) + 16 s
	for _, name := range []string{"B", "C"} {
		n := s.node(name)
		if k := s.sentKinds(n); !slices.Equal(k, []causal.Kind{causal.KindAutoAck}) {
			t.Fatalf("%s sent %v, want one AutoAck", name, k)
		}
		acc := n.notices[slices.IndexFunc(n.notices, func(x Notice) bool { return x.Kind == MsgAccepted && x.ID == id })].At
		if got := n.sent[0].at.Sub(acc); got != 16*time.Second {
			t.Errorf("%s acked %v after accepting, want D = 16 s", name, got)
		}
	}
	for _, n := range s.nodes {
		if n.count(MsgFullyAcked, func(x Notice) bool { return x.ID == id }) != 1 {
			t.Errorf("%s: payload not fully acked", n.name)
		}
	}
	before := map[string]int{}
	for _, n := range s.nodes {
		before[n.name] = len(n.sent)
	}
	s.run(2 * 26 * time.Second)
	for _, n := range s.nodes {
		if len(n.sent) != before[n.name] {
			t.Errorf("%s sent %d more packets", n.name, len(n.sent)-before[n.name])
		}
		if !n.s.IsConsistent() {
			t.Errorf("%s not consistent", n.name)
		}
	}
	s.noWarnings()
}

// acceptedAt returns when node n accepted id.
func acceptedAt(t *testing.T, n *node, id transcript.ID) time.Time {
	t.Helper()
	k := slices.IndexFunc(n.notices, func(x Notice) bool { return x.Kind == MsgAccepted && x.ID == id })
	if k < 0 {
		t.Fatalf("%s never accepted %x", n.name, id[:4])
	}
	return n.notices[k].At
}

// TestScenario09Batching: five Payloads at t = 0, 2, 4, 6, 8: B sends one
// ExplicitAck at D, citing the fifth, acking all five. If the fifth comes
// at t = 20 (after B's ack), B acks again at 20 + D.
func TestScenario09Batching(t *testing.T) {
	t.Run("one ack", func(t *testing.T) {
		s := abc(t, false)
		var ids []transcript.ID
		for k := range 5 {
			s.runUntil(t0.Add(time.Duration(2*k) * time.Second))
			ids = append(ids, s.payload("A", "p"))
		}
		s.runUntil(t0.Add(40 * time.Second))
		b := s.node("B")
		if k := s.sentKinds(b); !slices.Equal(k, []causal.Kind{causal.KindAutoAck}) {
			t.Fatalf("B sent %v, want one AutoAck", k)
		}
		if got, want := b.sent[0].at, acceptedAt(t, b, ids[0]).Add(16*time.Second); !got.Equal(want) {
			t.Errorf("B acked at +%v, want +%v", got.Sub(t0), want.Sub(t0))
		}
		g := b.s.Graph()
		ack, _ := g.Lookup(idOf(t, b.sent[0].wire))
		if !slices.Contains(g.Parents(ack), mustIdx(t, g, ids[4])) {
			t.Error("B's ack does not cite the fifth payload")
		}
		for _, id := range ids {
			if !g.AckedBy(mustIdx(t, g, id), g.Author(ack)) {
				t.Errorf("payload %x not acked by B's ack", id[:4])
			}
		}
		s.noWarnings()
	})
	t.Run("late fifth", func(t *testing.T) {
		s := abc(t, false)
		s.maxLatency = 0
		for k := range 4 {
			s.runUntil(t0.Add(time.Duration(2*k) * time.Second))
			s.payload("A", "p")
		}
		s.runUntil(t0.Add(20 * time.Second))
		s.payload("A", "fifth")
		s.runUntil(t0.Add(60 * time.Second))
		b := s.node("B")
		if len(b.sent) != 2 || !b.sent[0].at.Equal(t0.Add(16*time.Second)) || !b.sent[1].at.Equal(t0.Add(36*time.Second)) {
			for _, p := range b.sent {
				t.Logf("B sent at +%v", p.at.Sub(t0))
			}
			t.Fatal("want B's acks at 16 s and 36 s")
		}
		s.noWarnings()
	})
}

func mustIdx(t *testing.T, g *causal.Graph, id transcript.ID) causal.Index {
	t.Helper()
	i, ok := g.Lookup(id)
	if !ok {
		t.Fatalf("%x not accepted", id[:4])
	}
	return i
}

// TestScenario10ImplicitAck: B replies with a Payload at t = 10 and sends
// no ExplicitAck.
func TestScenario10ImplicitAck(t *testing.T) {
	s := abc(t, false)
	s.payload("A", "question")
	s.runUntil(t0.Add(10 * time.Second))
	s.payload("B", "answer")
	s.run(3 * 26 * time.Second)
	if k := s.sentKinds(s.node("B")); !slices.Equal(k, []causal.Kind{causal.KindPayload}) {
		t.Errorf("B sent %v, want only its reply", k)
	}
	for _, n := range s.nodes {
		if !n.s.IsConsistent() {
			t.Errorf("%s not consistent", n.name)
		}
	}
	s.noWarnings()
}

// TestScenario12NeverAcks: C is frozen (still in the room): at A and B the
// Payload is reported not fully acked at accept + FA naming C; with
// heartbeats on C shows "not responding" from its expiry; when C thaws
// and acks, MsgFullyAcked clears the warning and C is present again.
func TestScenario12NeverAcks(t *testing.T) {
	s := abc(t, true)
	s.freeze("C")
	id := s.payload("A", "anyone?")
	s.runUntil(t0.Add(150 * time.Second))
	for _, name := range []string{"A", "B"} {
		n := s.node(name)
		acc := acceptedAt(t, n, id)
		k := slices.IndexFunc(n.notices, func(x Notice) bool { return x.Kind == MsgNotFullyAcked && x.ID == id })
		if k < 0 {
			t.Fatalf("%s: no MsgNotFullyAcked", name)
		}
		x := n.notices[k]
		if !x.At.Equal(acc.Add(26*time.Second)) || !slices.Equal(x.Members, []string{"C"}) || x.Final || !x.Warning() {
			t.Errorf("%s: %+v, want at accept + 26 s naming C", name, x)
		}
		if n.s.Presence("C") != NotResponding {
			t.Errorf("%s sees C as %v", name, n.s.Presence("C"))
		}
		// C never acked anything: known alive since the start.
		if n.count(MemberExpired, func(x Notice) bool { return x.Author == "C" && x.At.Equal(t0.Add(110500*time.Millisecond)) }) != 1 {
			t.Errorf("%s: C not expired at 110.5 s", name)
		}
		if n.s.Presence("B") == NotResponding || n.s.Presence("A") == NotResponding {
			t.Errorf("%s: a live member expired", name)
		}
	}
	s.thaw("C")
	s.run(60 * time.Second)
	for _, name := range []string{"A", "B"} {
		n := s.node(name)
		if n.count(MsgFullyAcked, func(x Notice) bool { return x.ID == id }) != 1 {
			t.Errorf("%s: warning not cleared by MsgFullyAcked", name)
		}
		if n.count(MemberPresent, func(x Notice) bool { return x.Author == "C" }) != 1 || n.s.Presence("C") != Present {
			t.Errorf("%s: C not present again (%v)", name, n.s.Presence("C"))
		}
		if !n.s.IsConsistent() {
			t.Errorf("%s not consistent after C thawed", name)
		}
	}
}

// TestScenario13ExplicitAcksInUI: ExplicitAcks are never in the log, never
// warned about, never monitored; a manual one shows as "read by", an
// automatic one never does.
func TestScenario13ExplicitAcksInUI(t *testing.T) {
	s := abc(t, false)
	s.freeze("C") // nobody will ever ack the acks fully: still no warning
	p := s.payload("A", "read me")
	s.run(2 * time.Second)
	b := s.node("B")
	var manual transcript.ID
	s.act(b, func(now time.Time) {
		var err error
		if manual, err = b.s.SendAck(true, now); err != nil {
			t.Fatal(err)
		}
	})
	s.run(200 * time.Second)
	a := s.node("A")
	k := slices.IndexFunc(a.notices, func(x Notice) bool { return x.Kind == MsgAccepted && x.ID == manual })
	if k < 0 || a.notices[k].Body != causal.KindManualAck || a.notices[k].Author != "B" {
		t.Fatalf("A did not see B's manual ack as one")
	}
	for _, n := range []*node{a, b} {
		for _, x := range n.notices {
			if x.Kind == MsgAccepted && x.Body == causal.KindAutoAck && x.Text != "" {
				t.Error("an automatic ack carries text")
			}
			if (x.Kind == MsgNotFullyAcked || x.Kind == MsgFullyAcked) && x.Body.IsExplicitAck() {
				t.Errorf("%s: %v for an ExplicitAck", n.name, x.Kind)
			}
		}
		for i := range n.log.Len() {
			if e := n.log.Entry(i); e.ID != p {
				t.Errorf("%s: log holds %x besides the payload", n.name, e.ID[:4])
			}
		}
		g := n.s.Graph()
		for i := range g.Len() {
			if _, ok := n.s.monitors[causal.Index(i)]; ok && g.Kind(causal.Index(i)).IsExplicitAck() {
				t.Errorf("%s: an ExplicitAck has a monitor", n.name)
			}
		}
	}
	// The payload is unacked by the frozen C: that is the only warning.
	for _, n := range []*node{a, b} {
		for _, w := range n.warnings() {
			if w.Kind != MsgNotFullyAcked || w.ID != p {
				t.Errorf("%s: unexpected warning %v", n.name, w.Kind)
			}
		}
	}
}

// finAndAck: A sends a payload that everybody acks, then fin().
func finSim(t *testing.T) (*sim, transcript.ID) {
	s := abc(t, false)
	s.payload("A", "bye soon")
	s.run(30 * time.Second)
	a := s.node("A")
	var fin transcript.ID
	s.act(a, func(now time.Time) {
		var err error
		if fin, err = a.s.Fin(now); err != nil {
			t.Fatal(err)
		}
	})
	return s, fin
}

// TestScenario16FinConsistent: fin() moves to PARTING; a Payload is
// refused while an ExplicitAck still goes out; B and C ack the FIN within
// BC/4; at full-ack + BC the fin completes, once, PARTED.
func TestScenario16FinConsistent(t *testing.T) {
	s, fin := finSim(t)
	a := s.node("A")
	if a.s.State() != Parting {
		t.Fatalf("state %v", a.s.State())
	}
	if _, err := a.s.SendPayload("more", s.now); !errors.Is(err, ErrState) {
		t.Errorf("payload while parting: %v", err)
	}
	if _, err := a.s.Fin(s.now); !errors.Is(err, ErrState) {
		t.Errorf("second fin: %v", err)
	}
	s.act(a, func(now time.Time) {
		if _, err := a.s.SendAck(false, now); err != nil {
			t.Errorf("ack while parting: %v", err)
		}
	})
	s.run(30 * time.Second)
	for _, name := range []string{"B", "C"} {
		n := s.node(name)
		acc := acceptedAt(t, n, fin)
		if len(n.sent) == 0 {
			t.Fatalf("%s never acked the FIN", name)
		}
		last := n.sent[len(n.sent)-1]
		if d := last.at.Sub(acc); d > 5*time.Second/4 || d < 0 {
			t.Errorf("%s acked the FIN %v after accepting it, want within BC/4", name, d)
		}
	}
	fa := a.notices[slices.IndexFunc(a.notices, func(x Notice) bool { return x.Kind == MsgFullyAcked && x.ID == fin })].At
	if n := a.count(FinComplete, nil); n != 1 {
		t.Fatalf("FinComplete %d times", n)
	}
	fc := a.notices[slices.IndexFunc(a.notices, func(x Notice) bool { return x.Kind == FinComplete })]
	if !fc.At.Equal(fa.Add(5*time.Second)) || fc.State != Parted || fc.ID != fin || a.s.State() != Parted {
		t.Errorf("FinComplete %+v, want PARTED at full-ack + 5 s (%v)", fc, fa.Sub(t0))
	}
	if _, err := a.s.SendAck(false, s.now); !errors.Is(err, ErrState) {
		t.Errorf("ack after completion: %v", err)
	}
	if _, ok := a.s.NextDeadline(); ok {
		t.Error("a completed subsession still has timers")
	}
	for _, name := range []string{"B", "C"} {
		if p := s.node(name).s.Presence("A"); p != IntentAbsent {
			t.Errorf("%s sees A as %v, want intentionally absent", name, p)
		}
	}
	s.noWarnings()
}

// TestScenario17FinTimeouts: the three timeout cases.
func TestScenario17FinTimeouts(t *testing.T) {
	t.Run("empty, FIN never acked", func(t *testing.T) {
		s := abc(t, false)
		s.freeze("B")
		s.freeze("C")
		a := s.node("A")
		s.act(a, func(now time.Time) { a.s.Fin(now) })
		s.run(79 * time.Second)
		if a.s.State() != Parting {
			t.Fatalf("completed early: %v", a.s.State())
		}
		s.run(2 * time.Second)
		fc := a.notices[slices.IndexFunc(a.notices, func(x Notice) bool { return x.Kind == FinComplete })]
		if a.s.State() != Parted || !fc.At.Equal(t0.Add(80*time.Second)) {
			t.Errorf("state %v at %v, want PARTED at 80 s", a.s.State(), fc.At.Sub(t0))
		}
	})
	t.Run("unacked payload", func(t *testing.T) {
		s := abc(t, false)
		s.freeze("C")
		p := s.payload("B", "only A reads this")
		s.run(2 * time.Second)
		a := s.node("A")
		s.act(a, func(now time.Time) { a.s.Fin(now) })
		finAt := s.now
		s.run(90 * time.Second)
		if a.s.State() != PartFailed {
			t.Fatalf("state %v, want PART_FAILED", a.s.State())
		}
		k := slices.IndexFunc(a.notices, func(x Notice) bool { return x.Kind == MsgNotFullyAcked && x.ID == p && x.Final })
		if k < 0 || !a.notices[k].At.Equal(finAt.Add(80*time.Second)) || !slices.Equal(a.notices[k].Members, []string{"C"}) {
			t.Errorf("no final MsgNotFullyAcked for the payload at fin + 80 s")
		}
	})
	t.Run("payload acked, FIN not", func(t *testing.T) {
		s := abc(t, false)
		var fin transcript.ID
		// Nobody but A ever gets A's FIN (resends included).
		s.filter = func(from string, to *node, w string) bool {
			return !(from == "A" && idOf(t, w) == fin) || to.name == "A"
		}
		p := s.payload("B", "before the FIN")
		s.run(2 * time.Second)
		a := s.node("A")
		s.act(a, func(now time.Time) {
			var err error
			fin, err = a.s.Fin(now)
			if err != nil {
				t.Fatal(err)
			}
		})
		// A's FIN went out before the filter knew its id: take it back.
		s.q = slices.DeleteFunc(s.q, func(d delivery) bool { return d.to.name != "A" && idOf(t, d.wire) == fin })
		rebuildHeap(s)
		finAt := s.now
		s.freeze("B") // B never acks the FIN
		s.run(90 * time.Second)
		c := s.node("C")
		ci, _ := c.s.Graph().MemberIndex("C")
		if !c.s.Graph().AckedBy(mustIdx(t, c.s.Graph(), p), ci) {
			t.Fatal("C did not ack the payload")
		}
		fc := a.notices[slices.IndexFunc(a.notices, func(x Notice) bool { return x.Kind == FinComplete })]
		if a.s.State() != Parted || !fc.At.Equal(finAt.Add(80*time.Second)) {
			t.Errorf("state %v at %v, want PARTED at fin + 80 s", a.s.State(), fc.At.Sub(finAt))
		}
	})
}
