//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/channel/xmpp"
)

// Measurements for docs/XMPP.md: plain groupchat latency and one sender's
// sustainable rate, through channel/xmpp, against the server under test
// (loopback only: the harness binds 127.0.0.1). Loops are bounded in count
// and time. Run with `make xmpp-measure`.

func measuring(t *testing.T) *server {
	if os.Getenv("MPENC_XMPP_MEASURE") != "1" {
		t.Skip("measurement, not a test: set MPENC_XMPP_MEASURE=1 (make xmpp-measure)")
	}
	return serverFromEnv(t)
}

// meter is a room of n channels whose packet arrivals are time-stamped.
type meter struct {
	chans []*xmpp.Channel
	accts []*xmpp.Account // each channel's
	mu    sync.Mutex
	// arrivals[k][i] is when channel i received message k.
	arrivals map[int][]time.Time
	got      map[int]int // message k → receivers so far
	notify   chan int    // message k complete
	done     sync.WaitGroup
}

func newMeter(t *testing.T, s *server, n int) *meter {
	room := s.newRoom(t)
	m := &meter{arrivals: make(map[int][]time.Time), got: make(map[int]int), notify: make(chan int, 1<<16)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i := range n {
		cfg := s.config(i, testKey(t, i))
		cfg.EventQueue = 1 << 17
		acct, ch, err := openRoom(ctx, cfg, i, room)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		m.accts = append(m.accts, acct)
		m.chans = append(m.chans, ch)
		m.done.Add(1)
		go func() {
			defer m.done.Done()
			for ev := range ch.Events() {
				if ev.Kind != channel.EventPacket {
					continue
				}
				now := time.Now()
				k, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(ev.Body, "?mpENC:m"), "."))
				if err != nil {
					continue
				}
				m.mu.Lock()
				if m.arrivals[k] == nil {
					m.arrivals[k] = make([]time.Time, n)
				}
				m.arrivals[k][i] = now
				m.got[k]++
				if m.got[k] == n {
					m.notify <- k
				}
				m.mu.Unlock()
			}
		}()
		if err := ch.Enter(ctx); err != nil {
			t.Fatalf("enter %d: %v", i, err)
		}
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, a := range m.accts {
			wg.Go(func() { a.Close() })
		}
		wg.Wait()
		m.done.Wait()
	})
	return m
}

func (m *meter) wait(t *testing.T, k int) {
	select {
	case got := <-m.notify:
		if got != k {
			t.Fatalf("message %d complete while waiting for %d", got, k)
		}
	case <-time.After(waitBound):
		t.Fatalf("message %d did not reach everyone", k)
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func TestIntegrationMeasureLatency(t *testing.T) {
	s := measuring(t)
	for _, n := range []int{3, 10, 30} {
		m := newMeter(t, s, n)
		const msgs = 300
		var lat, echo []time.Duration
		sender := m.chans[0]
		for k := range msgs {
			start := time.Now()
			if err := sender.Send(context.Background(), fmt.Sprintf("?mpENC:m%d.", k)); err != nil {
				t.Fatal(err)
			}
			m.wait(t, k) // closed loop: one message in flight, no queueing
			m.mu.Lock()
			for i, at := range m.arrivals[k] {
				if i == 0 {
					echo = append(echo, at.Sub(start))
				} else {
					lat = append(lat, at.Sub(start))
				}
			}
			m.mu.Unlock()
		}
		t.Logf("n=%-2d plain groupchat latency over %d messages × %d receivers: p50 %v p99 %v; sender's echo p50 %v p99 %v",
			n, msgs, n-1, percentile(lat, .5).Round(time.Microsecond), percentile(lat, .99).Round(time.Microsecond),
			percentile(echo, .5).Round(time.Microsecond), percentile(echo, .99).Round(time.Microsecond))
	}
}

func TestIntegrationMeasureThroughput(t *testing.T) {
	s := measuring(t)
	for _, n := range []int{2, 3, 10} {
		m := newMeter(t, s, n)
		const msgs = 5000
		sender := m.chans[0]
		start := time.Now()
		for k := range msgs {
			if err := sender.Send(context.Background(), fmt.Sprintf("?mpENC:m%d.", k)); err != nil {
				t.Fatal(err)
			}
		}
		sent := time.Since(start)
		for range msgs {
			select {
			case <-m.notify:
			case <-time.After(2 * time.Minute):
				t.Fatalf("n=%d: not every message arrived", n)
			}
		}
		all := time.Since(start)
		// Order check: everyone saw the sender's messages in sending order.
		m.mu.Lock()
		for i := range n {
			for k := 1; k < msgs; k++ {
				if m.arrivals[k][i].Before(m.arrivals[k-1][i]) {
					t.Errorf("receiver %d: message %d before %d", i, k, k-1)
				}
			}
		}
		m.mu.Unlock()
		t.Logf("n=%-2d one sender, %d plain messages: sent in %v (%.0f msg/s written), all delivered to all %d occupants in %v: %.0f msg/s sustained, %.0f deliveries/s",
			n, msgs, sent.Round(time.Millisecond), float64(msgs)/sent.Seconds(), n, all.Round(time.Millisecond),
			float64(msgs)/all.Seconds(), float64(msgs*n)/all.Seconds())
	}
}
