package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/edwards25519"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/recrypt"
)

type detRand struct {
	seed string
	n    int
	buf  []byte
}

func (r *detRand) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", r.seed, r.n))
		r.n++
		r.buf = append(r.buf, h[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// marker is in every page's plaintext: it must never reach the bot's
// database file.
const marker = "PLAINTEXT-MARKER-7f3a"

type world struct {
	t     *testing.T
	rnd   *detRand
	clock time.Time
	path  string
	s     *Service
	admin *crypto.SigningKey
	a     recrypt.Scalar
	A     recrypt.Point
	group GroupID
	seq   uint64
	devs  map[string]*device
}

type device struct {
	jid string
	key *crypto.SigningKey
	x   recrypt.Scalar
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, rnd: &detRand{seed: t.Name()}, clock: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC),
		path: filepath.Join(t.TempDir(), "bot.db"), devs: map[string]*device{}}
	w.open()
	t.Cleanup(func() { w.s.Close() })
	var err error
	if w.admin, err = crypto.GenerateSigningKey(w.rnd); err != nil {
		t.Fatal(err)
	}
	if w.a, w.A, err = recrypt.NewAdmin(w.rnd); err != nil {
		t.Fatal(err)
	}
	copy(w.group[:], "own archive  #1")
	return w
}

func (w *world) open() {
	s, err := Open(w.path, func() time.Time { return w.clock })
	if err != nil {
		w.t.Fatal(err)
	}
	w.s = s
}

func (w *world) create(kind Kind, room string) {
	w.t.Helper()
	r := CreateGroup{Group: w.group, Kind: kind, Room: room, Epoch: 1, A: w.A}
	SignCreateGroup(&r, "alice@example.org", w.admin)
	if err := w.s.CreateGroup(context.Background(), "alice@example.org/laptop", r); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) add(name string) *device {
	w.t.Helper()
	k, _ := crypto.GenerateSigningKey(w.rnd)
	x, share, err := recrypt.Split(w.a, w.rnd)
	if err != nil {
		w.t.Fatal(err)
	}
	d := &device{jid: "alice@example.org/" + name, key: k, x: x}
	w.seq++
	r := AddMember{Group: w.group, Seq: w.seq, Member: d.jid, IK: k.Public(), Share: share, Entry: []byte("sealed entry of " + name)}
	SignAddMember(&r, w.admin)
	if err := w.s.AddMember(context.Background(), "alice@example.org/laptop", r); err != nil {
		w.t.Fatal(err)
	}
	w.devs[name] = d
	return d
}

func (w *world) put(i int) (Put, error) {
	T, c, err := recrypt.Seal(w.A, w.group[:], []byte(fmt.Sprintf("%s page %d", marker, i)), nil, w.rnd)
	if err != nil {
		w.t.Fatal(err)
	}
	var id PageID
	copy(id[:], fmt.Sprintf("page %d", i))
	r := Put{Group: w.group, Page: id, T: T, Sealed: c}
	_, err = w.s.Put(context.Background(), "alice@example.org/laptop", r)
	return r, err
}

func (w *world) fetch(d *device, after uint64, max int) (Fetched, error) {
	r := Fetch{Group: w.group, After: after, Max: max, Time: w.clock}
	w.rnd.Read(r.Nonce[:])
	SignFetch(&r, d.jid, d.key)
	return w.s.Fetch(context.Background(), d.jid, r)
}

func (w *world) read(d *device, f Fetched) []string {
	w.t.Helper()
	var out []string
	for _, p := range f.Pages {
		pl, err := recrypt.Open(d.x, w.A, p.T, p.R, w.group[:], p.Sealed, nil)
		if err != nil {
			w.t.Fatalf("page %d: %v", p.Seq, err)
		}
		out = append(out, string(pl))
	}
	return out
}

