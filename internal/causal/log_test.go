package causal_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/transcript"
)

// logHarness accepts messages into several graphs and appends each to one
// MessageLog in accept order.
type logHarness struct {
	t     *testing.T
	log   *causal.MessageLog
	names map[transcript.ID]string
	ready map[string]causal.Ready
}

func (h *logHarness) accept(g *causal.Graph, ref causal.TranscriptRef, name string, author int, kind causal.Kind, parents ...string) {
	h.t.Helper()
	id := nameID(name)
	m := causal.Message{ID: id, Author: author, Kind: kind}
	for _, p := range parents {
		m.Parents = append(m.Parents, nameID(p))
	}
	res, err := g.Accept(m)
	if err != nil {
		h.t.Fatalf("accept %s: %v", name, err)
	}
	h.names[id] = name
	r, ok, err := h.log.Append(ref, res.Index, "text of "+name)
	if err != nil {
		h.t.Fatal(err)
	}
	if ok != (kind == causal.KindPayload) {
		h.t.Fatalf("%s (%v) in the log: %v", name, kind, ok)
	}
	if ok {
		h.ready[name] = r
	}
}

func nameID(name string) transcript.ID {
	var id transcript.ID
	copy(id[:], "name:"+name)
	return id
}

func (h *logHarness) order() []string {
	var out []string
	for k := h.log.First(); k < h.log.Len(); k++ {
		out = append(out, h.names[h.log.Entry(k).ID])
	}
	return out
}

func (h *logHarness) parents(name string) []string {
	for k := h.log.First(); k < h.log.Len(); k++ {
		e := h.log.Entry(k)
		if h.names[e.ID] == name {
			var out []string
			for _, p := range e.Parents {
				if p < h.log.First() {
					out = append(out, fmt.Sprint("dropped:", p))
					continue
				}
				out = append(out, h.names[h.log.Entry(p).ID])
			}
			return out
		}
	}
	h.t.Fatalf("%s not in the log", name)
	return nil
}

// TestScenario14MessageLogSplicing is scenario 14, the reference's
// MessageLog vector: two transcripts interleaved in accept order, the
// second spliced after the first's LATEST_PM {C}.
func TestScenario14MessageLogSplicing(t *testing.T) {
	h := &logHarness{t: t, log: causal.NewMessageLog(), names: map[transcript.ID]string{}, ready: map[string]causal.Ready{}}
	const alice, bob = 0, 1
	t1, _ := causal.New([]string{"alice", "bob"}, causal.Options{})
	t2, _ := causal.New([]string{"alice", "bob"}, causal.Options{})
	r1, err := h.log.AddTranscript(t1, causal.NoTranscript, nil)
	if err != nil {
		t.Fatal(err)
	}
	P, A := causal.KindPayload, causal.KindAutoAck
	h.accept(t1, r1, "O", alice, P)
	h.accept(t1, r1, "A", alice, P, "O")
	h.accept(t1, r1, "C", alice, A, "A")
	h.accept(t1, r1, "B", bob, P, "A")
	r2, err := h.log.AddTranscript(t2, r1, []transcript.ID{nameID("C")})
	if err != nil {
		t.Fatal(err)
	}
	h.accept(t2, r2, "X", alice, P)
	h.accept(t1, r1, "D", bob, A, "B", "C")
	h.accept(t2, r2, "Y", alice, P, "X")
	h.accept(t1, r1, "E", bob, P, "D")
	h.accept(t2, r2, "Z", alice, A, "Y")

	if got := h.order(); !slices.Equal(got, []string{"O", "A", "B", "X", "Y", "E"}) {
		t.Errorf("log %v, want O A B X Y E", got)
	}
	for name, want := range map[string][]string{"X": {"A"}, "O": nil, "E": {"B"}, "A": {"O"}, "B": {"A"}, "Y": {"X"}} {
		if got := h.parents(name); !slices.Equal(got, want) {
			t.Errorf("log parents of %s = %v, want %v", name, got, want)
		}
	}
	var unacked []string
	for k := range h.log.Len() {
		e := h.log.Entry(k)
		if !h.log.Graph(e.Transcript).FullyAcked(e.Index) {
			unacked = append(unacked, h.names[e.ID])
		}
	}
	if !slices.Equal(unacked, []string{"B", "X", "Y", "E"}) {
		t.Errorf("unacked %v, want B X Y E", unacked)
	}
	// parIdx: X hangs from A two lines up, E from B three lines up.
	for name, want := range map[string][]int{"O": nil, "A": {1}, "B": {1}, "X": {2}, "Y": {1}, "E": {3}} {
		if got := h.ready[name].ParIdx; !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("parIdx(%s) = %v, want %v", name, got, want)
		}
	}
	if e := h.log.Entry(3); e.Text != "text of X" || e.Author != "alice" {
		t.Errorf("entry 3 = %+v", e)
	}
	// A LATEST_PM missing from the previous transcript is reported.
	t3, _ := causal.New([]string{"alice", "bob"}, causal.Options{})
	r3, err := h.log.AddTranscript(t3, r2, []transcript.ID{nameID("nope"), nameID("Y")})
	if !errors.Is(err, causal.ErrLatestPMMissing) || r3 != 2 {
		t.Errorf("missing LATEST_PM: %v, %v", r3, err)
	}
	if got := h.log.TranscriptParents(r3); !slices.Equal(got, []int{4}) {
		t.Errorf("transcript parents %v, want [4] (Y)", got)
	}
	// A transcript whose LATEST_PM resolves to nothing inherits its
	// parent's transcript parents.
	r4, _ := h.log.AddTranscript(t3, r3, nil)
	if got := h.log.TranscriptParents(r4); !slices.Equal(got, []int{4}) {
		t.Errorf("inherited transcript parents %v", got)
	}
	if got := h.log.PayloadHeads(r1); !slices.Equal(got, []int{5}) {
		t.Errorf("payload heads of transcript 1: %v, want [5] (E)", got)
	}
	// Appending out of accept order is refused.
	if _, _, err := h.log.Append(r1, 0, ""); err == nil {
		t.Error("re-append accepted")
	}
}

