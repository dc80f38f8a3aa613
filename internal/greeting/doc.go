// Package greeting implements the membership operations of mpENC/1: CLIQUES
// group key agreement over X25519 combined with the ASKE authenticated
// signature key exchange (design document sections 3.2 and 5.2), byte for
// byte as the reference implementation put them on the wire.
//
// # Entry points
//
//   - [Greeter] holds one member's id, static identity key, key [greeter.Directory]
//     and source of randomness. It is a codec and a factory.
//   - [Classify] tells the ServerOrder concurrency resolver whether a
//     greeting packet is the initial packet of an operation, its final
//     packet, both, or neither, without any cryptography.
//   - [Greeter.Propose] builds the initial packet of start, include,
//     exclude or refresh from our previous result [State], the next member
//     set and the proposal metadata (PREV_PF, CHAIN_HASH, LATEST_PM).
//   - [Greeter.Accept] creates the [Greeting] for an initial packet that
//     ServerOrder accepted (ours or someone else's) and feeds it that packet.
//   - [Greeting.Receive] takes every later packet the channel delivers (our
//     own echoes included) and returns the packet to broadcast in answer.
//     A Greeting ends READY with a new [State] ([Greeting.Result]), QUIT when
//     the operation excludes us, or failed with a reason ([Greeting.Err]).
//
// # Guarantees
//
// Everything is I/O-free and deterministic given the packets and the
// randomness: no goroutines, no clock, no channel. A Greeting never modifies
// the previous State; a failed or abandoned operation leaves it untouched
// and wipes the secrets it created. Failures are sticky.
//
// A packet that belongs to the running operation (same operation, same
// member list, a member as sender) and does not verify or disagrees with
// what we know fails the operation. A packet that does not belong to it is
// ignored ([ErrNotForThisOperation]): late packets of an operation that
// failed are normal. The exception is a packet claiming a sender whose
// ephemeral key we know that does not verify under that key: it was altered
// or forged, and it fails the operation.
//
// # What it does not do
//
// It does not order operations (ServerOrder in package session does), check
// that the transport sender of a packet is its SOURCE (the session does),
// time anything out (the session abandons a stalled Greeting), or decide
// who to trust (the [greeter.Directory] answers).
//
// # Cost
//
// Each member keeps the list of all its CLIQUES contributions, because
// X25519 clamps its scalars and they cannot be multiplied into one. The list
// grows by one with every include, exclude and refresh the member initiates
// ([State.ContributionCount]); every group-key computation then costs one
// X25519 per entry. At 10 entries that is about 0.4 ms per operation and
// member, which the session may decide to reset by starting a fresh
// session. A start among n members costs each member about 2n signature
// verifications and n/2 X25519 multiplications on average; see
// docs/PERFORMANCE.md for measured figures.
//
// Not safe for concurrent use: the session's event loop owns each Greeting.
package greeting
