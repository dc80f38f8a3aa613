package devchan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

// State is where a session is. docs/PROTOCOL.md "The device channel" has
// the transitions.
type State uint8

const (
	// AwaitResponse: the initiator sent its request.
	AwaitResponse State = iota + 1
	// Established: both sides hold the keys. The responder has not yet
	// seen the initiator's confirmation; the initiator sends it with each
	// data packet until the responder's first data packet shows it
	// arrived.
	Established
	// Confirmed: each side has proved to the other that it holds the keys.
	Confirmed
	// Failed: the responder refused the request (its key was used or
	// unknown) or the response did not verify. The session is dead.
	Failed
)

// Role is which side of the handshake a session is.
type Role uint8

const (
	Initiator Role = iota + 1
	Responder
)

// Errors a caller branches on.
var (
	// ErrNotForSession: a packet for another session, device or role.
	ErrNotForSession = errors.New("devchan: packet is not for this session")
	// ErrRefused: the responder's answer was "ephemeral key mismatch";
	// the initiator should pick another digest.
	ErrRefused = errors.New("devchan: the responder refused the ephemeral key")
	// ErrAuth: a confirmation or a ciphertext does not verify.
	ErrAuth = errors.New("devchan: authentication failed")
	// ErrReplay: a data packet already received, or too old to tell.
	ErrReplay = errors.New("devchan: replayed or too old")
	// ErrState: the operation is not allowed in the session's state.
	ErrState = errors.New("devchan: wrong state")
	// ErrUnknownKey: a request names a digest the responder does not have
	// (the caller answers with RefuseRequest).
	ErrUnknownKey = errors.New("devchan: unknown ephemeral key digest")
)

// Bounds.
const (
	// MaxPlaintext bounds what one data packet carries.
	MaxPlaintext = 32 << 10
	// padBucket: plaintexts are padded to a multiple of it (length hidden
	// to within it).
	padBucket = 256
	// maxSkip bounds how far ahead of the next expected sequence a data
	// packet may be (the keys in between are kept for late packets).
	maxSkip = 1000
	// maxSkipped bounds the message keys kept for packets not yet
	// received; the oldest go first.
	maxSkipped = 1000
)

// Session is one pairwise session between two devices, as an I/O-free
// state machine: packets in, packets out; randomness from the caller.
// It is not safe for concurrent use.
type Session struct {
	role        Role
	state       State
	local, peer Party
	initKey     KeyID
	respKey     KeyID
	th          [32]byte
	k           keys

	// the initiator's ephemeral key until the response (then erased).
	ephemeral *primitive.X25519Key

	sendChain [32]byte
	sendSeq   uint64
	recvChain [32]byte
	recvNext  uint64 // the sequence recvChain is at
	skipped   map[uint64][32]byte
	skipOrder []uint64
	replay    replayFilter
}

// Role is the session's side.
func (s *Session) Role() Role { return s.role }

// State is the session's state.
func (s *Session) State() State { return s.state }

// SAS is the session's short authentication string: SASWords indices into
// a word list of SASSize words. Both sides compute the same only if no
// one sits between them. Valid from Established on.
func (s *Session) SAS() ([SASWords]int, error) {
	if s.state != Established && s.state != Confirmed {
		return [SASWords]int{}, ErrState
	}
	return sasIndices(s.k.sas), nil
}

// Words is the SAS as the words both screens show: the EFF short word
// list #2 (1,296 words; docs/PROTOCOL.md "Verification"), in order.
func (s *Session) Words() ([SASWords]string, error) {
	idx, err := s.SAS()
	if err != nil {
		return [SASWords]string{}, err
	}
	var out [SASWords]string
	for i, n := range idx {
		out[i] = Word(n)
	}
	return out, nil
}

