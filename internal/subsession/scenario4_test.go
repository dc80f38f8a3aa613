package subsession

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/transcript"
)

func TestBufferCap(t *testing.T) {
	for n, want := range map[int]int{1: 64, 3: 64, 4: 64, 10: 101, 50: 226, 100: 320, 256: 512} {
		if got := BufferCap(n); got != want {
			t.Errorf("BufferCap(%d) = %d, want %d", n, got, want)
		}
	}
}

// TestScenario24BufferBounds: one member floods 10,000 messages citing a
// nonexistent parent: the buffer stays within its cap and within cap/2 for
// that author, memory stays flat (entries, bytes, waiter lists, timers),
// and honest messages keep flowing. Then six stray packets under another
// key: the trial-decrypt buffer keeps the newest 4 and reports
// NotDecrypted at BC.
func TestScenario24BufferBounds(t *testing.T) {
	s := manual(t, refTiming(false), "A", "B", "C")
	a := s.node("A")
	flooder := newGroup("A", "B", "C").forger(t, "B")
	ghost := transcript.ID{0xde, 0xad}
	capN := BufferCap(3)
	maxTimers := 0
	for k := 0; k < 10000; k++ {
		if k%500 == 0 {
			s.run(100 * time.Millisecond)
		}
		m := forge(t, flooder, causal.KindPayload, "flood", ghost)
		if r := s.hand("A", "B", m.Wire); r.Outcome != Buffered {
			t.Fatalf("flood %d: %v", k, r.Outcome)
		}
		if k%1000 == 999 {
			// An honest member keeps talking.
			id := s.payload("C", "still here")
			if r := s.hand("A", "C", s.last("C")); r.Outcome != Accepted || !a.s.Has(id) {
				t.Fatalf("honest message at flood %d: %v", k, r.Outcome)
			}
		}
		st := a.s.Stats()
		if st.BufferLen > capN || a.s.buf.perAuthor[1] > capN/2 || st.BufferBytes > MaxBufferBytes {
			t.Fatalf("buffer %d entries (%d by B), %d bytes", st.BufferLen, a.s.buf.perAuthor[1], st.BufferBytes)
		}
		if len(a.s.buf.waiters) > 1 || len(a.s.buf.waiters[ghost]) > capN/2 || len(a.s.buf.age) > 2*capN+32 {
			t.Fatalf("waiters %d/%d, age %d", len(a.s.buf.waiters), len(a.s.buf.waiters[ghost]), len(a.s.buf.age))
		}
		maxTimers = max(maxTimers, len(a.s.timers))
	}
	if maxTimers > 64 {
		t.Errorf("timer heap grew to %d entries under the flood", maxTimers)
	}
	if n := a.count(BufferOverflow, func(x Notice) bool { return x.Author == "B" }); n < 10000-capN {
		t.Errorf("%d overflow notices", n)
	}
	if a.s.Graph().Len() != 10 {
		t.Errorf("A accepted %d messages, want C's 10", a.s.Graph().Len())
	}

	// The trial-decrypt buffer.
	other := newGroup("A", "B", "C")
	other.gk = bytes.Repeat([]byte{7}, 32)
	sec, err := message.New(message.Config{Members: other.names, PublicKeys: other.pubs, Self: 2,
		SigningKey: other.keys[2], SID: other.sid, GroupKey: other.gk})
	if err != nil {
		t.Fatal(err)
	}
	tb := NewTrialBuffer(refTiming(false))
	start := s.now
	var stray []*wire.DataPacket
	for k := range 6 {
		m := forge(t, sec, causal.KindPayload, "new key")
		p, _ := decodeWire(m.Wire)
		stray = append(stray, p)
		if r := a.s.Receive(p, m.Wire, "C", start); r.Outcome != NotMine {
			t.Fatalf("stray packet %d: %v", k, r.Outcome)
		}
		if d := tb.Add(p, m.Wire, "C", start.Add(time.Duration(k)*time.Millisecond)); (d != nil) != (k >= 4) {
			t.Errorf("packet %d: dropped %v", k, d != nil)
		}
	}
	if tb.Len() != 4 {
		t.Fatalf("trial buffer holds %d", tb.Len())
	}
	var kept []*wire.DataPacket
	tb.Retry(func(p Pending) bool { kept = append(kept, p.Packet); return false })
	for k, p := range kept {
		if p != stray[k+2] {
			t.Error("not the newest four, oldest first")
		}
	}
	if d, ok := tb.NextDeadline(); !ok || !d.Equal(start.Add(5*time.Second+2*time.Millisecond)) {
		t.Errorf("next deadline %v", d.Sub(start))
	}
	tb.Tick(start.Add(5*time.Second + 3*time.Millisecond))
	ns := tb.TakeNotices()
	if len(ns) != 2 || ns[0].Kind != NotDecrypted || ns[0].Author != "C" || ns[0].Count != 4 || !ns[0].Warning() {
		t.Errorf("notices %+v", ns)
	}
	// A greeting completes: retry; taken packets leave the buffer.
	tb.Retry(func(p Pending) bool { return p.Packet == stray[3] })
	if tb.Len() != 3 {
		t.Errorf("after retry %d", tb.Len())
	}
}

