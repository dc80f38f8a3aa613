package causal_test

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"slices"

	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/transcript"
)

// mkID returns a distinct id for k.
func mkID(k int) transcript.ID {
	var id transcript.ID
	binary.BigEndian.PutUint64(id[:], uint64(k)*0x9e3779b97f4a7c15+1)
	binary.BigEndian.PutUint32(id[16:], uint32(k))
	return id
}

// bitset is a plain growable bitset for the oracle.
type bitset []uint64

func (b bitset) has(i int) bool { return i/64 < len(b) && b[i/64]&(1<<(i%64)) != 0 }
func (b *bitset) set(i int) {
	for i/64 >= len(*b) {
		*b = append(*b, 0)
	}
	(*b)[i/64] |= 1 << (i % 64)
}
func (b *bitset) or(c bitset) {
	for len(*b) < len(c) {
		*b = append(*b, 0)
	}
	for k, w := range c {
		(*b)[k] |= w
	}
}
func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// oracle is a brute-force transcript: ancestor closures as bitsets, the
// acceptance rules written from their definitions, unackby recomputed from
// scratch. Slow and obviously right.
type oracle struct {
	n       int
	ids     []transcript.ID
	pos     map[transcript.ID]int
	author  []int
	kind    []causal.Kind
	parents [][]int
	anc     []bitset // strict ancestors
	fa      []bool
}

func newOracle(n int) *oracle { return &oracle{n: n, pos: map[transcript.ID]int{}} }

// less: a < b strictly.
func (o *oracle) less(a, b int) bool { return o.anc[b].has(a) }

// check returns the sentinel the rules give for m, or nil, or
// ErrMissingParent.
func (o *oracle) check(m causal.Message) error {
	if _, ok := o.pos[m.ID]; ok {
		return causal.ErrDuplicate
	}
	if !m.Kind.Valid() || len(m.Parents) > o.n {
		return causal.ErrMalformed
	}
	seen := map[transcript.ID]bool{}
	for _, p := range m.Parents {
		if p == m.ID || seen[p] {
			return causal.ErrMalformed
		}
		seen[p] = true
	}
	if m.Author < 0 || m.Author >= o.n {
		return causal.ErrNotMember
	}
	var ps []int
	for _, p := range m.Parents {
		i, ok := o.pos[p]
		if !ok {
			return causal.ErrMissingParent
		}
		ps = append(ps, i)
	}
	authors := map[int]bool{}
	for _, p := range ps {
		if authors[o.author[p]] {
			return causal.ErrRedundantParents
		}
		authors[o.author[p]] = true
	}
	// Own line: the author's last message must be ≤ some parent.
	last := -1
	for i := range o.ids {
		if o.author[i] == m.Author {
			last = i
		}
	}
	if last >= 0 {
		ok := false
		for _, p := range ps {
			if p == last || o.less(last, p) {
				ok = true
			}
		}
		if !ok {
			return causal.ErrFork
		}
	}
	for _, p := range ps {
		for _, q := range ps {
			if p != q && o.less(p, q) {
				return causal.ErrNotAntichain
			}
		}
	}
	// After-FIN rule.
	fin := -1
	for i := range o.ids {
		if o.author[i] == m.Author && o.kind[i] == causal.KindFin {
			fin = i
			break
		}
	}
	if fin >= 0 {
		switch {
		case m.Kind.IsExplicitAck() || m.Kind == causal.KindFlush:
		case m.Kind == causal.KindFin && len(ps) == 1 && ps[0] == fin:
		default:
			return causal.ErrAfterFin
		}
	}
	return nil
}

