// Package history is what an archived page holds and how a reader judges
// what the history service hands back (issue [N], docs/PROTOCOL.md
// "History: pages"): the page codec (records of one room's transcript,
// chained per writer and authenticated with the archive's MAC key), and a
// Reader that checks each chain and names every failure — pages withheld,
// reordered, replayed or tampered with — instead of hiding it. I/O-free;
// the service and the sealing are packages archive and recrypt.
package history

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/mpenc/mpenc/transcript"
	"unicode/utf8"
)

// Limits of a page (docs/PROTOCOL.md "History: pages").
const (
	MaxRecords  = 64
	MaxPageSize = 48<<10 - 64 // the plaintext, leaving room for sealing
	maxField    = 16 << 10
)

// maxIndex bounds a page's index in its writer's chain (a million pages
// of one writer in one group).
const maxIndex = 1 << 20

// ErrMalformed is returned (wrapped) by Decode.
var ErrMalformed = errors.New("history: malformed page")

// Record is one message of a room's transcript as archived.
type Record struct {
	Room   string // the room's bare JID
	Author string // the author's participant id (full JID)
	// Label is the device label the author's key signed, as the writer
	// saw it ("" for none).
	Label string
	Time  time.Time     // when its author sent it (to the millisecond)
	ID    transcript.ID // the message id
	Body  string
}

// Page is a writer's page: its place in the writer's chain, the hash of
// the writer's previous page (zero for the first), and the records.
type Page struct {
	Writer  string // the writing device's full JID
	Index   uint64 // 0, 1, 2… per writer and group
	Prev    [32]byte
	Records []Record
}

// Hash is a page's hash: what the next page of its writer names as Prev.
type Hash [32]byte

const magic = "mpenc history page v1\x00"

func appendField(b, f []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
	return append(b, f...)
}

// Encode writes p and its MAC under key (the archive's MAC key, which
// every device of the group holds and the service does not): magic,
// writer, index, prev, each record's fields length-prefixed, then 32
// bytes of HMAC-SHA256 over everything before.
func Encode(p Page, key []byte) ([]byte, error) {
	if len(p.Records) > MaxRecords {
		return nil, fmt.Errorf("history: %d records, more than %d", len(p.Records), MaxRecords)
	}
	b := []byte(magic)
	b = appendField(b, []byte(p.Writer))
	b = binary.BigEndian.AppendUint64(b, p.Index)
	b = append(b, p.Prev[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.Records)))
	for _, r := range p.Records {
		b = appendField(b, []byte(r.Room))
		b = appendField(b, []byte(r.Author))
		b = appendField(b, []byte(r.Label))
		b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixMilli()))
		b = append(b, r.ID[:]...)
		b = appendField(b, []byte(r.Body))
	}
	m := hmac.New(sha256.New, key)
	m.Write(b)
	b = m.Sum(b)
	if len(b) > MaxPageSize {
		return nil, fmt.Errorf("history: a page of %d bytes, more than %d", len(b), MaxPageSize)
	}
	return b, nil
}

// HashOf is the hash of an encoded page.
func HashOf(encoded []byte) Hash { return sha256.Sum256(encoded) }

// ErrMAC: the page's MAC does not verify (not written by a device of the
// group, or changed).
var ErrMAC = errors.New("history: page not authenticated")

// Decode reads a page: the size, the MAC (constant time) before anything
// else, then every field strictly.
func Decode(b, key []byte) (Page, error) {
	bad := func(why string) (Page, error) { return Page{}, fmt.Errorf("%w: %s", ErrMalformed, why) }
	if len(b) > MaxPageSize || len(b) < len(magic)+32 {
		return bad("size")
	}
	body, tag := b[:len(b)-32], b[len(b)-32:]
	m := hmac.New(sha256.New, key)
	m.Write(body)
	if !hmac.Equal(m.Sum(nil), tag) {
		return Page{}, ErrMAC
	}
	if string(body[:len(magic)]) != magic {
		return bad("not a page")
	}
	r := reader{b: body[len(magic):]}
	var p Page
	p.Writer = r.text()
	p.Index = r.u64()
	copy(p.Prev[:], r.n(32))
	n := int(r.u16())
	if n > MaxRecords {
		return bad("too many records")
	}
	for range n {
		var rec Record
		rec.Room = r.text()
		rec.Author = r.text()
		rec.Label = r.text()
		rec.Time = time.UnixMilli(int64(r.u64())).UTC()
		copy(rec.ID[:], r.n(transcript.IDSize))
		rec.Body = r.text()
		p.Records = append(p.Records, rec)
	}
	if r.err || len(r.b) != 0 {
		return bad("fields")
	}
	if p.Writer == "" {
		return bad("no writer")
	}
	return p, nil
}

type reader struct {
	b   []byte
	err bool
}

