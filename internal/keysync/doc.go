// Package keysync is pEp KeySync's state machine (issue [M], seed 000,
// appendix B) as an I/O-free transition table: [Transition] maps a
// state, an event and the guards the caller evaluated for it to the next
// state and the ordered effects (the draft's "do" actions and the
// messages to send). Entering a state delivers its Init event, as the
// draft's generated code does; [Transition] returns one handler's
// effects, and the caller chains the Init of the state it enters.
//
// The table is appendix B's code, state by state, with the draft's names
// and message numbers, plus what docs/PROTOCOL.md "KeySync" lists as
// ours: every state between the resting ones (Sole, Grouped) times out
// back to one of them, rolling back the partner and the provisional
// trust; the FormingGroup states check the negotiation and partner as
// every other state does; a rollback or rejection after our Accept
// removes the trust that Accept granted.
//
// What it does not do: the negotiation data (challenges, the negotiation
// id, the partner) and the guards computed from them, the transport, the
// words shown, and what a device group shares: those are the issue's
// next steps.
package keysync
