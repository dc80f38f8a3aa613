package subsession

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/transcript"
)

// TestScenario03Fork: a3 by A cites b1, which does not descend from A's
// a2: rejected with a terminal fork warning naming A; the subsession is
// failed and we send no more Payloads in it (acks and fin still work).
func TestScenario03Fork(t *testing.T) {
	s := manual(t, refTiming(false), "A", "B", "C")
	a1 := s.payload("A", "a1")
	s.hand("B", "A", s.last("A"))
	s.hand("C", "A", s.last("A"))
	b1 := s.payload("B", "b1 (a1)")
	s.hand("C", "B", s.last("B"))
	a2 := s.payload("A", "a2 (a1)")
	s.hand("C", "A", s.last("A"))
	// A equivocates: a3 cites b1 but not its own a2.
	forger := newGroup("A", "B", "C").forger(t, "A")
	a3 := forge(t, forger, causal.KindPayload, "a3", b1)
	r := s.hand("C", "A", a3.Wire)
	if r.Outcome != Rejected || !errors.Is(r.Err, causal.ErrFork) || r.Author != "A" {
		t.Fatalf("a3: %+v", r)
	}
	c := s.node("C")
	w := c.warnings()
	if len(w) != 1 || w[0].Kind != SecurityWarning || w[0].Author != "A" || !w[0].Terminal || !errors.Is(w[0].Err, causal.ErrFork) {
		t.Fatalf("warnings %+v", w)
	}
	if !c.s.Failed() {
		t.Error("subsession not failed")
	}
	if _, err := c.s.SendPayload("x", s.now); !errors.Is(err, ErrFailed) {
		t.Errorf("payload after a fork: %v", err)
	}
	if _, err := c.s.SendFlush(s.now); !errors.Is(err, ErrFailed) {
		t.Errorf("flush after a fork: %v", err)
	}
	if _, err := c.s.SendAck(false, s.now); err != nil {
		t.Errorf("ack after a fork: %v", err)
	}
	if _, err := c.s.Fin(s.now); err != nil {
		t.Errorf("fin after a fork: %v", err)
	}
	// The same bytes again are a silent duplicate; a descendant of a3 is
	// rejected at once.
	if r := s.hand("C", "A", a3.Wire); r.Outcome != Duplicate {
		t.Errorf("a3 again: %v", r.Outcome)
	}
	bf := newGroup("A", "B", "C").forger(t, "B")
	if r := s.hand("C", "B", forge(t, bf, causal.KindPayload, "b2", a3.ID).Wire); !errors.Is(r.Err, causal.ErrRejectedParent) {
		t.Errorf("descendant of the fork: %+v", r)
	}
	if c.s.Has(a3.ID) || !c.s.Has(a1) || !c.s.Has(a2) {
		t.Error("transcript wrong after the fork")
	}
}

// TestScenario04OutOfOrder: b1 (a1) reaches C before a1, which arrives 2 s
// later: nothing is shown until a1, then a1 and b1 in causal order, log
// [a1, b1], and no NotAccepted (2 s < BC).
func TestScenario04OutOfOrder(t *testing.T) {
	s := manual(t, refTiming(false), "A", "B", "C")
	a1 := s.payload("A", "a1")
	s.hand("B", "A", s.last("A"))
	b1 := s.payload("B", "b1")
	c := s.node("C")
	if r := s.hand("C", "B", s.last("B")); r.Outcome != Buffered || r.Author != "B" {
		t.Fatalf("b1: %+v", r)
	}
	if len(c.acceptedOrder()) != 0 || c.s.Buffered() != 1 || len(c.ready) != 0 {
		t.Fatal("buffered content was shown")
	}
	s.run(2 * time.Second)
	if r := s.hand("C", "A", s.node("A").sent[0].wire); r.Outcome != Accepted {
		t.Fatalf("a1: %+v", r)
	}
	if got := c.acceptedOrder(); !slices.Equal(got, []transcript.ID{a1, b1}) {
		t.Errorf("accepted %v", got)
	}
	if c.log.Len() != 2 || c.log.Entry(0).ID != a1 || c.log.Entry(1).ID != b1 {
		t.Error("log is not [a1, b1]")
	}
	s.run(60 * time.Second)
	if c.count(MsgNotAccepted, nil) != 0 || c.s.Buffered() != 0 {
		t.Error("NotAccepted after a 2 s gap")
	}
}

