package xmpp

import (
	"errors"
	"fmt"
)

// Sentinel errors. Each is a contract: callers may branch on it with
// errors.Is.
var (
	// ErrConfig: the Config is invalid (the wrapping error says why).
	ErrConfig = errors.New("xmpp: invalid configuration")
	// ErrInsecure: an unsafe option (UnsafePlaintext, UnsafeSkipVerify) was
	// asked for a server that is not on the loopback interface.
	ErrInsecure = errors.New("xmpp: unsafe transport options are for loopback servers only")
	// ErrClosed: the channel was closed.
	ErrClosed = errors.New("xmpp: channel closed")
	// ErrNotInRoom: Send or Kick while we are not in the room (not entered
	// yet, left, or reconnecting).
	ErrNotInRoom = errors.New("xmpp: not in the room")
	// ErrRoomAnonymous: the room does not show occupants' real JIDs to
	// everyone (a semi-anonymous room), and we could not make it so. mpENC
	// identifies members by real full JIDs; it cannot run in such a room.
	ErrRoomAnonymous = errors.New("xmpp: the room hides occupants' real JIDs (semi-anonymous); mpENC needs a non-anonymous room")
	// ErrNotModerator: Kick without the moderator role.
	ErrNotModerator = errors.New("xmpp: kicking needs the moderator role in the room")
	// ErrStanzaTooLarge: Send refused a message over the stanza size limit;
	// the connection is untouched. The error is a *StanzaTooLargeError.
	ErrStanzaTooLarge = errors.New("xmpp: stanza too large")
	// ErrInvalidBody: Send refused a string that XML cannot carry unchanged
	// (invalid UTF-8 or characters outside the XML character range).
	ErrInvalidBody = errors.New("xmpp: body not representable in XML")
	// ErrAuth: the server refused our credentials. Not retried.
	ErrAuth = errors.New("xmpp: authentication failed")
	// ErrTLS: TLS could not be established or the server's certificate was
	// not accepted. Not retried.
	ErrTLS = errors.New("xmpp: TLS failed")
	// ErrOverflow: the event queue overflowed because the consumer did not
	// drain Events; the channel dropped the connection (see the package
	// documentation).
	ErrOverflow = errors.New("xmpp: event queue overflow")
	// ErrForgotten: a self-ping (XEP-0410) showed that the room no longer
	// has us although it never said so (a restarted MUC service, a lost
	// presence). The EventOwnLeave that marks the gap carries it; the
	// channel enters again.
	ErrForgotten = errors.New("xmpp: the room no longer has us in it")
)

// errHiddenOccupants fails a join attempt (to be retried) in a room that
// hid some occupants' real JIDs while we entered.
var errHiddenOccupants = errors.New("xmpp: some occupants entered while the room hid real JIDs; entering again")

// StanzaTooLargeError is returned by Send for a message whose stanza would
// exceed the limit. It matches ErrStanzaTooLarge.
type StanzaTooLargeError struct {
	Size, Limit int
}

func (e *StanzaTooLargeError) Error() string {
	return fmt.Sprintf("xmpp: stanza of %d bytes over the %d-byte limit", e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrStanzaTooLarge) true.
func (e *StanzaTooLargeError) Is(target error) bool { return target == ErrStanzaTooLarge }

// RoomError is a refusal from the room or the server, as a stanza error
// condition (RFC 6120 §8.3.3), for example "conflict" (nick in use),
// "forbidden" (banned), "registration-required" (members-only room),
// "not-authorized" (password needed), "item-not-found" (locked room).
type RoomError struct {
	Op        string // "join", "kick", "configure"
	Room      string
	Condition string
	Text      string // the server's explanation, if any (bounded)
}

func (e *RoomError) Error() string {
	s := fmt.Sprintf("xmpp: %s %s: %s", e.Op, e.Room, e.Condition)
	if e.Text != "" {
		s += fmt.Sprintf(" (%q)", e.Text)
	}
	return s
}

// permanent reports whether retrying the join cannot help.
func (e *RoomError) permanent() bool {
	switch e.Condition {
	case "forbidden", "registration-required", "not-authorized", "conflict",
		"not-allowed", "jid-malformed", "bad-request", "not-acceptable":
		return true
	}
	return false
}

// LeaveReason says why the room removed us.
type LeaveReason uint8

// Reasons for being removed from the room.
const (
	LeftByRequest   LeaveReason = iota + 1 // we asked (Leave or Close)
	LeftKicked                             // status 307
	LeftBanned                             // status 301
	LeftAffiliation                        // status 321: affiliation changed
	LeftMembersOnly                        // status 322: room became members-only
	LeftDestroyed                          // the room was destroyed
	LeftAnonymous                          // the room became semi-anonymous (status 173/174)
)

func (r LeaveReason) String() string {
	switch r {
	case LeftByRequest:
		return "left"
	case LeftKicked:
		return "kicked"
	case LeftBanned:
		return "banned"
	case LeftAffiliation:
		return "affiliation changed"
	case LeftMembersOnly:
		return "room became members-only"
	case LeftDestroyed:
		return "room destroyed"
	case LeftAnonymous:
		return "room became semi-anonymous"
	}
	return fmt.Sprintf("LeaveReason(%d)", uint8(r))
}

// RemovedError is what Err reports after the room removed us for good; the
// channel does not re-enter by itself.
type RemovedError struct {
	Room   string
	Reason LeaveReason
}

func (e *RemovedError) Error() string {
	return fmt.Sprintf("xmpp: removed from %s: %v", e.Room, e.Reason)
}

// Is makes errors.Is(err, ErrRoomAnonymous) true for a room that turned
// semi-anonymous.
func (e *RemovedError) Is(target error) bool {
	return target == ErrRoomAnonymous && e.Reason == LeftAnonymous
}
