package greeting_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

// primitives times the three primitives k times each, for interleaving
// with the operation under test: both then run under the same conditions
// (the same CPU frequency, the same load from other processes). Sign and
// verify are timed twice: over a 64-byte message (the goal's model) and
// over a message of the mean length the operation signed or verified (a
// model that also charges Ed25519's SHA-512 over long packets).
type primitives struct {
	x25519, peer *primitive.X25519Key
	sign         *crypto.SigningKey
	msg          []byte
	sig          crypto.Signature
	n            int
	tX, tS, tV   time.Duration

	signMsg, verifyMsg []byte // the mean lengths; empty until known
	verifySig          crypto.Signature
	tSL, tVL           time.Duration
}

func newPrimitives() *primitives {
	k, _ := primitive.GenerateX25519Key(nil)
	peer, _ := primitive.GenerateX25519Key(nil)
	sk, _ := crypto.GenerateSigningKey(nil)
	p := &primitives{x25519: k, peer: peer, sign: sk, msg: make([]byte, 64)}
	p.sig = sk.Sign(p.msg)
	return p
}

// sized sets the message lengths of the second sign and verify timings.
func (p *primitives) sized(signLen, verifyLen int) {
	if len(p.signMsg) == signLen && len(p.verifyMsg) == verifyLen {
		return
	}
	p.signMsg, p.verifyMsg = make([]byte, signLen), make([]byte, verifyLen)
	p.verifySig = p.sign.Sign(p.verifyMsg)
	p.tSL, p.tVL = 0, 0
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
	for range k {
		p.sign.Sign(p.signMsg)
	}
	t4 := time.Now()
	for range k {
		crypto.Verify(p.sign.Public(), p.verifyMsg, &p.verifySig)
	}
	t5 := time.Now()
	p.tX += t1.Sub(start)
	p.tS += t2.Sub(t1)
	p.tV += t3.Sub(t2)
	p.tSL += t4.Sub(t3)
	p.tVL += t5.Sub(t4)
	p.n += k
}

func (p *primitives) costs() (x, s, v, sLong, vLong float64) {
	n := float64(p.n)
	return float64(p.tX.Nanoseconds()) / n, float64(p.tS.Nanoseconds()) / n, float64(p.tV.Nanoseconds()) / n,
		float64(p.tSL.Nanoseconds()) / n, float64(p.tVL.Nanoseconds()) / n
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
	var counts primitive.OpCounts
	var opTime time.Duration
	iterations := 0
	for b.Loop() {
		before := primitive.ReadOpCounts()
		start := time.Now()
		o, err := r.run(initiator, next, all)
		opTime += time.Since(start)
		iterations++
		if err != nil || len(o.failed) > 0 {
			b.Fatalf("operation failed: %v %v", err, o.failed)
		}
		counts = primitive.ReadOpCounts().Sub(before)
		b.StopTimer()
		prim.sized(meanLen(counts.SignBytes, counts.Sign), meanLen(counts.VerifyBytes, counts.Verify))
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
	cx, cs, cv, csLong, cvLong := prim.costs()
	model := x*cx + s*cs + v*cv
	b.ReportMetric(perMember/1e3, "µs/member")
	b.ReportMetric(x, "x25519/member")
	b.ReportMetric(s, "sign/member")
	b.ReportMetric(v, "verify/member")
	b.ReportMetric(cx/1e3, "µs/x25519")
	b.ReportMetric(cs/1e3, "µs/sign")
	b.ReportMetric(cv/1e3, "µs/verify")
	b.ReportMetric(perMember/model, "ratio")
	// The same with sign and verify timed over messages of the mean length
	// the operation signed and verified (key expansions count as signatures
	// of an empty message there: they hash 32 bytes).
	b.ReportMetric(float64(counts.VerifyBytes)/float64(max(counts.Verify, 1)), "B/verify")
	b.ReportMetric(perMember/(x*cx+s*csLong+v*cvLong), "ratio-sized")
}

func meanLen(bytes, count int64) int {
	if count == 0 {
		return 0
	}
	return int(bytes / count)
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
	k, _ := primitive.GenerateX25519Key(nil)
	p, _ := primitive.GenerateX25519Key(nil)
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