// TestScenario15ParIdx is scenario 15.
func TestScenario15ParIdx(t *testing.T) {
	h := &logHarness{t: t, log: causal.NewMessageLog(), names: map[transcript.ID]string{}, ready: map[string]causal.Ready{}}
	g, _ := causal.New([]string{"a", "b", "c"}, causal.Options{})
	ref, _ := h.log.AddTranscript(g, causal.NoTranscript, nil)
	P := causal.KindPayload
	h.accept(g, ref, "x", 0, P)
	h.accept(g, ref, "a", 1, P, "x")
	h.accept(g, ref, "b", 2, P, "x")
	h.accept(g, ref, "c", 0, P, "b")
	want := map[string]struct {
		par       []int
		highlight bool
	}{"x": {nil, false}, "a": {[]int{1}, false}, "b": {[]int{2}, true}, "c": {[]int{1}, false}}
	for name, w := range want {
		r := h.ready[name]
		if !slices.Equal(r.ParIdx, w.par) && !(len(r.ParIdx) == 0 && len(w.par) == 0) || r.RIdx != 0 || r.Highlight() != w.highlight {
			t.Errorf("%s: %+v highlight %v, want parIdx %v highlight %v", name, r, r.Highlight(), w.par, w.highlight)
		}
	}
	// An entry with two log parents is highlighted.
	h.accept(g, ref, "d", 1, P, "a", "c")
	if r := h.ready["d"]; !slices.Equal(r.ParIdx, []int{1, 3}) || !r.Highlight() {
		t.Errorf("d: %+v", r)
	}
}

// reader is one member's copy of the transcript, fed by a lossy channel.
type reader struct {
	g      *causal.Graph
	log    *causal.MessageLog
	ref    causal.TranscriptRef
	buffer map[transcript.ID]causal.Message
	fa     []transcript.ID // fully acked, in event order
	order  []transcript.ID
}

