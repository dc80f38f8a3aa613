package subsession

import (
	"fmt"
	"time"
)

// Timing holds every timer of the message layer, derived from two
// measured quantities (docs/MESSAGE-LAYER.md §6 has the table):
//
//   - BC, broadcast latency: the time for one packet to reach every member
//     (a high percentile, including TCP retransmission, server fan-out,
//     signature checks and GC pauses);
//   - MI, message interval: how long to wait for a natural reply.
//
// [NewTiming] derives the rest; the profiles [ReferenceTiming],
// [InternetTiming] and [LoopbackTiming] are NewTiming of their BC and MI.
// Fields may be adjusted after derivation (say AckDelay = FA − BC to act
// like the reference), but the "no false warning" guarantee of the
// defaults rests on AckDelay ≤ FA − 2·BC: an ack sent D after a reader
// accepts (≤ BC after the send) arrives ≤ BC later, by FA.
//
// A Timing is a value: copy it, change it, pass it to [New].
type Timing struct {
	BC time.Duration // broadcast latency
	MI time.Duration // reply interval
	// FA, the full-ack interval 2·BC + MI: a message not fully acked FA
	// after we accepted it (our own: after we sent it) is reported with
	// MsgNotFullyAcked.
	FA time.Duration
	// AckDelay, D: an ExplicitAck(false) goes out D after we accepted a
	// monitored message by someone else that we have not acked since.
	// Ours FA − 2·BC; the reference's FA − BC could warn falsely
	// (docs/MESSAGE-LAYER.md §4.3).
	AckDelay time.Duration
	// DuplicateAckDelay: a duplicate of a message we have not acked yet
	// means its sender is waiting; ack within BC/4 (our rule,
	// docs/MESSAGE-LAYER.md §4.5).
	DuplicateAckDelay time.Duration
	// FinAckDelay: others' FINs are acked within min(BC/4, 1 s) (our rule,
	// docs/MESSAGE-LAYER.md §4.3; the reference waits the normal D).
	FinAckDelay time.Duration
	// NotAccepted: a message waiting for a parent is reported BC after it
	// was first buffered.
	NotAccepted time.Duration
	// BufferDrop: and dropped FA after it was first buffered (our rule;
	// the reference keeps it until the buffer overflows).
	BufferDrop time.Duration
	// FinComplete: once our FIN is fully acked we wait 1·BC for trailing
	// acks, then complete (FIN_CONSISTENT_RATIO).
	FinComplete time.Duration
	// FinTimeout: if our FIN is not fully acked 16·BC after fin(), we
	// complete anyway (FIN_TIMEOUT_RATIO).
	FinTimeout time.Duration
	// Resends (our rule, docs/MESSAGE-LAYER.md §4.4): the author resends a
	// message not fully acked at its full-ack deadline (accept + FA), then after
	// ResendBase·2^k (k = 0, 1, …) capped at ResendMax, each interval
	// ±ResendJitter. Others start ResendOthersExtra later (one round) and
	// skip a round if they saw a duplicate of the message within
	// ResendThrottle.
	ResendBase        time.Duration
	ResendMax         time.Duration
	ResendOthersExtra time.Duration
	ResendThrottle    time.Duration
	// ResendJitter is the relative jitter of resend intervals, in [0, 1).
	ResendJitter float64
	// Heartbeats enables heartbeats and presence expiry
	// (docs/MESSAGE-LAYER.md §4.7). With them off, nobody is ever reported
	// as not responding (an idle room renews nothing).
	Heartbeats bool
	// HeartbeatIdle: a heartbeat (Consistency(false)) goes out when our
	// newest monitored message is this old: (HEARTBEAT_RATIO − 1)·FA.
	HeartbeatIdle time.Duration
	// OwnExpiry: we consider ourselves stale this long after our last
	// monitored message: HEARTBEAT_RATIO·FA.
	OwnExpiry time.Duration
	// OthersExpiry: another member is not responding this long after the
	// last message of ours it is known to have acked:
	// HEARTBEAT_RATIO·FA·EXPIRE_GRACE_RATIO.
	OthersExpiry time.Duration
	// NotDecrypted: a packet no subsession opens is reported this long
	// after it was buffered ([TrialBuffer]).
	NotDecrypted time.Duration
}

