// Package subsession runs one mpENC subsession: a fixed member set with one
// group key and one ephemeral signing key per member, its causal transcript
// (package internal/causal), MessageSecurity (package internal/message) and
// the liveness machinery of docs/MESSAGE-LAYER.md §4: automatic acks,
// full-ack warnings, ciphertext
// resends, the buffer of messages waiting for parents, heartbeats and
// presence, and the FIN shutdown.
//
// The HybridSession (package session) holds the current [SessionBase] and
// the previous ones still shutting down, and a [TrialBuffer] for packets no
// subsession opens yet.
//
// # Determinism
//
// A SessionBase is a deterministic state machine. It starts no goroutines,
// never reads the clock, owns no timers and draws randomness (IVs, resend
// jitter, its id-index key) only from Config.Rand. Every method that can
// change state takes now; [SessionBase.Tick] fires what is due and
// [SessionBase.NextDeadline] tells the owner when to call it next. Given the
// same inputs, times and random stream, it produces byte-identical packets
// and the same notices: a simulator replays any run from its seed. All timer
// values come from one [Timing] value, derived from BC and MI, with three
// profiles ([ReferenceTiming], [InternetTiming], [LoopbackTiming]).
//
// # Driving it
//
//	sb, err := subsession.New(subsession.Config{Self: me, Members: sorted, SID: sid,
//		GroupKey: gk, SigningKey: eph, PublicKeys: pubs,
//		Timing: subsession.InternetTiming(), Rand: rand}, now)
//
//	// Our sends:
//	id, err := sb.SendPayload(text, now)
//	// Every data packet from the room (decoded once by the caller):
//	res := sb.Receive(pkt, wireString, channelSender, now)
//	if !res.Outcome.Mine() { /* try the previous subsession, then the TrialBuffer */ }
//	// Timers:
//	if at, ok := sb.NextDeadline(); ok { /* arrange to call */ sb.Tick(at) }
//	// After every call above:
//	out := sb.TakeOutput()  // out.Packets: broadcast in order; out.Notices: to the UI / MessageLog
//
// MsgAccepted notices come in accept order, our own messages included, each
// with the transcript Index to pass to causal.MessageLog.Append.
// Shutdown: [SessionBase.Fin] (rotation) or [SessionBase.SendLeaveIntent]
// (leaving the session), then wait for FinComplete; [SessionBase.Stop]
// force-stops.
//
// # What it does not do
//
// It knows nothing of greetings, ServerOrder, the channel or other
// subsessions: the owner decides which subsession a packet is offered to
// (Receive says whether it was its own) and proposes exclusions on
// LeaveIntent. It does not own a MessageLog (the session splices
// subsessions in it) and never logs: notices carry payload text for
// display, never keys.
//
// # Memory under hostile input
//
// Parents per message are capped at the member count (transcript), the
// buffer of messages waiting for parents at floor(4·max(16, 8·√n)) entries,
// half of them per author, and [MaxBufferBytes]; the cache of wire strings
// kept for resends at [MaxCachedWires] and [MaxCachedBytes]; the set of
// rejected ids at 4,096. Duplicates are recognised by message id, before
// any signature is checked. Timers that only move later keep one heap entry
// each, so a flood of buffered packets does not grow the timer heap.
//
// # Concurrency
//
// SessionBase and TrialBuffer are not safe for concurrent use: the owner
// serialises every call (one goroutine per session).
package subsession
