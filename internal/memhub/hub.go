// Package memhub is the deterministic server of an in-memory room: a
// virtual clock, seeded randomness, and a queue of deliveries. The
// simulator drives it step by step ([Hub.Step]); nothing happens by itself.
// channel/memchan runs one in real time behind channel.GroupChannel.
//
// The server model: a packet sent at time t reaches the server after the
// sender's uplink delay; there it gets its place in the single order and is
// stamped with the membership; it is then delivered to every member present,
// the sender included (the echo), each after its own downlink delay, in the
// server's order per recipient (TCP). Enters, leaves and kicks are ordered
// the same way.
//
// Fault injection ([Faults]): per-hop delays with jitter, and a hostile
// server that drops, duplicates, reorders per recipient or injects packets.
// Drops and duplicates are per recipient, so members can see different
// things, which is exactly what a hostile server can do.
package memhub

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mpenc/mpenc/channel"
)

// Faults configures delays and hostile behaviour. The zero value is an
// honest server with no delay.
type Faults struct {
	// Uplink and Downlink are the base delays of a hop; Jitter is added
	// uniformly in [0, Jitter) per hop.
	Uplink, Downlink, Jitter time.Duration

	// Hostile server, per delivery of a packet to one recipient: probability
	// of dropping it, of delivering it twice, and of letting it overtake
	// earlier deliveries to the same recipient (breaking the order).
	Drop, Duplicate, Reorder float64
	// Inject, when set, is called for every packet the server orders; it
	// may return extra wire strings that the server injects right after it,
	// with the given sender (a replay, a forgery, garbage).
	Inject func(sender, wire string) (fakeSender string, fake []string)
}

// Hostile reports whether the faults include server misbehaviour.
func (f *Faults) Hostile() bool {
	return f.Drop > 0 || f.Duplicate > 0 || f.Reorder > 0 || f.Inject != nil
}

// Delivery is an event reaching one member.
type Delivery struct {
	At    time.Time
	To    string
	Event channel.Event
}

// Stats counts what the hub did.
type Stats struct {
	Ordered    int // packets given a place in the order
	Deliveries int // packet deliveries to members (echoes included)
	Dropped    int
	Duplicated int
	Reordered  int
	Injected   int
}

// Hub is the deterministic room. Not safe for concurrent use ([Room] is).
type Hub struct {
	now     time.Time
	members []string // in the room, in order of entry
	faults  Faults
	rng     *rand.Rand

	seq     uint64
	pending pq                   // requests on their way to the server, and deliveries
	lastTo  map[string]time.Time // per recipient: last delivery time (FIFO)
	lastUp  map[string]time.Time // per sender: last arrival at the server (FIFO)
	stats   Stats
}

// NewHub returns an empty room at virtual time start with seeded faults.
func NewHub(start time.Time, seed uint64, faults Faults) *Hub {
	return &Hub{
		now:    start,
		faults: faults,
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		lastTo: map[string]time.Time{},
		lastUp: map[string]time.Time{},
	}
}

// Now returns the virtual time.
func (h *Hub) Now() time.Time { return h.now }

// Members returns the room's membership now (as the server sees it).
func (h *Hub) Members() []string { return slices.Clone(h.members) }

// Stats returns the counters.
func (h *Hub) Stats() Stats { return h.stats }

// SetFaults changes the faults from now on.
func (h *Hub) SetFaults(f Faults) { h.faults = f }

func (h *Hub) hop(base time.Duration) time.Duration {
	d := base
	if h.faults.Jitter > 0 {
		d += time.Duration(h.rng.Int64N(int64(h.faults.Jitter)))
	}
	return d
}

// item kinds in the queue
const (
	kindRequest = iota // reaches the server: gets ordered
	kindDeliver        // reaches a member
)

type request struct {
	op     string // "send", "enter", "leave", "kick"
	from   string
	wire   string // the packet sent, or the reason of a kick
	target []string
}

type item struct {
	at   time.Time
	seq  uint64
	kind int
	req  request
	del  Delivery
}

type pq []*item

func (q pq) Len() int { return len(q) }
func (q pq) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q pq) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pq) Push(x any)   { *q = append(*q, x.(*item)) }
func (q *pq) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

func (h *Hub) push(it *item) {
	h.seq++
	it.seq = h.seq
	heap.Push(&h.pending, it)
}

// request sends r towards the server, in order with the sender's earlier
// requests (one TCP stream per member).
func (h *Hub) request(r request) {
	at := h.now.Add(h.hop(h.faults.Uplink))
	if last, ok := h.lastUp[r.from]; ok && at.Before(last) {
		at = last
	}
	h.lastUp[r.from] = at
	h.push(&item{at: at, kind: kindRequest, req: r})
}

// Send queues a packet from a member. A member not in the room when the
// packet reaches the server is ignored, as a MUC ignores it.
func (h *Hub) Send(from, wire string) { h.request(request{op: "send", from: from, wire: wire}) }

// Enter queues a member's entry.
func (h *Hub) Enter(who string) { h.request(request{op: "enter", from: who}) }

// Leave queues a member's departure (or a dropped connection).
func (h *Hub) Leave(who string) { h.request(request{op: "leave", from: who}) }

// Kick queues the removal of targets by a member. The server honours it if
// the kicker is in the room (every member is a moderator here); targets
// already gone are ignored.
func (h *Hub) Kick(by string, targets []string, reason string) {
	h.request(request{op: "kick", from: by, wire: reason, target: slices.Clone(targets)})
}

