package history

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mpenc/mpenc/transcript"
)

var key = []byte("the archive's MAC key, 32 bytes!")

// chainOf writes n pages for writer, each with one record, chained.
func chainOf(t *testing.T, writer string, n int) [][]byte {
	t.Helper()
	var out [][]byte
	var prev Hash
	for i := range n {
		p := Page{Writer: writer, Index: uint64(i), Prev: prev, Records: []Record{{
			Room: "team@conference.example.org", Author: writer, Time: time.UnixMilli(int64(1_765_000_000_000 + i)).UTC(),
			ID: transcript.ID{byte(i)}, Body: fmt.Sprintf("%s %d", writer, i)}}}
		b, err := Encode(p, key)
		if err != nil {
			t.Fatal(err)
		}
		prev = HashOf(b)
		out = append(out, b)
	}
	return out
}

func bodies(r Result) []string {
	var out []string
	for _, rec := range r.Records {
		out = append(out, rec.Body)
	}
	return out
}

func problems(r Result) []string {
	var out []string
	for _, w := range r.Warnings {
		out = append(out, w.String())
	}
	return out
}

func TestPageRoundTrip(t *testing.T) {
	b := chainOf(t, "alice@example.org/laptop", 2)[1]
	p, err := Decode(b, key)
	if err != nil {
		t.Fatal(err)
	}
	if p.Index != 1 || p.Records[0].Body != "alice@example.org/laptop 1" || p.Prev != HashOf(chainOf(t, "alice@example.org/laptop", 1)[0]) {
		t.Fatalf("%+v", p)
	}
	if _, err := Decode(b, []byte("another key")); !errors.Is(err, ErrMAC) {
		t.Fatalf("another key: %v", err)
	}
	bad := bytes.Clone(b)
	bad[len(magic)+3] ^= 1
	if _, err := Decode(bad, key); !errors.Is(err, ErrMAC) {
		t.Fatalf("a changed byte: %v", err)
	}
	if _, err := Encode(Page{Writer: "w", Records: make([]Record, MaxRecords+1)}, key); err == nil {
		t.Fatal("too many records encoded")
	}
}

// The service's answers, honest and not: each failure has its warning,
// and what is shown is only what verifies, in each writer's order.
func TestReader(t *testing.T) {
	laptop, phone := "alice@example.org/laptop", "alice@example.org/phone"
	lc, pc := chainOf(t, laptop, 3), chainOf(t, phone, 2)
	heads := map[string]Hash{laptop: HashOf(lc[2]), phone: HashOf(pc[1])}
	type page struct {
		seq  uint64
		b    []byte
		fail bool
	}
	// What an honest service stores: interleaved, numbered 1…5.
	honest := []page{{1, lc[0], false}, {2, pc[0], false}, {3, lc[1], false}, {4, pc[1], false}, {5, lc[2], false}}
	all := []string{laptop + " 0", laptop + " 1", laptop + " 2", phone + " 0", phone + " 1"}
	cases := []struct {
		name  string
		pages []page
		last  uint64
		heads map[string]Hash
		want  []string // bodies shown
		warn  []string
	}{
		{"honest", honest, 5, heads, all, nil},
		{"a page withheld", slices.Delete(slices.Clone(honest), 2, 3), 5, heads,
			[]string{laptop + " 0", laptop + " 2", phone + " 0", phone + " 1"},
			[]string{"the history service withheld 1 page(s) of " + laptop, "the history service withheld 1 page(s) it says it holds"}},
		{"a page withheld and the rest renumbered", []page{{1, lc[0], false}, {2, pc[0], false}, {3, pc[1], false}, {4, lc[2], false}}, 4, heads,
			[]string{laptop + " 0", laptop + " 2", phone + " 0", phone + " 1"},
			[]string{"the history service withheld 1 page(s) of " + laptop}},
		{"the newest page withheld and renumbered", honest[:4], 4, heads,
			[]string{laptop + " 0", laptop + " 1", phone + " 0", phone + " 1"},
			[]string{"the history service withheld 1 page(s) of " + laptop}},
		{"a writer's pages all withheld", []page{{1, lc[0], false}, {2, lc[1], false}, {3, lc[2], false}}, 3, heads,
			[]string{laptop + " 0", laptop + " 1", laptop + " 2"},
			[]string{"the history service withheld 1 page(s) of " + phone}},
		{"reordered", []page{{1, lc[1], false}, {2, pc[0], false}, {3, lc[0], false}, {4, pc[1], false}, {5, lc[2], false}}, 5, heads, all,
			[]string{"the history service reordered the pages of " + laptop + " (page 3 came out of order): shown in their order"}},
		{"replayed under a new number", append(slices.Clone(honest), page{6, lc[1], false}), 6, heads, all,
			[]string{"the history service handed back page 6 of " + laptop + " twice: shown once"}},
		{"a page that does not open", []page{{1, lc[0], false}, {2, pc[0], false}, {3, lc[1], true}, {4, pc[1], false}, {5, lc[2], false}}, 5, heads,
			[]string{laptop + " 0", laptop + " 2", phone + " 0", phone + " 1"},
			[]string{"page 3 failed verification (changed, or not written by your devices): not shown", "1 page(s) of " + laptop + " missing: held back by the history service, or among the pages that failed verification"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewReader(key, 0, nil)
			for _, p := range c.pages {
				var err error
				if p.fail {
					err = errors.New("recrypt: the page does not open")
				}
				r.Add(p.seq, p.b, err)
			}
			res := r.Finish(c.last, c.heads)
			if got := bodies(res); !reflect.DeepEqual(got, c.want) {
				t.Errorf("shown %q, want %q", got, c.want)
			}
			if got := problems(res); !reflect.DeepEqual(got, c.warn) {
				t.Errorf("warnings %q\nwant     %q", got, c.warn)
			}
		})
	}
	// A page of another group (another MAC key), and a fork: another
	// page in the place of one in the chain.
	other := chainOf(t, laptop, 1)
	forged, _ := Encode(Page{Writer: laptop, Index: 1, Prev: HashOf(lc[0]), Records: []Record{{Body: "forged"}}}, []byte("not the key"))
	r := NewReader(key, 0, nil)
	r.Add(1, other[0], nil)
	r.Add(2, forged, nil)
	res := r.Finish(2, nil)
	if got := problems(res); !slices.Contains(got, "page 2 failed verification (changed, or not written by your devices): not shown") {
		t.Errorf("a page under another key: %q", got)
	}
	fork, _ := Encode(Page{Writer: laptop, Index: 1, Prev: HashOf(lc[0]), Records: []Record{{Body: "fork"}}}, key)
	r = NewReader(key, 0, nil)
	r.Add(1, lc[0], nil)
	r.Add(2, lc[1], nil)
	r.Add(3, fork, nil)
	if got := problems(r.Finish(3, nil)); len(got) != 1 || got[0] != "page 3 failed verification (changed, or not written by your devices): not shown" {
		t.Errorf("a fork: %q", got)
	}
	// The same sequence number twice.
	r = NewReader(key, 0, nil)
	r.Add(1, lc[0], nil)
	r.Add(1, lc[0], nil)
	if got := problems(r.Finish(1, nil)); len(got) != 1 || got[0] != "the history service handed back page 1 twice: shown once" {
		t.Errorf("one number twice: %q", got)
	}
}

