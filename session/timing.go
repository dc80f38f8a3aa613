package session

import (
	"time"

	"github.com/mpenc/mpenc/internal/subsession"
)

// Timing holds every timer of a session, derived from two measured
// quantities of the room: BC, the broadcast latency (the time for one
// packet to reach every member, at a high percentile), and MI, how long to
// wait for a natural reply. Choose a profile or [NewTiming]; the derived
// timers and the rules they obey are in docs/MESSAGE-LAYER.md §6.
type Timing = subsession.Timing

// NewTiming derives every timer from BC and MI.
func NewTiming(bc, mi time.Duration) Timing { return subsession.NewTiming(bc, mi) }

// InternetTiming is the profile for rooms across the internet: BC 2 s, MI
// 10 s. BC bounds the slowest member, not the median: a false warning
// costs more than a late one.
func InternetTiming() Timing { return subsession.InternetTiming() }

// LoopbackTiming is the profile for a server on the same machine (tests,
// demos): BC 0.5 s, MI 2 s.
func LoopbackTiming() Timing { return subsession.LoopbackTiming() }
