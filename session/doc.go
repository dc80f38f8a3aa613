// Package session is mpENC's HybridSession: one member's view of an
// encrypted, authenticated, causally ordered and consistency-checked
// conversation in one room.
//
// [Core] is the protocol as a deterministic state machine, with no
// goroutines, no clock and no randomness of its own: channel events
// ([Core.HandleEvent]), user actions ([Core.Join], [Core.Send],
// [Core.Include], [Core.Exclude], [Core.Refresh], [Core.Part]) and timer
// ticks ([Core.Tick] at [Core.NextDeadline]) go in, each with the time;
// channel actions ([Core.TakeActions]: enter, leave, send, kick) and
// notices for the user ([Core.TakeNotices]) come out. Inside it:
// [ServerOrder] (which greeting packets enter the chain, and in which
// order), the greeter (membership operations), the current subsession and
// the previous ones still shutting down, the trial-decryption buffer, and
// the message log that linearises every subsession's transcript. The
// simulator in internal/sim drives many Cores from one seed.
//
// [Session] runs a Core over a channel.GroupChannel for applications: one
// goroutine owns the Core, a second performs channel actions in order so
// that a slow network never stalls the protocol, and notices queue until
// read ([Session.Notices]).
//
// What it checks beyond the reference implementation (docs/SESSION.md):
// proposals are authenticated before they enter the chain; a stalled
// operation ends for everyone at the same point of the order (an abort
// packet); every member states, inside each new subsession, the position of
// the server order that created it, so that a server showing members
// different orders is detected ([ErrServerSplit]); a member that leaves
// waits for the acks of its last messages.
//
// It does not speak XMPP (channel/xmpp does), store anything (store does),
// or decide whom to trust (trust does; the session asks its
// [greeter.Directory]).
package session
