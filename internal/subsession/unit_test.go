package subsession

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/transcript"
)

func TestTimingProfiles(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		name                                           string
		tm                                             Timing
		bc, fa, d, finAck, finTimeout, hb, own, others time.Duration
	}{
		{"reference", ReferenceTiming(), 5 * s, 26 * s, 16 * s, s, 80 * s, 78 * s, 104 * s, 110500 * time.Millisecond},
		{"internet", InternetTiming(), 2 * s, 14 * s, 10 * s, s / 2, 32 * s, 42 * s, 56 * s, 59500 * time.Millisecond},
		{"loopback", LoopbackTiming(), s / 2, 3 * s, 2 * s, s / 8, 8 * s, 9 * s, 12 * s, 12750 * time.Millisecond},
	} {
		tm := c.tm
		if err := tm.Validate(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		got := []time.Duration{tm.BC, tm.FA, tm.AckDelay, tm.FinAckDelay, tm.FinTimeout, tm.HeartbeatIdle, tm.OwnExpiry, tm.OthersExpiry}
		want := []time.Duration{c.bc, c.fa, c.d, c.finAck, c.finTimeout, c.hb, c.own, c.others}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", c.name, got, want)
		}
		if tm.NotAccepted != tm.BC || tm.BufferDrop != tm.FA || tm.FinComplete != tm.BC ||
			tm.ResendMax != 16*tm.BC || tm.NotDecrypted != tm.BC || !tm.Heartbeats || tm.AckDelay+2*tm.BC > tm.FA {
			t.Errorf("%s: derived timers wrong: %+v", c.name, tm)
		}
	}
	bad := []func(*Timing){
		func(t *Timing) { t.BC = 0 },
		func(t *Timing) { t.AckDelay = -1 },
		func(t *Timing) { t.ResendJitter = 1 },
		func(t *Timing) { t.ResendMax = t.ResendBase / 2 },
		func(t *Timing) { t.BufferDrop = t.NotAccepted / 2 },
		func(t *Timing) { t.HeartbeatIdle = t.OthersExpiry },
	}
	for i, f := range bad {
		tm := ReferenceTiming()
		f(&tm)
		if tm.Validate() == nil {
			t.Errorf("bad timing %d accepted", i)
		}
	}
	g := newGroup("A", "B")
	cfg := g.config("A", Timing{}, 1)
	if _, err := New(cfg, t0); err == nil {
		t.Error("New accepted a zero Timing")
	}
	cfg = g.config("A", ReferenceTiming(), 1)
	cfg.Self = "Z"
	if _, err := New(cfg, t0); err == nil {
		t.Error("New accepted a non-member self")
	}
}

