// Package greeter holds what mpENC/1's membership key agreement (CLIQUES
// group key agreement combined with the ASKE authenticated signature key
// exchange, design document sections 3.2 and 5.2) shares with the world
// outside one implementation:
//
//   - [Directory], the question the key agreement asks about every member:
//     which static identity key is theirs. The trust store answers it; a
//     session takes one in its configuration.
//   - [SessionID], [SignSession] and [VerifySession], the ASKE values every
//     implementation must compute identically, byte for byte as the
//     reference implementation does: another implementation's test harness
//     can check its own against them.
//
// The operation engine itself (the Greeter that proposes, and the I/O-free
// Greeting state machine that runs one start, include, exclude or refresh)
// consumes and produces mpENC/1 wire packets, whose layout is internal; it
// lives in internal/greeting and is driven by package session.
// docs/ARCHITECTURE.md shows where it sits.
package greeter