// VerifyMAC is what a side sends once its user has seen the words match:
// HMAC-SHA256, under a key derived from the SAS key by HKDF-SHA256 with
// the info "mpenc/v1/p2p-verify-mac", of the sender's identity key, the
// receiver's, and the verification's id. Only the two ends of this
// session can make it; each checks the other's with crypto.Equal.
func (s *Session) VerifyMAC(sender, receiver crypto.PublicKey, id [8]byte) ([32]byte, error) {
	if s.state != Established && s.state != Confirmed {
		return [32]byte{}, ErrState
	}
	k, err := primitive.HKDF(s.k.sas[:], nil, ctxVerifyMAC, 32)
	if err != nil {
		return [32]byte{}, err
	}
	defer clear(k)
	return mac([32]byte(k), sender[:], receiver[:], id[:]), nil
}

// IDs is the header of the session's packets without a type or a
// sequence: who sends to whom (from us) and the two key ids that name
// the session.
func (s *Session) IDs() Header {
	return Header{From: s.local.Device, To: s.peer.Device, InitKey: s.initKey, RespKey: s.respKey}
}

// Received reports whether the session has opened a data packet.
func (s *Session) Received() bool { return s.replay.started }

// Sent is how many data packets the session has sealed.
func (s *Session) Sent() uint64 { return s.sendSeq }

// Peer is the other side.
func (s *Session) Peer() Party { return s.peer }

// Initiate starts a session with peer, whose published ephemeral key
// digest the caller picked from its bundle. local's identity key signs
// nothing here: its DH does the work (the seed's 3DH). It returns the
// session and the request to send.
func Initiate(local Party, localKey *crypto.SigningKey, peer Party, peerDigest [32]byte, rand io.Reader) (*Session, []byte, error) {
	if localKey.Public() != local.Identity {
		return nil, nil, errors.New("devchan: the local key is not local.Identity")
	}
	ae, err := primitive.GenerateX25519Key(rand)
	if err != nil {
		return nil, nil, err
	}
	s := &Session{role: Initiator, state: AwaitResponse, local: local, peer: peer,
		initKey: IDOf(Digest(ae.Public())), respKey: IDOf(peerDigest), ephemeral: ae}
	h := Header{Type: TypeRequest, From: local.Device, To: peer.Device, InitKey: s.initKey, RespKey: s.respKey}
	req := request{identity: local.Identity, ephemeral: ae.Public(), digest: peerDigest}
	return s, h.encode(req.encode()), nil
}

// Request is a request as the responder reads it before answering.
type Request struct {
	Header
	// Identity is the initiator's identity key, as it claims: the caller
	// checks it is the key of the device From of the sending account (the
	// published device list, the trust store) before Accept.
	Identity crypto.PublicKey
	// Digest is the digest of our ephemeral key the initiator picked.
	Digest [32]byte

	ephemeral [32]byte
}

// ParseRequest reads a request packet addressed to device to.
func ParseRequest(p []byte, to DeviceID) (*Request, error) {
	h, body, err := ParseHeader(p)
	if err != nil {
		return nil, err
	}
	if h.Type != TypeRequest || h.To != to {
		return nil, ErrNotForSession
	}
	r, err := parseRequest(body)
	if err != nil {
		return nil, err
	}
	if IDOf(Digest(r.ephemeral)) != h.InitKey || IDOf(r.digest) != h.RespKey {
		return nil, fmt.Errorf("%w: the key ids do not match the keys", ErrMalformed)
	}
	if primitive.CheckEd25519PublicKey(r.identity) != nil {
		return nil, fmt.Errorf("%w: the identity key", ErrMalformed)
	}
	return &Request{Header: h, Identity: r.identity, Digest: r.digest, ephemeral: r.ephemeral}, nil
}

