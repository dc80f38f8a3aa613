package devchan

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/mpenc/mpenc/internal/primitive"
)

// stateVersion is the version of Marshal's layout.
const stateVersion = 1

// maxAccount bounds an account JID in a saved session (RFC 7622: 3071
// bytes for a full JID; a bare one is shorter).
const maxAccount = 3071

// Marshal is the session's whole state, secrets included, for the caller
// to seal and store (and Unmarshal to restore): every field in a fixed
// order, lengths prefixed.
func (s *Session) Marshal() []byte {
	b := []byte{stateVersion, byte(s.role), byte(s.state)}
	party := func(p *Party) {
		b = binary.BigEndian.AppendUint16(b, uint16(len(p.Account)))
		b = append(b, p.Account...)
		b = append(b, p.Device[:]...)
		b = append(b, p.Identity[:]...)
	}
	party(&s.local)
	party(&s.peer)
	b = append(b, s.initKey[:]...)
	b = append(b, s.respKey[:]...)
	b = append(b, s.th[:]...)
	for _, k := range [][32]byte{s.k.chainAB, s.k.chainBA, s.k.confirmA, s.k.confirmB, s.k.sas} {
		b = append(b, k[:]...)
	}
	var eph [32]byte
	if s.ephemeral != nil {
		eph = s.ephemeral.Scalar()
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = append(b, eph[:]...)
	clear(eph[:])
	b = append(b, s.sendChain[:]...)
	b = binary.BigEndian.AppendUint64(b, s.sendSeq)
	b = append(b, s.recvChain[:]...)
	b = binary.BigEndian.AppendUint64(b, s.recvNext)
	if s.replay.started {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint64(b, s.replay.top)
	for _, w := range s.replay.bits {
		b = binary.BigEndian.AppendUint64(b, w)
	}
	// Kept keys in the order they were kept (the oldest go first).
	var live []uint64
	for _, n := range s.skipOrder {
		if _, ok := s.skipped[n]; ok && !slices.Contains(live, n) {
			live = append(live, n)
		}
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(live)))
	for _, n := range live {
		k := s.skipped[n]
		b = binary.BigEndian.AppendUint64(b, n)
		b = append(b, k[:]...)
	}
	return b
}

// reader reads Marshal's layout, failing once on the first short read.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n > len(r.b) {
		if r.err == nil {
			r.err = fmt.Errorf("%w: saved session cut short", ErrMalformed)
		}
		return make([]byte, n)
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() byte      { return r.take(1)[0] }
func (r *reader) u16() int      { return int(binary.BigEndian.Uint16(r.take(2))) }
func (r *reader) u64() uint64   { return binary.BigEndian.Uint64(r.take(8)) }
func (r *reader) k32() [32]byte { return [32]byte(r.take(32)) }

// Unmarshal restores a session Marshal saved. It checks the layout and
// the bounds (roles, states, sizes, kept keys), not the secrets.
func Unmarshal(b []byte) (*Session, error) {
	r := &reader{b: b}
	if v := r.u8(); v != stateVersion && r.err == nil {
		return nil, fmt.Errorf("%w: saved session version %d", ErrMalformed, v)
	}
	s := &Session{role: Role(r.u8()), state: State(r.u8())}
	if r.err == nil && (s.role < Initiator || s.role > Responder || s.state < AwaitResponse || s.state > Failed ||
		s.state == AwaitResponse && s.role != Initiator) {
		return nil, fmt.Errorf("%w: saved session role %d, state %d", ErrMalformed, s.role, s.state)
	}
	party := func(p *Party) {
		n := r.u16()
		if n > maxAccount {
			r.err = fmt.Errorf("%w: saved account of %d bytes", ErrMalformed, n)
			return
		}
		p.Account = string(r.take(n))
		p.Device = DeviceID(r.take(8))
		p.Identity = [32]byte(r.take(32))
	}
	party(&s.local)
	party(&s.peer)
	s.initKey, s.respKey = KeyID(r.take(8)), KeyID(r.take(8))
	s.th = r.k32()
	s.k.chainAB, s.k.chainBA, s.k.confirmA, s.k.confirmB, s.k.sas = r.k32(), r.k32(), r.k32(), r.k32(), r.k32()
	hasEph := r.u8()
	eph := r.k32()
	s.sendChain, s.sendSeq = r.k32(), r.u64()
	s.recvChain, s.recvNext = r.k32(), r.u64()
	started := r.u8()
	if started > 1 && r.err == nil {
		return nil, fmt.Errorf("%w: saved replay flag %d", ErrMalformed, started)
	}
	s.replay.started = started == 1
	s.replay.top = r.u64()
	for i := range s.replay.bits {
		s.replay.bits[i] = r.u64()
	}
	n := r.u16()
	if n > maxSkipped {
		return nil, fmt.Errorf("%w: %d kept keys", ErrMalformed, n)
	}
	for range n {
		seq, k := r.u64(), r.k32()
		if r.err != nil {
			break
		}
		if s.skipped == nil {
			s.skipped = make(map[uint64][32]byte, n)
		}
		if _, dup := s.skipped[seq]; dup {
			return nil, fmt.Errorf("%w: kept key %d twice", ErrMalformed, seq)
		}
		s.skipped[seq] = k
		s.skipOrder = append(s.skipOrder, seq)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after a saved session", ErrMalformed, len(r.b))
	}
	switch {
	case hasEph == 1 && s.state == AwaitResponse:
		k, err := primitive.NewX25519Key(eph)
		clear(eph[:])
		if err != nil {
			return nil, err
		}
		s.ephemeral = k
	case hasEph > 1, hasEph == 1, eph != [32]byte{}, s.state == AwaitResponse && s.role == Initiator:
		return nil, fmt.Errorf("%w: saved ephemeral key and state disagree", ErrMalformed)
	}
	return s, nil
}
