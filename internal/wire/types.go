package wire

import "fmt"

// ProtocolVersion is the single byte of the PROTOCOL_VERSION record in
// mpENC/1 (the design document says 16 bits; the reference sends one byte).
const ProtocolVersion byte = 0x01

// RecordType is the 16-bit type of a TLV record.
type RecordType uint16

// Record types of mpENC/1, with the reference's codes.
const (
	RecProtocolVersion  RecordType = 0x0001 // 1 byte, 0x01
	RecMessageType      RecordType = 0x0002 // 1 byte, a MessageType
	RecMessageSignature RecordType = 0x0003 // 64-byte Ed25519 signature
	RecMessagePayload   RecordType = 0x0010 // data ciphertext or error text
	RecMessageIV        RecordType = 0x0011 // 12-byte AES-CTR nonce
	RecSidkeyHint       RecordType = 0x0012 // 1 byte, SHA256(sid ‖ gk)[0]
	RecMessageParent    RecordType = 0x0013 // 20-byte parent id (inside the ciphertext)
	RecMessageBody      RecordType = 0x0014 // encoded body (inside the ciphertext)
	RecSource           RecordType = 0x0100 // sender's participant id
	RecDest             RecordType = 0x0101 // recipient id; empty = broadcast
	RecMember           RecordType = 0x0102 // repeated, in operation order
	RecIntKey           RecordType = 0x0103 // repeated, 32 bytes or empty (base point)
	RecNonce            RecordType = 0x0104 // repeated, 32 bytes
	RecPubKey           RecordType = 0x0105 // repeated, 32-byte ephemeral Ed25519 key
	RecSessionSignature RecordType = 0x0106 // 64 bytes
	RecSigningKey       RecordType = 0x0107 // ephemeral signing seed (key publication)
	RecGreetType        RecordType = 0x01ff // 2 bytes, a GreetType
	RecSeverity         RecordType = 0x0201 // 1 byte, a Severity
	RecPrevPF           RecordType = 0x0301 // 32 bytes
	RecChainHash        RecordType = 0x0302 // 32 bytes
	RecLatestPM         RecordType = 0x0303 // repeated 20-byte message ids

	// Our additions (docs/PROTOCOL.md §8); the reference has no such codes.

	// RecAbortPI names, in an abort packet, the initial packet (its
	// ServerOrder packet id, 32 bytes) of the operation being aborted.
	RecAbortPI RecordType = 0x0304
)

var recordNames = map[RecordType]string{
	RecProtocolVersion:  "PROTOCOL_VERSION",
	RecMessageType:      "MESSAGE_TYPE",
	RecMessageSignature: "MESSAGE_SIGNATURE",
	RecMessagePayload:   "MESSAGE_PAYLOAD",
	RecMessageIV:        "MESSAGE_IV",
	RecSidkeyHint:       "SIDKEY_HINT",
	RecMessageParent:    "MESSAGE_PARENT",
	RecMessageBody:      "MESSAGE_BODY",
	RecSource:           "SOURCE",
	RecDest:             "DEST",
	RecMember:           "MEMBER",
	RecIntKey:           "INT_KEY",
	RecNonce:            "NONCE",
	RecPubKey:           "PUB_KEY",
	RecSessionSignature: "SESSION_SIGNATURE",
	RecSigningKey:       "SIGNING_KEY",
	RecGreetType:        "GREET_TYPE",
	RecSeverity:         "SEVERITY",
	RecPrevPF:           "PREV_PF",
	RecChainHash:        "CHAIN_HASH",
	RecLatestPM:         "LATEST_PM",
	RecAbortPI:          "ABORT_PI",
}

// String returns the reference's name of the record type, or its hex code.
func (t RecordType) String() string {
	if s, ok := recordNames[t]; ok {
		return s
	}
	return fmt.Sprintf("RecordType(0x%04x)", uint16(t))
}

// MessageType is the value of the MESSAGE_TYPE record.
type MessageType uint8

// Message types of mpENC/1. MsgPlain is never on the wire inside a packet: it
// names a string without the "?mpENC:" prefix.
const (
	MsgPlain MessageType = 0x00
	MsgQuery MessageType = 0x01
	MsgGreet MessageType = 0x02
	MsgData  MessageType = 0x03
	MsgError MessageType = 0x04
)

// String returns the reference's name of the message type.
func (m MessageType) String() string {
	switch m {
	case MsgPlain:
		return "PLAIN"
	case MsgQuery:
		return "MPENC_QUERY"
	case MsgGreet:
		return "MPENC_GREET_MESSAGE"
	case MsgData:
		return "MPENC_DATA_MESSAGE"
	case MsgError:
		return "MPENC_ERROR"
	}
	return fmt.Sprintf("MessageType(0x%02x)", uint8(m))
}

// Severity is the value of the SEVERITY record of an error packet.
type Severity uint8

// Severities of error packets.
const (
	SeverityInfo     Severity = 0
	SeverityWarning  Severity = 1
	SeverityTerminal Severity = 2
)

// String returns the reference's name of the severity.
func (s Severity) String() string {
	switch s {
	case SeverityInfo:
		return "INFO"
	case SeverityWarning:
		return "WARNING"
	case SeverityTerminal:
		return "TERMINAL"
	}
	return fmt.Sprintf("Severity(%d)", uint8(s))
}