func (r *reader) offer(m causal.Message) {
	if _, ok := r.buffer[m.ID]; ok {
		r.buffer[m.ID] = m // a duplicate replaces the buffered entry
		return
	}
	queue := []causal.Message{m}
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		res, err := r.g.Accept(m)
		var mp *causal.MissingParentError
		switch {
		case err == nil:
		case err == causal.ErrDuplicate:
			continue
		case errors.As(err, &mp):
			r.buffer[m.ID] = m
			continue
		default:
			panic(fmt.Sprintf("honest message rejected: %v", err))
		}
		delete(r.buffer, m.ID)
		r.order = append(r.order, m.ID)
		for _, i := range res.FullyAcked {
			r.fa = append(r.fa, r.g.ID(i))
		}
		if _, _, err := r.log.Append(r.ref, res.Index, ""); err != nil {
			panic(err)
		}
		// Wake waiters (a real buffer indexes them by missing parent).
		for _, w := range r.buffer {
			if slices.Contains(w.Parents, m.ID) {
				queue = append(queue, w)
			}
		}
	}
}

// TestRandomDeliveryConverges: random honest histories among several
// authors, delivered to several readers in random orders with drops and
// duplicates; dropped messages are resent until everything arrived. Every
// reader ends with the same transcript (ids, authors, parents), the same
// fully-acked set, the same MessageLog entries with the same log parents,
// in an order consistent with causality.
func TestRandomDeliveryConverges(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 99))
		n := 2 + rng.IntN(6)
		h := genHistory(rng, n, 150+rng.IntN(250), seed%5 == 4)
		members := make([]string, n)
		for i := range members {
			members[i] = fmt.Sprintf("u%d", i)
		}
		readers := make([]*reader, 4)
		for k := range readers {
			g, _ := causal.New(members, causal.Options{HashKey: rng.Uint64()})
			r := &reader{g: g, log: causal.NewMessageLog(), buffer: map[transcript.ID]causal.Message{}}
			r.ref, _ = r.log.AddTranscript(g, causal.NoTranscript, nil)
			readers[k] = r
			// Deliver: a random permutation with 20% drops and 10%
			// duplicates; then resend rounds of whatever is missing.
			pending := slices.Clone(h.msgs)
			for round := 0; len(pending) > 0; round++ {
				rng.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
				var lost []causal.Message
				for _, m := range pending {
					if rng.IntN(5) == 0 {
						lost = append(lost, m)
						continue
					}
					r.offer(m)
					if rng.IntN(10) == 0 {
						r.offer(m)
					}
				}
				pending = lost
				if round > 200 {
					t.Fatal("delivery does not converge")
				}
			}
			if len(r.buffer) != 0 || r.g.Len() != len(h.msgs) {
				t.Fatalf("seed %d reader %d: %d accepted, %d buffered of %d", seed, k, r.g.Len(), len(r.buffer), len(h.msgs))
			}
		}
		ref := readers[0]
		for k, r := range readers[1:] {
			for _, m := range h.msgs {
				i, _ := r.g.Lookup(m.ID)
				j, _ := ref.g.Lookup(m.ID)
				if r.g.Author(i) != ref.g.Author(j) || !sameParents(r.g, i, ref.g, j) || r.g.FullyAcked(i) != ref.g.FullyAcked(j) {
					t.Fatalf("seed %d: reader %d differs on %x", seed, k+1, m.ID[:4])
				}
				for a := range n {
					if r.g.AckedBy(i, a) != ref.g.AckedBy(j, a) {
						t.Fatalf("seed %d: reader %d differs on who acked %x", seed, k+1, m.ID[:4])
					}
				}
			}
			if !slices.Equal(r.g.Heads(), ref.g.Heads()) {
				t.Fatalf("seed %d: heads differ", seed)
			}
			if !slices.Equal(sortedCopy(r.fa), sortedCopy(ref.fa)) {
				t.Fatalf("seed %d: fully-acked sets differ", seed)
			}
			compareLogs(t, r, ref)
		}
	}
}

func sameParents(g1 *causal.Graph, i causal.Index, g2 *causal.Graph, j causal.Index) bool {
	var a, b []transcript.ID
	for _, p := range g1.Parents(i) {
		a = append(a, g1.ID(p))
	}
	for _, p := range g2.Parents(j) {
		b = append(b, g2.ID(p))
	}
	return slices.Equal(a, b)
}

