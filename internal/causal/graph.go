package causal

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"

	"github.com/mpenc/mpenc/transcript"
)

// maxMessages bounds the messages of one graph, so that an Index+1 fits the
// 32-bit half of an id-table slot.
const maxMessages = 1<<32 - 2

// maxRejected bounds the ids of rejected messages a graph remembers, so that
// a hostile member cannot grow it without bound; beyond it the oldest are
// forgotten (their descendants then wait in the caller's buffer until it
// drops them, instead of being rejected at once).
const maxRejected = 4096

// Options tunes a [Graph]. The zero value is valid.
type Options struct {
	// HashKey keys the id index. Draw it from the session's random source:
	// with a known key a member could grind message ids that all land in
	// one bucket. Results never depend on it.
	HashKey uint64
}

type meta struct {
	author uint8
	kind   Kind
}

// Graph is the causal transcript of one subsession: every accepted message
// with its author, parents and kind, the vector clocks that decide ancestry
// in O(1), who has acked what, the heads, and the messages not yet fully
// acked. It implements the acceptance checks of docs/MESSAGE-LAYER.md §3.2
// and the vector clocks of §3.4 there.
//
// Storage is a set of slabs indexed by accept position ([Index]): per
// message 20 bytes of id, 2 of author and kind, 2·n of vector clock (4·n
// once an author passes 65,535 messages), 4 of parent offset, 4 per
// parent, 4 in its author's line and 11 to 21 in the id index; no
// pointers, so the garbage collector never scans it.
//
// A Graph is not safe for concurrent use; its owner serialises calls.
type Graph struct {
	members []string
	n       int

	ids  []transcript.ID
	meta []meta
	// The vector clocks, n entries per message: entry a of message i is
	// how many of a's messages are ≤ i (so entry author(i) is seq(i)).
	// They are stored as uint16 (vc16) until some author's seq passes
	// 65,535, then the slab is widened once to uint32 (vc32): 2·n bytes
	// per message in any realistic subsession instead of 4·n.
	vc16    []uint16
	vc32    []uint32
	wide    bool
	parOff  []uint32 // parents of i: parents[parOff[i]:parOff[i+1]]
	parents []Index
	by      [][]Index // by[a][s-1]: a's message with seq s
	table   idTable

	acked  []uint32 // acked[a*n+r]: highest seq of a's messages acked by r
	faUpTo []uint32 // a's messages with seq ≤ faUpTo[a] are fully acked
	finSeq []uint32 // seq of a's first FIN, 0 if none
	headOf []uint32 // index+1 of a's message if it is a head, else 0

	nfa      []Index // not fully acked, in accept order; may hold stale entries
	nfaStale int

	rejected rejectSet

	// Scratch buffers, reused by Accept so that it does not allocate.
	pidx   []Index
	vcp    []uint32
	mark   []uint32
	epoch  uint32
	events []Index
	sorted []transcript.ID
}

// Accepted reports a successful [Graph.Accept].
type Accepted struct {
	Index Index
	// FullyAcked lists the messages that became fully acked through this
	// accept, in accept order (which is a topological order). It includes
	// Index itself when the author is the only member. It aliases a buffer
	// of the graph and is valid until the next call to Accept.
	FullyAcked []Index
}

// New returns an empty graph for the members, which must be sorted bytewise
// without repetition (1 to [MaxMembers] non-empty ids). Member i of this
// list is the Author index i of every message.
func New(members []string, opt Options) (*Graph, error) {
	if len(members) == 0 || len(members) > MaxMembers {
		return nil, fmt.Errorf("transcript: %d members, want 1 to %d", len(members), MaxMembers)
	}
	for i, m := range members {
		if m == "" {
			return nil, fmt.Errorf("transcript: empty member id")
		}
		if i > 0 && members[i-1] >= m {
			return nil, fmt.Errorf("transcript: members not sorted without repetition at %d", i)
		}
	}
	n := len(members)
	g := &Graph{
		members: slices.Clone(members),
		n:       n,
		parOff:  []uint32{0},
		by:      make([][]Index, n),
		acked:   make([]uint32, n*n),
		faUpTo:  make([]uint32, n),
		finSeq:  make([]uint32, n),
		headOf:  make([]uint32, n),
		vcp:     make([]uint32, n),
		mark:    make([]uint32, n),
	}
	g.table.init(opt.HashKey)
	g.rejected.init()
	return g, nil
}

