// Package conformance checks vector files in the shapes of
// ../shared/vectors/ through the project's real components: the
// reference's known answers through crypto and internal/wire, greeter flows
// through greeter with each member's recorded randomness injected, data
// messages through message, and session traces through session's
// ServerOrder, message and transcript.
//
// Each check yields one line on failure; a [Report] counts them. The
// command cmd/mpenc-conformance and the test suite both use it, so the
// conformance tests and the runner are the same code.
package conformance
