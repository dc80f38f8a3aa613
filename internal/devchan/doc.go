// Package devchan is the pairwise device channel (issue [K], seed 001): an
// authenticated, encrypted, forward-secret channel between two devices,
// as an I/O-free state machine (packets in, packets out, randomness from
// the caller).
//
// The initiator picks one of the responder's published one-time key
// digests and sends a request with its identity key and a fresh ephemeral
// key (Initiate); the responder, committed to its key by the digest
// before it saw the initiator's, answers with that key and a confirmation
// (ParseRequest, Accept; Refuse for a digest it does not have); both
// derive the session's keys from three X25519 values over the identity
// and ephemeral keys (HandleResponse). The initiator's first data packets
// carry its own confirmation, which the seed lacks, until the responder
// acknowledges it. Data packets (Seal, Open) use a hash ratchet per
// direction (a key per message, erased once used), AES-256-GCM with the
// header as associated data, a sliding replay window, and a bounded store
// of keys for packets not yet received. SAS gives the indices of the
// words both screens show to verify the channel. docs/PROTOCOL.md "The
// device channel" has the formats and derivations; testdata/devchan has
// known answers.
//
// Not here yet: rotation and the tie-break of simultaneous initiation,
// the recovery of a lost session, and everything around the state
// machine (one-time key storage, the XMPP carriage, the outbox): the
// issue's next steps.
package devchan