// TestReceiveRejectsForeignPackets: a replay from another subsession (same
// members and ephemeral keys, another group key, same hint), a packet
// signed by a non-member, a packet under our hint that is too short, a
// packet signed with our own key that we never sent, a validly signed
// malformed body, a non-data packet.
func TestReceiveRejectsForeignPackets(t *testing.T) {
	s := manual(t, refTiming(false), "A", "B", "C")
	a := s.node("A")
	g := newGroup("A", "B", "C")

	// Another subsession: same keys, another group key with the same hint.
	other := newGroup("A", "B", "C")
	for k := 1; ; k++ {
		other.gk = bytes.Repeat([]byte{byte(k), byte(k >> 8)}, 16)
		if wire.SidKeyHash(other.sid, other.gk)[0] == a.s.Hint() {
			break
		}
	}
	old := other.forger(t, "B")
	m := forge(t, old, causal.KindPayload, "from the old subsession")
	if r := s.hand("A", "B", m.Wire); r.Outcome != NotMine || r.Outcome.Mine() || !errors.Is(r.Err, message.ErrNotVerified) {
		t.Errorf("replay: %+v", r)
	}
	// A non-member's key.
	stranger := newGroup("A", "B", "X")
	stranger.sid, stranger.gk = g.sid, g.gk
	xs := stranger.forger(t, "X")
	if r := s.hand("A", "X", forge(t, xs, causal.KindPayload, "hi").Wire); r.Outcome != NotMine {
		t.Errorf("non-member: %+v", r)
	}
	// Too short, under our hint.
	short := &wire.DataPacket{SidkeyHint: a.s.Hint(), Payload: []byte{1, 2, 3}}
	raw, _ := short.Sign(g.keys[1], new([32]byte))
	short.SidkeyHint = a.s.Hint()
	raw[4] = a.s.Hint() // the hint record's value
	if r := s.hand("A", "B", wire.Armour(raw)); r.Outcome != Invalid {
		t.Errorf("short payload: %+v", r)
	}
	// Our own key, a message we never sent.
	me := g.forger(t, "A")
	if r := s.hand("A", "B", forge(t, me, causal.KindPayload, "not me").Wire); r.Outcome != Rejected || !errors.Is(r.Err, ErrOwnKey) {
		t.Errorf("own key: %+v", r)
	}
	// A validly signed body that does not decode.
	bs := g.forger(t, "B")
	sealed, _ := bs.Seal(nil, []byte("\x00[\"unterminated]"))
	r := s.hand("A", "B", sealed.Wire)
	var ae *message.AuthorError
	if r.Outcome != Rejected || !errors.Is(r.Err, message.ErrBody) || !errors.As(r.Err, &ae) || r.Author != "B" {
		t.Errorf("bad body: %+v", r)
	}
	// A descendant of it is rejected at once, not buffered.
	if r := s.hand("A", "C", forge(t, g.forger(t, "C"), causal.KindPayload, "x", sealed.ID).Wire); r.Outcome != Rejected {
		t.Errorf("descendant of a rejected message: %+v", r)
	}
	// A descendant that arrived first waits, and is rejected at once when
	// its parent turns out to be invalid.
	bad2, _ := bs.Seal(nil, []byte("\x01[maybe]"))
	child := forge(t, g.forger(t, "C"), causal.KindPayload, "y", bad2.ID)
	if r := s.hand("A", "C", child.Wire); r.Outcome != Buffered {
		t.Errorf("child first: %+v", r)
	}
	if r := s.hand("A", "B", bad2.Wire); r.Outcome != Rejected || a.s.Buffered() != 0 {
		t.Errorf("bad parent: %+v, %d still buffered", r, a.s.Buffered())
	}
	// Not a data packet; not mpENC.
	if r := a.s.ReceiveWire(wire.Armour([]byte{0, 1, 0, 1, 1, 0, 2, 0, 1, 1}), "B", s.now); r.Outcome != Invalid {
		t.Errorf("query packet: %+v", r)
	}
	if r := a.s.ReceiveWire("hello", "B", s.now); r.Outcome != Invalid {
		t.Errorf("plain text: %+v", r)
	}
	if a.s.Graph().Len() != 0 {
		t.Error("something entered the transcript")
	}
	for _, w := range a.warnings() {
		if w.Kind != SecurityWarning || (w.Author != "A" && w.Author != "B" && w.Author != "C") {
			t.Errorf("warning %+v", w)
		}
	}
	if n := len(a.warnings()); n != 5 {
		t.Errorf("%d warnings, want 5 (own key, two bad bodies, their descendants)", n)
	}
}

