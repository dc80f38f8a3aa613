//go:build integration

package integration

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/sessionpeek"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/session"
)

// A flooding occupant (docs/PERFORMANCE.md, "A flooding occupant (issue
// [I])"): three members in one session, each a session.Session over its
// own channel/xmpp Channel, and a fourth occupant of the room, a raw XMPP
// client that is no member, which floods forged mpENC data packets at a
// fixed rate while one member sends a message every 100 ms. Reported per
// run: the honest messages' latency (Session.Send to the Message notice at
// each other member), how many forged packets reached the members and how
// far behind the members fell (forged packets sent and not yet taken, and
// the longest the channel's own event queue grew: it drops the connection
// at 16384 waiting events), signature verifications, CPU, and whether the
// room held (no member out of the room, no Gap, the same session).
//
// The forged packets are the worst case for a reader that tries every
// member's key on a packet with the right SIDKEY_HINT: the hint is the
// current subsession's (read off the members' own packets, as any occupant
// can), the signature is junk but well-formed (a canonical S, so that
// checking it costs a whole verification), the body is random and as long
// as a real message's. Fresh: each packet differs (its IV carries a
// sequence number and its send time). Copies: one such packet sent over and
// over. Member: fresh packets, but sent by the third member through its
// own channel (an insider: its packets pass the membership check), while
// the raw occupant stays silent.
//
// A measurement, not a test: it asserts nothing about timing and runs only
// with MPENC_XMPP_MEASURE=1. It is not named TestIntegrationMeasure*, so
// that make xmpp-measure (30 min timeout) does not run it. Run with
//
//	MPENC_XMPP_MEASURE=1 MPENC_XMPP_SERVER=prosody ./integration/run.sh go test -tags integration \
//	  -run '^TestIntegrationFloodMeasure$' -count=1 -v -timeout 30m ./integration/
//
// MPENC_FLOOD_RUNS (default "0 1000 1000copies 1000member 3000 3000copies
// 3000member 10000") lists the runs: a rate in forged packets per second,
// 0 for the baseline (the occupant is there and silent), with "copies" or
// "member" for those variants; MPENC_FLOOD_SECONDS (default 25) is each
// flood's length.
func TestIntegrationFloodMeasure(t *testing.T) {
	if os.Getenv("MPENC_XMPP_MEASURE") != "1" {
		t.Skip("measurement, not a test: set MPENC_XMPP_MEASURE=1 (make xmpp-measure does not run this one)")
	}
	s := serverFromEnv(t)
	runs := strings.Fields(os.Getenv("MPENC_FLOOD_RUNS"))
	if len(runs) == 0 {
		runs = strings.Fields("0 1000 1000copies 1000member 3000 3000copies 3000member 10000")
	}
	dur := 25 * time.Second
	if v := os.Getenv("MPENC_FLOOD_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 || n > 300 {
			t.Fatalf("MPENC_FLOOD_SECONDS: %q is not a number of seconds in [5, 300]", v)
		}
		dur = time.Duration(n) * time.Second
	}
	t.Logf("load average at start: %s", loadavg())
	var table []string
	for _, spec := range runs {
		num := strings.TrimRightFunc(spec, func(r rune) bool { return r < '0' || r > '9' })
		variant := strings.TrimPrefix(spec, num)
		rate, err := strconv.Atoi(num)
		if err != nil || rate < 0 || rate > 100000 || !slices.Contains([]string{"", "copies", "member"}, variant) {
			t.Fatalf("MPENC_FLOOD_RUNS: %q is not RATE, RATEcopies or RATEmember", spec)
		}
		if variant == "" {
			variant = "fresh"
		}
		t.Run(spec, func(t *testing.T) {
			table = append(table, floodRun(t, s, rate, variant, dur))
		})
	}
	t.Logf("load average at end: %s", loadavg())
	t.Logf("summary (asked/s | sent/s | forged deliveries/s per member | honest p50 / p99 / max | not shown | verify per forged delivery | flood lag p50 / max, most behind, event queue high-water mark | room held | CPU test process, server | load):\n%s",
		strings.Join(table, "\n"))
}

// floodStat is what one member's tap saw of the flood.
type floodStat struct {
	seen       atomic.Int64 // forged packets delivered to the session
	maxBehind  atomic.Int64 // most forged packets sent and not yet delivered
	maxQueue   atomic.Int64 // longest the channel's event queue was (sampled)
	ownLeaves  atomic.Int64 // EventOwnLeave: out of the room
	overflows  atomic.Int64 // ... because the event queue overflowed
	mu         sync.Mutex
	lags       []time.Duration // send → delivered to the session (fresh packets)
	leaveCause []string
}

