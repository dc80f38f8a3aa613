package greeter_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mpenc/mpenc/crypto"
)

// primitives times the three primitives k times each, for interleaving
// with the operation under test: both then run under the same conditions
// (the same CPU frequency, the same load from other processes).
type primitives struct {
	x25519, peer *crypto.X25519Key
	sign         *crypto.SigningKey
	msg          []byte
	sig          crypto.Signature
	n            int
	tX, tS, tV   time.Duration
}

func newPrimitives() *primitives {
	k, _ := crypto.GenerateX25519Key(nil)
	peer, _ := crypto.GenerateX25519Key(nil)
	sk, _ := crypto.GenerateSigningKey(nil)
	p := &primitives{x25519: k, peer: peer, sign: sk, msg: make([]byte, 64)}
	p.sig = sk.Sign(p.msg)
	return p
}

func (p *primitives) sample(k int) {
	start := time.Now()
	for range k {
		p.x25519.DH(p.peer.Public())
	}
	t1 := time.Now()
	for range k {
		p.sign.Sign(p.msg)
	}
	t2 := time.Now()
	for range k {
		crypto.Verify(p.sign.Public(), p.msg, &p.sig)
	}
	t3 := time.Now()
	p.tX += t1.Sub(start)
	p.tS += t2.Sub(t1)
	p.tV += t3.Sub(t2)
	p.n += k
}

func (p *primitives) costs() (x, s, v float64) {
	n := float64(p.n)
	return float64(p.tX.Nanoseconds()) / n, float64(p.tS.Nanoseconds()) / n, float64(p.tV.Nanoseconds()) / n
}

// benchOp times one operation among n members (run single-threaded, so
// time is CPU time) and reports the per-member time, the per-member
// primitive counts, and the ratio to the model
// X25519 × count + sign × count + verify × count, with the primitive costs
// sampled between the iterations of the same benchmark.
func benchOp(b *testing.B, n int, setup func(r *room, all []string) (initiator string, next []string)) {
	all := ids(n + 1)
	r := newRoom(b, uint64(n), all...)
	initiator, next := setup(r, all)
	prim := newPrimitives()
	// The previous states are immutable, so the same operation can run
	// again and again from them.
	var counts crypto.OpCounts
	var opTime time.Duration
	iterations := 0
	for b.Loop() {
		before := crypto.ReadOpCounts()
		start := time.Now()
		o, err := r.run(initiator, next, all)
		opTime += time.Since(start)
		iterations++
		if err != nil || len(o.failed) > 0 {
			b.Fatalf("operation failed: %v %v", err, o.failed)
		}
		counts = crypto.ReadOpCounts().Sub(before)
		b.StopTimer()
		prim.sample(20)
		b.StartTimer()
	}
	// Everyone who takes part: the members after the operation, and those
	// it excludes.
	involved := slices.Clone(next)
	if prev := r.states[initiator]; prev != nil {
		involved = append(involved, prev.Members...)
	}
	members := float64(len(slices.Compact(slices.Sorted(slices.Values(involved)))))
	perMember := float64(opTime.Nanoseconds()) / float64(iterations) / members
	x, s, v := float64(counts.X25519)/members, float64(counts.Sign)/members, float64(counts.Verify)/members
	cx, cs, cv := prim.costs()
	model := x*cx + s*cs + v*cv
	b.ReportMetric(perMember/1e3, "µs/member")
	b.ReportMetric(x, "x25519/member")
	b.ReportMetric(s, "sign/member")
	b.ReportMetric(v, "verify/member")
	b.ReportMetric(cx/1e3, "µs/x25519")
	b.ReportMetric(cs/1e3, "µs/sign")
	b.ReportMetric(cv/1e3, "µs/verify")
	b.ReportMetric(perMember/model, "ratio")
}

var benchSizes = []int{10, 50, 100}

func BenchmarkStart(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			benchOp(b, n, func(r *room, all []string) (string, []string) { return all[0], all[:n] })
		})
	}
}

func BenchmarkIncludeOne(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			benchOp(b, n, func(r *room, all []string) (string, []string) {
				r.mustOp(all[0], all[:n])
				return all[n/2], all[:n+1]
			})
		})
	}
}

func BenchmarkExcludeOne(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			benchOp(b, n, func(r *room, all []string) (string, []string) {
				r.mustOp(all[0], all[:n])
				return all[n/2], slices.Delete(slices.Clone(all[:n]), 1, 2)
			})
		})
	}
}

func BenchmarkRefresh(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			benchOp(b, n, func(r *room, all []string) (string, []string) {
				r.mustOp(all[0], all[:n])
				return all[n/2], all[:n]
			})
		})
	}
}

// Primitive costs in this package's run, for the record.
func BenchmarkPrimitiveX25519(b *testing.B) {
	k, _ := crypto.GenerateX25519Key(nil)
	p, _ := crypto.GenerateX25519Key(nil)
	for b.Loop() {
		k.DH(p.Public())
	}
}

func BenchmarkPrimitiveSign(b *testing.B) {
	k, _ := crypto.GenerateSigningKey(nil)
	m := make([]byte, 64)
	for b.Loop() {
		k.Sign(m)
	}
}

func BenchmarkPrimitiveVerify(b *testing.B) {
	k, _ := crypto.GenerateSigningKey(nil)
	m := make([]byte, 64)
	s := k.Sign(m)
	for b.Loop() {
		crypto.Verify(k.Public(), m, &s)
	}
}