// Members returns the members, sorted bytewise.
func (g *Graph) Members() []string { return slices.Clone(g.members) }

// Member returns the id of member index i.
func (g *Graph) Member(i int) string { return g.members[i] }

// N returns the number of members.
func (g *Graph) N() int { return g.n }

// MemberIndex returns the index of a member id.
func (g *Graph) MemberIndex(id string) (int, bool) {
	i := sort.SearchStrings(g.members, id)
	return i, i < g.n && g.members[i] == id
}

// Len returns the number of accepted messages.
func (g *Graph) Len() int { return len(g.ids) }

// Lookup returns the index of an accepted message.
func (g *Graph) Lookup(id transcript.ID) (Index, bool) { return g.table.lookup(&id, g.ids) }

// Has reports whether the message is accepted.
func (g *Graph) Has(id transcript.ID) bool { _, ok := g.Lookup(id); return ok }

// WasRejected reports whether the message was rejected (among the last
// 4,096 rejections).
func (g *Graph) WasRejected(id transcript.ID) bool { return g.rejected.has(id) }

// Reject records a message the caller rejected before offering it to the
// graph (say, a validly signed packet whose body does not decode), so that
// its descendants are rejected at once with [ErrRejectedParent].
func (g *Graph) Reject(id transcript.ID) {
	if !g.Has(id) {
		g.rejected.add(id)
	}
}

// ID returns the id of message i.
func (g *Graph) ID(i Index) transcript.ID { return g.ids[i] }

// Author returns the member index of the author of message i.
func (g *Graph) Author(i Index) int { return int(g.meta[i].author) }

// Kind returns the kind of message i.
func (g *Graph) Kind(i Index) Kind { return g.meta[i].kind }

// Seq returns the 1-based position of message i in its author's line.
func (g *Graph) Seq(i Index) uint32 { return g.vcAt(i, int(g.meta[i].author)) }

// vcAt returns entry a of message i's vector clock.
func (g *Graph) vcAt(i Index, a int) uint32 {
	if g.wide {
		return g.vc32[int(i)*g.n+a]
	}
	return uint32(g.vc16[int(i)*g.n+a])
}

// Parents returns the parents of message i in the order they were sent. The
// slice aliases the graph: do not modify it.
func (g *Graph) Parents(i Index) []Index { return g.parents[g.parOff[i]:g.parOff[i+1]] }

// Clock appends to dst the vector clock of message i: for each member a,
// how many of a's messages are ancestors of i or i itself.
func (g *Graph) Clock(i Index, dst []uint32) []uint32 {
	for a := range g.n {
		dst = append(dst, g.vcAt(i, a))
	}
	return dst
}

// ClockAt returns entry a of message i's vector clock: how many of member
// a's messages are ancestors of i or i itself.
func (g *Graph) ClockAt(i Index, a int) uint32 { return g.vcAt(i, a) }

// Less reports whether a is a strict ancestor of b (a < b).
func (g *Graph) Less(a, b Index) bool {
	return a != b && g.Seq(a) <= g.vcAt(b, int(g.meta[a].author))
}

// LastSeq returns the number of messages author a has in the graph.
func (g *Graph) LastSeq(a int) uint32 { return uint32(len(g.by[a])) }

// BySeq returns author a's message with the given 1-based seq.
func (g *Graph) BySeq(a int, seq uint32) (Index, bool) {
	if seq == 0 || int(seq) > len(g.by[a]) {
		return 0, false
	}
	return g.by[a][seq-1], true
}

// Fin returns author a's first FIN.
func (g *Graph) Fin(a int) (Index, bool) { return g.BySeq(a, g.finSeq[a]) }

