package session

import (
	"fmt"
	"time"

	"github.com/mpenc/mpenc/transcript"
)

// State is the public session state, with the reference's numbers and
// names. A member is JOINED in a session with others; PARTING while it
// leaves (or is being excluded); PART_FAILED once it left with some of its
// messages not acknowledged by everyone; PARTED out of the room; JOINING
// in the room waiting to be included (or alone, holding the session); and
// JOIN_FAILED when nobody included it in time. ERROR is a fatal protocol
// error: the last SecurityWarning says which.
type State uint8

//go:generate go tool stringer -type=State,NoticeKind,OpKind,ActionKind,stage -linecomment -output=enum_string.go

// Public session states.
const (
	StateJoined     State = 1 // JOINED
	StateParting    State = 2 // PARTING
	StatePartFailed State = 3 // PART_FAILED
	StateParted     State = 4 // PARTED
	StateJoining    State = 5 // JOINING
	StateJoinFailed State = 6 // JOIN_FAILED
	StateError      State = 7 // ERROR
)

// NoticeKind says what a Notice reports.
type NoticeKind uint8

// Notice kinds. The Notice fields each kind sets are listed with it.
const (
	// Message: a Payload entered the message log. ID, Author, Text, Own,
	// Members (the subsession's members: who it was sent to), LogParents
	// (how many entries above each of its log parents is: {1} answers the
	// entry just above; anything else must be highlighted), AfterOwnFin.
	Message NoticeKind = iota + 1
	// FullyAcked: everyone the message was sent to has acknowledged it.
	// ID. Clears NotFullyAcked.
	FullyAcked
	// NotFullyAcked: the message is not acknowledged by Members in time (a
	// persistent state of the message, cleared by FullyAcked). ID, Members,
	// Final (can no longer be verified), Absent (all named left on purpose or were excluded since).
	NotFullyAcked
	// Waiting: a message waits for older ones that have not arrived (its
	// content is not shown). ID, Author, Missing. Withdrawn by Message with
	// Late set, or turned into Dropped.
	Waiting
	// Dropped: a message waited too long for older ones and was dropped;
	// no one is blamed. ID, Author.
	Dropped
	// NotDecrypted: a packet none of our subsessions can open (Author is
	// the channel sender).
	NotDecrypted
	// SecurityWarning: something is wrong: a forged, altered, malformed or
	// inconsistent packet, a fork, a dodgy transport. Author (when known),
	// Err, Terminal (the session is in ERROR).
	SecurityWarning
	// Membership: the session's membership changed. Remain, Include,
	// Exclude, LogParents (the message-log heads it follows).
	Membership
	// OpProposed, OpAccepted, OpRejected, OpFailed, OpSucceeded: progress of
	// a membership operation. Op (the handle, ours or nil for others'),
	// OpKind, Author (the initiator), Include/Exclude, Err (why it was
	// rejected or failed).
	OpProposed
	OpAccepted
	OpRejected
	OpFailed
	OpSucceeded
	// StateChanged: the public state changed. State.
	StateChanged
	// JoinRequest: Author entered the room and is not in the session; a
	// member may include them.
	JoinRequest
	// ChannelEnter, ChannelLeave: Author entered or left the room.
	ChannelEnter
	ChannelLeave
	// Plain: Author sent a message without encryption (a client that does
	// not speak mpENC). Text. Never trusted: show it marked unencrypted.
	Plain
	// MemberExpired: Author has not responded for a long time ("not
	// responding"). MemberPresent: it responded again. MemberAbsent: it left
	// the session on purpose (its FIN is fully acknowledged).
	MemberExpired
	MemberPresent
	MemberAbsent
	// Gap: we were out of the room (a reconnection, a restart): messages
	// sent meanwhile may be lost; a new subsession follows once we are
	// included again. Err says why we were out, as the channel reported it
	// (text from the server or a room moderator: show it as theirs).
	Gap
	// Kicked: Members must leave the room, and we asked the server to
	// remove them; Text says why, in our words (the same sentence goes to
	// them). Or Members is just us: the room removed us while we waited to
	// be included; Err is the room's reason as the channel reported it,
	// and Until when we enter again by ourselves (zero: we do not).
	Kicked
	// Queued: a message typed while we were out of the session (ID is a
	// handle for it until it is sent, Text, Members the members it is
	// meant for: those of our last subsession); it waits for them until
	// Until. It is sent as a Message whose Replaces is this ID.
	Queued
	// NotDelivered: a message did not reach Members: a queued message
	// sent before they came back (ID the sent message's), or never sent
	// (ID the queued handle, Text: the user may send it again).
	NotDelivered
	// ErrorReport: Author (the packet's sender) reports a problem in an
	// mpENC error packet: Text, its words (bounded, valid UTF-8, still
	// remote text to show escaped), Severity ("info", "warning" or
	// "terminal"), Signed when it verified under Author's ephemeral key in
	// our group. It is Author's claim, not ours: never show it as our
	// security warning.
	ErrorReport
)

// warning reports whether the notice kind signals that something is wrong. On
// an honest channel with no crashes a correct session emits none.
func (k NoticeKind) warning() bool {
	switch k {
	case NotFullyAcked, Waiting, Dropped, NotDecrypted, SecurityWarning, MemberExpired, Gap, NotDelivered:
		return true
	}
	return false
}

// Notice is an event for the user interface. Which fields are set depends
// on Kind. Notices never carry key material; Text is message plaintext for
// display only: never log it.
type Notice struct {
	Kind NoticeKind
	At   time.Time

	ID          transcript.ID
	Author      string
	Text        string
	Own         bool
	Members     []string
	LogParents  []int
	AfterOwnFin bool
	Late        bool
	Missing     []transcript.ID
	Final       bool
	Absent      bool
	// Replaces is the Queued handle a Message that was queued replaces.
	Replaces transcript.ID
	// Signed and Severity describe an ErrorReport.
	Signed   bool
	Severity string
	// Until is when something the notice announces ends: the wait of a
	// JOINING state for someone to include us, a queued message's wait,
	// our re-entry after a kick, and (OpFailed) the pause before the
	// newcomers of a failed inclusion (one stalled, or a member refused
	// one) are proposed again automatically.
	Until time.Time

	Remain, Include, Exclude []string

	Op     *Op
	OpKind OpKind

	State    State
	Err      error
	Terminal bool
}

// IsWarning reports whether this notice signals that something is wrong:
// a warning kind, except a NotFullyAcked whose named members all left on
// purpose (their FIN was fully acked) or were excluded by the group since:
// that is information, not alarm.
func (n Notice) IsWarning() bool {
	if n.Kind == NotFullyAcked && n.Absent {
		return false
	}
	return n.Kind.warning()
}

func (n Notice) String() string {
	s := fmt.Sprintf("%v", n.Kind)
	if n.Author != "" {
		s += " author=" + n.Author
	}
	if n.Kind == Membership {
		s += fmt.Sprintf(" remain=%v include=%v exclude=%v", n.Remain, n.Include, n.Exclude)
	}
	if n.Op != nil {
		s += " op=" + n.Op.String()
	}
	if n.Kind == StateChanged {
		s += " state=" + n.State.String()
	}
	if n.Err != nil {
		s += " err=" + n.Err.Error()
	}
	return s
}
