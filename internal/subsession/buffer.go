package subsession

import (
	"math"
	"slices"
	"time"

	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/transcript"
)

// MaxBufferBytes caps the bytes (wire strings and texts) held by one
// subsession's try-accept buffer, whatever its entry count.
const MaxBufferBytes = 4 << 20

// BufferCap is the entry cap of the try-accept buffer for n members,
// floor(4·max(16, 8·√n)) (docs/MESSAGE-LAYER.md §4.1): 64 for n ≤ 4, 101 for
// 10, 226 for 50, 320 for 100. One author may hold at most half of it.
func BufferCap(n int) int { return int(4 * math.Max(16, 8*math.Sqrt(float64(n)))) }

// bufEntry is a verified, decrypted message waiting for parents.
type bufEntry struct {
	chain   *message.ChainPosition // a ChainCheck's position
	id      transcript.ID
	author  int
	parents []transcript.ID
	kind    causal.Kind
	text    string
	wire    string
	missing []transcript.ID // parents not accepted, as of the last attempt
	firstAt time.Duration   // first buffered: the NotAccepted and drop timers run from here
	seq     uint64          // position in the age order (a duplicate moves it to the back)
	size    int
	// reported: MsgNotAccepted was emitted.
	reported bool
}

// tryBuffer holds messages with missing parents, indexed by missing
// parent so that an accept wakes exactly its waiters (the reference retries
// everything until no progress).
type tryBuffer struct {
	entries   map[transcript.ID]*bufEntry
	age       []ageItem // oldest first; stale items (seq mismatch) are skipped
	perAuthor []int
	bytes     int
	waiters   map[transcript.ID][]transcript.ID // missing parent -> waiting ids, in arrival order
	seq       uint64
	cap       int
}

type ageItem struct {
	id  transcript.ID
	seq uint64
}

func newTryBuffer(n int) tryBuffer {
	return tryBuffer{
		entries:   make(map[transcript.ID]*bufEntry),
		perAuthor: make([]int, n),
		waiters:   make(map[transcript.ID][]transcript.ID),
		cap:       BufferCap(n),
	}
}

func (b *tryBuffer) len() int { return len(b.entries) }

// touch moves an entry to the back of the age order and keeps the newest
// wire string (a duplicate replaces the entry, docs/MESSAGE-LAYER.md §4.1).
func (b *tryBuffer) touch(e *bufEntry, wire string) {
	b.bytes += len(wire) - len(e.wire)
	e.size += len(wire) - len(e.wire)
	e.wire = wire
	b.seq++
	e.seq = b.seq
	b.age = append(b.age, ageItem{e.id, e.seq})
	b.compactAge()
}

// add inserts a new entry. The caller has made room.
func (b *tryBuffer) add(e *bufEntry) {
	b.seq++
	e.seq = b.seq
	e.size = len(e.wire) + len(e.text) + 20*len(e.parents)
	b.entries[e.id] = e
	b.perAuthor[e.author]++
	b.bytes += e.size
	b.age = append(b.age, ageItem{e.id, e.seq})
	for _, p := range e.missing {
		b.waiters[p] = append(b.waiters[p], e.id)
	}
	b.compactAge()
}

// remove takes an entry out, with its waiter registrations.
func (b *tryBuffer) remove(e *bufEntry) {
	delete(b.entries, e.id)
	b.perAuthor[e.author]--
	b.bytes -= e.size
	for _, p := range e.missing {
		ws := b.waiters[p]
		if k := slices.Index(ws, e.id); k >= 0 {
			ws = slices.Delete(ws, k, k+1)
		}
		if len(ws) == 0 {
			delete(b.waiters, p)
		} else {
			b.waiters[p] = ws
		}
	}
}

// oldest returns the oldest entry, of author a if a ≥ 0.
func (b *tryBuffer) oldest(a int) *bufEntry {
	for _, it := range b.age {
		if e := b.entries[it.id]; e != nil && e.seq == it.seq && (a < 0 || e.author == a) {
			return e
		}
	}
	return nil
}

// compactAge drops stale age items once they outnumber the live ones.
func (b *tryBuffer) compactAge() {
	if len(b.age) < 2*len(b.entries)+32 {
		return
	}
	live := b.age[:0]
	for _, it := range b.age {
		if e := b.entries[it.id]; e != nil && e.seq == it.seq {
			live = append(live, it)
		}
	}
	b.age = live
}

// takeWaiters returns (and forgets) the ids waiting for parent p.
func (b *tryBuffer) takeWaiters(p transcript.ID) []transcript.ID {
	ws := b.waiters[p]
	delete(b.waiters, p)
	return ws
}
