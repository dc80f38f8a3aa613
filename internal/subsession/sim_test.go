package subsession

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/transcript"
)

// t0 is the virtual start of every test.
var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// group is the key material of one subsession for named members.
type group struct {
	names   []string // sorted
	keys    []*crypto.SigningKey
	pubs    []crypto.PublicKey
	sid, gk []byte
}

func newGroup(names ...string) *group {
	g := &group{names: slices.Sorted(slices.Values(names)), sid: make([]byte, 32), gk: make([]byte, 32)}
	for i := range g.sid {
		g.sid[i], g.gk[i] = byte(i), byte(255-i)
	}
	for i, n := range g.names {
		var seed [32]byte
		copy(seed[:], n)
		seed[31] = byte(i)
		k := crypto.NewSigningKey(seed)
		g.keys = append(g.keys, k)
		g.pubs = append(g.pubs, k.Public())
	}
	return g
}

func (g *group) index(name string) int { return slices.Index(g.names, name) }

func (g *group) config(name string, timing Timing, seed uint64) Config {
	i := g.index(name)
	var s [32]byte
	s[0], s[1] = byte(i), byte(seed)
	s[2] = byte(seed >> 8)
	return Config{Self: name, Members: g.names, SID: g.sid, GroupKey: g.gk, SigningKey: g.keys[i],
		PublicKeys: g.pubs, Timing: timing, Rand: rand.NewChaCha8(s)}
}

