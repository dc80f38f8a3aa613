package causal

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/mpenc/mpenc/transcript"
)

// ErrLatestPMMissing: a LATEST_PM id of a greeting is not in the previous
// transcript. In a server-ordered room the initiator's heads always reach us
// before its greeting, so this means a dodgy transport or a lying initiator.
var ErrLatestPMMissing = errors.New("transcript: LATEST_PM not in the previous transcript")

// TranscriptRef names a graph registered with a [MessageLog].
type TranscriptRef int

// NoTranscript is the parent of a session's first transcript.
const NoTranscript TranscriptRef = -1

// MessageLog is the user's linear view of a session (docs/MESSAGE-LAYER.md
// §3.5): the Payloads of all its subsessions' transcripts, appended in local
// accept order. Accept order is a linear extension of causality, so the log
// is consistent with it; it is append-only, hence responsive, and not
// globally identical, which is accepted. What every member does compute
// identically is each entry's log parents: its latest Payload ancestors, or
// for the first Payloads of a subsession that subsession's transcript
// parents.
//
// Memory is bounded: only the last [KeepText] entries keep their text
// (the app keeps the conversation on disk), and a transcript the caller
// forgets ([MessageLog.Forget], once its subsession has finished) gives
// up its graph, and its entries once no older entry is kept before them.
//
// A MessageLog is not safe for concurrent use.
type MessageLog struct {
	trs     []logTranscript
	base    int        // positions below it were dropped
	entries []logEntry // entries[k] is position base+k
	parOff  []uint32   // log parents of entries[k]: par[parOff[k]:parOff[k+1]]
	par     []uint32
	scratch []payloadRef
}

// KeepText is how many of the latest entries keep their text in memory.
const KeepText = 1024

type logTranscript struct {
	g         *Graph
	parent    TranscriptRef
	trParents []uint32       // log positions
	payloads  [][]payloadRef // per author, in seq order
	next      Index          // the next graph index Append expects
}

type payloadRef struct {
	seq uint32 // seq of the payload in its author's line
	pos uint32 // its log position
}

type logEntry struct {
	tr     uint32
	idx    Index
	id     transcript.ID
	author string
	text   string
}

// Entry is one line of the log.
type Entry struct {
	Pos        int // position in the log, from 0
	Transcript TranscriptRef
	Index      Index // in the transcript's graph (gone once the transcript is forgotten)
	ID         transcript.ID
	Author     string
	Text       string // empty once the entry is older than the last KeepText
	// Parents are the log positions of the entry's log parents, ascending.
	Parents []int
}

// Ready is the MsgReady event of docs/MESSAGE-LAYER.md §3.5 for a new entry.
type Ready struct {
	Pos int
	// RIdx is where the entry was inserted counting from the end: always 0,
	// the log being append-only.
	RIdx int
	// ParIdx says, for each log parent, how many entries above the new
	// entry it is (1 = just above), ascending.
	ParIdx []int
}

// Highlight reports whether the UI must mark the entry as not simply
// answering the line above: ParIdx is neither {1} nor, for an entry with
// no log parent at all, empty.
func (r Ready) Highlight() bool {
	return !(len(r.ParIdx) == 0 || len(r.ParIdx) == 1 && r.ParIdx[0] == 1)
}

// NewMessageLog returns an empty log.
func NewMessageLog() *MessageLog { return &MessageLog{parOff: []uint32{0}} }