// Operation is the operation a greeting packet belongs to (bits 4-6 of the
// GREET_TYPE low byte).
type Operation uint8

// Greeting operations.
const (
	OpData    Operation = 0
	OpStart   Operation = 1
	OpInclude Operation = 2
	OpExclude Operation = 3
	OpRefresh Operation = 4
	OpQuit    Operation = 5
	// OpAbort is our addition: ending a stalled operation for everyone.
	OpAbort Operation = 6
)

// String returns the reference's name of the operation.
func (o Operation) String() string {
	switch o {
	case OpData:
		return "DATA"
	case OpStart:
		return "START"
	case OpInclude:
		return "INCLUDE"
	case OpExclude:
		return "EXCLUDE"
	case OpRefresh:
		return "REFRESH"
	case OpQuit:
		return "QUIT"
	case OpAbort:
		return "ABORT"
	}
	return fmt.Sprintf("Operation(%d)", uint8(o))
}

// GreetType is the value of the GREET_TYPE record. Its low byte holds flags:
// bit 0 AUX, bit 1 DOWN, bit 2 GKA, bit 3 SKE, bits 4-6 the [Operation],
// bit 7 INIT.
type GreetType uint16

// Greeting types of mpENC/1, as the reference defines them.
const (
	GreetInitInitiatorUp                  GreetType = 0x009c
	GreetInitParticipantUp                GreetType = 0x001c
	GreetInitParticipantDown              GreetType = 0x001e
	GreetInitParticipantConfirmDown       GreetType = 0x001a
	GreetIncludeAuxInitiatorUp            GreetType = 0x00ad
	GreetIncludeAuxParticipantUp          GreetType = 0x002d
	GreetIncludeAuxParticipantDown        GreetType = 0x002f
	GreetIncludeAuxParticipantConfirmDown GreetType = 0x002b
	GreetExcludeAuxInitiatorDown          GreetType = 0x00bf
	GreetExcludeAuxParticipantConfirmDown GreetType = 0x003b
	GreetRefreshAuxInitiatorDown          GreetType = 0x00c7
	GreetQuitDown                         GreetType = 0x00d3

	// GreetAbortDown is our addition (docs/PROTOCOL.md §8): a member of the
	// operation's continuing members ends a stalled operation; ServerOrder
	// takes it like a final packet. Operation 6, DOWN and AUX set.
	GreetAbortDown GreetType = 0x0063
)

const (
	greetBitAux  = 1 << 0
	greetBitDown = 1 << 1
	greetBitGKA  = 1 << 2
	greetBitSKE  = 1 << 3
	greetBitInit = 1 << 7
)

var greetNames = map[GreetType]string{
	GreetInitInitiatorUp:                  "INIT_INITIATOR_UP",
	GreetInitParticipantUp:                "INIT_PARTICIPANT_UP",
	GreetInitParticipantDown:              "INIT_PARTICIPANT_DOWN",
	GreetInitParticipantConfirmDown:       "INIT_PARTICIPANT_CONFIRM_DOWN",
	GreetIncludeAuxInitiatorUp:            "INCLUDE_AUX_INITIATOR_UP",
	GreetIncludeAuxParticipantUp:          "INCLUDE_AUX_PARTICIPANT_UP",
	GreetIncludeAuxParticipantDown:        "INCLUDE_AUX_PARTICIPANT_DOWN",
	GreetIncludeAuxParticipantConfirmDown: "INCLUDE_AUX_PARTICIPANT_CONFIRM_DOWN",
	GreetExcludeAuxInitiatorDown:          "EXCLUDE_AUX_INITIATOR_DOWN",
	GreetExcludeAuxParticipantConfirmDown: "EXCLUDE_AUX_PARTICIPANT_CONFIRM_DOWN",
	GreetRefreshAuxInitiatorDown:          "REFRESH_AUX_INITIATOR_DOWN",
	GreetQuitDown:                         "QUIT_DOWN",
	GreetAbortDown:                        "ABORT_DOWN",
}

// Known reports whether g is one of the greeting types this version defines.
// Decoders reject every other value.
func (g GreetType) Known() bool { _, ok := greetNames[g]; return ok }

// String returns the reference's name of the greeting type, or its hex code.
func (g GreetType) String() string {
	if s, ok := greetNames[g]; ok {
		return s
	}
	return fmt.Sprintf("GreetType(0x%04x)", uint16(g))
}

// Aux reports the AUX flag (an auxiliary operation: include, exclude, refresh).
func (g GreetType) Aux() bool { return g&greetBitAux != 0 }

// Down reports the DOWN flag (a broadcast, downflow packet).
func (g GreetType) Down() bool { return g&greetBitDown != 0 }

// GKA reports the GKA flag (the packet carries intermediate keys).
func (g GreetType) GKA() bool { return g&greetBitGKA != 0 }

// SKE reports the SKE flag (the packet takes part in the ASKE).
func (g GreetType) SKE() bool { return g&greetBitSKE != 0 }

// Init reports the INIT flag (the first packet of an operation).
func (g GreetType) Init() bool { return g&greetBitInit != 0 }

// Op returns the operation the packet belongs to.
func (g GreetType) Op() Operation { return Operation((g >> 4) & 0x7) }