// TestOwnArchive: an own archive from creation to revocation, across a
// restart of the service, with every refusal on the way; the database
// file never holds a plaintext.
func TestOwnArchive(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.create(OwnArchive, "")
	laptop, phone := w.add("laptop"), w.add("phone")
	for i := range 5 {
		if _, err := w.put(i); err != nil {
			t.Fatal(err)
		}
	}
	f, err := w.fetch(phone, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.read(phone, f); len(got) != 3 || got[0] != marker+" page 0" || f.Last != 5 || string(f.Entry) != "sealed entry of phone" {
		t.Fatalf("fetched %q, last %d, entry %q", got, f.Last, f.Entry)
	}
	// Restart: everything kept; the files are private.
	w.s.Close()
	os.Chmod(w.path, 0o644)
	w.open()
	for _, p := range []string{w.path, w.path + "-wal"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", p, fi.Mode().Perm())
		}
	}
	f, err = w.fetch(laptop, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.read(laptop, f); len(got) != 2 || got[1] != marker+" page 4" {
		t.Fatalf("after a restart: %q", got)
	}
	// A member's R does not open pages for another member.
	f, _ = w.fetch(phone, 0, 1)
	if _, err := recrypt.Open(laptop.x, w.A, f.Pages[0].T, f.Pages[0].R, w.group[:], f.Pages[0].Sealed, nil); !errors.Is(err, recrypt.ErrOpen) {
		t.Fatalf("the phone's R opened a page for the laptop: %v", err)
	}

	// Refusals.
	if _, err := w.put(4); !errors.Is(err, ErrRefused) {
		t.Errorf("the same page id again: %v", err)
	}
	bad, _ := w.put(100)
	bad.Page[0] ^= 1
	bad.T[0] ^= 1
	if _, err := w.s.Put(ctx, "alice@example.org/laptop", bad); !errors.Is(err, ErrRefused) {
		t.Errorf("a page with a bad T: %v", err)
	}
	bad.T = recrypt.Point{1} // the identity
	if _, err := w.s.Put(ctx, "alice@example.org/laptop", bad); !errors.Is(err, ErrRefused) {
		t.Errorf("a page with T the identity: %v", err)
	}
	good, _ := w.put(101)
	good.Page[0] ^= 2
	if _, err := w.s.Put(ctx, "mallory@example.org/x", good); !errors.Is(err, ErrRefused) {
		t.Errorf("a put from another account: %v", err)
	}
	stranger := &device{jid: "alice@example.org/stranger", key: laptop.key}
	if _, err := w.fetch(stranger, 0, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("a fetch by a device that is no member: %v", err)
	}
	forged := &device{jid: phone.jid, key: laptop.key} // the phone's address, another key
	if _, err := w.fetch(forged, 0, 1); !errors.Is(err, ErrRefused) {
		t.Errorf("a fetch signed by another key: %v", err)
	}
	// A fetch replayed, or signed too long ago.
	r := Fetch{Group: w.group, Time: w.clock}
	SignFetch(&r, phone.jid, phone.key)
	if _, err := w.s.Fetch(ctx, phone.jid, r); err != nil {
		t.Fatal(err)
	}
	if _, err := w.s.Fetch(ctx, phone.jid, r); !errors.Is(err, ErrRefused) {
		t.Errorf("a replayed fetch: %v", err)
	}
	r.Nonce[0] = 1
	r.Time = w.clock.Add(-10 * time.Minute)
	SignFetch(&r, phone.jid, phone.key)
	if _, err := w.s.Fetch(ctx, phone.jid, r); !errors.Is(err, ErrRefused) {
		t.Errorf("an old fetch: %v", err)
	}

	// Revoking the phone: its fetches are refused; a replay of the
	// admin's request to add it again is refused too.
	w.seq++
	rev := SetStatus{Group: w.group, Seq: w.seq, Member: phone.jid, Status: Revoked}
	SignSetStatus(&rev, w.admin)
	if err := w.s.SetStatus(ctx, "alice@example.org/laptop", rev); err != nil {
		t.Fatal(err)
	}
	if _, err := w.fetch(phone, 0, 1); !errors.Is(err, ErrRevoked) {
		t.Errorf("a revoked member's fetch: %v", err)
	}
	if err := w.s.SetStatus(ctx, "alice@example.org/laptop", rev); !errors.Is(err, ErrRefused) {
		t.Errorf("a replayed admin request: %v", err)
	}
	reactivate := SetStatus{Group: w.group, Seq: w.seq + 1, Member: phone.jid, Status: Active}
	SignSetStatus(&reactivate, laptop.key) // not the admin key
	if err := w.s.SetStatus(ctx, "alice@example.org/phone", reactivate); !errors.Is(err, ErrRefused) {
		t.Errorf("a status change not signed by the admin: %v", err)
	}

	// The audit log has the refusals too.
	log, err := w.s.Audit(ctx, w.group, 100)
	if err != nil {
		t.Fatal(err)
	}
	refusals := 0
	for _, e := range log {
		if strings.Contains(e.Result, "refused") {
			refusals++
		}
	}
	if refusals < 8 {
		t.Errorf("%d refusals in the audit log: %+v", refusals, log)
	}

	// No plaintext in the database files.
	w.s.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(w.path + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(marker)) || bytes.Contains(b, []byte("PLAINTEXT")) {
			t.Fatalf("%s holds a plaintext", filepath.Base(w.path+suffix))
		}
	}
	w.open()
}

