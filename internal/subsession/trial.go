package subsession

import (
	"time"

	"github.com/mpenc/mpenc/internal/wire"
)

// TrialBufferSize is the reference's "asynchronity": how many packets that
// no subsession could open are kept for a retry.
const TrialBufferSize = 4

// Pending is a data packet no subsession opened yet.
type Pending struct {
	Packet *wire.DataPacket
	Wire   string
	Sender string
	At     time.Time
}

// TrialBuffer is the HybridSession's trial-decrypt buffer
// (docs/MESSAGE-LAYER.md §4.1): data packets that verify in neither the
// current nor the previous subsession, typically packets under a new group
// key that arrive before our own greeting completes. It keeps the newest
// [TrialBufferSize], emits one NotDecrypted notice per packet that waited
// NotDecrypted (BC), and hands them back for a retry when a greeting
// completes or is cleared. Like SessionBase it is deterministic and driven by
// the caller's clock.
//
// A TrialBuffer is not safe for concurrent use.
type TrialBuffer struct {
	delay   time.Duration
	entries []trialEntry
	notices []Notice
}

type trialEntry struct {
	Pending
	reported bool
}

// NewTrialBuffer returns an empty buffer using t.NotDecrypted.
func NewTrialBuffer(t Timing) *TrialBuffer { return &TrialBuffer{delay: t.NotDecrypted} }

// Add keeps a packet, dropping the oldest beyond TrialBufferSize; it
// returns the dropped one, if any.
func (b *TrialBuffer) Add(p *wire.DataPacket, w, sender string, now time.Time) (dropped *Pending) {
	b.Tick(now)
	if len(b.entries) == TrialBufferSize {
		d := b.entries[0].Pending
		dropped = &d
		b.entries = append(b.entries[:0], b.entries[1:]...)
	}
	b.entries = append(b.entries, trialEntry{Pending: Pending{Packet: p, Wire: w, Sender: sender, At: now}})
	return dropped
}

// Len returns how many packets wait.
func (b *TrialBuffer) Len() int { return len(b.entries) }

// Retry offers every waiting packet, oldest first, to try (typically: each
// subsession's Receive); those for which it returns true are removed.
func (b *TrialBuffer) Retry(try func(Pending) bool) {
	keep := b.entries[:0]
	for _, e := range b.entries {
		if !try(e.Pending) {
			keep = append(keep, e)
		}
	}
	clear(b.entries[len(keep):])
	b.entries = keep
}

// Tick emits NotDecrypted for every packet that has waited the delay.
func (b *TrialBuffer) Tick(now time.Time) {
	for i := range b.entries {
		e := &b.entries[i]
		if !e.reported && !now.Before(e.At.Add(b.delay)) {
			e.reported = true
			b.notices = append(b.notices, Notice{Kind: NotDecrypted, At: e.At.Add(b.delay), Author: e.Sender, Count: len(b.entries)})
		}
	}
}

// NextDeadline returns when Tick has something to do.
func (b *TrialBuffer) NextDeadline() (time.Time, bool) {
	for _, e := range b.entries {
		if !e.reported {
			return e.At.Add(b.delay), true
		}
	}
	return time.Time{}, false
}

// TakeNotices returns and clears the notices.
func (b *TrialBuffer) TakeNotices() []Notice {
	n := b.notices
	b.notices = nil
	return n
}