// LeaveIntent reports whether message i is a leave intent: a FIN whose only
// parent is a FIN by the same author (docs/MESSAGE-LAYER.md §4.8).
func (g *Graph) LeaveIntent(i Index) bool {
	if g.Kind(i) != KindFin {
		return false
	}
	p := g.Parents(i)
	return len(p) == 1 && g.Kind(p[0]) == KindFin && g.Author(p[0]) == g.Author(i)
}

// Heads returns the heads (accepted messages nothing points to yet), sorted
// bytewise: the parents of the next message we send.
func (g *Graph) Heads() []transcript.ID { return g.AppendHeads(make([]transcript.ID, 0, 4)) }

// AppendHeads appends the heads, sorted bytewise, to dst.
func (g *Graph) AppendHeads(dst []transcript.ID) []transcript.ID {
	start := len(dst)
	for _, x := range g.headOf {
		if x != 0 {
			dst = append(dst, g.ids[x-1])
		}
	}
	slices.SortFunc(dst[start:], compareID)
	return dst
}

// HeadIndexes returns the heads in accept order.
func (g *Graph) HeadIndexes() []Index {
	h := make([]Index, 0, 4)
	for _, x := range g.headOf {
		if x != 0 {
			h = append(h, Index(x-1))
		}
	}
	slices.Sort(h)
	return h
}

// AckedUpTo returns the highest seq of author a's messages that reader r
// has acked.
func (g *Graph) AckedUpTo(a, r int) uint32 { return g.acked[a*g.n+r] }

// AckedBy reports whether member r has acked message i, that is sent a
// message after it. The author counts as having acked its own messages.
func (g *Graph) AckedBy(i Index, r int) bool {
	a := g.Author(i)
	return r == a || g.acked[a*g.n+r] >= g.Seq(i)
}

// FullyAcked reports whether every reader of message i has acked it.
func (g *Graph) FullyAcked(i Index) bool {
	if g.n == 1 {
		return true
	}
	return g.Seq(i) <= g.faUpTo[g.Author(i)]
}

// UnackedBy appends to dst the readers of message i that have not acked it
// (unackby(m) of docs/MESSAGE-LAYER.md §3.3), in member order.
func (g *Graph) UnackedBy(i Index, dst []int) []int {
	a, s := g.Author(i), g.Seq(i)
	for r := 0; r < g.n; r++ {
		if r != a && g.acked[a*g.n+r] < s {
			dst = append(dst, r)
		}
	}
	return dst
}

// FirstAckBy returns the first message by member r that acks message i (r's
// earliest message with i as an ancestor).
func (g *Graph) FirstAckBy(i Index, r int) (Index, bool) {
	a, s := g.Author(i), g.Seq(i)
	if r == a || g.acked[a*g.n+r] < s {
		return 0, false
	}
	line := g.by[r]
	k := sort.Search(len(line), func(k int) bool { return g.vcAt(line[k], a) >= s })
	return line[k], true
}

// NotFullyAcked appends to dst the messages not yet fully acked, in accept
// order.
func (g *Graph) NotFullyAcked(dst []Index) []Index {
	for _, i := range g.nfa {
		if !g.FullyAcked(i) {
			dst = append(dst, i)
		}
	}
	return dst
}