// Accept answers req with our ephemeral key (the one whose digest it
// picked: the caller found it, and consumes it in the same transaction
// that stores the session, before sending the response). peer is the
// initiator as the caller checked it (req.Identity, req.From, its
// account).
func Accept(local Party, localKey *crypto.SigningKey, peer Party, req *Request, ephemeral *primitive.X25519Key) (*Session, []byte, error) {
	if localKey.Public() != local.Identity || peer.Identity != req.Identity || peer.Device != req.From || local.Device != req.To {
		return nil, nil, errors.New("devchan: Accept with parties that do not match the request")
	}
	if Digest(ephemeral.Public()) != req.Digest {
		return nil, nil, ErrUnknownKey
	}
	ik, err := primitive.X25519FromEd25519Seed(localKey.Seed())
	if err != nil {
		return nil, nil, err
	}
	defer ik.Zero()
	peerIK, err := primitive.X25519PublicFromEd25519(peer.Identity)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// A = initiator (peer), B = us: DH(IK_A, BE), DH(AE, IK_B), DH(AE, BE).
	dh1, err1 := ephemeral.DH(peerIK)
	dh2, err2 := ik.DH(req.ephemeral)
	dh3, err3 := ephemeral.DH(req.ephemeral)
	defer clear(dh1[:])
	defer clear(dh2[:])
	defer clear(dh3[:])
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	s := &Session{role: Responder, state: Established, local: local, peer: peer, initKey: req.InitKey, respKey: req.RespKey}
	s.th = transcriptHash(&peer, &local, req.ephemeral, ephemeral.Public())
	if s.k, err = deriveKeys(dh1, dh2, dh3, s.th); err != nil {
		return nil, nil, err
	}
	s.sendChain, s.recvChain = s.k.chainBA, s.k.chainAB
	h := Header{Type: TypeResponse, From: local.Device, To: peer.Device, InitKey: s.initKey, RespKey: s.respKey}
	resp := response{status: statusOkay, message: messageOkay, ephemeral: ephemeral.Public(), auth: confirmation(s.k.confirmB, ctxConfirmB, s.th)}
	return s, h.encode(resp.encode()), nil
}

// Refuse is the response to a request whose digest we do not have (or
// used already): the seed's "ephemeral key mismatch". It creates no state.
func Refuse(local DeviceID, req *Request) []byte {
	h := Header{Type: TypeResponse, From: local, To: req.From, InitKey: req.InitKey, RespKey: req.RespKey}
	r := response{status: statusFail, message: messageMismatch}
	return h.encode(r.encode())
}

