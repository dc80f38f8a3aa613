//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/transcript"
)

// Session measurements for docs/XMPP.md ("Sessions over XMPP"): mpENC
// sessions of n devices, each a session.Session over its own channel/xmpp
// Channel, against the server under test, next to plain groupchat measured
// in the same run. Loops are bounded in count and time. Run with
//
//	MPENC_XMPP_MEASURE=1 ./integration/run.sh go test -tags integration -run '^TestIntegrationMeasureSession' -count=1 -v -timeout 30m ./integration/

// quietSession forms a session of n devices by hand (device 0 founds it
// and includes the others in one operation), with the channels' logs off,
// on session.LoopbackTiming.
func (s *server) quietSession(t *testing.T, n int) []*peer {
	t.Helper()
	room := s.newRoom(t)
	var ps []*peer
	for i := range n {
		ps = append(ps, s.newPeer(t, i, room, measureOpts()))
	}
	ps[0].join()
	if n > 1 {
		include(t, ps[0], ps[1:]...)
	}
	waitSession(t, ps)
	return ps
}

// closeAll closes every peer at once (not one after the other as the
// test's cleanups would, each one leaving a room the others then react to).
func closeAll(ps []*peer) {
	done := make(chan struct{})
	for _, p := range ps {
		go func() { p.close(); done <- struct{}{} }()
	}
	for range ps {
		<-done
	}
}

// messageAt returns when p handled the Message notice from author with
// text, waiting for it.
func (p *peer) messageAt(author, text string) time.Time {
	p.t.Helper()
	ns := p.waitNotes("message "+text, func(ns []session.Notice) bool { return hasMessage(ns, author, text) })
	for _, n := range ns {
		if n.Kind == session.Message && n.Author == author && n.Text == text {
			return n.At
		}
	}
	panic("unreachable")
}