// AddTranscript registers the graph of a new subsession. prev is the
// transcript of the subsession it follows (NoTranscript for the first) and
// latestPM the LATEST_PM ids of the greeting that created it. Its
// transcript parents, used as log parents of its first Payloads, are the
// latest Payloads at or before latestPM in prev; if there are none, prev's
// own transcript parents.
//
// A latestPM id missing from prev is skipped and reported with an error
// wrapping [ErrLatestPMMissing]; the transcript is registered all the same
// and the returned ref is valid.
func (l *MessageLog) AddTranscript(g *Graph, prev TranscriptRef, latestPM []transcript.ID) (TranscriptRef, error) {
	if int(prev) >= len(l.trs) || prev < NoTranscript {
		return NoTranscript, fmt.Errorf("transcript: unknown previous transcript %d", prev)
	}
	t := logTranscript{g: g, parent: prev, payloads: make([][]payloadRef, g.n)}
	var err error
	if prev != NoTranscript && l.trs[prev].g == nil {
		prev = NoTranscript // forgotten: nothing to hang from but its parents
	}
	if prev != NoTranscript {
		p := &l.trs[prev]
		var from []Index
		var missing []transcript.ID
		for _, id := range latestPM {
			if i, ok := p.g.Lookup(id); ok {
				from = append(from, i)
			} else {
				missing = append(missing, id)
			}
		}
		if missing != nil {
			err = fmt.Errorf("%w: %d of %d ids, first %x", ErrLatestPMMissing, len(missing), len(latestPM), missing[0][:6])
		}
		t.trParents = l.latestPayloads(p, from, true)
		if len(t.trParents) == 0 {
			t.trParents = slices.Clone(p.trParents)
		}
	}
	l.trs = append(l.trs, t)
	return TranscriptRef(len(l.trs) - 1), err
}

// Append offers message i of a registered transcript. Call it for every
// message the graph accepts, in accept order (ancestors first); the log
// keeps only Payloads and returns ok=false for the other kinds. text is the
// Payload's content, kept for display.
func (l *MessageLog) Append(ref TranscriptRef, i Index, text string) (Ready, bool, error) {
	if ref < 0 || int(ref) >= len(l.trs) {
		return Ready{}, false, fmt.Errorf("transcript: unknown transcript %d", ref)
	}
	t := &l.trs[ref]
	if t.g == nil {
		return Ready{}, false, fmt.Errorf("transcript: transcript %d was forgotten", ref)
	}
	if i != t.next || int(i) >= t.g.Len() {
		return Ready{}, false, fmt.Errorf("transcript: message log got index %d, expected %d of %d", i, t.next, t.g.Len())
	}
	t.next++
	g := t.g
	if g.Kind(i) != KindPayload {
		return Ready{}, false, nil
	}
	pos := uint32(l.Len())
	parents := l.latestPayloads(t, []Index{i}, false)
	if len(parents) == 0 {
		parents = t.trParents
	}
	l.par = append(l.par, parents...)
	l.parOff = append(l.parOff, uint32(len(l.par)))
	a := g.Author(i)
	l.entries = append(l.entries, logEntry{tr: uint32(ref), idx: i, id: g.ID(i), author: g.Member(a), text: text})
	if old := int(pos) - KeepText; old >= l.base {
		l.entries[old-l.base].text = ""
	}
	t.payloads[a] = append(t.payloads[a], payloadRef{seq: g.Seq(i), pos: pos})
	r := Ready{Pos: int(pos), ParIdx: make([]int, len(parents))}
	for k, p := range parents {
		r.ParIdx[len(parents)-1-k] = int(pos - p)
	}
	return r, true, nil
}

