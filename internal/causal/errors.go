package causal

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mpenc/mpenc/transcript"
)

// Errors of [Graph.Accept], one per acceptance check of docs/MESSAGE-LAYER.md
// §3.2 plus our rules. Callers branch on them with errors.Is; every rejection
// is returned inside a [*RejectError] naming the message and its author, and
// a missing parent inside a [*MissingParentError].
var (
	// ErrDuplicate (check 1): the id is already in the transcript. Not a
	// fault: resends and the room's echo of our own sends end here.
	ErrDuplicate = errors.New("transcript: duplicate message")
	// ErrMalformed (check 2): a parent equals the message's own id, a
	// parent is repeated, there are more parents than members, or the kind
	// is unknown.
	ErrMalformed = errors.New("transcript: malformed parent list")
	// ErrNotMember (check 3): the author is not a member (or would be a
	// reader of its own message).
	ErrNotMember = errors.New("transcript: author is not a member")
	// ErrMissingParent (check 4): a parent is not accepted yet. Not a
	// rejection: the caller buffers the message and offers it again when
	// the parent arrives.
	ErrMissingParent = errors.New("transcript: parent not accepted yet")
	// ErrRejectedParent (check 4, our rule): a parent was itself rejected,
	// so the message can never be accepted; rejecting it at once beats
	// letting it wait in the buffer.
	ErrRejectedParent = errors.New("transcript: parent was rejected")
	// ErrUnreadable (check 5): a parent was not readable by the author.
	// Impossible inside one subsession, where every member reads every
	// message; kept so the error set mirrors the checks.
	ErrUnreadable = errors.New("transcript: parent not readable by the author")
	// ErrRedundantParents (check 6): two parents have the same author.
	ErrRedundantParents = errors.New("transcript: two parents by one author")
	// ErrFork (check 7): the author's earlier message is not an ancestor:
	// the author forked its own line (equivocation). The worst case: the
	// subsession must be treated as failed.
	ErrFork = errors.New("transcript: author forked its own line")
	// ErrNotAntichain (check 8): one parent is an ancestor of another.
	ErrNotAntichain = errors.New("transcript: parents are not an antichain")
	// ErrAfterFin (our rule, docs/MESSAGE-LAYER.md §4.8): the author already
	// sent a FIN and this message is not an ExplicitAck, a flush, or the
	// single leave-intent FIN whose only parent is that FIN.
	ErrAfterFin = errors.New("transcript: message after the author's FIN")
	// ErrFull: the graph holds the maximum number of messages.
	ErrFull = errors.New("transcript: too many messages")
)

// RejectError is a rejected message: Err is one of the sentinels above,
// Author the member index of its author (-1 when not a member).
type RejectError struct {
	Err    error
	ID     transcript.ID
	Author int
	Detail string
}

func (e *RejectError) Error() string {
	s := fmt.Sprintf("%v: message %x by member %d", e.Err, e.ID[:6], e.Author)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the sentinel.
func (e *RejectError) Unwrap() error { return e.Err }

// MissingParentError says which parents of a message are not accepted yet.
// It matches [ErrMissingParent] with errors.Is.
type MissingParentError struct {
	ID      transcript.ID
	Missing []transcript.ID
}

func (e *MissingParentError) Error() string {
	parts := make([]string, len(e.Missing))
	for i, m := range e.Missing {
		parts[i] = fmt.Sprintf("%x", m[:6])
	}
	return fmt.Sprintf("%v: message %x waits for %s", ErrMissingParent, e.ID[:6], strings.Join(parts, ", "))
}

// Unwrap returns ErrMissingParent.
func (e *MissingParentError) Unwrap() error { return ErrMissingParent }
