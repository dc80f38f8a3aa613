package message

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/transcript"
)

// minPayload is the smallest ciphertext that can hold a plaintext: the
// 2-byte length prefix and an empty MESSAGE_BODY record (4 bytes). The
// reference's own test packets are unpadded, so nothing larger is required.
const minPayload = 2 + 4

var (
	// ErrHint: the packet's SIDKEY_HINT is not this subsession's. Not an
	// error of the packet: it belongs to another subsession, or to none.
	ErrHint = errors.New("message: SIDKEY_HINT of another subsession")
	// ErrNotVerified: no member's ephemeral key verifies the signature for
	// this subsession: another subsession's packet (a replay, or a hint
	// collision), or a forgery.
	ErrNotVerified = errors.New("message: signature does not verify for this subsession")
	// ErrPacket: the packet cannot be a data message of any subsession (a
	// payload too short, or not a decoded packet); checked before any
	// cryptography.
	ErrPacket = errors.New("message: malformed data packet")
	// ErrPlaintext: a packet a member validly signed decrypts to something
	// that is not a plaintext: the author is at fault ([*AuthorError]).
	ErrPlaintext = errors.New("message: malformed plaintext")
)

// AuthorError is a failure after the signature verified: the named member
// signed something malformed. Err wraps [ErrPlaintext] or [ErrBody].
type AuthorError struct {
	Author int
	ID     transcript.ID
	Err    error
}

func (e *AuthorError) Error() string {
	return fmt.Sprintf("message %x by member %d: %v", e.ID[:6], e.Author, e.Err)
}

// Unwrap returns the cause.
func (e *AuthorError) Unwrap() error { return e.Err }

// Config describes one subsession for [New].
type Config struct {
	// Members are the subsession's member ids, sorted bytewise (the order
	// of transcript member indexes).
	Members []string
	// PublicKeys are the members' ephemeral Ed25519 keys, parallel to
	// Members.
	PublicKeys []crypto.PublicKey
	// Self is our member index, or -1 for a receive-only instance.
	Self int
	// SigningKey is our ephemeral signing key (required unless Self is -1).
	SigningKey *crypto.SigningKey
	// SID is the subsession's session id, GroupKey its group key (16 bytes
	// for the reference's test vectors, 32 in every real session).
	SID, GroupKey []byte
	// Rand supplies the IVs; nil means crypto/rand.Reader.
	Rand io.Reader
}

// Security is MessageSecurity for one subsession: it seals data packets
// (pad, AES-CTR under the group key with a fresh 12-byte IV, ephemeral
// signature bound to SHA256(sid ‖ gk)) and opens them (hint, lengths,
// signature, then and only then decryption).
//
// A Security is not safe for concurrent use (Seal draws from Rand).
type Security struct {
	members []string
	pubs    []crypto.PublicKey
	self    int
	key     *crypto.SigningKey
	gk      []byte
	skh     [32]byte // SHA256(sid ‖ gk)
	rand    io.Reader
	parents []wire.MessageID // reused by seal
}

// New checks cfg and returns a Security for it.
func New(cfg Config) (*Security, error) {
	n := len(cfg.Members)
	if n == 0 || n > wire.MaxMembers || len(cfg.PublicKeys) != n {
		return nil, fmt.Errorf("message: %d members and %d keys", n, len(cfg.PublicKeys))
	}
	if !sort.StringsAreSorted(cfg.Members) {
		return nil, errors.New("message: members not sorted")
	}
	if len(cfg.GroupKey) != 16 && len(cfg.GroupKey) != 32 {
		return nil, fmt.Errorf("message: group key of %d bytes", len(cfg.GroupKey))
	}
	if len(cfg.SID) == 0 {
		return nil, errors.New("message: empty sid")
	}
	if cfg.Self < -1 || cfg.Self >= n {
		return nil, fmt.Errorf("message: self index %d of %d members", cfg.Self, n)
	}
	if cfg.Self >= 0 {
		if cfg.SigningKey == nil {
			return nil, errors.New("message: no signing key")
		}
		if cfg.SigningKey.Public() != cfg.PublicKeys[cfg.Self] {
			return nil, errors.New("message: signing key does not match our public key")
		}
	}
	s := &Security{
		members: append([]string(nil), cfg.Members...),
		pubs:    append([]crypto.PublicKey(nil), cfg.PublicKeys...),
		self:    cfg.Self,
		key:     cfg.SigningKey,
		gk:      append([]byte(nil), cfg.GroupKey...),
		skh:     wire.SidKeyHash(cfg.SID, cfg.GroupKey),
		rand:    cfg.Rand,
	}
	return s, nil
}

// Hint returns the subsession's SIDKEY_HINT, SHA256(sid ‖ gk)[0].
func (s *Security) Hint() byte { return s.skh[0] }

// Members returns the member ids (do not modify).
func (s *Security) Members() []string { return s.members }