// TestScenario25Heartbeats: three idle members for 10 minutes: each sends
// a Consistency(false) about every 78 s (3·FA); nobody expires; no
// warning; per member and 78 s at most one heartbeat and ⌈78/D⌉ acks.
// Then freeze C: A shows C "not responding" at knownTs + 110.5 s.
func TestScenario25Heartbeats(t *testing.T) {
	s := abc(t, true)
	s.run(10 * time.Minute)
	s.noWarnings()
	for _, n := range s.nodes {
		st := n.s.Stats()
		if st.Heartbeats < 6 || st.Heartbeats > 8 || st.Payloads != 0 {
			t.Errorf("%s: %d heartbeats in 10 min", n.name, st.Heartbeats)
		}
		var hb, acks []time.Time
		for _, p := range n.sent {
			switch n.s.Graph().Kind(mustIdx(t, n.s.Graph(), idOf(t, p.wire))) {
			case causal.KindFlush:
				hb = append(hb, p.at)
			case causal.KindAutoAck:
				acks = append(acks, p.at)
			}
		}
		for k := 1; k < len(hb); k++ {
			if d := hb[k].Sub(hb[k-1]); d < 78*time.Second || d > 79*time.Second {
				t.Errorf("%s: heartbeats %v apart", n.name, d)
			}
		}
		maxAcks := int(math.Ceil(78.0 / 16))
		for w := time.Duration(0); w < 10*time.Minute; w += 78 * time.Second {
			c := 0
			for _, a := range acks {
				if d := a.Sub(t0); d >= w && d < w+78*time.Second {
					c++
				}
			}
			if c > maxAcks {
				t.Errorf("%s: %d acks in a 78 s window", n.name, c)
			}
		}
		for _, m := range []string{"A", "B", "C"} {
			if m != n.name && n.s.Presence(m) != Present {
				t.Errorf("%s sees %s as %v", n.name, m, n.s.Presence(m))
			}
		}
	}
	a := s.node("A")
	known, _ := a.s.LastSeen("C")
	s.freeze("C")
	s.run(5 * time.Minute)
	exp := a.notices[len(a.notices)-1]
	k := 0
	for k = range a.notices {
		if a.notices[k].Kind == MemberExpired {
			exp = a.notices[k]
			break
		}
	}
	if exp.Kind != MemberExpired || exp.Author != "C" || !exp.At.Equal(known.Add(110500*time.Millisecond)) {
		t.Errorf("expiry %+v, want C at %v", exp, known.Add(110500*time.Millisecond).Sub(t0))
	}
	if a.s.Presence("C") != NotResponding || a.s.Presence("B") != Present {
		t.Errorf("A sees C %v, B %v", a.s.Presence("C"), a.s.Presence("B"))
	}
	if !a.s.OwnFresh(s.now) {
		t.Error("A, heart-beating, does not count as fresh")
	}
}
