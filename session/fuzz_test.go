package session_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/internal/sim"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/session"
)

// fuzzRoom forms {A, B, C} and records every packet sent meanwhile (the
// greeting packets, chain checks, acks and one message of each member):
// the raw material the fuzzer mutates.
func fuzzRoom(tb testing.TB) (*sim.World, []string) {
	w := sim.NewWorld(7, hop, ref)
	var sent []string
	w.Intercept = func(id string, a session.Action) []session.Action {
		if a.Kind == session.ActSend {
			sent = append(sent, a.Wire)
		}
		return []session.Action{a}
	}
	addAll(w, auto, "A", "B", "C")
	for _, id := range []string{"A", "B", "C"} {
		w.Do(id, func(c *session.Core, now time.Time) { c.Join(now) })
		if err := w.RunFor(15 * time.Second); err != nil {
			tb.Fatal(err)
		}
	}
	for _, id := range []string{"A", "B", "C"} {
		if err := w.Send(id, "hello from "+id); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.RunFor(10 * time.Second); err != nil {
		tb.Fatal(err)
	}
	w.Intercept = nil
	return w, sent
}

// FuzzHandleEvent feeds member A's Core, in a formed session, with channel
// events chosen by the fuzzer: recorded packets of the session (greetings
// and data) with bytes flipped, cut or repeated, attributed to any sender;
// raw bytes armoured as mpENC packets; plain text; others entering and
// leaving; time passing. Nothing may panic or hang, and A never shows a
// message that a member did not send: a corrupted packet is refused (or is
// a duplicate), never accepted.
func FuzzHandleEvent(f *testing.F) {
	f.Add([]byte{0, 3, 1, 5, 1, 2, 1, 9, 0, 4, 7, 2, 0, 0, 6, 3})
	f.Add([]byte{1, 12, 'h', 'e', 'l', 'l', 'o', 0, 1, 2, 3, 4, 5, 6, 7, 3, 1})
	f.Add([]byte{4, 1, 5, 1, 6, 0, 0, 2, 255, 0, 0, 0, 8, 200})
	_, sent := fuzzRoom(f)
	if len(sent) == 0 {
		f.Fatal("nothing recorded")
	}
	members := []string{"A", "B", "C"}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 200 {
			return
		}
		w, _ := fuzzRoom(t)
		a := w.Members["A"]
		before := len(a.Notices)
		next := func() int {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return int(b)
		}
		deliver := func(sender, body string) {
			ev := channel.Event{Kind: channel.EventPacket, Sender: sender, Body: body, Members: w.Hub.Members()}
			if !strings.HasPrefix(body, "?mpENC:") {
				ev.Kind = channel.EventPlain
			}
			w.Do("A", func(c *session.Core, now time.Time) { c.HandleEvent(ev, now) })
		}
		for len(ops) > 0 {
			switch next() % 6 {
			case 0: // a recorded packet with a byte flipped
				raw := decodeArmour(sent[next()%len(sent)])
				if len(raw) == 0 {
					continue
				}
				i := (next()<<8 | next()) % len(raw)
				raw[i] ^= byte(1 + next()%255)
				deliver(members[next()%3], armour(raw))
			case 1: // raw bytes as a packet
				sender := members[next()%3]
				n := min(next()%64, len(ops))
				deliver(sender, armour(ops[:n]))
				ops = ops[n:]
			case 2: // a recorded packet cut short or as is (a duplicate)
				raw := decodeArmour(sent[next()%len(sent)])
				if k := next(); k > 0 && k < len(raw) {
					raw = raw[:k]
				}
				deliver(members[next()%3], armour(raw))
			case 3: // time passes
				if err := w.RunFor(time.Duration(next()) * 100 * time.Millisecond); err != nil {
					t.Fatal(err)
				}
			case 4: // plain text
				deliver(members[next()%3], "plain "+string(rune('a'+next()%26)))
			case 5: // someone leaves and comes back
				m := members[1+next()%2]
				w.Crash(m)
				w.Later(w.Now().Add(time.Second), func() { w.Do(m, func(c *session.Core, now time.Time) { c.Join(now) }) })
			}
		}
		if err := w.RunFor(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		for _, n := range a.Notices[before:] {
			if n.Kind == session.Message && !n.Own && !slices.Contains([]string{"hello from B", "hello from C"}, n.Text) {
				t.Fatalf("A showed a message nobody sent: %v %q", n, n.Text)
			}
		}
	})
}

func decodeArmour(w string) []byte {
	b, _ := wire.Dearmour(w)
	return b
}

func armour(b []byte) string { return wire.Armour(b) }