// latestPayloads returns the log positions, ascending, of the maximal
// Payloads among the ancestors of the messages from (among from themselves
// too when inclusive). With the vector clocks this costs O(n²) whatever the
// history: per author, the latest Payload at or below the clock's entry,
// then drop candidates below another candidate. It equals the walk of
// docs/MESSAGE-LAYER.md §3.5 (up through non-Payloads, stop at Payloads, drop
// ancestors of other candidates): a maximal Payload ancestor is reached by
// the walk, and the walk's candidates reduce to the maximal ones.
func (l *MessageLog) latestPayloads(t *logTranscript, from []Index, inclusive bool) []uint32 {
	g := t.g
	cands := l.scratch[:0]
	for a := 0; a < g.n; a++ {
		var s uint32
		for _, i := range from {
			v := g.ClockAt(i, a)
			if !inclusive && g.Author(i) == a {
				v-- // strict ancestors only
			}
			s = max(s, v)
		}
		list := t.payloads[a]
		k := sort.Search(len(list), func(k int) bool { return list[k].seq > s })
		if k > 0 {
			cands = append(cands, list[k-1])
		}
	}
	l.scratch = cands
	var out []uint32
	for x, c := range cands {
		ci := l.entries[int(c.pos)-l.base].idx
		dominated := false
		for y, d := range cands {
			if x != y && g.Less(ci, l.entries[int(d.pos)-l.base].idx) {
				dominated = true
				break
			}
		}
		if !dominated {
			out = append(out, c.pos)
		}
	}
	slices.Sort(out)
	return out
}

// Len returns the number of entries appended so far (the positions of the
// next one).
func (l *MessageLog) Len() int { return l.base + len(l.entries) }

// First returns the oldest position still kept: entries below it were
// dropped with their forgotten transcripts.
func (l *MessageLog) First() int { return l.base }

// Entry returns entry pos (First() ≤ pos < Len()).
func (l *MessageLog) Entry(pos int) Entry {
	k := pos - l.base
	e := l.entries[k]
	par := l.par[l.parOff[k]:l.parOff[k+1]]
	out := Entry{Pos: pos, Transcript: TranscriptRef(e.tr), Index: e.idx, ID: e.id,
		Author: e.author, Text: e.text, Parents: make([]int, len(par))}
	for j, p := range par {
		out.Parents[j] = int(p)
	}
	return out
}

// Graph returns the graph of a registered transcript, or nil once it is
// forgotten.
func (l *MessageLog) Graph(ref TranscriptRef) *Graph { return l.trs[ref].g }

// Forget releases a transcript whose subsession has finished (no message
// can be appended to it any more): its graph, and its entries once every
// older entry was dropped too (their positions stay: First tells where the
// kept ones begin). The transcript that comes after a live one must stay:
// a new subsession hangs from its heads.
func (l *MessageLog) Forget(ref TranscriptRef) {
	if ref < 0 || int(ref) >= len(l.trs) {
		return
	}
	t := &l.trs[ref]
	t.g, t.payloads = nil, nil
	drop := 0
	for drop < len(l.entries) && l.trs[l.entries[drop].tr].g == nil {
		drop++
	}
	if drop == 0 {
		return
	}
	cut := l.parOff[drop]
	l.par = slices.Delete(l.par, 0, int(cut))
	l.parOff = slices.Delete(l.parOff, 0, drop)
	for k := range l.parOff {
		l.parOff[k] -= cut
	}
	clear(l.entries[:drop])
	l.entries = slices.Delete(l.entries, 0, drop)
	l.base += drop
}

// TranscriptParents returns the log positions a transcript's first Payloads
// hang from.
func (l *MessageLog) TranscriptParents(ref TranscriptRef) []int {
	out := make([]int, len(l.trs[ref].trParents))
	for k, p := range l.trs[ref].trParents {
		out[k] = int(p)
	}
	return out
}

// PayloadHeads returns the log positions of the latest Payloads of a
// transcript (curParents() of the reference: what a resent Payload would
// answer), or its transcript parents if it has no Payload yet.
func (l *MessageLog) PayloadHeads(ref TranscriptRef) []int {
	t := &l.trs[ref]
	if t.g == nil {
		return nil
	}
	var heads []Index
	for _, h := range t.g.HeadIndexes() {
		if h < t.next {
			heads = append(heads, h)
		}
	}
	p := l.latestPayloads(t, heads, true)
	if len(p) == 0 {
		p = t.trParents
	}
	out := make([]int, len(p))
	for k, x := range p {
		out[k] = int(x)
	}
	return out
}
