package subsession

import (
	"slices"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/transcript"
)

// countSent counts how many times node n broadcast id.
func countSent(t *testing.T, n *node, id transcript.ID) []time.Time {
	var at []time.Time
	for _, p := range n.sent {
		if idOf(t, p.wire) == id {
			at = append(at, p.at)
		}
	}
	return at
}

// TestScenario20ResendAfterLoss: the channel drops A's a1 to C only. At FA
// A warns and resends the identical bytes; C accepts a1 and the buffered
// descendant; B sees a duplicate; a1 becomes fully acked and the warning
// clears; B resends only if a1 is still unacked at its own FA + BC round.
func TestScenario20ResendAfterLoss(t *testing.T) {
	s := abc(t, false)
	s.minLatency, s.maxLatency = 500*time.Millisecond, 500*time.Millisecond
	var a1w string
	dropped := false
	s.filter = func(from string, to *node, w string) bool {
		if to.name == "C" && w == a1w && !dropped {
			dropped = true
			return false
		}
		return true
	}
	a := s.node("A")
	s.act(a, func(now time.Time) {
		// Learn the wire string before it is broadcast.
		if _, err := a.s.SendPayload("a1", now); err != nil {
			t.Fatal(err)
		}
		a1w = a.s.out[0]
	})
	a1 := idOf(t, a1w)
	s.run(25 * time.Second)
	c, b := s.node("C"), s.node("B")
	if c.s.Has(a1) || c.s.Buffered() != 1 { // B's ack of a1 waits at C
		t.Fatalf("C has a1 %v, buffered %d", c.s.Has(a1), c.s.Buffered())
	}
	s.run(2 * time.Second) // past t = 26 s
	nfa := a.notices[slices.IndexFunc(a.notices, func(x Notice) bool { return x.Kind == MsgNotFullyAcked && x.ID == a1 })]
	if !nfa.At.Equal(t0.Add(26*time.Second)) || !slices.Equal(nfa.Members, []string{"C"}) {
		t.Errorf("A's warning %+v", nfa)
	}
	if at := countSent(t, a, a1); len(at) != 2 || !at[1].Equal(t0.Add(26*time.Second)) {
		t.Fatalf("A sent a1 at %v, want again at 26 s", at)
	}
	if a.sent[len(a.sent)-1].wire != a1w {
		t.Error("the resend is not the identical string")
	}
	if !c.s.Has(a1) || c.s.Buffered() != 0 {
		t.Fatal("C did not accept a1 and its descendant")
	}
	if k := slices.IndexFunc(c.notices, func(x Notice) bool { return x.Kind == MsgAccepted && x.Late }); k >= 0 {
		if c.notices[k].Author != "B" {
			t.Errorf("late accept %+v", c.notices[k])
		}
	} else {
		t.Error("C's NotAccepted of B's ack was not withdrawn")
	}
	if b.s.Stats().Duplicates == 0 {
		t.Error("B saw no duplicate")
	}
	s.run(60 * time.Second)
	for _, n := range s.nodes {
		if n.count(MsgFullyAcked, func(x Notice) bool { return x.ID == a1 }) != 1 {
			t.Errorf("%s: a1 never fully acked", n.name)
		}
	}
	accB := acceptedAt(t, b, a1)
	faB := b.notices[slices.IndexFunc(b.notices, func(x Notice) bool { return x.Kind == MsgFullyAcked && x.ID == a1 })].At
	for _, at := range countSent(t, b, a1) {
		if at.Before(accB.Add(26*time.Second + 5*time.Second*3/4)) {
			t.Errorf("B resent a1 at %v, before its FA + BC round", at.Sub(t0))
		}
		if !at.Before(faB) {
			t.Errorf("B resent a1 after it was fully acked")
		}
	}
	// C accepted a1 at 26.5 s and would ack it at D; A's next round (FA +
	// BC ± 25 %) reaches C as a duplicate of a message it has not acked,
	// which C acks within BC/4: so A resends at most twice.
	if r := a.s.Stats().ResendRounds; r < 1 || r > 2 {
		t.Errorf("A resent %d times", r)
	}
	if fa := a.notices[slices.IndexFunc(a.notices, func(x Notice) bool { return x.Kind == MsgFullyAcked && x.ID == a1 })].At; fa.After(t0.Add(36 * time.Second)) {
		t.Errorf("a1 fully acked at A only at %v", fa.Sub(t0))
	}
}