// forger seals arbitrary messages as member name (for misbehaving-member
// scenarios).
func (g *group) forger(t testing.TB, name string) *message.Security {
	i := g.index(name)
	s, err := message.New(message.Config{Members: g.names, PublicKeys: g.pubs, Self: i, SigningKey: g.keys[i],
		SID: g.sid, GroupKey: g.gk, Rand: rand.NewChaCha8([32]byte{0xf0, byte(i)})})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func forge(t testing.TB, sec *message.Security, kind causal.Kind, text string, parents ...transcript.ID) message.Sealed {
	t.Helper()
	body, err := message.EncodeBody(message.Body{Kind: kind, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sec.Seal(parents, body)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// node is one simulated member.
type node struct {
	name    string
	s       *SessionBase
	notices []Notice
	sent    []sentPacket // every packet it broadcast, with time
	frozen  bool
	inRoom  bool
	held    []delivery // deliveries while frozen
	log     *causal.MessageLog
	logRef  causal.TranscriptRef
	ready   []causal.Ready
}

type sentPacket struct {
	at   time.Time
	wire string
}

type delivery struct {
	at   time.Time
	seq  uint64
	to   *node
	wire string
	from string
}

type deliveryHeap []delivery

func (h deliveryHeap) Len() int { return len(h) }
func (h deliveryHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h deliveryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *deliveryHeap) Push(x any)   { *h = append(*h, x.(delivery)) }
func (h *deliveryHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	*h = old[:len(old)-1]
	return d
}

// sim drives nodes over a room with a virtual clock. Deliveries take at
// most maxLatency (≤ BC in honest runs: every "no false warning" property
// rests on that bound). In a server-ordered room every member receives the
// packets in one order (send order, FIFO per member, the sender's echo
// included); the lossy room reorders, drops and duplicates.
type sim struct {
	t          testing.TB
	now        time.Time
	nodes      []*node
	rng        *rand.Rand
	q          deliveryHeap
	seq        uint64
	minLatency time.Duration
	maxLatency time.Duration
	lossy      bool
	loss, dup  float64
	lastTo     map[*node]time.Time
	// filter, if set, decides whether a delivery happens (fault injection).
	filter func(from string, to *node, wire string) bool
	// onNotice, if set, sees every notice (for "no warning" checks).
	onNotice func(n *node, x Notice)
}

func newSim(t testing.TB, seed uint64, timing Timing, names ...string) *sim {
	g := newGroup(names...)
	s := &sim{t: t, now: t0, rng: rand.New(rand.NewPCG(seed, 1)), maxLatency: time.Second, lastTo: map[*node]time.Time{}}
	for _, n := range g.names {
		sb, err := New(g.config(n, timing, seed), t0)
		if err != nil {
			t.Fatal(err)
		}
		nd := &node{name: n, s: sb, inRoom: true, log: causal.NewMessageLog()}
		nd.logRef, _ = nd.log.AddTranscript(sb.Graph(), causal.NoTranscript, nil)
		s.nodes = append(s.nodes, nd)
	}
	return s
}

func (s *sim) node(name string) *node {
	for _, n := range s.nodes {
		if n.name == name {
			return n
		}
	}
	s.t.Fatalf("no node %s", name)
	return nil
}

// drain collects a node's output: notices are recorded (and fed to its
// MessageLog), packets broadcast.
func (s *sim) drain(n *node) {
	out := n.s.TakeOutput()
	for _, x := range out.Notices {
		n.notices = append(n.notices, x)
		if s.onNotice != nil {
			s.onNotice(n, x)
		}
		if x.Kind == MsgAccepted {
			r, ok, err := n.log.Append(n.logRef, x.Index, x.Text)
			if err != nil {
				s.t.Fatalf("%s: message log: %v", n.name, err)
			}
			if ok {
				n.ready = append(n.ready, r)
			}
		}
	}
	for _, w := range out.Packets {
		n.sent = append(n.sent, sentPacket{s.now, w})
		s.broadcast(n, w)
	}
}

func (s *sim) latency() time.Duration {
	if s.maxLatency <= s.minLatency {
		return s.minLatency
	}
	return s.minLatency + time.Duration(s.rng.Int64N(int64(s.maxLatency-s.minLatency)+1))
}

func (s *sim) broadcast(from *node, w string) {
	for _, to := range s.nodes {
		if !to.inRoom || !from.inRoom {
			continue
		}
		if s.filter != nil && !s.filter(from.name, to, w) {
			continue
		}
		copies := 1
		if s.lossy {
			if s.rng.Float64() < s.loss {
				copies = 0
			} else if s.rng.Float64() < s.dup {
				copies = 2
			}
		}
		for range copies {
			at := s.now.Add(s.latency())
			if !s.lossy {
				// Server order: FIFO per member, in send order.
				if last := s.lastTo[to]; at.Before(last) {
					at = last
				}
				s.lastTo[to] = at
			}
			s.seq++
			heap.Push(&s.q, delivery{at: at, seq: s.seq, to: to, wire: w, from: from.name})
		}
	}
}

// deliver hands one packet to a node now.
func (s *sim) deliver(d delivery) Result {
	if d.to.frozen {
		d.to.held = append(d.to.held, d)
		return Result{}
	}
	r := d.to.s.ReceiveWire(d.wire, d.from, s.now)
	s.drain(d.to)
	return r
}

// runUntil advances the virtual clock to end, processing deliveries and
// timers in time order; at equal times deliveries come first.
func (s *sim) runUntil(end time.Time) {
	for {
		var next time.Time
		var tick *node
		for _, n := range s.nodes {
			if n.frozen {
				continue
			}
			if d, ok := n.s.NextDeadline(); ok && (tick == nil || d.Before(next)) {
				next, tick = d, n
			}
		}
		if len(s.q) > 0 && (tick == nil || !s.q[0].at.After(next)) {
			d := s.q[0]
			if d.at.After(end) {
				break
			}
			heap.Pop(&s.q)
			s.now = maxTime(s.now, d.at)
			s.deliver(d)
			continue
		}
		if tick == nil || next.After(end) {
			break
		}
		s.now = maxTime(s.now, next)
		tick.s.Tick(s.now)
		s.drain(tick)
	}
	s.now = maxTime(s.now, end)
}

func (s *sim) run(d time.Duration) { s.runUntil(s.now.Add(d)) }

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// act runs f on node n now and broadcasts what it produced.
func (s *sim) act(n *node, f func(now time.Time)) {
	f(s.now)
	s.drain(n)
}

func (s *sim) payload(name, text string) transcript.ID {
	n := s.node(name)
	var id transcript.ID
	s.act(n, func(now time.Time) {
		var err error
		if id, err = n.s.SendPayload(text, now); err != nil {
			s.t.Fatalf("%s: send: %v", name, err)
		}
	})
	return id
}

func (s *sim) freeze(name string) { s.node(name).frozen = true }

func (s *sim) thaw(name string) {
	n := s.node(name)
	n.frozen = false
	held := n.held
	n.held = nil
	n.s.Tick(s.now)
	s.drain(n)
	for _, d := range held {
		s.deliver(d)
	}
}

// count returns how many notices of kind a node got (matching f if set).
func (n *node) count(kind NoticeKind, f func(Notice) bool) int {
	c := 0
	for _, x := range n.notices {
		if x.Kind == kind && (f == nil || f(x)) {
			c++
		}
	}
	return c
}

func (n *node) warnings() []Notice {
	var w []Notice
	for _, x := range n.notices {
		if x.Warning() {
			w = append(w, x)
		}
	}
	return w
}

// sentKinds decodes what a node broadcast (new messages and resends) with
// the group's keys.
func (s *sim) sentKinds(n *node) []causal.Kind {
	var out []causal.Kind
	for _, p := range n.sent {
		i, ok := n.s.Graph().Lookup(idOf(s.t, p.wire))
		if ok {
			out = append(out, n.s.Graph().Kind(i))
		}
	}
	return out
}

func idOf(t testing.TB, w string) transcript.ID {
	p, err := decodeWire(w)
	if err != nil {
		t.Fatal(err)
	}
	return transcript.ID(p.ID())
}

func (n *node) String() string { return fmt.Sprintf("node(%s)", n.name) }

// noWarnings fails the test if any node got a warning.
func (s *sim) noWarnings() {
	s.t.Helper()
	for _, n := range s.nodes {
		if w := n.warnings(); len(w) > 0 {
			s.t.Fatalf("%s got %d warnings, first %v %v by %s (%v) at +%v", n.name, len(w), w[0].Kind, w[0].Members,
				w[0].Author, w[0].Err, w[0].At.Sub(t0))
		}
	}
}

// rebuildHeap restores the heap order after editing s.q directly.
func rebuildHeap(s *sim) { heap.Init(&s.q) }

// manual makes a sim whose room delivers nothing by itself: the test hands
// packets over with hand.
func manual(t *testing.T, timing Timing, names ...string) *sim {
	s := newSim(t, 3, timing, names...)
	s.filter = func(string, *node, string) bool { return false }
	return s
}

// hand delivers wire to node to now, from channel sender from.
func (s *sim) hand(to, from, wire string) Result {
	s.t.Helper()
	return s.deliver(delivery{to: s.node(to), wire: wire, from: from})
}

// last returns the last packet node name sent.
func (s *sim) last(name string) string {
	n := s.node(name)
	return n.sent[len(n.sent)-1].wire
}

// acceptedOrder returns the ids node accepted, in order.
func (n *node) acceptedOrder() []transcript.ID {
	var out []transcript.ID
	for _, x := range n.notices {
		if x.Kind == MsgAccepted {
			out = append(out, x.ID)
		}
	}
	return out
}