// Crash removes a member at once, at the server, without any notice being
// queued first: its connection died. Others see it leave.
func (h *Hub) Crash(who string) { h.remove(who, nil) }

// Restart is the server restarting: every member loses the room at once.
// Each sees its own leave (with errRestart), nobody sees the others leave;
// the room is empty until members enter again.
func (h *Hub) Restart() {
	before := h.Members()
	h.members = nil
	for _, m := range before {
		h.deliver(m, channel.Event{Kind: channel.EventOwnLeave, Members: before, Err: errRestart}, false)
	}
}

// errRestart is the reason of the own leave every member sees at Restart.
var errRestart = errors.New("memhub: the server restarted")

// KickError is the reason of the own leave a kicked member sees.
type KickError struct {
	By, Reason string
}

func (e *KickError) Error() string { return fmt.Sprintf("memhub: kicked by %s: %s", e.By, e.Reason) }

// NextTime returns the time of the next thing to happen.
func (h *Hub) NextTime() (time.Time, bool) {
	if len(h.pending) == 0 {
		return time.Time{}, false
	}
	return h.pending[0].at, true
}

// Advance moves the virtual clock forward to t without doing anything (t
// must not be after NextTime).
func (h *Hub) Advance(t time.Time) {
	if t.After(h.now) {
		h.now = t
	}
}

// Step performs the next queued thing and returns the delivery it made, if
// it was a delivery (ok false when it was a server-side step).
func (h *Hub) Step() (d Delivery, ok bool) {
	if len(h.pending) == 0 {
		return Delivery{}, false
	}
	it := heap.Pop(&h.pending).(*item)
	h.Advance(it.at)
	if it.kind == kindRequest {
		h.order(it.req)
		return Delivery{}, false
	}
	return it.del, true
}

// order gives a request its place in the server's order.
func (h *Hub) order(r request) {
	switch r.op {
	case "send":
		if !slices.Contains(h.members, r.from) {
			return
		}
		h.stats.Ordered++
		h.broadcastPacket(r.from, r.wire)
		if h.faults.Inject != nil {
			if fs, fakes := h.faults.Inject(r.from, r.wire); len(fakes) > 0 {
				for _, f := range fakes {
					h.stats.Injected++
					h.broadcastPacket(fs, f)
				}
			}
		}
	case "enter":
		if slices.Contains(h.members, r.from) {
			return
		}
		before := slices.Clone(h.members)
		h.members = append(h.members, r.from)
		after := h.Members()
		for _, m := range before {
			h.deliver(m, channel.Event{Kind: channel.EventOthers, Enter: []string{r.from}, Members: after}, false)
		}
		h.deliver(r.from, channel.Event{Kind: channel.EventOwnEnter, Members: after}, false)
	case "leave":
		h.remove(r.from, nil)
	case "kick":
		if !slices.Contains(h.members, r.from) {
			return
		}
		for _, t := range r.target {
			h.remove(t, &KickError{By: r.from, Reason: r.wire})
		}
	}
}

func (h *Hub) remove(who string, why error) {
	if !slices.Contains(h.members, who) {
		return
	}
	before := h.Members()
	h.members = slices.DeleteFunc(h.members, func(m string) bool { return m == who })
	after := h.Members()
	h.deliver(who, channel.Event{Kind: channel.EventOwnLeave, Members: before, Err: why}, false)
	for _, m := range after {
		h.deliver(m, channel.Event{Kind: channel.EventOthers, Leave: []string{who}, Members: after}, false)
	}
}

func (h *Hub) broadcastPacket(sender, wire string) {
	ev := channel.Event{Kind: channel.EventPacket, Sender: sender, Body: wire, Members: h.Members()}
	for _, m := range h.members {
		h.deliver(m, ev, true)
	}
}

// deliver schedules ev to one member, FIFO per recipient unless the hostile
// server reorders it; packets may also be dropped or duplicated.
func (h *Hub) deliver(to string, ev channel.Event, isPacket bool) {
	copies := 1
	if isPacket && h.faults.Hostile() {
		if h.faults.Drop > 0 && h.rng.Float64() < h.faults.Drop {
			h.stats.Dropped++
			return
		}
		if h.faults.Duplicate > 0 && h.rng.Float64() < h.faults.Duplicate {
			h.stats.Duplicated++
			copies = 2
		}
	}
	ev.Members = slices.Clone(ev.Members)
	for range copies {
		at := h.now.Add(h.hop(h.faults.Downlink))
		reorder := isPacket && h.faults.Reorder > 0 && h.rng.Float64() < h.faults.Reorder
		if last, ok := h.lastTo[to]; ok && at.Before(last) && !reorder {
			at = last // keep the server's order to this recipient
		}
		if reorder {
			h.stats.Reordered++
		} else {
			h.lastTo[to] = at
		}
		if isPacket {
			h.stats.Deliveries++
		}
		h.push(&item{at: at, kind: kindDeliver, del: Delivery{At: at, To: to, Event: ev}})
	}
}

// String describes the hub.
func (h *Hub) String() string {
	return fmt.Sprintf("memhub.Hub(t=%s, %d members, %d pending)", h.now.Format(time.RFC3339Nano), len(h.members), len(h.pending))
}