// Accept runs the acceptance checks of docs/MESSAGE-LAYER.md §3.2 on m, in
// order, and adds it to the graph if they pass. On any error the graph is
// unchanged, apart from remembering a rejected id:
//
//   - [ErrDuplicate], returned as is: m is already accepted;
//   - a [*MissingParentError]: some parents are not accepted yet, buffer m;
//   - a [*RejectError] wrapping ErrMalformed, ErrNotMember,
//     ErrRejectedParent, ErrRedundantParents, ErrFork, ErrNotAntichain or
//     ErrAfterFin: m is invalid for every member, forever;
//   - [ErrFull].
//
// Accepting m by author r acks, for r, every ancestor of m; the messages
// that thereby become fully acked are listed in the result.
func (g *Graph) Accept(m Message) (Accepted, error) {
	// 1. Duplicate.
	if _, ok := g.table.lookup(&m.ID, g.ids); ok {
		return Accepted{}, ErrDuplicate
	}
	reject := func(err error, format string, args ...any) (Accepted, error) {
		g.rejected.add(m.ID)
		return Accepted{}, &RejectError{Err: err, ID: m.ID, Author: m.Author, Detail: fmt.Sprintf(format, args...)}
	}
	// 2. Malformed.
	if !m.Kind.Valid() {
		return reject(ErrMalformed, "unknown kind %d", m.Kind)
	}
	if len(m.Parents) > g.n {
		return reject(ErrMalformed, "%d parents for %d members", len(m.Parents), g.n)
	}
	g.sorted = append(g.sorted[:0], m.Parents...)
	slices.SortFunc(g.sorted, compareID)
	for k, p := range g.sorted {
		if p == m.ID {
			return reject(ErrMalformed, "cites itself")
		}
		if k > 0 && g.sorted[k-1] == p {
			return reject(ErrMalformed, "parent %s repeated", short(p))
		}
	}
	// 3. Author is a member. (Readers are every other member, never on the
	// wire, so a self-send cannot be expressed.)
	if m.Author < 0 || m.Author >= g.n {
		return reject(ErrNotMember, "author index %d of %d members", m.Author, g.n)
	}
	if len(g.ids) >= maxMessages {
		return Accepted{}, ErrFull
	}
	// 4. Every parent accepted.
	g.pidx = g.pidx[:0]
	var missing []transcript.ID
	for _, p := range m.Parents {
		if idx, ok := g.table.lookup(&p, g.ids); ok {
			g.pidx = append(g.pidx, idx)
			continue
		}
		if g.rejected.has(p) {
			return reject(ErrRejectedParent, "parent %s", short(p))
		}
		missing = append(missing, p)
	}
	if missing != nil {
		return Accepted{}, &MissingParentError{ID: m.ID, Missing: missing}
	}
	// 5. Parents readable by the author: every member reads every message
	// of a subsession, so this always holds.

	// 6. Parents by distinct authors.
	g.epoch++
	for _, p := range g.pidx {
		a := g.meta[p].author
		if g.mark[a] == g.epoch {
			return reject(ErrRedundantParents, "two parents by member %d", a)
		}
		g.mark[a] = g.epoch
	}
	// The parents' clock: element-wise maximum.
	n := g.n
	vcp := g.vcp
	clear(vcp)
	for _, p := range g.pidx {
		if g.wide {
			for a, v := range g.vc32[int(p)*n : int(p+1)*n] {
				vcp[a] = max(vcp[a], v)
			}
		} else {
			for a, v := range g.vc16[int(p)*n : int(p+1)*n] {
				vcp[a] = max(vcp[a], uint32(v))
			}
		}
	}
	// 7. Own line: the author's last message must be ≤ some parent, that is
	// the parents' clock must count all of the author's messages.
	last := uint32(len(g.by[m.Author]))
	if vcp[m.Author] != last {
		return reject(ErrFork, "parents include %d of the author's %d messages", vcp[m.Author], last)
	}
	// 8. Antichain: no parent ≤ another (authors are distinct, so p ≠ q).
	for _, p := range g.pidx {
		pa := int(g.meta[p].author)
		ps := g.vcAt(p, pa)
		for _, q := range g.pidx {
			if q != p && ps <= g.vcAt(q, pa) {
				return reject(ErrNotAntichain, "parent %s is an ancestor of parent %s", short(g.ids[p]), short(g.ids[q]))
			}
		}
	}
	// Our rule (docs/MESSAGE-LAYER.md §4.8): after its FIN an author may only
	// ack, flush, or send the one leave-intent FIN that cites the FIN alone.
	if fs := g.finSeq[m.Author]; fs != 0 {
		switch {
		case m.Kind.IsExplicitAck() || m.Kind == KindFlush:
		case m.Kind == KindFin && len(g.pidx) == 1 && g.pidx[0] == g.by[m.Author][fs-1]:
		default:
			return reject(ErrAfterFin, "%v after the author's FIN", m.Kind)
		}
	}
	return g.commit(&m), nil
}