// String describes s without revealing key material.
func (s *Security) String() string {
	return fmt.Sprintf("message.Security(hint %02x, %d members, self %d)", s.skh[0], len(s.members), s.self)
}

// Zero wipes the group key and the key hash held by s; s is unusable
// afterwards. The signing key belongs to the caller.
func (s *Security) Zero() {
	crypto.Zero(s.gk)
	crypto.Zero(s.skh[:])
}

// Sealed is a data packet made by [Security.Seal].
type Sealed struct {
	Wire string        // the exact wire string to broadcast (and to resend)
	ID   transcript.ID // its message id
}

// Seal makes the data packet of a message with the given parents and
// encoded body (see [EncodeBody]), signed with our ephemeral key.
func (s *Security) Seal(parents []transcript.ID, body []byte) (Sealed, error) {
	var iv [primitive.IVSize]byte
	if err := primitive.RandomBytes(s.rand, iv[:]); err != nil {
		return Sealed{}, fmt.Errorf("message: drawing the IV: %w", err)
	}
	return s.seal(parents, body, 0, &iv)
}

// seal is Seal with the IV and the padded size (0 = the standard padding)
// given, for reproducing recorded packets.
func (s *Security) seal(parents []transcript.ID, body []byte, size int, iv *[primitive.IVSize]byte) (Sealed, error) {
	if s.self < 0 {
		return Sealed{}, errors.New("message: receive-only instance cannot seal")
	}
	if len(parents) > len(s.members) {
		return Sealed{}, fmt.Errorf("message: %d parents for %d members", len(parents), len(s.members))
	}
	s.parents = s.parents[:0]
	for _, p := range parents {
		s.parents = append(s.parents, wire.MessageID(p))
	}
	pt := wire.Plaintext{Parents: s.parents, Body: body, Size: size}
	buf, err := pt.Marshal()
	if err != nil {
		return Sealed{}, fmt.Errorf("message: %w", err)
	}
	if err := primitive.XORKeyStreamCTR(buf, buf, s.gk, iv); err != nil {
		return Sealed{}, fmt.Errorf("message: %w", err)
	}
	p := &wire.DataPacket{IV: *iv, Payload: buf}
	raw, err := p.Sign(s.key, &s.skh)
	if err != nil {
		return Sealed{}, fmt.Errorf("message: %w", err)
	}
	return Sealed{Wire: armour(raw), ID: transcript.ID(p.ID())}, nil
}

// Opened is a verified and decrypted data message.
type Opened struct {
	ID      transcript.ID
	Author  int // member index of the key that verified the signature
	Parents []transcript.ID
	Body    []byte // the raw MESSAGE_BODY; see DecodeBody
	Size    int    // the padded plaintext size
}

// CheckPacket runs the checks that need no cryptography: the hint, and
// lengths. It returns [ErrHint] or an error wrapping [ErrPacket].
func (s *Security) CheckPacket(p *wire.DataPacket) error { return checkPacket(s.skh[0], p) }

func checkPacket(hint byte, p *wire.DataPacket) error {
	if p.SidkeyHint != hint {
		return ErrHint
	}
	if p.Signed == nil {
		return fmt.Errorf("%w: not a decoded packet", ErrPacket)
	}
	if len(p.Payload) < minPayload || len(p.Payload) > wire.MaxValueSize {
		return fmt.Errorf("%w: payload of %d bytes", ErrPacket, len(p.Payload))
	}
	return nil
}

// Identify returns the member whose ephemeral key verifies the packet's
// signature for this subsession (docs/MESSAGE-LAYER.md §4.6): the channel
// sender's key first (the common case costs one verification), then every
// other member's, so that a packet resent by a third member still names its
// author. It returns [ErrNotVerified] if none does.
func (s *Security) Identify(p *wire.DataPacket, sender string) (int, error) {
	if err := s.CheckPacket(p); err != nil {
		return -1, err
	}
	return identify(s.members, s.pubs, &s.skh, p, sender)
}

func identify(members []string, pubs []crypto.PublicKey, skh *[32]byte, p *wire.DataPacket, sender string) (int, error) {
	first := -1
	if i := sort.SearchStrings(members, sender); i < len(members) && members[i] == sender {
		first = i
		if p.Verify(pubs[i], skh) {
			return i, nil
		}
	}
	for i := range members {
		if i != first && p.Verify(pubs[i], skh) {
			return i, nil
		}
	}
	return -1, ErrNotVerified
}

// Verifier recognises a subsession's packets without being able to read
// them: it keeps the members' public keys and SHA256(sid ‖ gk), never the
// group key or a signing key. A finished subsession leaves one behind so
// that its late packets (resends, acks still on their way) are known for
// what they are.
type Verifier struct {
	members []string
	pubs    []crypto.PublicKey
	skh     [32]byte
}

// Verifier returns a Verifier for this subsession's packets.
func (s *Security) Verifier() *Verifier {
	return &Verifier{members: s.members, pubs: s.pubs, skh: s.skh}
}