func measureOpts() peerOpts {
	lt := session.LoopbackTiming()
	return peerOpts{quiet: true, timing: &lt, classify: true}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func TestIntegrationMeasureSessionLatency(t *testing.T) {
	s := measuring(t)
	t.Logf("load average at start: %s", loadavg())
	for _, n := range []int{3, 10, 30} {
		const msgs = 300
		ps := s.quietSession(t, n)
		sender := ps[0]
		var enc []time.Duration
		for k := range msgs {
			text := fmt.Sprintf("latency %d", k)
			start := time.Now()
			if _, err := sender.sess.Send(context.Background(), text); err != nil {
				t.Fatal(err)
			}
			for _, r := range ps[1:] { // closed loop: one message in flight
				enc = append(enc, r.messageAt(sender.id, text).Sub(start))
			}
		}
		logWarnings(t, fmt.Sprintf("n=%d latency", n), ps)
		closeAll(ps)

		// Plain groupchat through the same server, right after.
		m := newMeter(t, s, n)
		var plain []time.Duration
		for k := range msgs {
			start := time.Now()
			if err := m.chans[0].Send(context.Background(), fmt.Sprintf("?mpENC:m%d.", k)); err != nil {
				t.Fatal(err)
			}
			m.wait(t, k)
			m.mu.Lock()
			for i, at := range m.arrivals[k] {
				if i > 0 {
					plain = append(plain, at.Sub(start))
				}
			}
			m.mu.Unlock()
		}
		ep50, ep99 := percentile(enc, .5), percentile(enc, .99)
		pp50, pp99 := percentile(plain, .5), percentile(plain, .99)
		t.Logf("n=%-2d %d messages × %d receivers: encrypted p50 %s p99 %s; plain p50 %s p99 %s; ratio p50 %.1f p99 %.1f",
			n, msgs, n-1, ms(ep50), ms(ep99), ms(pp50), ms(pp99), float64(ep50)/float64(pp50), float64(ep99)/float64(pp99))
	}
	t.Logf("load average at end: %s", loadavg())
}

// logWarnings logs how many warnings of each kind the peers showed (a
// measurement reports them; it does not fail on them).
func logWarnings(t *testing.T, what string, ps []*peer) {
	kinds := map[session.NoticeKind]int{}
	var first session.Notice
	for _, p := range ps {
		for _, w := range warningsIn(p.notices()) {
			if len(kinds) == 0 {
				first = w
			}
			kinds[w.Kind]++
		}
	}
	if len(kinds) > 0 {
		t.Logf("%s: WARNINGS %v (first: %v)", what, kinds, first)
	}
}

// greets returns the greeting packets delivered to the peers so far.
func greets(ps []*peer) int64 {
	var sum int64
	for _, p := range ps {
		sum += p.tap.greets.Load()
	}
	return sum
}

// packets returns the packets delivered to the peers so far.
func packets(ps []*peer) int64 {
	var sum int64
	for _, p := range ps {
		sum += p.tap.packets.Load()
	}
	return sum
}

func TestIntegrationMeasureSessionInclude(t *testing.T) {
	s := measuring(t)
	t.Logf("load average at start: %s", loadavg())
	for _, n := range []int{5, 10, 30} {
		const rounds = 3
		var times []time.Duration
		var during, settle, greeting []int64
		for range rounds {
			ps := s.quietSession(t, n)
			newcomer := s.newPeer(t, n, ps[0].room, measureOpts())
			errs := make(chan error, 1)
			go func() { errs <- newcomer.sess.Join(ctxBound(t)) }()
			ps[0].waitNotes("the join request", func(ns []session.Notice) bool {
				return slices.ContainsFunc(ns, func(n session.Notice) bool { return n.Kind == session.JoinRequest && n.Author == newcomer.id })
			})
			all := append(slices.Clone(ps), newcomer)
			base, gbase := packets(all), greets(all)
			start := time.Now()
			if err := ps[0].sess.Include(ctxBound(t), []string{newcomer.id}); err != nil {
				t.Fatal(err)
			}
			// Done when every member, the newcomer included, has shown the
			// new membership.
			var end time.Time
			for _, p := range all {
				ns := p.waitNotes("the new membership", func(ns []session.Notice) bool {
					return slices.ContainsFunc(ns, func(n session.Notice) bool {
						return n.Kind == session.Membership && slices.Contains(n.Include, newcomer.id) || p == newcomer && n.Kind == session.Membership
					})
				})
				for _, n := range ns {
					if n.Kind == session.Membership && (slices.Contains(n.Include, newcomer.id) || p == newcomer) && n.At.After(end) {
						end = n.At
					}
				}
			}
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
			times = append(times, end.Sub(start))
			during = append(during, packets(all)-base)
			// Then the previous subsession shuts down (FINs and their acks):
			// count until the room is quiet for a second.
			last, quietSince := packets(all), time.Now()
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && time.Since(quietSince) < time.Second; {
				time.Sleep(50 * time.Millisecond)
				if c := packets(all); c != last {
					last, quietSince = c, time.Now()
				}
			}
			settle = append(settle, last-base)
			greeting = append(greeting, greets(all)-gbase)
			logWarnings(t, fmt.Sprintf("n=%d include", n), all)
			closeAll(all)
		}
		slices.Sort(times)
		t.Logf("n=%-2d include one member (n → n+1), %d rounds: time %s / %s / %s (min/median/max); packets delivered to the n+1 clients during it %v, until quiet (previous subsession's shutdown included) %v, of which greeting packets %v",
			n, rounds, ms(times[0]), ms(times[rounds/2]), ms(times[rounds-1]), during, settle, greeting)
	}
	t.Logf("load average at end: %s", loadavg())
}

// paced is one run of a sender at a fixed rate.
type paced struct {
	rate               int // asked, messages per second
	achieved           float64
	lagP50, lagP99     time.Duration // send → Message notice at a receiver
	ackP50, ackMax     time.Duration // send → FullyAcked at the sender
	warnings           int
	kinds              map[session.NoticeKind]int
	firstWarning       session.Notice
	unacked            int           // never fully acked within 30 s of the last delivery
	deliveredAllWithin time.Duration // from the first send to the last delivery
}

// pace has ps[0] send rate messages per second for dur, then waits until
// every receiver showed them all and the sender saw them all fully acked.
func pace(t *testing.T, ps []*peer, rate int, dur time.Duration, tag string) paced {
	t.Helper()
	sender := ps[0]
	count := int(float64(rate) * dur.Seconds())
	warnBase := make([]int, len(ps))
	msgBase := make([]int, len(ps))
	for i, p := range ps {
		ns := p.notices()
		warnBase[i] = len(warningsIn(ns))
		msgBase[i] = len(ofKind(ns, session.Message))
	}
	ackBase := len(ofKind(sender.notices(), session.FullyAcked))
	sentAt := make(map[string]time.Time, count)
	ids := make(map[transcript.ID]time.Time, count)
	start := time.Now()
	for k := 0; k < count; {
		due := int(time.Since(start).Seconds()*float64(rate)) + 1
		for ; k < count && k < due; k++ {
			text := fmt.Sprintf("%s %d", tag, k)
			now := time.Now()
			id, err := sender.sess.Send(context.Background(), text)
			if err != nil {
				t.Fatal(err)
			}
			sentAt[text] = now
			ids[id] = now
		}
		time.Sleep(5 * time.Millisecond)
	}
	sendDur := time.Since(start)
	res := paced{rate: rate, achieved: float64(count) / sendDur.Seconds()}
	var lags []time.Duration
	var last time.Time
	for i, r := range ps[1:] {
		r.waitCount(session.Message, msgBase[i+1]+count, 5*time.Minute)
		for _, n := range r.notices() {
			if at, ok := sentAt[n.Text]; ok && n.Kind == session.Message && n.Author == sender.id {
				lags = append(lags, n.At.Sub(at))
				if n.At.After(last) {
					last = n.At
				}
			}
		}
	}
	res.deliveredAllWithin = last.Sub(start)
	// Every message is fully acked, or the run failed (counted below).
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && len(ofKind(sender.notices(), session.FullyAcked)) < ackBase+count {
		time.Sleep(100 * time.Millisecond)
	}
	var acks []time.Duration
	for _, n := range sender.notices() {
		if at, ok := ids[n.ID]; ok && n.Kind == session.FullyAcked {
			acks = append(acks, n.At.Sub(at))
		}
	}
	res.lagP50, res.lagP99 = percentile(lags, .5), percentile(lags, .99)
	res.unacked = count - len(acks)
	if len(acks) > 0 {
		slices.Sort(acks)
		res.ackP50, res.ackMax = percentile(acks, .5), acks[len(acks)-1]
	}
	res.kinds = map[session.NoticeKind]int{}
	for i, p := range ps {
		w := warningsIn(p.notices())[warnBase[i]:]
		if len(w) > 0 && res.warnings == 0 {
			res.firstWarning = w[0]
		}
		res.warnings += len(w)
		for _, n := range w {
			res.kinds[n.Kind]++
		}
	}
	return res
}

// TestIntegrationMeasureSessionThroughput: the rate one sender can sustain
// in a session: it sends at a fixed pace for a few seconds; a rate is
// sustained when every message reached everyone and came back fully
// acknowledged with no warning at all (no NotFullyAcked past FA). Plain
// groupchat at full speed through the same server in the same run.
func TestIntegrationMeasureSessionThroughput(t *testing.T) {
	s := measuring(t)
	t.Logf("load average at start: %s", loadavg())
	const dur = 4 * time.Second
	for _, n := range []int{3, 10} {
		ps := s.quietSession(t, n)
		best := 0
		for _, rate := range []int{50, 100, 200, 400, 800, 1600, 3200} {
			r := pace(t, ps, rate, dur, fmt.Sprintf("r%d", rate))
			t.Logf("n=%-2d %4d msg/s asked (%.0f sent) for %v: lag to receivers p50 %s p99 %s; full ack p50 %s max %s; never fully acked %d; warnings %d %v (first: %v)",
				n, rate, r.achieved, dur, ms(r.lagP50), ms(r.lagP99), ms(r.ackP50), ms(r.ackMax), r.unacked, r.warnings, r.kinds, r.firstWarning)
			if r.warnings > 0 || r.unacked > 0 {
				break
			}
			best = rate
		}
		closeAll(ps)

		const msgs = 5000
		m := newMeter(t, s, n)
		pstart := time.Now()
		for k := range msgs {
			if err := m.chans[0].Send(context.Background(), fmt.Sprintf("?mpENC:m%d.", k)); err != nil {
				t.Fatal(err)
			}
		}
		for range msgs {
			select {
			case <-m.notify:
			case <-time.After(2 * time.Minute):
				t.Fatalf("n=%d: not every plain message arrived", n)
			}
		}
		plain := float64(msgs) / time.Since(pstart).Seconds()
		t.Logf("n=%-2d encrypted: sustained %d msg/s (the highest rate tried with no warning); plain, %d messages at full speed: %.0f msg/s delivered to all",
			n, best, msgs, plain)
	}
	t.Logf("load average at end: %s", loadavg())
}