// TestScenario05MissingParent: a1 never arrives: NotAccepted(B, {a1}) at
// t + BC; b1's content is never exposed; C's next message neither cites
// nor acks b1; at t + FA b1 is dropped with a blameless notice.
func TestScenario05MissingParent(t *testing.T) {
	s := manual(t, refTiming(false), "A", "B", "C")
	a1 := s.payload("A", "a1")
	s.hand("B", "A", s.last("A"))
	b1 := s.payload("B", "secret b1")
	at := s.now
	s.hand("C", "B", s.last("B"))
	s.run(3 * time.Second)
	s.payload("C", "c1")
	s.hand("B", "C", s.last("C"))
	s.run(40 * time.Second)
	c := s.node("C")
	na := c.notices[slices.IndexFunc(c.notices, func(x Notice) bool { return x.Kind == MsgNotAccepted })]
	if na.ID != b1 || na.Author != "B" || !slices.Equal(na.Missing, []transcript.ID{a1}) || !na.At.Equal(at.Add(5*time.Second)) {
		t.Errorf("NotAccepted %+v", na)
	}
	for _, x := range c.notices {
		if x.Text == "secret b1" {
			t.Fatal("buffered content exposed")
		}
	}
	g := s.node("B").s.Graph()
	ci, _ := g.MemberIndex("C")
	if g.AckedBy(mustIdx(t, g, b1), ci) {
		t.Error("C's message acks b1")
	}
	dr := c.notices[slices.IndexFunc(c.notices, func(x Notice) bool { return x.Kind == MsgDropped })]
	if dr.ID != b1 || !dr.At.Equal(at.Add(26*time.Second)) || c.s.Buffered() != 0 {
		t.Errorf("dropped %+v", dr)
	}
	// Dropped, not rejected: a resend later still brings it in, with a1.
	s.hand("C", "A", s.node("A").sent[0].wire)
	if r := s.hand("C", "B", s.node("B").sent[0].wire); r.Outcome != Accepted {
		t.Errorf("b1 after the drop: %v", r.Outcome)
	}
}

// TestScenario06Cascade: a1 ← b1 ← c1 ← a2 arrive in reverse at D:
// nothing accepted until a1, then all four in causal order in one step.
func TestScenario06Cascade(t *testing.T) {
	s := manual(t, refTiming(false), "A", "B", "C", "D")
	var chain []string
	step := func(author, text string) transcript.ID {
		id := s.payload(author, text)
		chain = append(chain, s.last(author))
		for _, n := range []string{"A", "B", "C"} {
			if n != author {
				s.hand(n, author, s.last(author))
			}
		}
		return id
	}
	ids := []transcript.ID{step("A", "a1"), step("B", "b1"), step("C", "c1"), step("A", "a2")}
	authors := []string{"A", "B", "C", "A"}
	d := s.node("D")
	for k := 3; k >= 1; k-- {
		if r := s.hand("D", authors[k], chain[k]); r.Outcome != Buffered {
			t.Fatalf("%d: %v", k, r.Outcome)
		}
	}
	before := len(d.notices)
	if r := s.hand("D", "A", chain[0]); r.Outcome != Accepted {
		t.Fatal(r.Outcome)
	}
	var got []transcript.ID
	for _, x := range d.notices[before:] {
		if x.Kind == MsgAccepted {
			got = append(got, x.ID)
		}
	}
	if !slices.Equal(got, ids) || d.s.Buffered() != 0 {
		t.Errorf("cascade accepted %d of 4 in order %v", len(got), slices.Equal(got, ids))
	}
}

