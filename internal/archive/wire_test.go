package archive

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/mpenc/mpenc/internal/recrypt"
)

// TestWire runs an own archive through Handle, the way the bot serves
// it: every request encoded as a client encodes it, every answer decoded
// as a client decodes it, with the results the direct calls give.
func TestWire(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	laptop := "alice@example.org/laptop"
	do := func(r Request) []byte { return w.s.Handle(ctx, laptop, EncodeRequest(r)) }

	c := CreateGroup{Group: w.group, Kind: OwnArchive, Epoch: 1, A: w.A}
	SignCreateGroup(&c, "alice@example.org", w.admin)
	if err := DecodeAnswer(do(c)); err != nil {
		t.Fatal(err)
	}
	if err := DecodeAnswer(do(c)); !errors.Is(err, ErrRefused) {
		t.Fatalf("a group created twice: %v", err)
	}
	d := w.add("laptop")

	// A page, the same page again (stored once), another page under its id.
	T, sealed, err := recrypt.Seal(w.A, w.group[:], []byte(marker+" over the wire"), nil, w.rnd)
	if err != nil {
		t.Fatal(err)
	}
	p := Put{Group: w.group, T: T, Sealed: sealed}
	copy(p.Page[:], "wire page")
	for range 2 {
		if seq, err := DecodePutAnswer(do(p)); err != nil || seq != 1 {
			t.Fatalf("put: %d, %v", seq, err)
		}
	}
	p.Sealed = append([]byte(nil), sealed...)
	p.Sealed[0] ^= 1
	if _, err := DecodePutAnswer(do(p)); !errors.Is(err, ErrRefused) {
		t.Fatalf("another page under a stored id: %v", err)
	}

	f := Fetch{Group: w.group, Time: w.clock}
	w.rnd.Read(f.Nonce[:])
	SignFetch(&f, d.jid, d.key)
	got, err := DecodeFetchAnswer(w.s.Handle(ctx, d.jid, EncodeRequest(f)))
	if err != nil {
		t.Fatal(err)
	}
	if pl := w.read(d, got); len(pl) != 1 || pl[0] != marker+" over the wire" || got.Last != 1 {
		t.Fatalf("fetched %q, last %d", pl, got.Last)
	}
	// The same fetch again is a replay; a stranger is not found.
	if _, err := DecodeFetchAnswer(w.s.Handle(ctx, d.jid, EncodeRequest(f))); !errors.Is(err, ErrRefused) {
		t.Fatalf("a replayed fetch: %v", err)
	}
	if _, err := DecodeFetchAnswer(w.s.Handle(ctx, "alice@example.org/else", EncodeRequest(f))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a stranger's fetch: %v", err)
	}
	st := SetStatus{Group: w.group, Seq: w.seq + 1, Member: d.jid, Status: Revoked}
	SignSetStatus(&st, w.admin)
	if err := DecodeAnswer(do(st)); err != nil {
		t.Fatal(err)
	}
	w.rnd.Read(f.Nonce[:])
	SignFetch(&f, d.jid, d.key)
	if _, err := DecodeFetchAnswer(w.s.Handle(ctx, d.jid, EncodeRequest(f))); !errors.Is(err, ErrRevoked) {
		t.Fatalf("a revoked member's fetch: %v", err)
	}
	// Only an active member writes, though every device of the account
	// logs in as the account.
	p.Page[0] ^= 0xff
	if _, err := DecodePutAnswer(do(p)); !errors.Is(err, ErrRevoked) {
		t.Fatalf("a revoked member's put: %v", err)
	}
	if _, err := DecodePutAnswer(w.s.Handle(ctx, "alice@example.org/stranger", EncodeRequest(p))); !errors.Is(err, ErrRefused) {
		t.Fatalf("a put from a device of the account that is no member: %v", err)
	}
	if err := DecodeAnswer(w.s.Handle(ctx, laptop, []byte{1, 99})); !errors.Is(err, ErrMalformed) {
		t.Fatalf("an unknown operation: %v", err)
	}
}

// TestWireRoundTrip: every request decodes to what was encoded, and a
// byte more or less does not decode.
func TestWireRoundTrip(t *testing.T) {
	w := newWorld(t)
	var g GroupID
	copy(g[:], "round trip")
	reqs := []Request{
		CreateGroup{Group: g, Kind: RoomEpoch, Room: "room@muc.example.org", Epoch: 7, A: w.A},
		AddMember{Group: g, Seq: 3, Member: "bob@example.org/desk", Share: recrypt.Scalar{9}, Entry: []byte("entry")},
		SetStatus{Group: g, Seq: 4, Member: "bob@example.org/desk", Status: Suspended},
		Put{Group: g, Page: PageID{1}, T: w.A, Sealed: []byte("sealed page")},
		Fetch{Group: g, After: 12, Max: 64, Nonce: [16]byte{5}, Time: w.clock},
	}
	for _, r := range reqs {
		b := EncodeRequest(r)
		got, err := DecodeRequest(b)
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("%T: got %+v, %v", r, got, err)
		}
		for _, bad := range [][]byte{b[:len(b)-1], append(append([]byte(nil), b...), 0), b[1:]} {
			if _, err := DecodeRequest(bad); !errors.Is(err, ErrMalformed) {
				t.Errorf("%T with a byte more or less decoded: %v", r, err)
			}
		}
	}
	f := Fetch{Group: g, Max: MaxFetch + 1}
	if _, err := DecodeRequest(EncodeRequest(f)); !errors.Is(err, ErrMalformed) {
		t.Errorf("a fetch of more than MaxFetch pages decoded: %v", err)
	}
}