func (r *reader) n(k int) []byte {
	if r.err || len(r.b) < k {
		r.err = true
		return make([]byte, k)
	}
	out := r.b[:k]
	r.b = r.b[k:]
	return out
}

func (r *reader) u16() uint16 { return binary.BigEndian.Uint16(r.n(2)) }
func (r *reader) u64() uint64 { return binary.BigEndian.Uint64(r.n(8)) }

func (r *reader) text() string {
	l := binary.BigEndian.Uint32(r.n(4))
	if l > maxField {
		r.err = true
		return ""
	}
	s := r.n(int(l))
	if !utf8.Valid(s) {
		r.err = true
		return ""
	}
	return string(s)
}

// Problem is one thing wrong with what the service handed back.
type Problem uint8

// Problems, each with its own warning (Warning.String).
const (
	Tampered  Problem = iota + 1 // a page that does not open or authenticate
	Withheld                     // pages missing: a gap in a chain, or fewer pages than the service holds
	Reordered                    // a writer's pages out of its order
	Replayed                     // a page handed back twice
)

// Warning is one problem, with what it concerns.
type Warning struct {
	Problem Problem
	Writer  string // the chain's writer, if known
	Seq     uint64 // the service's sequence number of the page concerned, if any
	Count   int    // pages concerned (Withheld)
	// OrTampered, on a Withheld warning of a writer's chain: some pages
	// of this read failed verification, and may be among the missing
	// ones (a page that does not open does not say whose it is).
	OrTampered bool
}

func (w Warning) String() string {
	switch w.Problem {
	case Tampered:
		return fmt.Sprintf("page %d failed verification (changed, or not written by your devices): not shown", w.Seq)
	case Withheld:
		if w.Writer == "" {
			return fmt.Sprintf("the history service withheld %d page(s) it says it holds", w.Count)
		}
		if w.OrTampered {
			return fmt.Sprintf("%d page(s) of %s missing: held back by the history service, or among the pages that failed verification", w.Count, w.Writer)
		}
		return fmt.Sprintf("the history service withheld %d page(s) of %s", w.Count, w.Writer)
	case Reordered:
		return fmt.Sprintf("the history service reordered the pages of %s (page %d came out of order): shown in their order", w.Writer, w.Seq)
	case Replayed:
		if w.Writer == "" {
			return fmt.Sprintf("the history service handed back page %d twice: shown once", w.Seq)
		}
		return fmt.Sprintf("the history service handed back page %d of %s twice: shown once", w.Seq, w.Writer)
	}
	return fmt.Sprintf("Problem(%d)", w.Problem)
}

// Reader checks the pages of one group as the service hands them back,
// in its sequence order, and keeps the good ones in each writer's order.
type Reader struct {
	key    []byte
	after  uint64
	ends   map[string]ChainEnd
	chains map[string]*chain
	seqs   map[uint64]bool
	warn   []Warning
}

// ChainEnd is where a writer's chain stood at the end of an earlier read:
// the index of its next page and the hash that page must name.
type ChainEnd struct {
	Next uint64
	Prev Hash
}

type chain struct {
	pages map[uint64]Page // by index
	hash  map[uint64]Hash
	seqs  map[uint64]uint64 // index → the service's seq
	max   uint64
	order []uint64 // indexes as they arrived
}

// NewReader starts reading a group whose pages are authenticated with
// key, from the service's sequence number after (0: from the start),
// each writer's chain from where an earlier read left it (ends, from
// Result.Ends; nil: from the start).
func NewReader(key []byte, after uint64, ends map[string]ChainEnd) *Reader {
	return &Reader{key: key, after: after, ends: maps.Clone(ends), chains: map[string]*chain{}, seqs: map[uint64]bool{}}
}