// HandleResponse completes the initiator's handshake. A refusal gives
// ErrRefused and the session Failed; a response whose key does not match
// the digest, or whose confirmation does not verify, gives ErrAuth and the
// session Failed too (someone between us, or a broken peer). Any other bad
// packet leaves the session unchanged.
func (s *Session) HandleResponse(p []byte, localKey *crypto.SigningKey) error {
	h, body, err := ParseHeader(p)
	if err != nil {
		return err
	}
	if s.role != Initiator || h.Type != TypeResponse || h.From != s.peer.Device || h.To != s.local.Device ||
		h.InitKey != s.initKey || h.RespKey != s.respKey {
		return ErrNotForSession
	}
	if s.state != AwaitResponse {
		return ErrState
	}
	r, err := parseResponse(body)
	if err != nil {
		return err
	}
	if r.status == statusFail {
		s.fail()
		return ErrRefused
	}
	if IDOf(Digest(r.ephemeral)) != s.respKey {
		s.fail()
		return fmt.Errorf("%w: the responder's key does not match the digest we picked", ErrAuth)
	}
	ik, err := primitive.X25519FromEd25519Seed(localKey.Seed())
	if err != nil {
		return err
	}
	defer ik.Zero()
	peerIK, err := primitive.X25519PublicFromEd25519(s.peer.Identity)
	if err != nil {
		s.fail()
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	dh1, err1 := ik.DH(r.ephemeral)
	dh2, err2 := s.ephemeral.DH(peerIK)
	dh3, err3 := s.ephemeral.DH(r.ephemeral)
	defer clear(dh1[:])
	defer clear(dh2[:])
	defer clear(dh3[:])
	if err := errors.Join(err1, err2, err3); err != nil {
		s.fail()
		return fmt.Errorf("%w: %v", ErrAuth, err)
	}
	th := transcriptHash(&s.local, &s.peer, s.ephemeral.Public(), r.ephemeral)
	k, err := deriveKeys(dh1, dh2, dh3, th)
	if err != nil {
		return err
	}
	want := confirmation(k.confirmB, ctxConfirmB, th)
	defer clear(want[:])
	if !crypto.Equal(want[:], r.auth[:]) {
		k.zero()
		s.fail()
		return fmt.Errorf("%w: the responder's confirmation", ErrAuth)
	}
	s.th, s.k = th, k
	s.ephemeral.Zero()
	s.ephemeral = nil
	s.sendChain, s.recvChain = s.k.chainAB, s.k.chainBA
	s.state = Established
	return nil
}

func (s *Session) fail() {
	s.state = Failed
	s.k.zero()
	if s.ephemeral != nil {
		s.ephemeral.Zero()
		s.ephemeral = nil
	}
}

// Seal encrypts plaintext into a data packet.
func (s *Session) Seal(plaintext []byte) ([]byte, error) {
	if s.state != Established && s.state != Confirmed {
		return nil, ErrState
	}
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("devchan: plaintext of %d bytes, more than %d", len(plaintext), MaxPlaintext)
	}
	mk, next := step(s.sendChain)
	defer clear(mk[:])
	g, nonce, err := aead(mk)
	if err != nil {
		return nil, err
	}
	flags := []byte{0}
	switch {
	case s.role == Initiator && s.state == Established:
		c := confirmation(s.k.confirmA, ctxConfirmA, s.th)
		flags[0] = flagConfirm
		flags = append(flags, c[:]...)
	case s.role == Responder && s.state == Confirmed:
		flags[0] = flagConfirmed
	}
	padded := pad(plaintext)
	h := Header{Type: TypeData, From: s.local.Device, To: s.peer.Device, InitKey: s.initKey, RespKey: s.respKey, Sequence: s.sendSeq}
	bodyLen := len(flags) + len(padded) + g.Overhead()
	hdr := h.encode(nil)
	binary.BigEndian.PutUint32(hdr[42:], uint32(bodyLen))
	ad := append(hdr, flags...)
	out := g.Seal(slices.Clone(ad), nonce, padded, ad)
	clear(padded)
	s.sendChain = next
	s.sendSeq++
	return out, nil
}

