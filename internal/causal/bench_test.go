package causal_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/transcript"
)

// chatHistory makes count messages among n members that look like a busy
// chat: each message cites the heads of the whole history (70%) or of the
// history without its last message (30%, a concurrent send), provided the
// author's own last message is in that prefix; 70% Payloads, the rest
// acks. Parent slices are shared, so building it costs little beyond the
// messages themselves.
func chatHistory(n, count int, seed uint64) []causal.Message {
	rng := rand.New(rand.NewPCG(seed, 7))
	msgs := make([]causal.Message, 0, count)
	lastBy := make([]int, n)
	for a := range lastBy {
		lastBy[a] = -1
	}
	var headsPrev, heads []transcript.ID // heads of history[:len-1] and history
	for k := 0; k < count; k++ {
		a := rng.IntN(n)
		parents := heads
		if k > 0 && rng.IntN(10) < 3 && lastBy[a] < k-1 {
			parents = headsPrev
		}
		kind := causal.KindPayload
		if rng.IntN(10) < 3 {
			kind = causal.KindAutoAck
		}
		m := causal.Message{ID: mkID(k), Author: a, Parents: parents, Kind: kind}
		msgs = append(msgs, m)
		lastBy[a] = k
		// New heads: heads minus m's parents, plus m.
		next := make([]transcript.ID, 0, len(heads)+1)
		for _, h := range heads {
			cited := false
			for _, p := range parents {
				if p == h {
					cited = true
				}
			}
			if !cited {
				next = append(next, h)
			}
		}
		headsPrev, heads = heads, append(next, m.ID)
	}
	return msgs
}

// measureInsert accepts msgs into a fresh graph (and a MessageLog when
// withLog) and returns heap bytes per message and the elapsed time.
func measureInsert(tb testing.TB, n int, msgs []causal.Message, withLog bool) (float64, time.Duration) {
	members := make([]string, n)
	for i := range members {
		members[i] = fmt.Sprintf("member%02d@example.org/res", i)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	g, err := causal.New(members, causal.Options{HashKey: 1})
	if err != nil {
		tb.Fatal(err)
	}
	var log *causal.MessageLog
	var ref causal.TranscriptRef
	if withLog {
		log = causal.NewMessageLog()
		ref, _ = log.AddTranscript(g, causal.NoTranscript, nil)
	}
	for k, m := range msgs {
		res, err := g.Accept(m)
		if err != nil {
			tb.Fatalf("message %d: %v", k, err)
		}
		if withLog {
			if _, _, err := log.Append(ref, res.Index, ""); err != nil {
				tb.Fatal(err)
			}
		}
	}
	elapsed := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(g)
	runtime.KeepAlive(log)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(len(msgs)), elapsed
}

// BenchmarkGraphMemory reports, per message, the heap the graph (and the
// graph plus MessageLog) holds after accepting 10⁵ and 10⁶ chat messages,
// and the insertion rate. Run with -benchtime 1x:
//
//	go test -run '^$' -bench GraphMemory -benchtime 1x ./transcript/
func BenchmarkGraphMemory(b *testing.B) {
	for _, n := range []int{3, 8, 50} {
		for _, count := range []int{100_000, 1_000_000} {
			msgs := chatHistory(n, count, uint64(n))
			for _, withLog := range []bool{false, true} {
				name := fmt.Sprintf("n=%d/msgs=%d/log=%v", n, count, withLog)
				b.Run(name, func(b *testing.B) {
					var per float64
					var el time.Duration
					for b.Loop() {
						per, el = measureInsert(b, n, msgs, withLog)
					}
					b.ReportMetric(per, "B/msg")
					b.ReportMetric(float64(count)/el.Seconds(), "msgs/s")
				})
			}
		}
	}
}

// BenchmarkAccept is the steady-state cost of one accept in a chat of 3.
func BenchmarkAccept(b *testing.B) {
	msgs := chatHistory(3, 1<<16, 3)
	g, _ := causal.New([]string{"a", "b", "c"}, causal.Options{})
	k := 0
	for b.Loop() {
		if k == len(msgs) {
			b.StopTimer()
			g, _ = causal.New([]string{"a", "b", "c"}, causal.Options{})
			k = 0
			b.StartTimer()
		}
		if _, err := g.Accept(msgs[k]); err != nil {
			b.Fatal(err)
		}
		k++
	}
}

// BenchmarkHellGraph10000 accepts the reference's 10,000-message hell graph.
func BenchmarkHellGraph10000(b *testing.B) {
	msgs := hellGraph(2, 10000)
	for b.Loop() {
		g, _ := causal.New([]string{"a", "b"}, causal.Options{})
		for _, m := range msgs {
			if _, err := g.Accept(m); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestChatHistoryIsValid keeps the benchmark's generator honest.
func TestChatHistoryIsValid(t *testing.T) {
	msgs := chatHistory(4, 3000, 1)
	g, _ := causal.New([]string{"a", "b", "c", "d"}, causal.Options{})
	o := newOracle(4)
	two := 0
	for k, m := range msgs {
		if err := o.check(m); err != nil {
			t.Fatalf("message %d invalid: %v", k, err)
		}
		o.add(m)
		if _, err := g.Accept(m); err != nil {
			t.Fatalf("message %d: %v", k, err)
		}
		if len(m.Parents) > 1 {
			two++
		}
	}
	if two < 300 {
		t.Errorf("only %d messages with concurrent parents", two)
	}
}