func macOf(body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}

func FuzzDecode(f *testing.F) {
	for _, b := range chainOf(&testing.T{}, "alice@example.org/laptop", 2) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// With the MAC recomputed, whatever the bytes: the parser is
		// reached.
		if len(b) >= 32 {
			body := b[:len(b)-32]
			p, err := Decode(append(body, macOf(body)...), key)
			if err != nil {
				return
			}
			q, err := Encode(p, key)
			if err != nil {
				t.Fatalf("decoded %+v, cannot encode it: %v", p, err)
			}
			p2, err := Decode(q, key)
			if err != nil || !reflect.DeepEqual(p, p2) {
				t.Fatalf("%+v → %+v, %v", p, p2, err)
			}
		}
	})
}

// TestReaderContinues: a second read starts where the first left each
// chain: only the new pages are shown, a page of the first read handed
// back again is a replay, a gap after the first read's end is withheld,
// and a head reached by the first read needs no page.
func TestReaderContinues(t *testing.T) {
	const laptop, phone = "alice@example.org/laptop", "alice@example.org/phone"
	lc, pc := chainOf(t, laptop, 4), chainOf(t, phone, 1)
	r := NewReader(key, 0, nil)
	r.Add(1, lc[0], nil)
	r.Add(2, lc[1], nil)
	r.Add(3, pc[0], nil)
	first := r.Finish(3, nil)
	if len(first.Warnings) != 0 || len(first.Records) != 3 || first.Ends[laptop].Next != 2 || first.Ends[phone].Prev != HashOf(pc[0]) {
		t.Fatalf("first read: %q, %d records, ends %+v", problems(first), len(first.Records), first.Ends)
	}
	heads := map[string]Hash{laptop: HashOf(lc[3]), phone: HashOf(pc[0])}
	r = NewReader(key, 3, first.Ends)
	r.Add(4, lc[2], nil)
	r.Add(5, lc[3], nil)
	second := r.Finish(5, heads)
	if got := bodies(second); len(second.Warnings) != 0 || !slices.Equal(got, []string{laptop + " 2", laptop + " 3"}) || second.Ends[laptop].Next != 4 {
		t.Fatalf("second read: %q, %q, ends %+v", got, problems(second), second.Ends)
	}
	if slices.Sort(second.Reached); !slices.Equal(second.Reached, []string{laptop, phone}) {
		t.Fatalf("heads reached: %q", second.Reached)
	}
	// A third read with nothing new, and no heads (the owner dropped
	// the ones reached): no warning.
	if got := problems(NewReader(key, 5, second.Ends).Finish(5, nil)); len(got) != 0 {
		t.Fatalf("a read with nothing new: %q", got)
	}
	// A head given before the writer wrote more is reached, not
	// withheld.
	r = NewReader(key, 3, first.Ends)
	r.Add(4, lc[2], nil)
	r.Add(5, lc[3], nil)
	if got := problems(r.Finish(5, map[string]Hash{laptop: HashOf(lc[2]), phone: HashOf(pc[0])})); len(got) != 0 {
		t.Fatalf("an older head: %q", got)
	}
	// Page 1 of the laptop again under a new number; page 3 of the
	// laptop held back.
	r = NewReader(key, 3, first.Ends)
	r.Add(4, lc[1], nil)
	r.Add(5, lc[3], nil)
	got := problems(r.Finish(5, heads))
	want := []string{"the history service handed back page 4 of " + laptop + " twice: shown once",
		"the history service withheld 1 page(s) of " + laptop}
	if !slices.Equal(got, want) {
		t.Fatalf("a replay and a gap: %q, want %q", got, want)
	}
}