// Add takes one page: seq is the service's sequence number, plain its
// plaintext (nil when it did not open: open failed).
func (r *Reader) Add(seq uint64, plain []byte, openErr error) {
	if r.seqs[seq] || seq <= r.after {
		r.warn = append(r.warn, Warning{Problem: Replayed, Seq: seq})
		return
	}
	r.seqs[seq] = true
	if openErr != nil {
		r.warn = append(r.warn, Warning{Problem: Tampered, Seq: seq})
		return
	}
	p, err := Decode(plain, r.key)
	if err != nil {
		r.warn = append(r.warn, Warning{Problem: Tampered, Seq: seq})
		return
	}
	if p.Index > maxIndex {
		// Finish walks each chain up to its highest index: an index no
		// honest writer reaches would make that walk endless.
		r.warn = append(r.warn, Warning{Problem: Tampered, Writer: p.Writer, Seq: seq})
		return
	}
	if e, ok := r.ends[p.Writer]; ok && p.Index < e.Next {
		// A page an earlier read had: handed back again under a new
		// number.
		r.warn = append(r.warn, Warning{Problem: Replayed, Writer: p.Writer, Seq: seq})
		return
	}
	c := r.chains[p.Writer]
	if c == nil {
		c = &chain{pages: map[uint64]Page{}, hash: map[uint64]Hash{}, seqs: map[uint64]uint64{}}
		r.chains[p.Writer] = c
	}
	if _, dup := c.pages[p.Index]; dup {
		if HashOf(plain) != c.hash[p.Index] {
			// Two different pages with one place in the chain: the
			// writer's MAC key is the group's, so a device of the group
			// wrote both (a bug, or a device misbehaving).
			r.warn = append(r.warn, Warning{Problem: Tampered, Writer: p.Writer, Seq: seq})
			return
		}
		r.warn = append(r.warn, Warning{Problem: Replayed, Writer: p.Writer, Seq: seq})
		return
	}
	if len(c.order) > 0 && p.Index < c.max {
		r.warn = append(r.warn, Warning{Problem: Reordered, Writer: p.Writer, Seq: seq})
	}
	c.pages[p.Index], c.hash[p.Index], c.seqs[p.Index] = p, HashOf(plain), seq
	c.max = max(c.max, p.Index)
	c.order = append(c.order, p.Index)
}

// Result is what a read found: the records in each writer's order
// (writers sorted), and every problem.
type Result struct {
	Records  []Record
	Warnings []Warning
	// Ends is where each writer's chain stands after this read: the
	// next read starts there (a gap stops a chain's end before it).
	Ends map[string]ChainEnd
	// Reached are the writers whose head (Finish's heads) this read or
	// an earlier one reached: their heads are checked, and the next read
	// must not be given them again (its chain starts past them).
	Reached []string
}

// Finish checks the chains — each page names its predecessor's hash, no
// index is missing — and the service's numbering: every sequence number
// after the reader's start up to last, the service's last (what it says
// it holds), must have come. heads, when known, is a hash each writer's
// chain must reach (where it stood when a grant or a device of the group
// gave it).
func (r *Reader) Finish(last uint64, heads map[string]Hash) Result {
	var out Result
	out.Warnings = slices.Clone(r.warn)
	out.Ends = maps.Clone(r.ends)
	if out.Ends == nil {
		out.Ends = map[string]ChainEnd{}
	}
	unopened := slices.ContainsFunc(r.warn, func(w Warning) bool { return w.Problem == Tampered && w.Writer == "" })
	writers := make([]string, 0, len(r.chains))
	for w := range r.chains {
		writers = append(writers, w)
	}
	slices.Sort(writers)
	for _, w := range writers {
		c := r.chains[w]
		missing := 0
		start := r.ends[w]
		prev, havePrev := start.Prev, start.Next > 0
		contiguous := true
		for i := start.Next; i <= c.max; i++ {
			p, ok := c.pages[i]
			if !ok {
				missing++
				havePrev, contiguous = false, false
				continue
			}
			if i > 0 && havePrev && Hash(p.Prev) != prev {
				contiguous = false
				// The page names another predecessor than the one we
				// have: both come from the group's devices, but they do
				// not make one chain.
				out.Warnings = append(out.Warnings, Warning{Problem: Tampered, Writer: w, Seq: c.seqs[i]})
			} else {
				out.Records = append(out.Records, p.Records...)
				if contiguous {
					out.Ends[w] = ChainEnd{Next: i + 1, Prev: c.hash[i]}
				}
			}
			prev, havePrev = c.hash[i], true
		}
		if h, ok := heads[w]; ok {
			if start.Prev != h && !slices.Contains(slices.Collect(maps.Values(c.hash)), h) {
				// The chain never reaches the head its writer gave (a
				// head is where the chain stood when it was given: the
				// writer may have written more since).
				missing++
			} else {
				out.Reached = append(out.Reached, w)
			}
		}
		if missing > 0 {
			out.Warnings = append(out.Warnings, Warning{Problem: Withheld, Writer: w, Count: missing, OrTampered: unopened})
		}
	}
	for _, w := range slices.Sorted(maps.Keys(heads)) {
		if e, ok := r.ends[w]; ok && e.Prev == heads[w] {
			out.Reached = append(out.Reached, w) // an earlier read reached this head
			continue
		}
		if r.chains[w] == nil {
			out.Warnings = append(out.Warnings, Warning{Problem: Withheld, Writer: w, Count: 1})
		}
	}
	gaps := 0
	for s := r.after + 1; s <= last && s-r.after <= 1<<20; s++ {
		if !r.seqs[s] {
			gaps++
		}
	}
	if gaps > 0 {
		out.Warnings = append(out.Warnings, Warning{Problem: Withheld, Count: gaps})
	}
	return out
}
