//go:build integration

package integration

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/edwards25519"

	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/archive"
	"github.com/mpenc/mpenc/internal/recrypt"
)

// TestIntegrationMeasureHistory: the history service over XMPP (issue
// [N], docs/PERFORMANCE.md "History recryption"): one account serves
// (archive.Service behind OnHistoryRequest, as mpenc-bot does), another
// writes pages one request at a time and then reads them all back,
// opening each. Times are reported per page and as scalar
// multiplications measured in the same run. Run with `make xmpp-measure`.
func TestIntegrationMeasureHistory(t *testing.T) {
	s := measuring(t)
	scalarMult := func() time.Duration {
		var sc edwards25519.Scalar
		b := make([]byte, 64)
		rand.Read(b)
		sc.SetUniformBytes(b)
		p := edwards25519.NewGeneratorPoint()
		start := time.Now()
		for range 1000 {
			p.ScalarMult(&sc, p)
		}
		return time.Since(start) / 1000
	}
	unitBefore := scalarMult()

	svc, err := archive.Open(filepath.Join(t.TempDir(), "history.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	serveCfg := s.config(0, testKey(t, 0))
	var handling time.Duration // the service's own time (the receive loop's goroutine only)
	serveCfg.OnHistoryRequest = func(from string, req []byte) []byte {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		defer func() { handling += time.Since(start) }()
		return svc.Handle(hctx, from, req)
	}
	service, err := xmpp.Dial(ctx, serveCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer service.Close()
	var seed [crypto.SeedSize]byte
	seed[0], seed[31] = 1, 0x5a
	key := crypto.NewSigningKey(seed)
	memberCfg := s.config(1, key.Public())
	member, err := xmpp.Dial(ctx, memberCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	self, owner := memberCfg.JID, strings.SplitN(memberCfg.JID, "/", 2)[0]
	ask := func(r archive.Request) []byte {
		t.Helper()
		b, err := member.HistoryRequest(ctx, serveCfg.JID, archive.EncodeRequest(r))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	a, A, err := recrypt.NewAdmin(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x, r, err := recrypt.Split(a, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var g archive.GroupID
	rand.Read(g[:])
	c := archive.CreateGroup{Group: g, Kind: archive.OwnArchive, Epoch: 1, A: A}
	archive.SignCreateGroup(&c, owner, key)
	if err := archive.DecodeAnswer(ask(c)); err != nil {
		t.Fatal(err)
	}
	m := archive.AddMember{Group: g, Seq: 1, Member: self, IK: key.Public(), Share: r, Entry: []byte("entry")}
	archive.SignAddMember(&m, key)
	if err := archive.DecodeAnswer(ask(m)); err != nil {
		t.Fatal(err)
	}

	var lines []string
	var after uint64
	for _, size := range []int{4 << 10, 40 << 10} {
		n := 200
		if size > 8<<10 {
			n = 100 // within the service's budget per account (archive.RatePerWindow)
		}
		page := make([]byte, size)
		handling = 0
		start := time.Now()
		for i := range n {
			T, sealed, err := recrypt.Seal(A, g[:], page, nil, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			p := archive.Put{Group: g, T: T, Sealed: sealed}
			copy(p.Page[:], fmt.Sprintf("%d-%d", size, i))
			if _, err := archive.DecodePutAnswer(ask(p)); err != nil {
				t.Fatal(err)
			}
		}
		put := time.Since(start) / time.Duration(n)
		putService := handling / time.Duration(n)
		handling = 0
		start = time.Now()
		read, rounds := 0, 0
		var open time.Duration
		for read < n && rounds < 2*n {
			rounds++
			f := archive.Fetch{Group: g, After: after, Max: archive.MaxFetch, Time: time.Now()}
			rand.Read(f.Nonce[:])
			archive.SignFetch(&f, self, key)
			got, err := archive.DecodeFetchAnswer(ask(f))
			if err != nil {
				t.Fatal(err)
			}
			o := time.Now()
			for _, p := range got.Pages {
				if _, err := recrypt.Open(x, A, p.T, p.R, g[:], p.Sealed, nil); err != nil {
					t.Fatalf("page %d: %v", p.Seq, err)
				}
				after = p.Seq
				read++
			}
			open += time.Since(o)
		}
		fetch := time.Since(start) / time.Duration(read)
		fetchService := handling / time.Duration(read)
		lines = append(lines, fmt.Sprintf("%2d KiB pages: put %v/page (one request each; the service's own part %v); fetch and open %v/page (%d requests; the service's part %v, opening %v)",
			size>>10, put.Round(time.Microsecond), putService.Round(time.Microsecond), fetch.Round(time.Microsecond), rounds,
			fetchService.Round(time.Microsecond), (open/time.Duration(read)).Round(time.Microsecond)))
	}
	unitAfter := scalarMult()
	unit := (unitBefore + unitAfter) / 2
	t.Logf("one edwards25519 scalar multiplication: %v before, %v after", unitBefore.Round(time.Microsecond), unitAfter.Round(time.Microsecond))
	for _, l := range lines {
		t.Log(l)
	}
	t.Logf("(as scalar multiplications: divide by %v)", unit.Round(time.Microsecond))
}
