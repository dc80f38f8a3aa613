// Package session is mpENC's HybridSession: one member's view of an
// encrypted, authenticated, causally ordered and consistency-checked
// conversation in one room.
//
// # Using it
//
// A [Session] runs over a [channel.GroupChannel] (an XMPP room through
// channel/xmpp, or an in-memory room through channel/memchan):
//
//	s, err := session.New(session.Config{Self: me, Identity: key, Directory: dir,
//		Timing: session.InternetTiming()}, ch)
//	go s.Run(ctx)             // the event loop
//	go show(s.Notices())      // must be drained: messages, acks, warnings
//	err = s.Join(ctx)         // in the session (included, or founding it)
//	id, err := s.Send(ctx, "hello")
//	err = s.Include(ctx, []string{them})
//	err = s.Part(ctx)         // announced, acknowledged, out of the room
//
// Everything the user should see arrives as a [Notice]: messages with
// their authors, whether everyone acknowledged them, membership changes,
// the progress of operations, and security warnings ([Notice.IsWarning]).
// The key [greeter.Directory] in [Config] decides whose identity keys are
// trusted; a directory that also implements [KeyObserver] learns the keys
// members announce in the room.
//
// # The deterministic core
//
// [Core] is the same protocol as a deterministic state machine with no
// goroutines, no clock and no randomness of its own: channel events
// ([Core.HandleEvent]), user actions ([Core.Join], [Core.Send],
// [Core.Include], [Core.Exclude], [Core.Refresh], [Core.Part]) and timer
// ticks ([Core.Tick] at [Core.NextDeadline]) go in, each with the time;
// channel actions ([Core.TakeActions]: enter, leave, send, kick) and
// notices ([Core.TakeNotices]) come out. A test harness drives many Cores
// from one seed and replays any run exactly (the project's simulator does,
// internal/sim); [Core.UnsafeGroupKey] and [Core.Chain] give what members
// must agree on.
//
// Inside a Core: ServerOrder decides which greeting packets enter the
// chain of membership operations and in which order; the greeter runs
// each operation (CLIQUES + ASKE); the current subsession and the
// previous ones still shutting down carry the messages; the message log
// linearises them for the user. docs/SESSION.md describes the states, the
// channel rules and the rotation; docs/ARCHITECTURE.md shows who owns
// which state.
//
// # What it checks beyond the reference implementation
//
// Proposals are authenticated before they enter the chain; a stalled
// operation ends for everyone at the same point of the order (an abort
// packet); every member states, inside each new subsession, the position
// of the server order that created it, so that a server showing members
// different orders is detected ([ErrServerSplit]); a member that leaves
// waits for the acknowledgement of its last messages.
//
// It does not speak XMPP (channel/xmpp does), store anything (store
// does), or decide whom to trust (trust does, behind the directory).
package session
