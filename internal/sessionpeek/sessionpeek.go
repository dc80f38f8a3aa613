// Package sessionpeek lets the module's own simulator and tests read what a
// session keeps to itself, without public methods for it: the message log
// of a session.Core (whose types are internal), and the Core a running
// session.Session owns (to compare group keys and chains across members
// of a real room). Package session sets the functions when it
// initialises; nothing outside this module can import this package.
package sessionpeek

import (
	"context"

	"github.com/mpenc/mpenc/internal/causal"
)

// MessageLog returns the message log of a *session.Core (read-only use).
var MessageLog func(core any) *causal.MessageLog

// Query runs f with the *session.Core of a *session.Session on the
// session's event loop, and waits for it. f must only read.
var Query func(ctx context.Context, session any, f func(core any)) error
