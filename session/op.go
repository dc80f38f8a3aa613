package session

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// OpKind is what an operation does.
type OpKind uint8

// Operation kinds. Join and Part are session-level; the rest are
// membership operations. OpStart is the inclusion by which a member alone
// starts a session with others, or a fresh start among the same members
// (new keys from everyone, for forward secrecy: Config.RekeyOps).
const (
	OpJoin    OpKind = iota + 1 // join
	OpPart                      // part
	OpInclude                   // include
	OpExclude                   // exclude
	OpRefresh                   // refresh
	OpStart                     // start
)

// Errors of user operations.
var (
	// ErrOperationInProgress: another user operation is pending (D3 of
	// docs/SESSION.md, "Beyond the reference"): one at a time. The same
	// action again returns the pending handle instead.
	ErrOperationInProgress = errors.New("session: another operation is in progress")
	// ErrBusy: a membership operation is under way in the session (D8 of
	// docs/SESSION.md); retry when it ends.
	ErrBusy = errors.New("session: a membership operation is under way")
	// ErrNotJoined: the session is not in a state that allows this.
	ErrNotJoined = errors.New("session: not joined")
	// ErrNotInChannel: some members to include are not in the room.
	ErrNotInChannel = errors.New("session: not everyone to include is in the room")
	// ErrInvalid: the request makes no sense (excluding ourselves, an
	// empty set, a member already there, include and exclude at once...).
	ErrInvalid = errors.New("session: invalid request")
	// ErrRejected: our proposal lost to another one (ServerOrder).
	ErrRejected = errors.New("session: proposal rejected")
	// ErrAborted: the operation ended without completing (a member left, it
	// timed out, an abort packet, we left the room).
	ErrAborted = errors.New("session: operation aborted")
	// ErrJoinTimeout: nobody included us in time.
	ErrJoinTimeout = errors.New("session: nobody included us in time")
	// ErrNoEcho: the server never echoed our proposal back: it did not
	// enter the room's order (it may still, late, and then runs).
	ErrNoEcho = errors.New("session: our proposal never came back from the server")
	// ErrEnterFailed: the channel could not enter the room.
	ErrEnterFailed = errors.New("session: could not enter the room")
	// ErrClosed: the session is closed.
	ErrClosed = errors.New("session: closed")
	// ErrServerSplit: evidence that the server showed members different
	// orders of the room (a chain check that does not match, an abort of
	// an operation we refused). Nothing built on the split is safe.
	ErrServerSplit = errors.New("session: the server showed members different histories")
	// ErrOrderUnconfirmed: a member of the current subsession, present in
	// the room, did not state the server-order position that created it
	// in time: it may have been shown another order, or cannot read the
	// subsession (a split that gave it another key).
	ErrOrderUnconfirmed = errors.New("session: a member did not confirm the server order")
)

// Op is the handle of a user operation. It settles exactly once, with a
// notice (OpSucceeded or OpFailed) carrying it.
type Op struct {
	id      uint64
	Kind    OpKind
	Members []string // included or excluded members
	started time.Time

	done bool
	err  error
	// ignored: the outcome could not be observed but is assumed (we were
	// excluded and left: "ignored, assume it succeeded").
	ignored bool
	// followsWinner: our proposal lost to one that does the same; we
	// succeed or fail with it.
	followsWinner bool
	// doneCh is closed when the op settles (for the goroutine wrapper).
	doneCh chan struct{}
}

func newOp(id uint64, kind OpKind, members []string, now time.Time) *Op {
	return &Op{id: id, Kind: kind, Members: slices.Clone(members), started: now, doneCh: make(chan struct{})}
}

// Done reports whether the operation has settled.
func (o *Op) Done() bool { return o.done }

// Err returns nil if the operation succeeded, else why it failed. It is
// meaningful once Done.
func (o *Op) Err() error { return o.err }

// wait returns a channel closed when the operation settles.
func (o *Op) wait() <-chan struct{} { return o.doneCh }

func (o *Op) String() string {
	if o == nil {
		return "<nil>"
	}
	s := fmt.Sprintf("#%d %v %v", o.id, o.Kind, o.Members)
	switch {
	case !o.done:
		s += " pending"
	case o.err != nil:
		s += " failed: " + o.err.Error()
	default:
		s += " succeeded"
	}
	return s
}

func (o *Op) settle(err error) bool {
	if o.done {
		return false
	}
	o.done, o.err = true, err
	close(o.doneCh)
	return true
}
