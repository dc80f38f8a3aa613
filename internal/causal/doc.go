// Package causal is the causal transcript of mpENC subsessions: a pure
// data structure, with no I/O, no locks, no clock and no randomness.
//
// A [Graph] holds one subsession's messages. [Graph.Accept] runs the
// acceptance checks of docs/MESSAGE-LAYER.md §3.2 in order (duplicate,
// malformed, non-member, missing parent, readable, redundant parents, own
// line, antichain, and our after-FIN rule) and returns typed errors callers
// branch on with errors.Is: [ErrMissingParent] (inside a
// [*MissingParentError] listing the ids) means "buffer it and offer it again
// when the parent arrives", [ErrFork] means the author equivocated, and so
// on. Ancestry, acks and full-acks are computed with vector clocks over
// per-author sequence numbers (docs/MESSAGE-LAYER.md §3.4): a ≤ b is O(1),
// accepting a message costs O(n·|parents|) plus, amortised, O(n) per
// (message, reader) ack. Each accept reports the messages that became fully
// acked, in accept order.
//
// A [MessageLog] is the user's linear view across subsessions
// (docs/MESSAGE-LAYER.md §3.5): it appends Payloads in local accept order,
// computes each entry's log parents (its latest Payload ancestors, or its
// subsession's transcript parents, spliced after the greeting's LATEST_PM)
// and the parIdx UI hint.
//
// # Entry points
//
//	g, err := causal.New(sortedMembers, causal.Options{HashKey: k})
//	res, err := g.Accept(causal.Message{ID: id, Author: i, Parents: ps, Kind: k})
//	g.Heads()                     // parents of our next message
//	g.UnackedBy(res.Index, nil)   // who has not acked it yet
//
//	log := causal.NewMessageLog()
//	ref, err := log.AddTranscript(g, causal.NoTranscript, nil)
//	ready, isPayload, err := log.Append(ref, res.Index, text)
//
// # What it does not do
//
// It does not verify, decrypt or decode anything (package message does), has
// no buffer for messages with missing parents and no timers (package
// subsession does both), and never forgets an accepted message: a graph
// lives as long as its subsession. Readers are not stored: inside a
// subsession they are always every member but the author.
//
// # Memory
//
// Messages are stored in slabs indexed by accept position ([Index]) rather
// than as objects with pointers: about 45 + 2·n + 4·|parents| bytes per
// message for n members, plus slab slack (docs/MESSAGE-LAYER.md has the
// measurements).
//
// # Concurrency
//
// Neither type is safe for concurrent use; the owning session serialises
// every call.
package causal