// TestScenario07Duplicates: the same wire string three times (own echo
// included) gives one accept, no warning, no state change; a duplicate of
// a buffered packet still gives exactly one accept later; five messages
// from two members reach a third shuffled, then all again: exactly five
// accepts, in causal order.
func TestScenario07Duplicates(t *testing.T) {
	s := manual(t, refTiming(false), "A", "B", "C")
	p := s.payload("A", "once")
	w := s.last("A")
	if r := s.hand("A", "A", w); r.Outcome != Duplicate {
		t.Errorf("own echo: %v", r.Outcome)
	}
	for range 3 {
		s.hand("B", "A", w)
	}
	b := s.node("B")
	if b.count(MsgAccepted, nil) != 1 || b.s.Stats().Duplicates != 2 || b.s.Graph().Len() != 1 {
		t.Errorf("B: %d accepts, %d duplicates", b.count(MsgAccepted, nil), b.s.Stats().Duplicates)
	}
	// A duplicate of a buffered packet.
	b1 := s.payload("B", "b1")
	bw := s.last("B")
	s.hand("C", "B", bw)
	if r := s.hand("C", "B", bw); r.Outcome != Duplicate {
		t.Errorf("buffered duplicate: %v", r.Outcome)
	}
	s.hand("C", "A", w)
	c := s.node("C")
	if got := c.acceptedOrder(); !slices.Equal(got, []transcript.ID{p, b1}) {
		t.Errorf("C accepted %d", len(got))
	}
	for _, n := range s.nodes {
		if len(n.warnings()) != 0 {
			t.Errorf("%s warned", n.name)
		}
	}
	// The reference's case, on a fresh subsession.
	s = manual(t, refTiming(false), "A", "B", "C")
	var wires []struct{ from, w string }
	var ids []transcript.ID
	for k, author := range []string{"A", "B", "A", "B", "A"} {
		ids = append(ids, s.payload(author, "m"))
		wires = append(wires, struct{ from, w string }{author, s.last(author)})
		other := map[string]string{"A": "B", "B": "A"}[author]
		s.hand(other, author, s.last(author))
		_ = k
	}
	rng := rand.New(rand.NewPCG(7, 7))
	rng.Shuffle(len(wires), func(i, j int) { wires[i], wires[j] = wires[j], wires[i] })
	for range 2 {
		for _, x := range wires {
			s.hand("C", x.from, x.w)
		}
	}
	c = s.node("C")
	if got := c.acceptedOrder(); !slices.Equal(got, ids) {
		t.Errorf("C accepted %d messages, in causal order: %v", len(got), slices.Equal(got, ids))
	}
}

// TestScenario18LeaveIntent: a FIN whose only parent is a FIN by the same
// author is a leave intent; a single FIN is not, nor two FINs with another
// message between them (the second is rejected by the after-FIN rule).
func TestScenario18LeaveIntent(t *testing.T) {
	s := abc(t, false)
	a := s.node("A")
	s.act(a, func(now time.Time) {
		if _, _, err := a.s.SendLeaveIntent(now); err != nil {
			t.Fatal(err)
		}
	})
	s.run(30 * time.Second)
	for _, name := range []string{"B", "C"} {
		n := s.node(name)
		if n.count(LeaveIntent, func(x Notice) bool { return x.Author == "A" }) != 1 {
			t.Errorf("%s: no leave intent from A", name)
		}
	}
	if a.count(LeaveIntent, nil) != 0 || a.s.State() != Parted {
		t.Errorf("A: own leave intent reported, or state %v", a.s.State())
	}
	s.noWarnings()

	s = abc(t, false)
	a = s.node("A")
	s.act(a, func(now time.Time) { a.s.Fin(now) })
	s.run(30 * time.Second)
	for _, n := range s.nodes {
		if n.count(LeaveIntent, nil) != 0 {
			t.Errorf("single FIN: %s saw a leave intent", n.name)
		}
	}

	s = abc(t, false)
	a = s.node("A")
	var f1 transcript.ID
	s.act(a, func(now time.Time) { f1, _ = a.s.Fin(now) })
	s.run(2 * time.Second)
	s.payload("B", "between")
	// A, parting, acks "between" within FinAckDelay: let that ack reach
	// everyone before the forged FIN cites it.
	s.run(5 * time.Second)
	forger := newGroup("A", "B", "C").forger(t, "A")
	f2 := forge(t, forger, causal.KindFin, "", a.s.Heads()...)
	_ = f1
	for _, name := range []string{"B", "C"} {
		r := s.hand(name, "A", f2.Wire)
		if r.Outcome != Rejected || !errors.Is(r.Err, causal.ErrAfterFin) {
			t.Errorf("%s: second FIN after another message: %+v", name, r)
		}
		if s.node(name).count(LeaveIntent, nil) != 0 {
			t.Errorf("%s saw a leave intent", name)
		}
	}
}