// TestRoomEpoch: a room epoch's pages must carry the epoch admin key's
// signature, whoever sends them.
func TestRoomEpoch(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.create(RoomEpoch, "team@conference.example.org")
	carol := w.add("carol")
	T, c, _ := recrypt.Seal(w.A, w.group[:], []byte("room page"), nil, w.rnd)
	r := Put{Group: w.group, Page: PageID{1}, T: T, Sealed: c}
	if _, err := w.s.Put(ctx, "bob@example.com/desk", r); !errors.Is(err, ErrRefused) {
		t.Fatalf("an unsigned room page: %v", err)
	}
	SignPut(&r, w.admin)
	if _, err := w.s.Put(ctx, "bob@example.com/desk", r); err != nil {
		t.Fatal(err)
	}
	f, err := w.fetch(carol, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.read(carol, f); len(got) != 1 || got[0] != "room page" {
		t.Fatalf("%q", got)
	}
	// Creating a group: a bad A, a bad signature, twice the same id.
	for name, mod := range map[string]func(*CreateGroup){
		"bad A":    func(r *CreateGroup) { r.A = recrypt.Point{1} },
		"bad sig":  func(r *CreateGroup) { r.Sig[0] ^= 1 },
		"same id":  func(r *CreateGroup) {},
		"no room":  func(r *CreateGroup) { r.Room = "" },
		"bad kind": func(r *CreateGroup) { r.Kind = 9 },
	} {
		g := CreateGroup{Group: w.group, Kind: RoomEpoch, Room: "team@conference.example.org", Epoch: 2, A: w.A}
		if name != "same id" {
			g.Group[0] ^= 0xff
		}
		SignCreateGroup(&g, "alice@example.org", w.admin)
		mod(&g)
		if err := w.s.CreateGroup(ctx, "alice@example.org/laptop", g); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// BenchmarkFetch64: the service answering a fetch of 64 pages of 48 KiB
// (SQLite reads and 64 recryptions, each checking T); the ratio to one
// edwards25519 scalar multiplication, measured in the same run, is
// reported as scalarmults/page.
func BenchmarkFetch64(b *testing.B) {
	t := &testing.T{}
	w := &world{t: t, rnd: &detRand{seed: "bench"}, clock: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC),
		path: filepath.Join(b.TempDir(), "bot.db"), devs: map[string]*device{}}
	w.open()
	defer w.s.Close()
	w.admin, _ = crypto.GenerateSigningKey(w.rnd)
	w.a, w.A, _ = recrypt.NewAdmin(w.rnd)
	w.create(OwnArchive, "")
	d := w.add("laptop")
	page := make([]byte, 1<<10) // 64 of them fit in one answer (MaxAnswer)
	for i := range MaxFetch {
		T, c, _ := recrypt.Seal(w.A, w.group[:], page, nil, w.rnd)
		var id PageID
		copy(id[:], fmt.Sprint(i))
		if _, err := w.s.Put(context.Background(), "alice@example.org/laptop", Put{Group: w.group, Page: id, T: T, Sealed: c}); err != nil {
			b.Fatal(err)
		}
	}
	unit := scalarMultCost(b)
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		f, err := w.fetch(d, 0, MaxFetch)
		if err != nil || len(f.Pages) != MaxFetch {
			b.Fatal(err)
		}
	}
	perPage := time.Since(start) / time.Duration(b.N*MaxFetch)
	b.StopTimer()
	unit = (unit + scalarMultCost(b)) / 2 // before and after the loop
	b.ReportMetric(float64(perPage)/float64(unit), "scalarmults/page")
	b.ReportMetric(float64(time.Second)/float64(perPage), "pages/s")
}

// scalarMultCost times edwards25519 scalar multiplications (the unit of
// docs/PERFORMANCE.md's recryption ratios).
func scalarMultCost(b *testing.B) time.Duration {
	var seed [64]byte
	seed[0] = 7
	s, err := edwards25519.NewScalar().SetUniformBytes(seed[:])
	if err != nil {
		b.Fatal(err)
	}
	p := edwards25519.NewGeneratorPoint()
	const n = 1000
	start := time.Now()
	for range n {
		p.ScalarMult(s, p)
	}
	return time.Since(start) / n
}