// add accepts m (check must have passed) and returns the newly fully acked
// positions in accept order.
func (o *oracle) add(m causal.Message) []int {
	i := len(o.ids)
	o.ids = append(o.ids, m.ID)
	o.pos[m.ID] = i
	o.author = append(o.author, m.Author)
	o.kind = append(o.kind, m.Kind)
	var ps []int
	var anc bitset
	for _, p := range m.Parents {
		ps = append(ps, o.pos[p])
		anc.set(o.pos[p])
		anc.or(o.anc[o.pos[p]])
	}
	o.parents = append(o.parents, ps)
	o.anc = append(o.anc, anc)
	o.fa = append(o.fa, false)
	var newly []int
	for j := range o.ids {
		if !o.fa[j] && len(o.unackby(j)) == 0 {
			o.fa[j] = true
			newly = append(newly, j)
		}
	}
	return newly
}

// unackby: readers r with no message m' by r such that j < m'.
func (o *oracle) unackby(j int) []int {
	var out []int
	for r := 0; r < o.n; r++ {
		if r == o.author[j] {
			continue
		}
		acked := false
		for k := j + 1; k < len(o.ids); k++ {
			if o.author[k] == r && o.less(j, k) {
				acked = true
				break
			}
		}
		if !acked {
			out = append(out, r)
		}
	}
	return out
}

// heads: accepted messages nothing points to.
func (o *oracle) heads() []transcript.ID {
	pointed := map[int]bool{}
	for _, ps := range o.parents {
		for _, p := range ps {
			pointed[p] = true
		}
	}
	var h []transcript.ID
	for i, id := range o.ids {
		if !pointed[i] {
			h = append(h, id)
		}
	}
	slices.SortFunc(h, compareID)
	return h
}

// history is an honest causal history: messages in a global creation order,
// each citing the heads of its author's view at the time.
type history struct {
	n    int
	msgs []causal.Message
}

// genHistory makes count messages among n authors. Each author has a view
// (a downward-closed set of messages: all its own, and others' it has
// "received"); before writing, an author receives a random number of
// messages it lacks, oldest first. hell makes every author receive
// the layered hell graph of hellGraph instead, with random kinds.
func genHistory(rng *rand.Rand, n, count int, hell bool) *history {
	h := &history{n: n}
	if hell {
		h.msgs = hellGraph(n, count)
		for k := range h.msgs {
			h.msgs[k].Kind = causal.Kind(rng.IntN(3)) // payloads and acks
		}
		return h
	}
	views := make([]map[int]bool, n)
	for a := range views {
		views[a] = map[int]bool{}
	}
	kinds := []causal.Kind{causal.KindPayload, causal.KindPayload, causal.KindPayload,
		causal.KindAutoAck, causal.KindManualAck, causal.KindFlush, causal.KindHeartBeat}
	finned := make([]bool, n)
	for k := 0; k < count; k++ {
		a := rng.IntN(n)
		v := views[a]
		// Receive: walk the history in creation order, taking a message
		// when its parents are in the view, with some probability.
		p := rng.Float64()
		for i, m := range h.msgs {
			if v[i] || rng.Float64() > p {
				continue
			}
			ok := true
			for _, par := range m.Parents {
				if !v[h.index(par)] {
					ok = false
					break
				}
			}
			if ok {
				v[i] = true
			}
		}
		// Heads of the view.
		pointed := map[int]bool{}
		for i := range v {
			for _, par := range h.msgs[i].Parents {
				pointed[h.index(par)] = true
			}
		}
		var parents []transcript.ID
		for i := range v {
			if !pointed[i] {
				parents = append(parents, h.msgs[i].ID)
			}
		}
		slices.SortFunc(parents, compareID)
		kind := kinds[rng.IntN(len(kinds))]
		switch {
		case finned[a]:
			// An honest author only acks or flushes after its FIN.
			kind = []causal.Kind{causal.KindAutoAck, causal.KindFlush}[rng.IntN(2)]
		case rng.IntN(count) < n/2:
			kind = causal.KindFin
			finned[a] = true
		}
		m := causal.Message{ID: mkID(len(h.msgs)), Author: a, Parents: parents, Kind: kind}
		v[len(h.msgs)] = true
		h.msgs = append(h.msgs, m)
	}
	return h
}

func (h *history) index(id transcript.ID) int {
	return int(binary.BigEndian.Uint32(id[16:]))
}
