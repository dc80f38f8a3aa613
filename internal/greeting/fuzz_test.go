package greeting_test

import (
	"testing"

	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/internal/wire"
)

// recordInclude returns a room with a session {0,1,2} and every packet of an
// include of 3 by 1, as seeds.
func recordInclude(tb testing.TB) (*room, []string) {
	all := ids(4)
	r := newRoom(tb, 3, all...)
	r.mustOp(all[0], all[:3])
	var packets []string
	r.tamper = func(k int, sender, w string) string { packets = append(packets, w); return w }
	if _, err := r.run(all[1], all, nil); err != nil {
		tb.Fatal(err)
	}
	r.tamper = nil
	return r, packets
}

// FuzzGreetingReceive feeds arbitrary packets to a Greeting in the middle of
// an include: nothing panics, the previous state is never touched, and no
// forged input completes the operation.
func FuzzGreetingReceive(f *testing.F) {
	r, packets := recordInclude(f)
	for _, w := range packets {
		b, _ := wire.Dearmour(w)
		f.Add(b)
	}
	all := ids(4)
	pi, err := wire.DecodeWire(packets[0])
	if err != nil {
		f.Fatal(err)
	}
	before := snapshot(r.states[all[0]])
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := wire.Decode(b)
		if err != nil {
			return
		}
		gp, ok := p.(*wire.GreetPacket)
		if !ok {
			return
		}
		// A fresh Greeting of member 0 that has accepted the real pI.
		g, _, err := r.greeters[all[0]].Accept(r.states[all[0]], pi.(*wire.GreetPacket), nil)
		if err != nil {
			t.Fatalf("the real pI failed: %v", err)
		}
		greeting.Classify(gp, g)
		g.ExpectsFinal(gp)
		g.Receive(gp)
		if g.Result() != nil {
			t.Fatal("one fuzzed packet completed an include")
		}
		if snapshot(r.states[all[0]]) != before {
			t.Fatal("previous state changed")
		}
	})
}

// FuzzAccept feeds arbitrary packets to Accept as if ServerOrder had
// accepted them as initial packets.
func FuzzAccept(f *testing.F) {
	r, packets := recordInclude(f)
	for _, w := range packets {
		b, _ := wire.Dearmour(w)
		f.Add(b)
	}
	all := ids(4)
	before := snapshot(r.states[all[2]])
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := wire.Decode(b)
		if err != nil {
			return
		}
		gp, ok := p.(*wire.GreetPacket)
		if !ok {
			return
		}
		g, _, _ := r.greeters[all[2]].Accept(r.states[all[2]], gp, nil)
		if g == nil {
			t.Fatal("Accept returned no Greeting")
		}
		if g.Result() != nil {
			t.Fatalf("a fuzzed %v completed an operation", gp.Type)
		}
		if snapshot(r.states[all[2]]) != before {
			t.Fatal("previous state changed")
		}
	})
}
