package archive

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The service's requests and answers as they travel (docs/PROTOCOL.md
// "History: the service"): a version byte, an operation (requests) or a
// result code (answers), then fields, each with a 4-byte big-endian
// length. Decoding is strict: the exact number of fields, each of its
// exact or bounded size, nothing after the last.

const wireVersion = 1

// op is a request's operation on the wire.
type op uint8

const (
	opCreateGroup op = 1
	opAddMember   op = 2
	opSetStatus   op = 3
	opPut         op = 4
	opFetch       op = 5
)

// Result codes of an answer. The service's reasons stay in its audit
// log: a member shows what the code means, in our words.
const (
	codeOK        = 0
	codeRefused   = 1
	codeNotFound  = 2
	codeRevoked   = 3
	codeFailed    = 4 // the service could not answer (its database)
	codeMalformed = 5 // the request did not decode
	codeBusy      = 6 // the account made too many requests: later
)

// Bounds of what travels.
const (
	// MaxRequest is the longest request: a page and its fields.
	MaxRequest = MaxPage + 1024
	// MaxAnswer is the longest answer the service writes: a fetch stops
	// adding pages before it would pass this (one page always fits).
	MaxAnswer = 2*MaxPage + 1024
)

// ErrMalformed: a request or answer that does not decode.
var ErrMalformed = errors.New("archive: malformed request or answer")

// ErrFailed: the service says it could not carry out the request.
var ErrFailed = errors.New("archive: the service failed")

// ErrBusy: the service says the account made too many requests; ask
// again later.
var ErrBusy = errors.New("archive: the service is busy")

// Request is one of the service's requests: CreateGroup, AddMember,
// SetStatus, Put or Fetch.
type Request interface{ wireOp() op }

func (CreateGroup) wireOp() op { return opCreateGroup }
func (AddMember) wireOp() op   { return opAddMember }
func (SetStatus) wireOp() op   { return opSetStatus }
func (Put) wireOp() op         { return opPut }
func (Fetch) wireOp() op       { return opFetch }