// TestScenario21ThirdPartyResend: A sends a1 and leaves; C missed a1; B
// resends it; C verifies it with A's key, not the sender's, and accepts it
// with author A.
func TestScenario21ThirdPartyResend(t *testing.T) {
	s := abc(t, false)
	s.filter = func(from string, to *node, w string) bool { return !(from == "A" && to.name == "C") }
	a1 := s.payload("A", "a1")
	s.run(2 * time.Second)
	s.node("A").inRoom = false
	for _, n := range []string{"B", "C"} {
		s.node(n).s.SetChannelMembers([]string{"B", "C"})
	}
	s.run(60 * time.Second)
	c := s.node("C")
	k := slices.IndexFunc(c.notices, func(x Notice) bool { return x.Kind == MsgAccepted && x.ID == a1 })
	if k < 0 || c.notices[k].Author != "A" || c.notices[k].Text != "a1" {
		t.Fatalf("C: a1 not accepted with author A")
	}
	if len(countSent(t, s.node("B"), a1)) == 0 {
		t.Error("B did not resend a1")
	}
	if p := s.node("B").s.Presence("A"); p != LeftChannel {
		t.Errorf("B sees A as %v", p)
	}
	// Nobody in the room lacks a1 any more: B's monitor stops.
	before := len(countSent(t, s.node("B"), a1))
	s.run(10 * time.Minute)
	if after := len(countSent(t, s.node("B"), a1)); after != before {
		t.Errorf("B kept resending a1 (%d more) though only A, gone, lacks acks", after-before)
	}
}

// TestScenario22ExplicitAckRecovery: B acked a1 with an ExplicitAck e that
// never reached A. A resends a1; B sees a duplicate it acked through e and
// resends e at once; a1 becomes fully acked at A. And every monitor resend
// of m carries the explicit-ack chain directly before m.
func TestScenario22ExplicitAckRecovery(t *testing.T) {
	s := abc(t, false)
	s.minLatency, s.maxLatency = 500*time.Millisecond, 500*time.Millisecond
	b := s.node("B")
	var e transcript.ID
	dropped := false
	s.filter = func(from string, to *node, w string) bool {
		if from == "B" && to.name == "A" && !dropped && e == (transcript.ID{}) {
			e = idOf(t, w)
			dropped = true
			return false
		}
		return true
	}
	a1 := s.payload("A", "a1")
	s.run(40 * time.Second)
	a := s.node("A")
	if got := s.sentKinds(b); len(got) < 2 || got[0] != causal.KindAutoAck {
		t.Fatalf("B sent %v", got)
	}
	sentE := countSent(t, b, e)
	if len(sentE) != 2 {
		t.Fatalf("B sent e %d times, want twice", len(sentE))
	}
	resentA1 := countSent(t, a, a1)[1]
	if !sentE[1].Equal(resentA1.Add(500 * time.Millisecond)) {
		t.Errorf("B resent e at %v, A's resend reached it at %v", sentE[1].Sub(t0), resentA1.Add(500*time.Millisecond).Sub(t0))
	}
	if a.count(MsgFullyAcked, func(x Notice) bool { return x.ID == a1 }) != 1 {
		t.Error("a1 not fully acked at A")
	}

	// The chain: C acks a1 with an ExplicitAck ec; B then sends m citing
	// ec; m and ec never reach A the first time. B's monitor resend of m
	// re-sends ec first.
	s = abc(t, false)
	s.minLatency, s.maxLatency = 500*time.Millisecond, 500*time.Millisecond
	var m transcript.ID
	firstC := true
	s.filter = func(from string, to *node, w string) bool {
		if to.name != "A" {
			return true
		}
		if from == "C" && firstC {
			firstC = false
			return false // ec
		}
		return !(from == "B" && idOf(t, w) == m && len(countSent(t, s.node("B"), m)) == 1)
	}
	s.payload("A", "a1")
	s.run(20 * time.Second) // B and C ack a1 at ~16.5 s
	b = s.node("B")
	ec := idOf(t, s.node("C").sent[0].wire)
	if !slices.Contains(b.s.Heads(), ec) {
		t.Fatal("B's heads lack C's ack")
	}
	s.act(b, func(now time.Time) {
		var err error
		if m, err = b.s.SendPayload("m", now); err != nil {
			t.Fatal(err)
		}
	})
	s.run(40 * time.Second)
	// B's resend round of m: the ExplicitAcks m cites (B's own and C's ec),
	// oldest first, then m, all at once.
	var seq []transcript.ID
	for _, p := range b.sent {
		seq = append(seq, idOf(t, p.wire))
	}
	first := slices.Index(seq, m)
	k := slices.Index(seq[first+1:], m) + first + 1
	if k <= first || k < 2 || seq[k-1] != ec || seq[k-2] != seq[0] || !b.sent[k-2].at.Equal(b.sent[k].at) {
		t.Fatalf("B's resend of m is not preceded by its explicit-ack chain: %v", seq)
	}
	a = s.node("A")
	if !a.s.Has(m) || !a.s.Has(ec) {
		t.Error("A lacks m or ec")
	}
}