// TestScenario19AfterFin: A's Payload citing its own FIN is rejected with
// a warning; A's ExplicitAck after its FIN is accepted.
func TestScenario19AfterFin(t *testing.T) {
	s := abc(t, false)
	a := s.node("A")
	var fin transcript.ID
	s.act(a, func(now time.Time) { fin, _ = a.s.Fin(now) })
	s.run(3 * time.Second)
	forger := newGroup("A", "B", "C").forger(t, "A")
	bad := forge(t, forger, causal.KindPayload, "sneaky", fin)
	r := s.hand("B", "A", bad.Wire)
	if r.Outcome != Rejected || !errors.Is(r.Err, causal.ErrAfterFin) {
		t.Errorf("payload after FIN: %+v", r)
	}
	b := s.node("B")
	if w := b.warnings(); len(w) != 1 || w[0].Author != "A" || w[0].Terminal {
		t.Errorf("warnings %+v", w)
	}
	s.act(a, func(now time.Time) {
		if _, err := a.s.SendAck(true, now); err != nil {
			t.Fatal(err)
		}
	})
	ack := idOf(t, s.last("A"))
	s.run(3 * time.Second)
	if !b.s.Has(ack) || !s.node("C").s.Has(ack) {
		t.Error("ExplicitAck after FIN not accepted")
	}
}

// A Payload that reaches us shortly before our shutdown completes is acked
// before it completes, although its ack delay has not run out: the session
// may kick its author right after, which would otherwise be told that we
// never read it.
func TestAckOwedAtFinCompletion(t *testing.T) {
	tm := refTiming(false)
	s := newSim(t, 1, tm, "A", "B")
	a, b := s.node("A"), s.node("B")
	var fin, p transcript.ID
	s.act(a, func(now time.Time) {
		var err error
		if fin, err = a.s.Fin(now); err != nil {
			t.Fatal(err)
		}
	})
	s.run(tm.BC / 2)
	k := slices.IndexFunc(a.notices, func(x Notice) bool { return x.Kind == MsgFullyAcked && x.ID == fin })
	if k < 0 {
		t.Fatal("B did not ack A's FIN")
	}
	// Our sim's transit is under a second: sent 1.2 s before A completes,
	// the payload arrives before, and its ack (FinAckDelay, 1 s, at the
	// soonest) would be due after.
	s.runUntil(a.notices[k].At.Add(tm.FinComplete - 1200*time.Millisecond))
	s.act(b, func(now time.Time) {
		var err error
		if p, err = b.s.SendPayload("just before A is gone", now); err != nil {
			t.Fatal(err)
		}
	})
	s.run(tm.BC)
	k = slices.IndexFunc(a.notices, func(x Notice) bool { return x.Kind == FinComplete })
	if k < 0 || a.s.State() != Parted {
		t.Fatalf("A did not complete its shutdown (state %v)", a.s.State())
	}
	if d := a.notices[k].At.Sub(acceptedAt(t, a, p)); d >= tm.FinAckDelay {
		t.Fatalf("A completed %v after accepting the payload, not within the soonest ack delay: the test shows nothing", d)
	}
	ai, _ := b.s.Graph().MemberIndex("A")
	if !b.s.Graph().AckedBy(mustIdx(t, b.s.Graph(), p), ai) {
		t.Error("B never learnt that A read its payload")
	}
	s.run(tm.FA)
	s.noWarnings()
}