// Identify is [Security.Identify] without decryption: the author of a
// packet of this subsession, or [ErrHint], [ErrPacket], [ErrNotVerified].
func (v *Verifier) Identify(p *wire.DataPacket, sender string) (int, error) {
	if err := checkPacket(v.skh[0], p); err != nil {
		return -1, err
	}
	return identify(v.members, v.pubs, &v.skh, p, sender)
}

// IdentifyFrom is Identify for the room's traffic: a packet whose channel
// sender is not a member of the subsession is not its (ErrNotVerified,
// without any signature check); the sender's key is tried first, and the
// other members' keys (a late packet a third member resent) only if that
// fails and tryOthers (nil: never) allows it, as in [Security.OpenFrom].
func (v *Verifier) IdentifyFrom(p *wire.DataPacket, sender string, tryOthers func() bool) (int, error) {
	if err := checkPacket(v.skh[0], p); err != nil {
		return -1, err
	}
	return identifyFrom(v.members, v.pubs, &v.skh, p, sender, tryOthers)
}

// OpenFrom is Open for the room's traffic, cheap on garbage: a packet
// whose channel sender is not a member of the subsession is not its
// (ErrNotVerified, without any signature check); the sender's key is
// tried first, and the other members' keys (a third member's resend,
// §4.6 of docs/MESSAGE-LAYER.md) only if that fails and tryOthers (nil:
// never) allows it: the caller budgets those n − 1 verifications per
// sender, so that a flood of packets with a junk signature costs one
// verification each.
func (s *Security) OpenFrom(p *wire.DataPacket, sender string, tryOthers func() bool) (*Opened, error) {
	if err := s.CheckPacket(p); err != nil {
		return nil, err
	}
	author, err := identifyFrom(s.members, s.pubs, &s.skh, p, sender, tryOthers)
	if err != nil {
		return nil, err
	}
	return s.decrypt(p, author)
}

func identifyFrom(members []string, pubs []crypto.PublicKey, skh *[32]byte, p *wire.DataPacket, sender string, tryOthers func() bool) (int, error) {
	i := sort.SearchStrings(members, sender)
	if i == len(members) || members[i] != sender {
		return -1, ErrNotVerified
	}
	if p.Verify(pubs[i], skh) {
		return i, nil
	}
	if tryOthers == nil || !tryOthers() {
		return -1, ErrNotVerified
	}
	for k := range members {
		if k != i && p.Verify(pubs[k], skh) {
			return k, nil
		}
	}
	return -1, ErrNotVerified
}

// Open verifies and decrypts a decoded data packet received from the
// channel sender: hint and lengths first, then the signature (author
// identification as in [Security.Identify]), and only then decryption and
// the plaintext's decoding. Errors: [ErrHint], [ErrPacket],
// [ErrNotVerified], or an [*AuthorError] when a validly signed packet does
// not decrypt to a plaintext. The body is returned undecoded.
func (s *Security) Open(p *wire.DataPacket, sender string) (*Opened, error) {
	author, err := s.Identify(p, sender)
	if err != nil {
		return nil, err
	}
	return s.decrypt(p, author)
}

func (s *Security) decrypt(p *wire.DataPacket, author int) (*Opened, error) {
	id := transcript.ID(p.ID())
	buf := make([]byte, len(p.Payload))
	if err := primitive.XORKeyStreamCTR(buf, p.Payload, s.gk, &p.IV); err != nil {
		return nil, fmt.Errorf("message: %w", err)
	}
	pt, err := wire.DecodePlaintext(buf)
	clear(buf) // DecodePlaintext copied what it keeps
	if err != nil {
		return nil, &AuthorError{Author: author, ID: id, Err: fmt.Errorf("%w: %w", ErrPlaintext, err)}
	}
	o := &Opened{ID: id, Author: author, Parents: make([]transcript.ID, len(pt.Parents)), Body: pt.Body, Size: pt.Size}
	for i, q := range pt.Parents {
		o.Parents[i] = transcript.ID(q)
	}
	return o, nil
}

// Trial opens a packet with the first candidate subsession whose hint
// matches and whose keys verify it (design document 5.3, "trial
// decryption"): typically the current subsession, then the previous one.
// It returns the candidate's position, or -1 and [ErrNotVerified] (or
// ErrHint when no hint matched, or ErrPacket) when none opens it. An
// [*AuthorError] from a candidate that verified is returned as is: the
// packet is that subsession's, and malformed.
func Trial(cands []*Security, p *wire.DataPacket, sender string) (int, *Opened, error) {
	result := ErrHint
	for k, s := range cands {
		if s == nil || p.SidkeyHint != s.Hint() {
			continue
		}
		o, err := s.Open(p, sender)
		switch {
		case err == nil:
			return k, o, nil
		case errors.Is(err, ErrPacket):
			return -1, nil, err
		case errors.Is(err, ErrNotVerified):
			result = ErrNotVerified
		default:
			return k, nil, err
		}
	}
	return -1, nil, result
}
