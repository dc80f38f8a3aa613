package subsession

import (
	"errors"
	"fmt"
	"time"

	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/transcript"
)

// State is the lifecycle of a subsession, with the reference's public
// session-state numbers.
type State uint8

// States.
const (
	// Joined: sending and receiving normally.
	Joined State = 1
	// Parting: our FIN is out (Fin was called); we still read, ack and
	// flush, but send no Payload and no other FIN.
	Parting State = 2
	// PartFailed: the subsession completed with some Payload not fully
	// acked.
	PartFailed State = 3
	// Parted: the subsession completed with every Payload fully acked.
	Parted State = 4
)

func (s State) String() string {
	switch s {
	case Joined:
		return "JOINED"
	case Parting:
		return "PARTING"
	case PartFailed:
		return "PART_FAILED"
	case Parted:
		return "PARTED"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Done reports whether the subsession has completed (PARTED or
// PART_FAILED): it sends nothing any more and runs no timers.
func (s State) Done() bool { return s == Parted || s == PartFailed }

// Errors of the send methods.
var (
	// ErrState: the state forbids this send (a Payload or FIN while
	// PARTING, anything after completion).
	ErrState = errors.New("subsession: not allowed in this state")
	// ErrFailed: the subsession saw a fork and sends no more Payloads or
	// flushes; acks and Fin still work so it can part.
	ErrFailed = errors.New("subsession: failed after a fork, not sending")
	// ErrEmpty: an empty Payload; a manual ack (SendAck(true)) is what the
	// reference sends for empty input.
	ErrEmpty = errors.New("subsession: empty payload")
	// ErrOwnKey: a packet signed with our own ephemeral key that we did
	// not send in this subsession (key compromise, or state lost).
	ErrOwnKey = errors.New("subsession: message signed with our key that we did not send")
)

// NoticeKind says what a [Notice] reports.
type NoticeKind uint8

// Notice kinds. The fields of Notice each kind sets are listed with it.
const (
	// MsgAccepted: a message entered the transcript (own ones at send
	// time). ID, Index, Author, Own, Body, Text (Payload), AfterOwnFin,
	// Late. Emitted in accept order: feed causal.MessageLog.Append
	// with Index for every one of them.
	MsgAccepted NoticeKind = iota + 1
	// MsgFullyAcked: every reader acked the message (never emitted for
	// ExplicitAcks). Clears MsgNotFullyAcked unconditionally. ID, Index,
	// Author, Body.
	MsgFullyAcked
	// MsgNotFullyAcked: a monitored message not fully acked FA after
	// accept, or at completion (Final). ID, Index, Author, Body, Members =
	// who has not acked it, Absent if all of them left intentionally
	// (lower severity). A persistent state of the message, not a toast.
	MsgNotFullyAcked
	// MsgNotAccepted: a verified message has waited BC for parents that
	// have not arrived. ID, Author, Missing. Its content is never shown.
	MsgNotAccepted
	// MsgDropped: a buffered message was dropped FA after it arrived: "a
	// referenced message did not arrive in time". Blames nobody: the
	// transport, the server and a lying author look the same. ID, Author,
	// Missing. A resend may still bring it back.
	MsgDropped
	// BufferOverflow: the buffer of messages waiting for parents was full
	// and its oldest entry (of that author, if the author's share was
	// full) was dropped. ID, Author.
	BufferOverflow
	// SecurityWarning: a member sent something invalid. Author, ID, Err
	// (wrapping a transcript or message sentinel, or ErrOwnKey); Terminal
	// for a fork, after which the subsession sends no Payloads (Failed).
	SecurityWarning
	// LeaveIntent: Author sent a FIN whose only parent is its own FIN: it
	// wants to leave the session; propose its exclusion. ID.
	LeaveIntent
	// MemberExpired: Author has not responded for OthersExpiry (shown as
	// "not responding"); At is when. Only with heartbeats on.
	MemberExpired
	// MemberPresent: an expired Author responded again.
	MemberPresent
	// MemberAbsent: Author's FIN is fully acked: it left intentionally.
	MemberAbsent
	// StateChanged: State is the new state.
	StateChanged
	// FinComplete: the shutdown completed (onFin of the reference), once;
	// ID is our FIN (zero if Stop ended the subsession without one), State
	// is PARTED or PART_FAILED.
	FinComplete
	// NotDecrypted (emitted by a [TrialBuffer]): a packet from channel
	// sender Author waited NotDecrypted without any subsession opening
	// it; Count packets wait.
	NotDecrypted
)

var noticeNames = map[NoticeKind]string{MsgAccepted: "MsgAccepted", MsgFullyAcked: "MsgFullyAcked",
	MsgNotFullyAcked: "MsgNotFullyAcked", MsgNotAccepted: "MsgNotAccepted", MsgDropped: "MsgDropped",
	BufferOverflow: "BufferOverflow", SecurityWarning: "SecurityWarning", LeaveIntent: "LeaveIntent",
	MemberExpired: "MemberExpired", MemberPresent: "MemberPresent", MemberAbsent: "MemberAbsent",
	StateChanged: "StateChanged", FinComplete: "FinComplete", NotDecrypted: "NotDecrypted"}

func (k NoticeKind) String() string {
	if s, ok := noticeNames[k]; ok {
		return s
	}
	return fmt.Sprintf("NoticeKind(%d)", uint8(k))
}

// Warning reports whether notices of this kind are warnings: a full-ack
// failure, a missing parent, a drop or overflow, a security warning, an
// expired member, an undecryptable packet. See also [Notice.Warning].
func (k NoticeKind) Warning() bool {
	switch k {
	case MsgNotFullyAcked, MsgNotAccepted, MsgDropped, BufferOverflow, SecurityWarning, MemberExpired, NotDecrypted:
		return true
	}
	return false
}

// Notice is an event for the owner (HybridSession, UI). Which fields are
// set depends on Kind (see the constants). Notices never carry key material;
// Text is the plaintext of an accepted Payload, for display only: do not
// log it.
type Notice struct {
	Kind NoticeKind
	At   time.Time

	ID     transcript.ID
	Index  causal.Index
	Author string
	Own    bool
	Body   causal.Kind
	Text   string
	// Chain (MsgAccepted of a ChainCheck): the position it states.
	Chain *message.ChainPosition

	// AfterOwnFin (MsgAccepted): a Payload by someone else outside the
	// ancestors of our FIN; show it with a permanent "arrived after you
	// closed; cannot be verified" mark (docs/MESSAGE-LAYER.md §4.8).
	AfterOwnFin bool
	// Late (MsgAccepted): this message had been reported MsgNotAccepted;
	// withdraw that warning.
	Late bool

	Count   int             // NotDecrypted: packets waiting
	Members []string        // MsgNotFullyAcked: who has not acked
	Missing []transcript.ID // MsgNotAccepted, MsgDropped: parents not arrived
	Final   bool            // MsgNotFullyAcked at completion: can no longer be verified
	Absent  bool            // MsgNotFullyAcked: every member named left intentionally
	Err     error           // SecurityWarning: why
	// Terminal (SecurityWarning): a fork; the subsession is failed.
	Terminal bool
	State    State // StateChanged, FinComplete
}

// Warning reports whether the notice is a warning to show the user. A
// MsgNotFullyAcked whose members all left intentionally (Absent) is not:
// docs/MESSAGE-LAYER.md §4.2 lowers its severity, since nobody is missing
// anything they meant to read. A correct implementation on an honest channel
// (every delivery within BC) never emits a warning.
func (n Notice) Warning() bool {
	return n.Kind.Warning() && !(n.Kind == MsgNotFullyAcked && n.Absent)
}

// Outcome is what [SessionBase.Receive] did with a packet.
type Outcome uint8

// Outcomes.
const (
	// NotMine: the hint differs or no member's key verifies the packet for
	// this subsession. Try the next subsession; if none takes it, it goes
	// to the trial-decrypt buffer.
	NotMine Outcome = iota
	// Invalid: the packet carries our hint but cannot be a data message
	// (payload too short). Drop it.
	Invalid
	// Accepted: the message (and any buffered descendants) entered the
	// transcript.
	Accepted
	// Buffered: verified, but a parent is missing; it waits (never shown).
	Buffered
	// Duplicate: already accepted, buffered or rejected; handled without
	// any cryptography.
	Duplicate
	// Rejected: verified and invalid; a SecurityWarning names the author.
	Rejected
)

func (o Outcome) String() string {
	return [...]string{"NotMine", "Invalid", "Accepted", "Buffered", "Duplicate", "Rejected"}[o]
}

// Mine reports whether the packet belongs to this subsession (verified, or
// a duplicate of a packet that did).
func (o Outcome) Mine() bool { return o >= Accepted }

// Result reports a receive.
type Result struct {
	Outcome Outcome
	ID      transcript.ID // set for every outcome but NotMine and Invalid
	Author  string        // set once the signature verified
	Err     error         // Rejected: why; NotMine/Invalid: the check that failed
}

// Presence is what we know of a member's liveness (docs/MESSAGE-LAYER.md
// §4.7).
type Presence uint8

// Presences.
const (
	Present       Presence = iota + 1
	NotResponding          // expired: no ack of ours for OthersExpiry
	MemberParting          // its FIN is accepted, not yet fully acked
	IntentAbsent           // its FIN is fully acked: left intentionally
	LeftChannel            // not in the room (SetChannelMembers)
	PresenceSelf           // ourselves
)

func (p Presence) String() string {
	return [...]string{"?", "present", "not responding", "parting", "absent", "left the channel", "self"}[p]
}

// Stats counts what a subsession did; tests and diagnostics read it.
type Stats struct {
	Sent                                                int // new messages sent, every kind
	Payloads, AutoAcks, ManualAcks, Flushes, Heartbeats int // of which
	Fins                                                int
	Resent                                              int // packets re-broadcast (explicit-ack chains included)
	ResendRounds                                        int // monitor rounds that re-broadcast
	Received, Accepted, Duplicates, Buffered, Rejected  int
	NotMine                                             int
	Warnings                                            int // notices with Warning() true
	BufferLen, BufferBytes                              int // now
	CachedWires, CachedBytes                            int // now
}
