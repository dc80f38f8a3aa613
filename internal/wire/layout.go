package wire

import "encoding/binary"

// cursor walks the records of one packet in order, straight from the
// buffer (no slice of records is built), enforcing the packet's layout.
// buf is owned by the decoder and never written again, so values may alias
// it; ids are cut from one string copy of it.
type cursor struct {
	buf   []byte
	str   string // string(buf), made on the first id
	off   int    // offset of the next record
	count int    // records consumed
	prev  int    // offset of the last record consumed
}

// peek decodes the header of the next record without consuming it. ok is
// false at the end of the buffer; err reports a record that runs past it.
func (c *cursor) peek() (t RecordType, v []byte, ok bool, err error) {
	if c.off >= len(c.buf) {
		return 0, nil, false, nil
	}
	if len(c.buf)-c.off < 4 {
		return 0, nil, false, errAt(ErrTruncated, 0, c.off, "record header")
	}
	t = RecordType(binary.BigEndian.Uint16(c.buf[c.off:]))
	l := int(binary.BigEndian.Uint16(c.buf[c.off+2:]))
	if len(c.buf)-c.off-4 < l {
		return t, nil, false, errAt(ErrTruncated, t, c.off, "record value of %d bytes, %d left", l, len(c.buf)-c.off-4)
	}
	return t, c.buf[c.off+4 : c.off+4+l : c.off+4+l], true, nil
}

func (c *cursor) advance(v []byte) error {
	c.prev = c.off
	c.off += 4 + len(v)
	c.count++
	if c.count > MaxRecords {
		return errAt(ErrTooMany, 0, c.prev, "more than %d records", MaxRecords)
	}
	return nil
}

// optional consumes the next record if it has type t.
func (c *cursor) optional(t RecordType) ([]byte, bool, error) {
	got, v, ok, err := c.peek()
	if err != nil || !ok || got != t {
		return nil, false, err
	}
	return v, true, c.advance(v)
}

// require consumes the next record, which must have type t.
func (c *cursor) require(t RecordType) ([]byte, error) {
	got, v, ok, err := c.peek()
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, errAt(ErrLayout, t, c.off, "missing %v", t)
	case got != t:
		return nil, errAt(ErrLayout, t, c.off, "expected %v, found %v", t, got)
	}
	return v, c.advance(v)
}

// requireSize is require with an exact value length.
func (c *cursor) requireSize(t RecordType, size int) ([]byte, error) {
	v, err := c.require(t)
	if err != nil {
		return nil, err
	}
	if len(v) != size {
		return nil, errAt(ErrLength, t, c.prev, "%d bytes, want %d", len(v), size)
	}
	return v, nil
}

// optionalSize is optional with an exact value length.
func (c *cursor) optionalSize(t RecordType, size int) ([]byte, bool, error) {
	v, ok, err := c.optional(t)
	if err != nil || !ok {
		return nil, false, err
	}
	if len(v) != size {
		return nil, true, errAt(ErrLength, t, c.prev, "%d bytes, want %d", len(v), size)
	}
	return v, true, nil
}

// repeated consumes every consecutive record of type t, at most max of
// them, calling f on each value with its index.
func (c *cursor) repeated(t RecordType, max int, f func(i int, v []byte) error) error {
	for i := 0; ; i++ {
		v, ok, err := c.optional(t)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if i == max {
			return errAt(ErrTooMany, t, c.prev, "more than %d", max)
		}
		if err := f(i, v); err != nil {
			return err
		}
	}
}

// countRepeated counts the consecutive records of type t from the current
// position (capped at max+1), so that a slice can be sized once.
func (c *cursor) countRepeated(t RecordType, max int) int {
	d := *c
	n := 0
	for n <= max {
		if _, ok, err := d.optional(t); err != nil || !ok {
			break
		}
		n++
	}
	return n
}

// done fails if any byte is left.
func (c *cursor) done() error {
	got, _, ok, err := c.peek()
	if err != nil {
		return err
	}
	if ok {
		return errAt(ErrLayout, got, c.off, "unexpected trailing %v", got)
	}
	return nil
}

// header reads PROTOCOL_VERSION and MESSAGE_TYPE and checks both.
func (c *cursor) header(want MessageType) error {
	v, err := c.requireSize(RecProtocolVersion, 1)
	if err != nil {
		return err
	}
	if v[0] != ProtocolVersion {
		return errAt(ErrVersion, RecProtocolVersion, c.prev, "version 0x%02x", v[0])
	}
	t, err := c.requireSize(RecMessageType, 1)
	if err != nil {
		return err
	}
	if MessageType(t[0]) != want {
		return errAt(ErrLayout, RecMessageType, c.prev, "message type %v, want %v", MessageType(t[0]), want)
	}
	return nil
}

// id returns a participant id: 1 to MaxIDSize bytes, or 0 when empty is
// allowed. v must be a value of c.buf; the id is cut from one string copy
// of the buffer, so n ids cost one allocation.
func (c *cursor) id(t RecordType, v []byte, allowEmpty bool) (string, error) {
	if len(v) > MaxIDSize {
		return "", errAt(ErrTooLarge, t, c.prev, "id of %d bytes, cap %d", len(v), MaxIDSize)
	}
	if len(v) == 0 {
		if !allowEmpty {
			return "", errAt(ErrValue, t, c.prev, "empty id")
		}
		return "", nil
	}
	if c.str == "" {
		c.str = string(c.buf)
	}
	start := c.off - len(v) // the value just consumed ends at c.off
	return c.str[start:c.off], nil
}

func (c *cursor) fixed32(t RecordType, v []byte) ([32]byte, error) {
	var a [32]byte
	if len(v) != 32 {
		return a, errAt(ErrLength, t, c.prev, "%d bytes, want 32", len(v))
	}
	copy(a[:], v)
	return a, nil
}

// builder appends records, keeping the first error.
type builder struct {
	b   []byte
	err error
}

func (w *builder) add(t RecordType, v []byte) {
	if w.err == nil {
		w.b, w.err = AppendRecord(w.b, t, v)
	}
}

func (w *builder) bytes() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	if len(w.b) > MaxPacketSize {
		return nil, errAt(ErrTooLarge, 0, 0, "packet of %d bytes, cap %d", len(w.b), MaxPacketSize)
	}
	return w.b, nil
}

func (w *builder) header(t MessageType) {
	w.add(RecProtocolVersion, []byte{ProtocolVersion})
	w.add(RecMessageType, []byte{byte(t)})
}