// commit adds a message that passed every check.
func (g *Graph) commit(m *Message) Accepted {
	n := g.n
	idx := Index(len(g.ids))
	r := m.Author
	seq := uint32(len(g.by[r])) + 1

	g.ids = append(g.ids, m.ID)
	g.meta = append(g.meta, meta{author: uint8(r), kind: m.Kind})
	g.vcp[r] = seq
	if !g.wide && seq > 0xffff {
		g.widen()
	}
	if g.wide {
		g.vc32 = append(g.vc32, g.vcp...)
	} else {
		for _, v := range g.vcp {
			g.vc16 = append(g.vc16, uint16(v))
		}
	}
	g.parents = append(g.parents, g.pidx...)
	g.parOff = append(g.parOff, uint32(len(g.parents)))
	g.by[r] = append(g.by[r], idx)
	g.table.insert(&m.ID, idx, g.ids)
	if m.Kind == KindFin && g.finSeq[r] == 0 {
		g.finSeq[r] = seq
	}
	for _, p := range g.pidx {
		if a := g.meta[p].author; g.headOf[a] == uint32(p)+1 {
			g.headOf[a] = 0
		}
	}
	g.headOf[r] = uint32(idx) + 1

	g.events = g.events[:0]
	if n == 1 {
		g.faUpTo[r] = seq
		g.events = append(g.events, idx)
		return Accepted{Index: idx, FullyAcked: g.events}
	}
	g.nfa = append(g.nfa, idx)
	// Acks: r has now acked every ancestor of m. For each other author a,
	// r's acked prefix of a's line grows to vc(m)[a]; a's fully-acked
	// prefix is the minimum over its readers and can only grow when r was
	// at that minimum.
	for a, nw := range g.vcp { // the clock of m, just stored
		if a == r {
			continue
		}
		k := a*n + r
		old := g.acked[k]
		if nw <= old {
			continue
		}
		g.acked[k] = nw
		if old != g.faUpTo[a] {
			continue
		}
		mn := ^uint32(0)
		for rr, v := range g.acked[a*n : a*n+n] {
			if rr != a && v < mn {
				mn = v
			}
		}
		if mn > g.faUpTo[a] {
			g.events = append(g.events, g.by[a][g.faUpTo[a]:mn]...)
			g.faUpTo[a] = mn
		}
	}
	if len(g.events) > 1 {
		slices.Sort(g.events)
	}
	g.nfaStale += len(g.events)
	if g.nfaStale >= 32 && 2*g.nfaStale > len(g.nfa) {
		live := g.nfa[:0]
		for _, i := range g.nfa {
			if !g.FullyAcked(i) {
				live = append(live, i)
			}
		}
		g.nfa = live
		g.nfaStale = 0
	}
	return Accepted{Index: idx, FullyAcked: g.events}
}

// short formats the first bytes of an id for errors. Taking the id by value
// keeps callers' loop variables off the heap.
func short(id transcript.ID) string { return hex.EncodeToString(id[:6]) }

// widen moves the clocks to 32-bit entries, once, when an author's seq is
// about to pass 65,535.
func (g *Graph) widen() {
	g.vc32 = make([]uint32, len(g.vc16), len(g.vc16)+len(g.vc16)/4+g.n)
	for k, v := range g.vc16 {
		g.vc32[k] = uint32(v)
	}
	g.vc16 = nil
	g.wide = true
}

// rejectSet remembers the last maxRejected rejected ids.
type rejectSet struct {
	m    map[transcript.ID]struct{}
	ring []transcript.ID
	next int
}

func (s *rejectSet) init() { s.m = make(map[transcript.ID]struct{}) }

func (s *rejectSet) has(id transcript.ID) bool { _, ok := s.m[id]; return ok }

func (s *rejectSet) add(id transcript.ID) {
	if s.has(id) {
		return
	}
	if len(s.ring) < maxRejected {
		s.ring = append(s.ring, id)
	} else {
		delete(s.m, s.ring[s.next])
		s.ring[s.next] = id
		s.next = (s.next + 1) % maxRejected
	}
	s.m[id] = struct{}{}
}

// compareID orders ids bytewise, the order in which parents are sent.
func compareID(a, b transcript.ID) int { return bytes.Compare(a[:], b[:]) }
