package subsession

import (
	"container/heap"
	"time"

	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/transcript"
)

// timerKind names what a timer entry does when it fires.
type timerKind uint8

const (
	tWatch       timerKind = iota + 1 // the head of the full-ack watch queue is due
	tResend                           // idx: resend monitor round
	tAck                              // automatic ack due
	tHeartbeat                        // heartbeat due
	tBuffer                           // the earliest NotAccepted or drop deadline in the buffer
	tExpire                           // member: presence expiry
	tFinTimeout                       // our FIN not fully acked in time
	tFinComplete                      // our FIN fully acked + BC
)

// timer is one entry of the deadline heap. Entries are never removed
// early: each is checked against the current state when it fires and
// ignored if stale (a cancelled monitor, a rescheduled singleton), which
// keeps rescheduling O(log n) without an index. Timers whose deadline only
// moves later (the buffer's, each member's expiry, the heartbeat) keep a
// single pending entry that fires at the old deadline, finds nothing due
// and re-arms itself: the heap then holds O(1) entries for them whatever
// the traffic, and a flood of buffered packets adds none.
type timer struct {
	at   time.Duration // since the subsession's start
	seq  uint64        // insertion order: ties fire first-in first-out
	kind timerKind
	arg  uint32 // idx or member index
	id   transcript.ID
}

type timerHeap []timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// schedule adds a timer.
func (s *SessionBase) schedule(at time.Duration, kind timerKind, arg uint32, id transcript.ID) {
	s.timerSeq++
	heap.Push(&s.timers, timer{at: at, seq: s.timerSeq, kind: kind, arg: arg, id: id})
}

// valid reports whether a timer is still current.
func (s *SessionBase) valid(t timer) bool {
	switch t.kind {
	case tWatch:
		return s.watchTimer == t.at && !s.state.Done()
	case tResend:
		m, ok := s.monitors[causal.Index(t.arg)]
		return ok && m.due == t.at
	case tAck:
		return s.ackPending && s.ackDue == t.at
	case tHeartbeat:
		return s.hbTimer == t.at && s.hbDue >= 0
	case tBuffer:
		return s.bufTimer == t.at && !s.state.Done()
	case tExpire:
		return s.presence[t.arg].timerAt == t.at && !s.state.Done()
	case tFinTimeout:
		return s.state == Parting
	case tFinComplete:
		return s.state == Parting && s.finCompleteAt == t.at
	}
	return false
}

// dropStale removes stale entries from the top of the heap.
func (s *SessionBase) dropStale() {
	for len(s.timers) > 0 && !s.valid(s.timers[0]) {
		heap.Pop(&s.timers)
	}
}

// NextDeadline returns when [SessionBase.Tick] must be called next, or
// false if no timer is pending (a completed subsession has none).
func (s *SessionBase) NextDeadline() (time.Time, bool) {
	s.dropStale()
	if len(s.timers) == 0 {
		return time.Time{}, false
	}
	return s.start.Add(s.timers[0].at), true
}

// Tick fires every timer due at or before now, in deadline order (ties in
// the order they were set). Call it at NextDeadline, or later: a late call
// fires everything that was due.
func (s *SessionBase) Tick(now time.Time) {
	s.runTimers(s.since(now), true)
}

// runTimers fires the timers due before t (inclusive when inclusive).
// Receive and the send methods run it non-inclusively first, so that an
// event arriving exactly at a deadline counts as in time.
func (s *SessionBase) runTimers(t time.Duration, inclusive bool) {
	for len(s.timers) > 0 {
		top := s.timers[0]
		if top.at > t || (!inclusive && top.at == t) {
			return
		}
		heap.Pop(&s.timers)
		if !s.valid(top) {
			continue
		}
		s.fire(top)
	}
}

func (s *SessionBase) fire(t timer) {
	switch t.kind {
	case tWatch:
		s.watchTimer = -1
		s.watchDue(t.at)
	case tResend:
		s.resendRound(causal.Index(t.arg), t.at)
	case tAck:
		s.ackPending = false
		if !s.state.Done() {
			s.sendAt(causal.KindAutoAck, "", t.at)
		}
	case tHeartbeat:
		s.heartbeat(t.at)
	case tBuffer:
		s.bufTimer = -1
		s.bufferDeadlines(t.at)
	case tExpire:
		s.presence[t.arg].timerAt = -1
		s.expire(int(t.arg), t.at)
	case tFinTimeout, tFinComplete:
		// We may owe an ack (a message that arrived after our FIN, whose
		// ack delay has not run out): send it before completing, or its
		// author, perhaps kicked by us right after, is told it was never
		// acked although we read it.
		s.ackNow(t.at)
		s.complete(t.at)
	}
}
