// Package transcript names the messages of an mpENC conversation: a
// message's [ID] is how every member refers to it (as a parent, in an
// acknowledgement, in a notice to the user) across the causal transcript
// of its subsession.
//
// The transcript itself (the causal graph of one subsession with its
// acknowledgement bookkeeping, and the message log that linearises
// subsessions for the user) is a pure data structure inside the session;
// it lives in internal/causal. docs/MESSAGE-LAYER.md §3 describes it.
package transcript

import "encoding/hex"

// IDSize is the size of a message id.
const IDSize = 20

// ID is a message id: SHA256(signature ‖ signed bytes)[0:20] of the data
// packet that carried the message (wire.MessageID has the same layout, so a
// conversion is free: transcript.ID(mid)).
type ID [IDSize]byte

// String returns the id in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }
