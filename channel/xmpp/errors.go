package xmpp

import (
	"errors"
	"fmt"
)

// Sentinel errors. Only ErrAuth is exported (the client's exit status
// tells a refused login apart); no caller branches on the others, and
// their texts (the package documentation lists them) say what happened.
// Errors wrap them with %w, so each error's text starts with or contains
// its sentinel's.
var (
	// errConfig: the Config is invalid (the wrapping error says why).
	errConfig = errors.New("xmpp: invalid configuration")
	// errInsecure: an unsafe option (UnsafePlaintext, UnsafeSkipVerify) was
	// asked for a server that is not on the loopback interface.
	errInsecure = errors.New("xmpp: unsafe transport options are for loopback servers only")
	// errClosed: the channel was closed.
	errClosed = errors.New("xmpp: channel closed")
	// errNotInRoom: Send or Kick while we are not in the room (not entered
	// yet, left, or reconnecting).
	errNotInRoom = errors.New("xmpp: not in the room")
	// errRoomAnonymous: the room does not show occupants' real JIDs to
	// everyone (a semi-anonymous room), and we could not make it so. mpENC
	// identifies members by real full JIDs; it cannot run in such a room.
	errRoomAnonymous = errors.New("xmpp: the room hides occupants' real JIDs (semi-anonymous); mpENC needs a non-anonymous room")
	// errNotModerator: Kick without the moderator role.
	errNotModerator = errors.New("xmpp: kicking needs the moderator role in the room")
	// errStanzaTooLarge: Send refused a message over the stanza size limit;
	// the connection is untouched. The error is a *stanzaTooLargeError.
	errStanzaTooLarge = errors.New("xmpp: stanza too large")
	// errInvalidBody: Send refused a string that XML cannot carry unchanged
	// (invalid UTF-8 or characters outside the XML character range).
	errInvalidBody = errors.New("xmpp: body not representable in XML")
	// ErrAuth is the error (wrapped) of a login the server refused: a
	// wrong password, an unknown account. It is not retried.
	ErrAuth = errors.New("xmpp: authentication failed")
	// errTLS: TLS could not be established or the server's certificate was
	// not accepted. Not retried.
	errTLS = errors.New("xmpp: TLS failed")
	// errChannelBinding: the server refused a login with SASL channel
	// binding (SCRAM-…-PLUS), as ejabberd 23.01 does on TLS 1.3 ("Invalid
	// channel binding"). Not a wrong password: connect logs it and logs in
	// again without channel binding, unless Config.RequireChannelBinding,
	// where it is final.
	errChannelBinding = errors.New("xmpp: the server refused channel binding")
	// errNoChannelBinding: Config.RequireChannelBinding, and the connection
	// or the server cannot do channel binding. Not retried.
	errNoChannelBinding = errors.New("xmpp: channel binding is required but not possible")
	// errOverflow: the event queue overflowed because the consumer did not
	// drain Events; the channel dropped the connection (see the package
	// documentation).
	errOverflow = errors.New("xmpp: event queue overflow")
	// errForgotten: a self-ping (XEP-0410) showed that the room no longer
	// has us although it never said so (a restarted MUC service, a lost
	// presence). The EventOwnLeave that marks the gap carries it; the
	// channel enters again.
	errForgotten = errors.New("xmpp: the room forgot us")
	// errRoomGone: a self-ping and a disco#info query showed that the room
	// no longer exists although it never said so (a crashed or restarted
	// MUC service that kept no state). The EventOwnLeave that marks the gap
	// carries it; the channel enters again, which creates the room anew.
	errRoomGone = errors.New("xmpp: the room no longer exists")
)

// errHiddenOccupants fails a join attempt (to be retried) in a room that
// hid some occupants' real JIDs while we entered.
var errHiddenOccupants = errors.New("xmpp: some occupants entered while the room hid real JIDs; entering again")

// stanzaTooLargeError is returned by Send for a message whose stanza would
// exceed the limit. It matches errStanzaTooLarge.
type stanzaTooLargeError struct {
	Size, Limit int
}

func (e *stanzaTooLargeError) Error() string {
	return fmt.Sprintf("xmpp: stanza of %d bytes over the %d-byte limit", e.Size, e.Limit)
}

// Is makes errors.Is(err, errStanzaTooLarge) true.
func (e *stanzaTooLargeError) Is(target error) bool { return target == errStanzaTooLarge }

// roomError is a refusal from the room or the server, as a stanza error
// condition (RFC 6120 §8.3.3), for example "conflict" (nick in use),
// "forbidden" (banned), "registration-required" (members-only room),
// "not-authorized" (password needed), "item-not-found" (locked room).
type roomError struct {
	Op        string // "join", "kick", "configure"
	Room      string
	Condition string
	Text      string // the server's explanation, if any (bounded)
}

func (e *roomError) Error() string {
	s := fmt.Sprintf("xmpp: %s %s: %s", e.Op, e.Room, e.Condition)
	if e.Text != "" {
		s += fmt.Sprintf(" (%q)", e.Text)
	}
	return s
}

// permanent reports whether retrying the join cannot help.
func (e *roomError) permanent() bool {
	switch e.Condition {
	case "forbidden", "registration-required", "not-authorized", "conflict",
		"not-allowed", "jid-malformed", "bad-request", "not-acceptable":
		return true
	}
	return false
}

// leaveReason says why the room removed us.
type leaveReason uint8

// Reasons for being removed from the room.
const (
	leftByRequest   leaveReason = iota + 1 // we asked (Leave or Close)
	leftKicked                             // status 307
	leftBanned                             // status 301
	leftAffiliation                        // status 321: affiliation changed
	leftMembersOnly                        // status 322: room became members-only
	leftDestroyed                          // the room was destroyed
	leftAnonymous                          // the room became semi-anonymous (status 173/174)
)

func (r leaveReason) String() string {
	switch r {
	case leftByRequest:
		return "left"
	case leftKicked:
		return "kicked"
	case leftBanned:
		return "banned"
	case leftAffiliation:
		return "affiliation changed"
	case leftMembersOnly:
		return "room became members-only"
	case leftDestroyed:
		return "room destroyed"
	case leftAnonymous:
		return "room became semi-anonymous"
	}
	return fmt.Sprintf("LeaveReason(%d)", uint8(r))
}

// removedError is what Err reports after the room removed us for good; the
// channel does not re-enter by itself.
type removedError struct {
	Room   string
	Reason leaveReason
	// Text is the room's own words, when it gave any: the <reason/> of the
	// kick or ban (in our unavailable presence's item) or of the
	// destruction; cleaned and bounded (cleanReason).
	Text string
}

func (e *removedError) Error() string {
	s := fmt.Sprintf("xmpp: removed from %s: %v", e.Room, e.Reason)
	if e.Text != "" {
		s += fmt.Sprintf(" (%q)", e.Text)
	}
	return s
}

// Is makes errors.Is(err, errRoomAnonymous) true for a room that turned
// semi-anonymous.
func (e *removedError) Is(target error) bool {
	return target == errRoomAnonymous && e.Reason == leftAnonymous
}