func sortedCopy(ids []transcript.ID) []transcript.ID {
	c := slices.Clone(ids)
	slices.SortFunc(c, compareID)
	return c
}

// compareLogs: same entries, same log parents (by id), and each log is a
// linear extension of causality.
func compareLogs(t *testing.T, r, ref *reader) {
	t.Helper()
	type view struct {
		parents []transcript.ID
		pos     int
	}
	collect := func(x *reader) map[transcript.ID]view {
		out := map[transcript.ID]view{}
		for k := range x.log.Len() {
			e := x.log.Entry(k)
			var ps []transcript.ID
			for _, p := range e.Parents {
				ps = append(ps, x.log.Entry(p).ID)
				if p >= k {
					t.Fatalf("log parent after its child")
				}
			}
			slices.SortFunc(ps, compareID)
			out[e.ID] = view{ps, k}
		}
		return out
	}
	a, b := collect(r), collect(ref)
	if len(a) != len(b) {
		t.Fatalf("log lengths %d and %d", len(a), len(b))
	}
	for id, va := range a {
		vb, ok := b[id]
		if !ok || !slices.Equal(va.parents, vb.parents) {
			t.Fatalf("log entry %x differs: %v vs %v", id[:4], va.parents, vb.parents)
		}
	}
	// Causality: if x < y then x before y in the log.
	for id, va := range a {
		i, _ := r.g.Lookup(id)
		for id2, vb := range a {
			j, _ := r.g.Lookup(id2)
			if r.g.Less(i, j) && va.pos >= vb.pos {
				t.Fatalf("log order violates causality")
			}
		}
	}
}

// The log's memory is bounded: only the last KeepText entries keep their
// text, and a forgotten transcript gives up its graph and, once nothing
// older is kept before them, its entries; positions stay, the next
// transcript still hangs from the live one, and a forgotten transcript
// takes no more messages.
func TestMessageLogBounded(t *testing.T) {
	h := &logHarness{t: t, log: causal.NewMessageLog(), names: map[transcript.ID]string{}, ready: map[string]causal.Ready{}}
	P := causal.KindPayload
	members := []string{"alice", "bob"}
	t1, _ := causal.New(members, causal.Options{})
	r1, _ := h.log.AddTranscript(t1, causal.NoTranscript, nil)
	prev := ""
	n := causal.KeepText + 10
	for i := range n {
		name := fmt.Sprint("m", i)
		if prev == "" {
			h.accept(t1, r1, name, i%2, P)
		} else {
			h.accept(t1, r1, name, i%2, P, prev)
		}
		prev = name
	}
	if e := h.log.Entry(9); e.Text != "" || e.ID != nameID("m9") || e.Author != "bob" {
		t.Errorf("entry 9, beyond the window: %+v", e)
	}
	if e := h.log.Entry(10); e.Text != "text of m10" {
		t.Errorf("entry 10, inside the window: %+v", e)
	}
	t2, _ := causal.New(members, causal.Options{})
	r2, err := h.log.AddTranscript(t2, r1, []transcript.ID{nameID(prev)})
	if err != nil {
		t.Fatal(err)
	}
	h.accept(t2, r2, "x", 0, P)
	h.log.Forget(r1)
	if h.log.Graph(r1) != nil {
		t.Error("the forgotten transcript kept its graph")
	}
	if h.log.First() != n || h.log.Len() != n+1 {
		t.Fatalf("first %d, len %d, want %d and %d", h.log.First(), h.log.Len(), n, n+1)
	}
	if e := h.log.Entry(n); e.ID != nameID("x") || !slices.Equal(e.Parents, []int{n - 1}) {
		t.Errorf("the new transcript's entry: %+v", e)
	}
	h.accept(t2, r2, "y", 1, P, "x")
	if got := h.parents("y"); !slices.Equal(got, []string{"x"}) {
		t.Errorf("parents of y: %v", got)
	}
	if _, _, err := h.log.Append(r1, causal.Index(n), "late"); err == nil {
		t.Error("a forgotten transcript took a message")
	}
}