// TestFetchAnswerBounded: a fetch of pages of the largest size is cut
// to MaxAnswer (one page always fits), and the member carries on from the
// last number it got until it has them all.
func TestFetchAnswerBounded(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.create(OwnArchive, "")
	d := w.add("laptop")
	big := make([]byte, MaxPage-recrypt.Overhead-64)
	for i := range 5 {
		T, sealed, err := recrypt.Seal(w.A, w.group[:], fmt.Appendf(big[:0:0], "%d%s", i, big), nil, w.rnd)
		if err != nil {
			t.Fatal(err)
		}
		var id PageID
		copy(id[:], fmt.Sprint("big ", i))
		if _, err := DecodePutAnswer(w.s.Handle(ctx, "alice@example.org/laptop", EncodeRequest(Put{Group: w.group, Page: id, T: T, Sealed: sealed}))); err != nil {
			t.Fatal(err)
		}
	}
	var after uint64
	rounds := 0
	for after < 5 && rounds < 10 {
		rounds++
		f := Fetch{Group: w.group, After: after, Max: MaxFetch, Time: w.clock}
		w.rnd.Read(f.Nonce[:])
		SignFetch(&f, d.jid, d.key)
		b := w.s.Handle(ctx, d.jid, EncodeRequest(f))
		if len(b) > MaxAnswer {
			t.Fatalf("an answer of %d bytes, over %d", len(b), MaxAnswer)
		}
		got, err := DecodeFetchAnswer(b)
		if err != nil || len(got.Pages) == 0 || got.Last != 5 {
			t.Fatalf("round %d: %d pages, last %d, %v", rounds, len(got.Pages), got.Last, err)
		}
		w.read(d, got)
		after = got.Pages[len(got.Pages)-1].Seq
	}
	if after != 5 || rounds < 3 {
		t.Fatalf("read up to %d in %d rounds", after, rounds)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	var g GroupID
	f.Add(EncodeRequest(Fetch{Group: g, Max: 3}))
	f.Add(EncodeRequest(Put{Group: g, Sealed: []byte("x")}))
	f.Add(EncodeRequest(AddMember{Group: g, Member: "a@b/c", Entry: []byte("e")}))
	f.Add(EncodeRequest(CreateGroup{Group: g, Room: "r@m"}))
	f.Add(EncodeRequest(SetStatus{Group: g, Member: "a@b/c"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		again, err := DecodeRequest(EncodeRequest(r))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("%+v re-encoded decodes to %+v, %v", r, again, err)
		}
	})
}

func FuzzDecodeFetchAnswer(f *testing.F) {
	f.Add(encodeFetched([]byte{wireVersion, codeOK}, Fetched{Entry: []byte("e"), Last: 2, Pages: []Page{{Seq: 1, Sealed: []byte("s")}}}))
	f.Add([]byte{wireVersion, codeRevoked})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeFetchAnswer(b)
		if err != nil {
			return
		}
		if len(got.Pages) > MaxFetch || len(got.Entry) > MaxEntry {
			t.Fatalf("decoded %d pages, an entry of %d bytes", len(got.Pages), len(got.Entry))
		}
		for _, p := range got.Pages {
			if len(p.Sealed) > MaxPage {
				t.Fatalf("a page of %d bytes", len(p.Sealed))
			}
		}
	})
}

// TestBounded: an account's requests beyond RatePerWindow in one window
// are answered busy, and written nowhere; the audit log keeps its last
// lines only.
func TestBounded(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.s.maxAudit, w.s.pruneEvery = 50, 10
	junk := []byte{wireVersion, 99}
	for i := range RatePerWindow {
		if err := DecodeAnswer(w.s.Handle(ctx, "mallory@example.org/a", junk)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if err := DecodeAnswer(w.s.Handle(ctx, "mallory@example.org/b", junk)); !errors.Is(err, ErrBusy) {
		t.Fatalf("one request over the budget (from another device of the account): %v", err)
	}
	if err := DecodeAnswer(w.s.Handle(ctx, "alice@example.org/laptop", junk)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("another account: %v", err)
	}
	var n int
	if err := w.s.db.QueryRow(`SELECT count(*) FROM audit`).Scan(&n); err != nil || n > 51+10 || n < 50 {
		t.Fatalf("%d audit lines kept (%v), want about 50", n, err)
	}
	w.clock = w.clock.Add(rateWindow)
	if err := DecodeAnswer(w.s.Handle(ctx, "mallory@example.org/a", junk)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("in the next window: %v", err)
	}
}