// flooder is the flooding occupant and what it sent.
type flooder struct {
	r      *raw                   // the raw occupant (silent in the member variant)
	from   atomic.Pointer[string] // the flood's sender, once it is in the room
	sent   atomic.Int64
	bytes  atomic.Int64 // stanza bytes written (raw occupant)
	copies bool
	write  func(bodies []string) (int, error) // sends bodies; stanza bytes written
	err    error
}

func floodRun(t *testing.T, s *server, rate int, variant string, dur time.Duration) string {
	loadStart := loadavg()
	copies := variant == "copies"
	fl := &flooder{copies: copies}
	room := s.newRoom(t)
	stats := make([]*floodStat, 3)
	var ps []*peer
	for i := range 3 {
		st := &floodStat{}
		stats[i] = st
		o := measureOpts()
		o.watch = func(ev channel.Event) { st.watch(ev, fl) }
		ps = append(ps, s.newPeer(t, i, room, o))
	}
	defer closeAll(ps)
	ps[0].join() // creates the room
	fl.r = s.rawDial(t, 5)
	fl.r.join(room, "flooder", "")
	include(t, ps[0], ps[1:]...)
	from := fl.r.jid.String()
	fl.write = func(bodies []string) (int, error) {
		var b strings.Builder
		for _, body := range bodies {
			fmt.Fprintf(&b, `<message to='%s' type='groupchat' id='%s'><body>%s</body></message>`, room, randomHex(), body)
		}
		return b.Len(), fl.r.write(b.String())
	}
	if variant == "member" {
		from = ps[2].id
		fl.write = func(bodies []string) (int, error) {
			for _, body := range bodies {
				if err := ps[2].ch.Send(context.Background(), body); err != nil {
					return 0, err
				}
			}
			return 0, nil
		}
	}
	fl.from.Store(&from)
	before := waitSession(t, ps)
	exchange(t, ps, ps, "warm-up")

	// What the occupant learns from the room: the SIDKEY_HINT and size of
	// the members' data packets.
	hint, size, ok := lastDataPacket(fl.r)
	if !ok {
		t.Fatal("the occupant saw no data packet of the members")
	}
	skh := wire.SidKeyHash(before.sid[:], before.key[:])
	if hint != skh[0] {
		t.Logf("the last data packet the occupant saw has hint %#x, the session's is %#x: using the session's", hint, skh[0])
		hint = skh[0]
	}
	fl.r.mu.Lock()
	fl.r.in = nil
	fl.r.mu.Unlock()

	sender := ps[0]
	noteBase := make([]int, len(ps))
	for i, p := range ps {
		noteBase[i] = len(p.notices())
	}
	ops0 := primitive.ReadOpCounts()
	cpu0, srv0 := processCPU(), serverCPU()
	start := time.Now()

	// The channels' event queues, sampled every 2 ms until the drain ends.
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				for i, p := range ps {
					if n := int64(queueLen(p.ch)); n > stats[i].maxQueue.Load() {
						stats[i].maxQueue.Store(n)
					}
				}
			}
		}
	}()

	stopFlood := make(chan struct{})
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		if rate > 0 {
			fl.flood(hint, size, rate, dur, stopFlood)
		}
	}()
	// The occupant's own echoes pile up in raw.in: drop them as they come.
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-floodDone:
				return
			case <-tick.C:
				fl.r.mu.Lock()
				fl.r.in = nil
				fl.r.mu.Unlock()
			}
		}
	}()

	// The honest sender: a message every 100 ms from 2 s into the flood
	// (once it is steady) to its end.
	sentAt := map[string]time.Time{}
	var sendCalls []time.Duration
	var sendErrs int
	first := start.Add(2 * time.Second)
	for k := 0; ; k++ {
		due := first.Add(time.Duration(k) * 100 * time.Millisecond)
		if due.After(start.Add(dur)) {
			break
		}
		time.Sleep(time.Until(due))
		text := fmt.Sprintf("honest %d", k)
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		at := time.Now()
		_, err := sender.sess.Send(ctx, text)
		cancel()
		sendCalls = append(sendCalls, time.Since(at))
		if err != nil {
			sendErrs++
			continue
		}
		sentAt[text] = at
	}
	time.Sleep(time.Until(start.Add(dur)))
	close(stopFlood)
	<-floodDone
	floodEnd := time.Now()
	cpu1, srv1 := processCPU(), serverCPU()
	ops1 := primitive.ReadOpCounts()
	seenAtEnd := make([]int64, len(ps))
	for i, st := range stats {
		seenAtEnd[i] = st.seen.Load()
	}
	loadMid := loadavg()

	// Drain: every member shows every honest message and takes every forged
	// packet, or 60 s pass.
	drainStart := time.Now()
	deadline := drainStart.Add(60 * time.Second)
	for time.Now().Before(deadline) {
		done := true
		for i, r := range ps[1:] {
			if shown(r, sender.id, sentAt) < len(sentAt) || stats[i+1].seen.Load() < fl.sent.Load() {
				done = false
			}
		}
		if stats[0].seen.Load() < fl.sent.Load() {
			done = false
		}
		if done {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	drained := time.Since(drainStart)
	close(stopSampling)
	<-sampled
	opsDrained := primitive.ReadOpCounts()

	// Honest latency at the two receivers.
	var lat []time.Duration
	missing := 0
	for _, r := range ps[1:] {
		got := map[string]bool{}
		for _, n := range r.notices() {
			if at, ok := sentAt[n.Text]; ok && n.Kind == session.Message && n.Author == sender.id && !got[n.Text] {
				got[n.Text] = true
				lat = append(lat, n.At.Sub(at))
			}
		}
		missing += len(sentAt) - len(got)
	}

	// Did the room hold?
	kinds := map[session.NoticeKind]int{}
	gaps := 0
	for i, p := range ps {
		for _, n := range p.notices()[noteBase[i]:] {
			if n.Kind == session.Gap {
				gaps++
			}
			if n.IsWarning() {
				kinds[n.Kind]++
			}
		}
	}
	same := true
	for _, p := range ps {
		v, err := peekView(p)
		if err != nil || !v.ok || v.sid != before.sid || v.state != session.StateJoined || !slices.Equal(v.members, before.members) {
			same = false
			if err != nil {
				t.Logf("%v: view: %v", p, err)
			} else {
				t.Logf("%v: after the flood: ok=%v state=%v same sid=%v members=%v", p, v.ok, v.state, v.sid == before.sid, v.members)
			}
		}
	}
	var leaves, overflows int64
	var causes []string
	var lags []time.Duration
	var behind, queued int64
	for _, st := range stats {
		leaves += st.ownLeaves.Load()
		overflows += st.overflows.Load()
		behind = max(behind, st.maxBehind.Load())
		queued = max(queued, st.maxQueue.Load())
		st.mu.Lock()
		causes = append(causes, st.leaveCause...)
		lags = append(lags, st.lags...)
		st.mu.Unlock()
	}

	floodDur := floodEnd.Sub(start)
	sent := fl.sent.Load()
	var seenSum, seenMin int64 = 0, -1
	for _, n := range seenAtEnd {
		seenSum += n
		if seenMin < 0 || n < seenMin {
			seenMin = n
		}
	}
	var delivered int64
	for _, st := range stats {
		delivered += st.seen.Load()
	}
	verify := ops1.Verify - ops0.Verify
	verifyAll := opsDrained.Verify - ops0.Verify
	perPacket := "–"
	if delivered > 0 {
		perPacket = fmt.Sprintf("%.2f", float64(verifyAll)/float64(delivered))
	}
	avgBytes := int64(0)
	if sent > 0 {
		avgBytes = fl.bytes.Load() / sent
	}
	wall := floodDur.Seconds()
	cpuTest := (cpu1 - cpu0).Seconds() / wall
	cpuSrv := "?"
	if srv0 >= 0 && srv1 >= 0 {
		cpuSrv = fmt.Sprintf("%.2f", (srv1-srv0).Seconds()/wall)
	}
	pct := func(d []time.Duration, p float64) string {
		if len(d) == 0 {
			return "–"
		}
		return ms(percentile(d, p))
	}
	maxOf := func(d []time.Duration) string {
		if len(d) == 0 {
			return "–"
		}
		return ms(slices.Max(d))
	}
	t.Logf("rate %d/s asked (%s, %d-byte stanzas from the raw occupant), sent %d in %v (%.0f/s)%s", rate, variant, avgBytes, sent, floodDur.Round(time.Millisecond), float64(sent)/wall, errSuffix(fl.err))
	t.Logf("forged packets delivered to the members' sessions during the flood: %v (%.0f/s per member, the slowest %.0f/s); all %d of them taken %v after the flood (max 60 s)", seenAtEnd, float64(seenSum)/3/wall, float64(seenMin)/wall, delivered, drained.Round(time.Millisecond))
	t.Logf("flood lag (send → the member's session takes it): p50 %s p99 %s max %s; most forged packets sent and not yet taken by a member: %d; longest event queue (sampled every 2 ms): %d (bound: 16384)", pct(lags, .5), pct(lags, .99), maxOf(lags), behind, queued)
	t.Logf("honest messages: %d sent (%d Send errors; Send call p50 %s max %s); latency to the 2 receivers over %d deliveries: p50 %s p99 %s max %s; not shown within 60 s of the flood's end: %d", len(sentAt), sendErrs, pct(sendCalls, .5), maxOf(sendCalls), len(lat), pct(lat, .5), pct(lat, .99), maxOf(lat), missing)
	t.Logf("verifications: %d during the flood, %d until drained (%s per forged delivery, honest traffic included); CPU during the flood: test process %.2f cores, server %s cores; load %s → %s", verify, verifyAll, perPacket, cpuTest, cpuSrv, loadStart, loadMid)
	t.Logf("room: out of the room %d times (%d event-queue overflows) %v; Gap notices %d; warnings %v; same session afterwards: %v", leaves, overflows, causes, gaps, kinds, same)
	held := "yes"
	if leaves > 0 || gaps > 0 || !same || missing > 0 {
		held = fmt.Sprintf("NO: %d out of room (%d overflows), %d Gap, same session %v, %d not shown", leaves, overflows, gaps, same, missing)
	}
	return fmt.Sprintf("| %d %s | %.0f | %.0f (min %.0f) | %s / %s / %s | %d | %s | %s / %s, %d, %d | %s | %.2f, %s | %s → %s |",
		rate, variant, float64(sent)/wall, float64(seenSum)/3/wall, float64(seenMin)/wall,
		pct(lat, .5), pct(lat, .99), maxOf(lat), missing, perPacket, pct(lags, .5), maxOf(lags), behind, queued, held, cpuTest, cpuSrv, loadStart, loadMid)
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return fmt.Sprintf("; the occupant's writes stopped: %v", err)
}

// watch runs on a member's tap for every event the channel delivers, just
// before the session takes it.
func (st *floodStat) watch(ev channel.Event, fl *flooder) {
	switch ev.Kind {
	case channel.EventOwnLeave:
		st.ownLeaves.Add(1)
		cause := "left"
		if ev.Err != nil {
			cause = ev.Err.Error()
		}
		if strings.Contains(cause, "queue") || strings.Contains(cause, "overflow") {
			st.overflows.Add(1)
		}
		st.mu.Lock()
		st.leaveCause = append(st.leaveCause, cause)
		st.mu.Unlock()
	case channel.EventPacket:
		from := fl.from.Load()
		if from == nil || ev.Sender != *from {
			return
		}
		// A forged packet's IV ends with its send time; a real packet's
		// IV is random, so never within an hour of now.
		p, err := wire.DecodeWire(ev.Body)
		if err != nil {
			return
		}
		d, ok := p.(*wire.DataPacket)
		if !ok {
			return
		}
		lag := time.Duration(time.Now().UnixNano() - int64(binary.BigEndian.Uint64(d.IV[4:12])))
		if lag < -time.Hour || lag > time.Hour {
			return
		}
		n := st.seen.Add(1)
		if behind := fl.sent.Load() - n; behind > st.maxBehind.Load() {
			st.maxBehind.Store(behind)
		}
		if !fl.copies {
			st.mu.Lock()
			st.lags = append(st.lags, lag)
			st.mu.Unlock()
		}
	}
}

// flood sends forged data packets at rate per second for dur (or until
// stop), in batches written every 2 ms.
func (fl *flooder) flood(hint byte, size, rate int, dur time.Duration, stop <-chan struct{}) {
	rng := rand.NewChaCha8([32]byte{byte(rate), 0x5a})
	forge := func(seq int64) string {
		p := &wire.DataPacket{SidkeyHint: hint, Payload: make([]byte, size)}
		_, _ = rng.Read(p.Payload)
		_, _ = rng.Read(p.Signature[:])
		// S below 2^252, so below the group order: a canonical scalar, or
		// crypto/ed25519 rejects the signature before any curve arithmetic
		// (a random S is rejected so 15 times in 16).
		p.Signature[63] &= 0x0f
		binary.BigEndian.PutUint32(p.IV[0:4], uint32(seq))
		binary.BigEndian.PutUint64(p.IV[4:12], uint64(time.Now().UnixNano()))
		b, err := p.Marshal()
		if err != nil {
			panic(err) // a fixed layout: cannot fail
		}
		return wire.Armour(b)
	}
	replayed := forge(0)
	maxBatch := max(1, rate/20) // at most 50 ms of packets in one write
	total := int64(dur.Seconds() * float64(rate))
	start := time.Now()
	var bodies []string
	for seq := int64(0); seq < total; {
		select {
		case <-stop:
			return
		default:
		}
		elapsed := time.Since(start)
		if elapsed >= dur {
			return
		}
		due := min(int64(elapsed.Seconds()*float64(rate))+1, total)
		if n := min(due-seq, int64(maxBatch)); n > 0 {
			bodies = bodies[:0]
			for range n {
				if fl.copies {
					bodies = append(bodies, replayed)
				} else {
					bodies = append(bodies, forge(seq))
				}
				seq++
			}
			written, err := fl.write(bodies)
			if err != nil {
				fl.err = err
				return
			}
			fl.bytes.Add(int64(written))
			fl.sent.Add(n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// randomHex is a stanza id.
func randomHex() string { return fmt.Sprintf("%016x", rand.Uint64()) }

// lastDataPacket returns the SIDKEY_HINT and payload length of the last
// data packet a raw client received.
func lastDataPacket(r *raw) (hint byte, size int, ok bool) {
	bodies := r.mpencBodies()
	for i := len(bodies) - 1; i >= 0; i-- {
		p, err := wire.DecodeWire(bodies[i])
		if err != nil {
			continue
		}
		if d, isData := p.(*wire.DataPacket); isData {
			return d.SidkeyHint, len(d.Payload), true
		}
	}
	return 0, 0, false
}

// shown counts the messages of sentAt that p showed from author.
func shown(p *peer, author string, sentAt map[string]time.Time) int {
	got := map[string]bool{}
	for _, n := range p.notices() {
		if _, ok := sentAt[n.Text]; ok && n.Kind == session.Message && n.Author == author {
			got[n.Text] = true
		}
	}
	return len(got)
}

// peekView is peer.view that returns an error instead of failing the test.
func peekView(p *peer) (view, error) {
	var v view
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	err := sessionpeek.Query(ctx, p.sess, func(core any) {
		c := core.(*session.Core)
		v.sid, v.ok = c.SessionID()
		v.members = c.Members()
		v.key, _ = c.UnsafeGroupKey()
		v.state = c.State()
	})
	return v, err
}

// queueLen returns how many events wait in ch's event queue. The channel
// keeps them in its unexported field queue, guarded by its field mu: a
// measurement's peek through reflect and unsafe, not an API (a rename in
// channel/xmpp panics here).
func queueLen(ch *xmpp.Channel) int {
	v := reflect.ValueOf(ch).Elem()
	mu := (*sync.Mutex)(unsafe.Pointer(v.FieldByName("mu").UnsafeAddr()))
	mu.Lock()
	defer mu.Unlock()
	return v.FieldByName("queue").Len()
}

// processCPU returns the CPU time (user + system) of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU returns the CPU time of the server that integration/run.sh
// started (its process and its process group: ejabberd's runs several
// processes), from /proc; -1 if unknown. The server's folder is the last
// word of MPENC_XMPP_RESTART_CMD.
func serverCPU() time.Duration {
	f := strings.Fields(os.Getenv("MPENC_XMPP_RESTART_CMD"))
	if len(f) == 0 {
		return -1
	}
	b, err := os.ReadFile(filepath.Join(f[len(f)-1], "server.pid"))
	if err != nil {
		return -1
	}
	leader, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	found := false
	for _, path := range procs {
		st, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		s := string(st)
		pid, _ := strconv.Atoi(strings.Fields(s)[0])
		rest := s[strings.LastIndexByte(s, ')')+2:] // after "comm"
		fs := strings.Fields(rest)                  // fs[0] is field 3 (state)
		if len(fs) < 13 {
			continue
		}
		pgrp, _ := strconv.Atoi(fs[2])
		if pid != leader && pgrp != leader {
			continue
		}
		found = true
		ut, _ := strconv.ParseInt(fs[11], 10, 64)
		stt, _ := strconv.ParseInt(fs[12], 10, 64)
		ticks += ut + stt
	}
	if !found {
		return -1
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}
