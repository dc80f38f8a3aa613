// Package sessionpeek lets the simulator read what a session.Core keeps to
// itself, its message log, without a public method for it: the log's
// types are internal, and nothing outside this module should depend on
// them. Package session sets [MessageLog] when it initialises.
package sessionpeek

import "github.com/mpenc/mpenc/internal/causal"

// MessageLog returns the message log of a *session.Core (read-only use).
var MessageLog func(core any) *causal.MessageLog