// Open decrypts a data packet of this session. A packet that is not for
// this session, malformed, replayed, out of the window, or that does not
// verify is refused and changes nothing.
func (s *Session) Open(p []byte) ([]byte, error) {
	h, body, err := ParseHeader(p)
	if err != nil {
		return nil, err
	}
	if h.Type != TypeData || h.From != s.peer.Device || h.To != s.local.Device || h.InitKey != s.initKey || h.RespKey != s.respKey {
		return nil, ErrNotForSession
	}
	if s.state != Established && s.state != Confirmed {
		return nil, ErrState
	}
	if len(body) < minData {
		return nil, fmt.Errorf("%w: data body of %d bytes", ErrMalformed, len(body))
	}
	adLen := headerSize + 1
	confirms, acked := body[0]&flagConfirm != 0, body[0]&flagConfirmed != 0
	switch {
	case body[0]&^(flagConfirm|flagConfirmed) != 0:
		return nil, fmt.Errorf("%w: data flags %#x", ErrMalformed, body[0])
	case confirms && (s.role != Responder || len(body) < minData+32):
		return nil, fmt.Errorf("%w: a confirmation where none belongs", ErrMalformed)
	case acked && s.role != Initiator:
		return nil, fmt.Errorf("%w: an acknowledgement where none belongs", ErrMalformed)
	case !confirms && s.role == Responder && s.state == Established:
		return nil, fmt.Errorf("%w: data before the initiator's confirmation", ErrAuth)
	}
	if confirms {
		adLen += 32
	}
	seq := h.Sequence
	if !s.replay.fresh(seq) {
		return nil, ErrReplay
	}
	// The message key: the next ones from the chain, or one kept for a
	// packet that was overtaken.
	var mk [32]byte
	chain, next := s.recvChain, s.recvNext
	var newSkipped []uint64
	var newKeys [][32]byte
	switch {
	case seq >= next:
		if seq-next > maxSkip {
			return nil, fmt.Errorf("%w: sequence %d is %d ahead", ErrReplay, seq, seq-next)
		}
		for next < seq {
			k, c := step(chain)
			newSkipped, newKeys = append(newSkipped, next), append(newKeys, k)
			chain, next = c, next+1
		}
		var c [32]byte
		mk, c = step(chain)
		chain, next = c, next+1
	default:
		k, ok := s.skipped[seq]
		if !ok {
			return nil, ErrReplay
		}
		mk = k
	}
	defer clear(mk[:])
	g, nonce, err := aead(mk)
	if err != nil {
		return nil, err
	}
	ad := p[:adLen]
	padded, err := g.Open(nil, nonce, p[adLen:], ad)
	if err != nil {
		for i := range newKeys {
			clear(newKeys[i][:])
		}
		return nil, ErrAuth
	}
	plaintext, err := unpad(padded)
	if err != nil {
		return nil, err
	}
	if confirms && s.state == Established {
		want := confirmation(s.k.confirmA, ctxConfirmA, s.th)
		if !crypto.Equal(want[:], body[1:33]) {
			return nil, fmt.Errorf("%w: the initiator's confirmation", ErrAuth)
		}
	}
	// Verified: commit.
	if seq >= s.recvNext {
		s.recvChain, s.recvNext = chain, next
		for i, n := range newSkipped {
			s.keep(n, newKeys[i])
		}
	} else {
		k := s.skipped[seq]
		clear(k[:])
		delete(s.skipped, seq)
	}
	s.replay.mark(seq)
	if s.state == Established && (confirms || acked) {
		// The responder checked the initiator's confirmation; the
		// initiator learns that it did (and stops sending it).
		s.state = Confirmed
	}
	return plaintext, nil
}

// keep stores the message key of a packet not yet received, dropping the
// oldest beyond maxSkipped.
func (s *Session) keep(seq uint64, k [32]byte) {
	if s.skipped == nil {
		s.skipped = make(map[uint64][32]byte)
	}
	s.skipped[seq] = k
	s.skipOrder = append(s.skipOrder, seq)
	for len(s.skipped) > maxSkipped && len(s.skipOrder) > 0 {
		old := s.skipOrder[0]
		s.skipOrder = s.skipOrder[1:]
		if k, ok := s.skipped[old]; ok {
			clear(k[:])
			delete(s.skipped, old)
		}
	}
	if len(s.skipOrder) > 2*maxSkipped { // drop the order's spent entries
		live := s.skipOrder[:0]
		for _, n := range s.skipOrder {
			if _, ok := s.skipped[n]; ok {
				live = append(live, n)
			}
		}
		s.skipOrder = live
	}
}

// Skipped is how many message keys the session keeps for packets not yet
// received.
func (s *Session) Skipped() int { return len(s.skipped) }

func pad(p []byte) []byte {
	n := 4 + len(p)
	size := (n + padBucket - 1) / padBucket * padBucket
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, uint32(len(p)))
	copy(b[4:], p)
	return b
}

func unpad(b []byte) ([]byte, error) {
	if len(b) < 4 || len(b)%padBucket != 0 {
		return nil, fmt.Errorf("%w: padded plaintext of %d bytes", ErrMalformed, len(b))
	}
	n := binary.BigEndian.Uint32(b)
	if int64(n) > int64(len(b)-4) || n > MaxPlaintext {
		return nil, fmt.Errorf("%w: plaintext length %d", ErrMalformed, n)
	}
	for _, c := range b[4+n:] {
		if c != 0 {
			return nil, fmt.Errorf("%w: padding not zero", ErrMalformed)
		}
	}
	return b[4 : 4+n], nil
}