func fields(b []byte, fs ...[]byte) []byte {
	for _, f := range fs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// EncodeRequest is r as it travels to the service.
func EncodeRequest(r Request) []byte {
	b := []byte{wireVersion, byte(r.wireOp())}
	switch r := r.(type) {
	case CreateGroup:
		return fields(b, r.Group[:], []byte{byte(r.Kind)}, []byte(r.Room), u64(r.Epoch), r.A[:], r.AdminKey[:], r.Sig[:])
	case AddMember:
		return fields(b, r.Group[:], u64(r.Seq), []byte(r.Member), r.IK[:], r.Share[:], r.Entry, r.Sig[:])
	case SetStatus:
		return fields(b, r.Group[:], u64(r.Seq), []byte(r.Member), []byte{byte(r.Status)}, r.Sig[:])
	case Put:
		return fields(b, r.Group[:], r.Page[:], r.T[:], r.Sealed, r.Sig[:])
	case Fetch:
		return fields(b, r.Group[:], u64(r.After), u64(uint64(max(r.Max, 0))), r.Nonce[:], u64(uint64(r.Time.UnixMilli())), r.Sig[:])
	}
	panic("archive: unknown request type")
}

// fieldReader reads length-prefixed fields; any misfit sets bad.
type fieldReader struct {
	b   []byte
	bad bool
}

// next is the next field, of at most maxLen bytes.
func (r *fieldReader) next(maxLen int) []byte {
	if r.bad || len(r.b) < 4 {
		r.bad = true
		return nil
	}
	n := binary.BigEndian.Uint32(r.b)
	if uint64(n) > uint64(maxLen) || uint64(n) > uint64(len(r.b)-4) {
		r.bad = true
		return nil
	}
	f := r.b[4 : 4+n]
	r.b = r.b[4+n:]
	return f
}

// fixed fills out with the next field, which must have its exact size.
func (r *fieldReader) fixed(out []byte) {
	f := r.next(len(out))
	if len(f) != len(out) {
		r.bad = true
		return
	}
	copy(out, f)
}

func (r *fieldReader) u64() uint64 {
	var b [8]byte
	r.fixed(b[:])
	return binary.BigEndian.Uint64(b[:])
}

func (r *fieldReader) byte1() byte {
	var b [1]byte
	r.fixed(b[:])
	return b[0]
}

func (r *fieldReader) text(maxLen int) string { return string(r.next(maxLen)) }

// done reports whether every field was read and nothing is left.
func (r *fieldReader) done() bool { return !r.bad && len(r.b) == 0 }

// DecodeRequest reads a request (the service's side; exported for the
// fuzzer and tests).
func DecodeRequest(b []byte) (Request, error) {
	if len(b) > MaxRequest || len(b) < 2 || b[0] != wireVersion {
		return nil, fmt.Errorf("%w: header or size", ErrMalformed)
	}
	r := fieldReader{b: b[2:]}
	var req Request
	switch op(b[1]) {
	case opCreateGroup:
		var c CreateGroup
		r.fixed(c.Group[:])
		c.Kind = Kind(r.byte1())
		c.Room = r.text(maxJID)
		c.Epoch = r.u64()
		r.fixed(c.A[:])
		r.fixed(c.AdminKey[:])
		r.fixed(c.Sig[:])
		req = c
	case opAddMember:
		var a AddMember
		r.fixed(a.Group[:])
		a.Seq = r.u64()
		a.Member = r.text(maxJID)
		r.fixed(a.IK[:])
		r.fixed(a.Share[:])
		a.Entry = r.next(MaxEntry)
		r.fixed(a.Sig[:])
		req = a
	case opSetStatus:
		var s SetStatus
		r.fixed(s.Group[:])
		s.Seq = r.u64()
		s.Member = r.text(maxJID)
		s.Status = Status(r.byte1())
		r.fixed(s.Sig[:])
		req = s
	case opPut:
		var p Put
		r.fixed(p.Group[:])
		r.fixed(p.Page[:])
		r.fixed(p.T[:])
		p.Sealed = r.next(MaxPage)
		r.fixed(p.Sig[:])
		req = p
	case opFetch:
		var f Fetch
		r.fixed(f.Group[:])
		f.After = r.u64()
		n := r.u64()
		if n > MaxFetch {
			r.bad = true
		}
		f.Max = int(n)
		r.fixed(f.Nonce[:])
		f.Time = time.UnixMilli(int64(min(r.u64(), 1<<62))).UTC()
		r.fixed(f.Sig[:])
		req = f
	default:
		return nil, fmt.Errorf("%w: operation %d", ErrMalformed, b[1])
	}
	if !r.done() {
		return nil, fmt.Errorf("%w: fields of operation %d", ErrMalformed, b[1])
	}
	return req, nil
}

// Handle carries out one request as it travelled, for the sender the
// transport authenticated, and returns the answer to send back. It never
// fails: a refusal is an answer.
func (s *Service) Handle(ctx context.Context, sender string, b []byte) []byte {
	if !s.allow(bare(sender)) {
		return []byte{wireVersion, codeBusy}
	}
	req, err := DecodeRequest(b)
	if err != nil {
		s.audit(ctx, nil, sender, "malformed request", err)
		return []byte{wireVersion, codeMalformed}
	}
	ok := []byte{wireVersion, codeOK}
	switch r := req.(type) {
	case CreateGroup:
		err = s.CreateGroup(ctx, sender, r)
	case AddMember:
		err = s.AddMember(ctx, sender, r)
	case SetStatus:
		err = s.SetStatus(ctx, sender, r)
	case Put:
		var seq uint64
		if seq, err = s.Put(ctx, sender, r); err == nil {
			ok = fields(ok, u64(seq))
		}
	case Fetch:
		var f Fetched
		if f, err = s.Fetch(ctx, sender, r); err == nil {
			ok = encodeFetched(ok, f)
		}
	}
	switch {
	case err == nil:
		return ok
	case errors.Is(err, ErrRefused):
		return []byte{wireVersion, codeRefused}
	case errors.Is(err, ErrNotFound):
		return []byte{wireVersion, codeNotFound}
	case errors.Is(err, ErrRevoked):
		return []byte{wireVersion, codeRevoked}
	default:
		return []byte{wireVersion, codeFailed}
	}
}

// encodeFetched appends a fetch's answer: the entry, the last number,
// then as many pages as fit in MaxAnswer (at least one), each as its
// number, id, T, R and sealed bytes. The member asks again from the last
// number it got.
func encodeFetched(b []byte, f Fetched) []byte {
	b = fields(b, f.Entry, u64(f.Last))
	for i, p := range f.Pages {
		size := 5*4 + 8 + len(p.ID) + len(p.T) + len(p.R) + len(p.Sealed)
		if i > 0 && len(b)+size > MaxAnswer {
			break
		}
		b = fields(b, u64(p.Seq), p.ID[:], p.T[:], p.R[:], p.Sealed)
	}
	return b
}

// answer checks an answer's header and returns its fields, or the error
// its code stands for.
func answer(b []byte) (*fieldReader, error) {
	if len(b) > MaxAnswer || len(b) < 2 || b[0] != wireVersion {
		return nil, fmt.Errorf("%w: answer header or size", ErrMalformed)
	}
	switch b[1] {
	case codeOK:
		return &fieldReader{b: b[2:]}, nil
	case codeRefused:
		return nil, fmt.Errorf("%w (the service's reason is in its audit log)", ErrRefused)
	case codeNotFound:
		return nil, ErrNotFound
	case codeRevoked:
		return nil, ErrRevoked
	case codeFailed:
		return nil, ErrFailed
	case codeMalformed:
		return nil, fmt.Errorf("%w: the service could not read our request", ErrMalformed)
	case codeBusy:
		return nil, ErrBusy
	}
	return nil, fmt.Errorf("%w: answer code %d", ErrMalformed, b[1])
}

// DecodeAnswer reads the answer to a request that returns nothing
// (CreateGroup, AddMember, SetStatus): nil, or the error its code stands
// for (ErrRefused, ErrNotFound, ErrRevoked, ErrFailed, ErrBusy,
// ErrMalformed).
func DecodeAnswer(b []byte) error {
	r, err := answer(b)
	if err != nil {
		return err
	}
	if !r.done() {
		return fmt.Errorf("%w: an answer with fields", ErrMalformed)
	}
	return nil
}

// DecodePutAnswer reads the answer to a Put: the page's number.
func DecodePutAnswer(b []byte) (uint64, error) {
	r, err := answer(b)
	if err != nil {
		return 0, err
	}
	seq := r.u64()
	if !r.done() {
		return 0, fmt.Errorf("%w: a put's answer", ErrMalformed)
	}
	return seq, nil
}

// DecodeFetchAnswer reads the answer to a Fetch. Its pages are as the
// service sent them: the member checks their points (recrypt.Open does)
// and their order (history.Reader does).
func DecodeFetchAnswer(b []byte) (Fetched, error) {
	r, err := answer(b)
	if err != nil {
		return Fetched{}, err
	}
	var f Fetched
	f.Entry = r.next(MaxEntry)
	f.Last = r.u64()
	for !r.bad && len(r.b) > 0 && len(f.Pages) < MaxFetch {
		var p Page
		p.Seq = r.u64()
		r.fixed(p.ID[:])
		r.fixed(p.T[:])
		r.fixed(p.R[:])
		p.Sealed = r.next(MaxPage)
		f.Pages = append(f.Pages, p)
	}
	if !r.done() {
		return Fetched{}, fmt.Errorf("%w: a fetch's answer", ErrMalformed)
	}
	return f, nil
}
