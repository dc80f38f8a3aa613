package wire

// cursor walks the records of one packet in order, enforcing its layout.
type cursor struct {
	recs []Record
	i    int
	end  int // offset just past the last record, for errors at the end
}

func (c *cursor) peek() (RecordType, bool) {
	if c.i >= len(c.recs) {
		return 0, false
	}
	return c.recs[c.i].Type, true
}

func (c *cursor) offset() int {
	if c.i < len(c.recs) {
		return c.recs[c.i].Offset
	}
	return c.end
}

// optional consumes the next record if it has type t.
func (c *cursor) optional(t RecordType) (Record, bool) {
	if got, ok := c.peek(); ok && got == t {
		r := c.recs[c.i]
		c.i++
		return r, true
	}
	return Record{}, false
}

// require consumes the next record, which must have type t.
func (c *cursor) require(t RecordType) (Record, error) {
	if r, ok := c.optional(t); ok {
		return r, nil
	}
	if got, ok := c.peek(); ok {
		return Record{}, errAt(ErrLayout, t, c.offset(), "expected %v, found %v", t, got)
	}
	return Record{}, errAt(ErrLayout, t, c.offset(), "missing %v", t)
}

// requireSize is require with an exact value length.
func (c *cursor) requireSize(t RecordType, size int) ([]byte, error) {
	r, err := c.require(t)
	if err != nil {
		return nil, err
	}
	if len(r.Value) != size {
		return nil, errAt(ErrLength, t, r.Offset, "%d bytes, want %d", len(r.Value), size)
	}
	return r.Value, nil
}

// optionalSize is optional with an exact value length.
func (c *cursor) optionalSize(t RecordType, size int) ([]byte, bool, error) {
	r, ok := c.optional(t)
	if !ok {
		return nil, false, nil
	}
	if len(r.Value) != size {
		return nil, true, errAt(ErrLength, t, r.Offset, "%d bytes, want %d", len(r.Value), size)
	}
	return r.Value, true, nil
}

// repeated consumes every consecutive record of type t, at most max of them.
func (c *cursor) repeated(t RecordType, max int) ([]Record, error) {
	start := c.i
	for c.i < len(c.recs) && c.recs[c.i].Type == t {
		if c.i-start == max {
			return nil, errAt(ErrTooMany, t, c.recs[c.i].Offset, "more than %d", max)
		}
		c.i++
	}
	return c.recs[start:c.i], nil
}

// done fails if any record is left.
func (c *cursor) done() error {
	if got, ok := c.peek(); ok {
		return errAt(ErrLayout, got, c.offset(), "unexpected trailing %v", got)
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
		return errAt(ErrVersion, RecProtocolVersion, c.recs[c.i-1].Offset, "version 0x%02x", v[0])
	}
	t, err := c.requireSize(RecMessageType, 1)
	if err != nil {
		return err
	}
	if MessageType(t[0]) != want {
		return errAt(ErrLayout, RecMessageType, c.recs[c.i-1].Offset, "message type %v, want %v", MessageType(t[0]), want)
	}
	return nil
}

// id reads a participant id: 1 to MaxIDSize bytes, or 0 when empty is allowed.
func checkID(r Record, allowEmpty bool) (string, error) {
	if len(r.Value) > MaxIDSize {
		return "", errAt(ErrTooLarge, r.Type, r.Offset, "id of %d bytes, cap %d", len(r.Value), MaxIDSize)
	}
	if len(r.Value) == 0 && !allowEmpty {
		return "", errAt(ErrValue, r.Type, r.Offset, "empty id")
	}
	return string(r.Value), nil
}

func fixed32(r Record) ([32]byte, error) {
	var a [32]byte
	if len(r.Value) != 32 {
		return a, errAt(ErrLength, r.Type, r.Offset, "%d bytes, want 32", len(r.Value))
	}
	copy(a[:], r.Value)
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