// Reference ratios (docs/MESSAGE-LAYER.md §4.7, §4.8).
const (
	heartbeatRatio   = 4
	expireGraceRatio = 1.0625
	finTimeoutRatio  = 16
	resendMaxRatio   = 16
)

// NewTiming derives every timer from BC and MI.
func NewTiming(bc, mi time.Duration) Timing {
	fa := 2*bc + mi
	return Timing{
		BC:                bc,
		MI:                mi,
		FA:                fa,
		AckDelay:          fa - 2*bc,
		DuplicateAckDelay: bc / 4,
		FinAckDelay:       min(bc/4, time.Second),
		NotAccepted:       bc,
		BufferDrop:        fa,
		FinComplete:       bc,
		FinTimeout:        finTimeoutRatio * bc,
		ResendBase:        bc,
		ResendMax:         resendMaxRatio * bc,
		ResendOthersExtra: bc,
		ResendThrottle:    bc,
		ResendJitter:      0.25,
		Heartbeats:        true,
		HeartbeatIdle:     (heartbeatRatio - 1) * fa,
		OwnExpiry:         heartbeatRatio * fa,
		OthersExpiry:      time.Duration(float64(heartbeatRatio*fa) * expireGraceRatio),
		NotDecrypted:      bc,
	}
}

// ReferenceTiming is the reference's BC 5 s and MI 16 s (FA 26 s), with our
// rules (D = 16 s, FIN acks within 1 s, heartbeats at 78 s).
func ReferenceTiming() Timing { return NewTiming(5*time.Second, 16*time.Second) }

// InternetTiming is our profile for XMPP across the internet: BC 2 s, MI
// 10 s (FA 14 s). BC bounds the slowest member, not the median (~100 ms):
// a false warning costs more than a late one.
func InternetTiming() Timing { return NewTiming(2*time.Second, 10*time.Second) }

// LoopbackTiming is for CI on loaded machines against a loopback server: BC
// 0.5 s, MI 2 s (FA 3 s), about 70 times the measured p99 room latency.
func LoopbackTiming() Timing { return NewTiming(500*time.Millisecond, 2*time.Second) }

// Validate checks that every timer is positive and the ordering the
// liveness rules rely on.
func (t Timing) Validate() error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"BC", t.BC}, {"MI", t.MI}, {"FA", t.FA}, {"AckDelay", t.AckDelay}, {"DuplicateAckDelay", t.DuplicateAckDelay},
		{"FinAckDelay", t.FinAckDelay}, {"NotAccepted", t.NotAccepted}, {"BufferDrop", t.BufferDrop},
		{"FinComplete", t.FinComplete}, {"FinTimeout", t.FinTimeout},
		{"ResendBase", t.ResendBase}, {"ResendMax", t.ResendMax}, {"ResendOthersExtra", t.ResendOthersExtra},
		{"ResendThrottle", t.ResendThrottle}, {"HeartbeatIdle", t.HeartbeatIdle}, {"OwnExpiry", t.OwnExpiry},
		{"OthersExpiry", t.OthersExpiry}, {"NotDecrypted", t.NotDecrypted}} {
		if f.d <= 0 {
			return fmt.Errorf("subsession: timing %s = %v, must be positive", f.name, f.d)
		}
	}
	if t.ResendJitter < 0 || t.ResendJitter >= 1 {
		return fmt.Errorf("subsession: resend jitter %v outside [0, 1)", t.ResendJitter)
	}
	if t.ResendMax < t.ResendBase {
		return fmt.Errorf("subsession: ResendMax %v below ResendBase %v", t.ResendMax, t.ResendBase)
	}
	if t.BufferDrop < t.NotAccepted {
		return fmt.Errorf("subsession: BufferDrop %v before NotAccepted %v", t.BufferDrop, t.NotAccepted)
	}
	if t.HeartbeatIdle >= t.OthersExpiry {
		return fmt.Errorf("subsession: HeartbeatIdle %v not below OthersExpiry %v", t.HeartbeatIdle, t.OthersExpiry)
	}
	return nil
}
