package subsession

import (
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/transcript"
)

// FuzzReceive drives member A's SessionBase with operations chosen by the
// fuzzer: messages validly signed by B, C or (forged) A, with chosen kinds
// and parents (accepted, unknown or garbage ids), raw bodies, duplicates,
// time steps and A's own sends and fin. Nothing may panic, the buffer and
// caches stay within their caps, notices are well-formed, and the
// transcript's invariants hold.
func FuzzReceive(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 1, 2, 1, 0, 3, 40, 4, 0, 5, 7, 6, 2, 0, 1, 9})
	f.Add([]byte{0, 2, 2, 1, 0, 0, 1, 3, 0, 2, 5, 1, 3, 250, 3, 250, 3, 250})
	f.Add([]byte{7, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	g := newGroup("A", "B", "C")
	forgers := []*message.Security{g.forger(f, "A"), g.forger(f, "B"), g.forger(f, "C")}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 300 {
			return
		}
		tm := ReferenceTiming()
		s, err := New(g.config("A", tm, 1), t0)
		if err != nil {
			t.Fatal(err)
		}
		now := t0
		var ids []transcript.ID
		var wires []string
		next := func() byte {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return b
		}
		for len(ops) > 0 {
			switch op := next() % 8; op {
			case 0, 1, 2: // a message by member op
				kind := causal.Kind(next() % 6)
				np := int(next() % 4)
				var parents []transcript.ID
				for range np {
					b := next()
					switch {
					case b < 128 && len(ids) > 0:
						parents = append(parents, ids[int(b)%len(ids)])
					case b < 200:
						parents = append(parents, s.Heads()...)
					default:
						parents = append(parents, transcript.ID{b})
					}
				}
				if len(parents) > 3 {
					parents = parents[:3]
				}
				body, err := message.EncodeBody(message.Body{Kind: kind, Text: "t"})
				if err != nil {
					body = []byte{next(), next()} // a raw, probably invalid, body
				}
				m, err := forgers[op].Seal(parents, body)
				if err != nil {
					continue
				}
				ids = append(ids, m.ID)
				wires = append(wires, m.Wire)
				s.ReceiveWire(m.Wire, g.names[int(next())%3], now)
			case 3: // time passes
				now = now.Add(time.Duration(next()) * 500 * time.Millisecond)
				s.Tick(now)
			case 4: // a duplicate
				if len(wires) > 0 {
					s.ReceiveWire(wires[int(next())%len(wires)], "B", now)
				}
			case 5: // our own sends
				switch next() % 5 {
				case 0:
					s.SendPayload("mine", now)
				case 1:
					s.SendAck(true, now)
				case 2:
					s.SendFlush(now)
				case 3:
					s.Fin(now)
				case 4:
					s.SendLeaveIntent(now)
				}
			case 6:
				s.SetChannelMembers(g.names[:1+int(next())%3])
			case 7:
				if d, ok := s.NextDeadline(); ok {
					if d.Before(now) {
						t.Fatalf("deadline %v before now %v", d, now)
					}
					now = d
					s.Tick(now)
				}
			}
			checkInvariants(t, s)
		}
	})
}

func checkInvariants(t *testing.T, s *SessionBase) {
	st := s.Stats()
	if st.BufferLen > BufferCap(3) || st.BufferBytes > MaxBufferBytes || st.BufferLen < 0 {
		t.Fatalf("buffer %d entries, %d bytes", st.BufferLen, st.BufferBytes)
	}
	for a, c := range s.buf.perAuthor {
		if c < 0 || c > BufferCap(3)/2 {
			t.Fatalf("author %d holds %d buffer entries", a, c)
		}
	}
	g := s.Graph()
	if len(g.Heads()) > g.N() {
		t.Fatalf("%d heads", len(g.Heads()))
	}
	unacked := 0
	for i := range g.Len() {
		x := causal.Index(i)
		if g.Kind(x) == causal.KindPayload && !g.FullyAcked(x) {
			unacked++
		}
		if _, ok := s.monitors[x]; ok && (g.FullyAcked(x) || !g.Kind(x).Monitored()) {
			t.Fatalf("monitor on message %d (fully acked %v, %v)", i, g.FullyAcked(x), g.Kind(x))
		}
	}
	if unacked != s.payloadsUnacked {
		t.Fatalf("payloadsUnacked %d, graph says %d", s.payloadsUnacked, unacked)
	}
	for _, n := range s.TakeOutput().Notices {
		if n.Kind == SecurityWarning && n.Err == nil || n.Kind == MsgNotFullyAcked && len(n.Members) == 0 {
			t.Fatalf("malformed notice %+v", n)
		}
	}
}