// TestSoloAndStop: a subsession of one is consistent at once and parts
// after BC; Stop ends any subsession at once with final notices.
func TestSoloAndStop(t *testing.T) {
	g := newGroup("A")
	s, err := New(g.config("A", ReferenceTiming(), 1), t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendPayload("alone", t0); err != nil {
		t.Fatal(err)
	}
	out := s.TakeOutput()
	if len(out.Packets) != 1 || out.Notices[0].Kind != MsgAccepted || out.Notices[1].Kind != MsgFullyAcked || !s.IsConsistent() {
		t.Fatalf("solo send: %+v", out.Notices)
	}
	if _, err := s.Fin(t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	d, ok := s.NextDeadline()
	if !ok || !d.Equal(t0.Add(6*time.Second)) {
		t.Fatalf("solo fin completes at %v", d.Sub(t0))
	}
	s.Tick(d)
	if s.State() != Parted {
		t.Errorf("solo: %v", s.State())
	}

	x := abc(t, false)
	x.freeze("B")
	x.freeze("C")
	p := x.payload("A", "unread")
	a := x.node("A")
	x.run(time.Second)
	x.act(a, func(now time.Time) { a.s.Stop(now) })
	if a.s.State() != PartFailed || a.count(FinComplete, func(n Notice) bool { return n.ID == (transcript.ID{}) }) != 1 {
		t.Errorf("stop: %v", a.s.State())
	}
	if a.count(MsgNotFullyAcked, func(n Notice) bool { return n.ID == p && n.Final }) != 1 {
		t.Error("no final notice for the unread payload")
	}
	if _, ok := a.s.NextDeadline(); ok {
		t.Error("timers after Stop")
	}
	// Time going backwards is treated as the latest time seen.
	if _, err := a.s.SendAck(false, t0); !errors.Is(err, ErrState) {
		t.Errorf("send after stop: %v", err)
	}
	// Zero wipes the key: nothing is sent or taken any more, and printing
	// the subsession reveals no key.
	w := x.node("B").s
	gk := newGroup("A", "B", "C").gk
	printed := []string{fmt.Sprint(w), fmt.Sprintf("%v %+v", w.sec, w.sec)}
	x.act(x.node("B"), func(now time.Time) { w.Zero(now) })
	if w.State().Done() != true || w.Receive(mustDecode(t, x.node("A").sent[0].wire), x.node("A").sent[0].wire, "A", x.now).Outcome != NotMine {
		t.Error("a zeroed subsession still takes packets")
	}
	if _, err := w.SendFlush(x.now); err == nil {
		t.Error("a zeroed subsession still sends")
	}
	for _, str := range printed {
		if strings.Contains(str, fmt.Sprintf("%x", gk[:8])) || strings.Contains(str, fmt.Sprint(gk[:8])) {
			t.Errorf("key material printed: %s", str)
		}
	}
}

// TestPresenceAndChannel: SetChannelMembers, presence states, LastSeen.
func TestPresenceAndChannel(t *testing.T) {
	s := abc(t, true)
	s.payload("A", "p")
	s.run(30 * time.Second)
	a := s.node("A")
	if a.s.Presence("A") != PresenceSelf || a.s.Presence("B") != Present || a.s.Presence("nobody") != 0 {
		t.Error("presence")
	}
	if ls, ok := a.s.LastSeen("B"); !ok || !ls.Equal(t0) {
		t.Errorf("B last seen %v (A's payload was sent at the start)", ls.Sub(t0))
	}
	a.s.SetChannelMembers([]string{"A", "C"})
	if a.s.Presence("B") != LeftChannel {
		t.Error("B still in the channel")
	}
	b := s.node("B")
	s.act(b, func(now time.Time) { b.s.Fin(now) })
	s.run(time.Second)
	a.s.SetChannelMembers([]string{"A", "B", "C"})
	if p := a.s.Presence("B"); p != MemberParting && p != IntentAbsent {
		t.Errorf("B after its FIN: %v", p)
	}
	s.run(10 * time.Second)
	if a.s.Presence("B") != IntentAbsent || a.count(MemberAbsent, nil) != 1 {
		t.Errorf("B after its FIN is fully acked: %v", a.s.Presence("B"))
	}
	if a.s.Self() != "A" || !slices.Equal(a.s.Members(), []string{"A", "B", "C"}) || a.s.Graph() == nil {
		t.Error("accessors")
	}
}

func mustDecode(t *testing.T, w string) *wire.DataPacket {
	t.Helper()
	p, err := decodeWire(w)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
