package wire

import (
	"encoding/binary"
)

// Caps on what a decoder accepts. They bound memory and work per packet
// before anything is allocated or verified; docs/PROTOCOL.md explains each.
const (
	// MaxPacketSize bounds the decoded bytes of one packet (128 KiB). Its
	// armoured form (about 171 KiB) fits well inside the 256 KiB stanza
	// limit that makes Prosody drop a client's whole session. A data packet
	// is at most about 64 KiB; this leaves room for greetings of
	// MaxMembers members with long JIDs.
	MaxPacketSize = 128 << 10

	// MaxRecords bounds the number of records in one packet or plaintext.
	MaxRecords = 2048

	// MaxMembers bounds the members of one operation, and so the repetitions
	// of MEMBER, INT_KEY, NONCE, PUB_KEY, LATEST_PM and MESSAGE_PARENT.
	MaxMembers = 256

	// MaxRepeated bounds the repetitions of any repeated record type.
	MaxRepeated = MaxMembers

	// MaxIDSize bounds a participant id (SOURCE, DEST, MEMBER): the longest
	// valid JID, 1023 bytes each for local part, domain and resource plus
	// two separators (RFC 7622).
	MaxIDSize = 3071

	// MaxValueSize is the largest value a TLV length can express.
	MaxValueSize = 0xffff
)

// Record is one TLV record.
type Record struct {
	Type  RecordType
	Value []byte
	// Offset is the position of the record's header in the decoded input.
	Offset int
}

// AppendRecord appends the TLV encoding of one record to b. It returns an
// error wrapping [ErrTooLarge] when the value does not fit a 16-bit length.
func AppendRecord(b []byte, t RecordType, value []byte) ([]byte, error) {
	if len(value) > MaxValueSize {
		return b, errAt(ErrTooLarge, t, len(b), "value of %d bytes", len(value))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(t))
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...), nil
}

// EncodeRecords encodes records in order.
func EncodeRecords(records []Record) ([]byte, error) {
	var b []byte
	var err error
	for _, r := range records {
		if b, err = AppendRecord(b, r.Type, r.Value); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// DecodeRecords splits b into records. It rejects input over
// [MaxPacketSize], more than [MaxRecords] records, and a record that runs
// past the end. Values alias a private copy of b, never b itself.
func DecodeRecords(b []byte) ([]Record, error) {
	if len(b) > MaxPacketSize {
		return nil, errAt(ErrTooLarge, 0, 0, "packet of %d bytes, cap %d", len(b), MaxPacketSize)
	}
	return decodeRecordsNoCopy(append([]byte(nil), b...))
}

// decodeRecordsNoCopy is DecodeRecords on a buffer the caller already owns.
// A first pass checks the framing and counts the records, so that the
// second allocates exactly once.
func decodeRecordsNoCopy(b []byte) ([]Record, error) {
	n := 0
	for off := 0; off < len(b); n++ {
		if n == MaxRecords {
			return nil, errAt(ErrTooMany, 0, off, "more than %d records", MaxRecords)
		}
		if len(b)-off < 4 {
			return nil, errAt(ErrTruncated, 0, off, "record header")
		}
		t := RecordType(binary.BigEndian.Uint16(b[off:]))
		l := int(binary.BigEndian.Uint16(b[off+2:]))
		if len(b)-off-4 < l {
			return nil, errAt(ErrTruncated, t, off, "record value of %d bytes, %d left", l, len(b)-off-4)
		}
		off += 4 + l
	}
	records := make([]Record, n)
	off := 0
	for i := range records {
		l := int(binary.BigEndian.Uint16(b[off+2:]))
		records[i] = Record{Type: RecordType(binary.BigEndian.Uint16(b[off:])), Value: b[off+4 : off+4+l : off+4+l], Offset: off}
		off += 4 + l
	}
	return records, nil
}
