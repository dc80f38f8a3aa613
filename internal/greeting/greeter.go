package greeting

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/greeter"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/wire"
)

// Greeter holds what every operation of one member needs: its id, its static
// identity key, the key directory and the source of randomness. It is a
// codec and a factory; it keeps no per-operation state, and its fields are
// never modified, so one Greeter serves every operation of a session.
type Greeter struct {
	// Self is our participant id (our full JID on XMPP).
	Self string
	// Identity is our static identity key.
	Identity *crypto.SigningKey
	// Directory gives the other members' static identity keys.
	Directory greeter.Directory
	// Rand is the source of every random value (contributions, nonces,
	// ephemeral keys). Nil means crypto/rand.
	Rand io.Reader
}

// Errors callers branch on.
var (
	// ErrNotForThisOperation: the packet does not belong to the running
	// operation (another operation, a non-member, another recipient). The
	// Greeting ignored it and is unchanged.
	ErrNotForThisOperation = errors.New("greeter: packet is not part of this operation")
	// ErrDuplicate: the packet was already processed. The Greeting is
	// unchanged.
	ErrDuplicate = errors.New("greeter: duplicate packet")
	// ErrInvalidProposal: Propose was asked for something mpENC cannot do
	// (include and exclude together, excluding ourselves, no change...).
	ErrInvalidProposal = errors.New("greeter: invalid proposal")
	// ErrIdentityRefused: the Directory gave no identity key for a member
	// of the operation (unknown, changed and not yet accepted, distrusted).
	// We take no part: no contribution, no confirmation.
	ErrIdentityRefused = errors.New("greeter: no accepted identity key")
)

// checkIdentities asks the Directory for every member's identity key but
// ours. Refusing before we contribute anything, rather than when the
// member's confirmation comes, matters: a member that confirms and then
// fails would leave the others in a session it does not hold; one that
// never answers stalls the operation for everyone, and the session ends it
// at one point of the order (abort).
func (gr *Greeter) checkIdentities(members []string) error {
	for _, m := range members {
		if m == gr.Self {
			continue
		}
		k, err := gr.Directory.IdentityKey(m)
		if err == nil {
			err = primitive.CheckEd25519PublicKey(k)
		}
		if err != nil {
			return fmt.Errorf("%w for %q: %w", ErrIdentityRefused, m, err)
		}
	}
	return nil
}

// Class is how ServerOrder sees a greeting packet.
type Class uint8

// Packet classes (the chain-hash ptypes: "2" initial, "1" final, "3" both).
const (
	ClassNone    Class = 0
	ClassFinal   Class = 1
	ClassInitial Class = 2
	ClassBoth    Class = 3
)

func (c Class) String() string {
	switch c {
	case ClassNone:
		return "none"
	case ClassFinal:
		return "final"
	case ClassInitial:
		return "initial"
	case ClassBoth:
		return "initial+final"
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// Classify tells ServerOrder whether p is the initial packet of an operation,
// its final packet, both, or neither, without any cryptography
// (docs/SESSION.md, "Classification of a greeting packet"). running is the
// Greeting of the operation under way at this point of the order, or nil.
//
//   - initial: INIT_INITIATOR_UP, INCLUDE_AUX_INITIATOR_UP, and
//     EXCLUDE_AUX_INITIATOR_DOWN leaving two members or more;
//   - both: REFRESH_AUX_INITIATOR_DOWN, and an exclude leaving one member;
//   - final: the confirm of the last member still to authenticate, judged
//     by the running Greeting ([Greeting.ExpectsFinal]);
//   - none: everything else (QUIT_DOWN included: it is vestigial).
func Classify(p *wire.GreetPacket, running *Greeting) Class {
	switch p.Type {
	case wire.GreetInitInitiatorUp, wire.GreetIncludeAuxInitiatorUp:
		return ClassInitial
	case wire.GreetExcludeAuxInitiatorDown:
		if len(p.Members) >= 2 {
			return ClassInitial
		}
		return ClassBoth
	case wire.GreetRefreshAuxInitiatorDown:
		return ClassBoth
	}
	if running != nil && running.ExpectsFinal(p) {
		return ClassFinal
	}
	return ClassNone
}

// Proposal is an initial packet we built, with the Greeting prepared for
// it. Send Wire; when ServerOrder accepts its echo, pass the Proposal to
// [Greeter.Accept], which continues with the prepared Greeting.
type Proposal struct {
	Op      wire.Operation
	Members []string // the members after the operation, in operation order
	// Wire is the armoured packet to send.
	Wire string
	// Hash is SHA-256 of the packet bytes: how we recognise our echo.
	Hash [32]byte

	greeting *Greeting
}

// Propose builds the initial packet of an operation that changes the
// membership from prev's members (or just us when prev is nil: a solo
// member starts a session) to next, carrying meta for ServerOrder.
//
// The operation follows from the sets: from no session, START with next
// ordered [us] + sorted(others); a strict superset, INCLUDE (newcomers
// appended sorted); a strict subset, EXCLUDE (order kept); the same set,
// REFRESH. Including and excluding at once, or excluding ourselves, is
// refused with [ErrInvalidProposal]. prev is not modified.
func (gr *Greeter) Propose(prev *State, next []string, meta *wire.Metadata) (*Proposal, error) {
	if meta == nil {
		return nil, fmt.Errorf("%w: no proposal metadata", ErrInvalidProposal)
	}
	if !slices.Contains(next, gr.Self) {
		return nil, fmt.Errorf("%w: we never exclude ourselves", ErrInvalidProposal)
	}
	if hasDuplicates(next) {
		return nil, fmt.Errorf("%w: duplicate member", ErrInvalidProposal)
	}
	if len(next) > wire.MaxMembers {
		return nil, fmt.Errorf("%w: %d members, cap %d", ErrInvalidProposal, len(next), wire.MaxMembers)
	}
	var include, exclude []string
	switch {
	case prev == nil && len(next) < 2:
		return nil, fmt.Errorf("%w: a session needs two members", ErrInvalidProposal)
	case prev != nil:
		include, exclude = diff(prev.Members, next)
		if len(include) > 0 && len(exclude) > 0 {
			return nil, fmt.Errorf("%w: include and exclude in one operation", ErrInvalidProposal)
		}
	}
	if err := gr.checkIdentities(next); err != nil {
		return nil, err
	}
	g := &Greeting{gr: gr, initiator: gr.Self, prev: prev, seen: map[crypto.Signature]bool{}}
	var p *wire.GreetPacket
	var err error
	switch {
	case prev == nil:
		p, err = g.proposeStart(next)
	case len(include) > 0:
		p, err = g.proposeInclude(include)
	case len(exclude) > 0:
		p, err = g.proposeExclude(exclude)
	default:
		p, err = g.proposeRefresh()
	}
	if err != nil {
		g.clear()
		return nil, err
	}
	p.Metadata = &wire.Metadata{PrevPF: meta.PrevPF, ChainHash: meta.ChainHash, LatestPM: slices.Clone(meta.LatestPM)}
	raw, err := p.Sign(g.eph)
	if err != nil {
		g.clear()
		return nil, fmt.Errorf("greeter: encoding the initial packet: %w", err)
	}
	g.sent = append(g.sent, packetHash(p))
	return &Proposal{
		Op:       g.op,
		Members:  slices.Clone(g.members),
		Wire:     wire.Armour(raw),
		Hash:     crypto.Hash(raw),
		greeting: g,
	}, nil
}

// Accept creates the Greeting for an initial packet that ServerOrder has
// accepted, and feeds it that packet. prev is our current result state
// (nil if we have none: a newcomer, or a solo member). If the packet is our
// own proposal's echo (its bytes hash to own.Hash), the prepared Greeting
// continues; otherwise a fresh one is built. own may be nil.
//
// It returns the Greeting and the packet to send in answer, if any. An
// error means the operation failed for us at once (the Greeting is
// returned too, failed, so that the session can report it); prev is never
// modified.
func (gr *Greeter) Accept(prev *State, p *wire.GreetPacket, own *Proposal) (*Greeting, string, error) {
	if own != nil && own.greeting != nil {
		raw, err := p.Marshal()
		if err == nil && crypto.Hash(raw) == own.Hash {
			g := own.greeting
			out, err := g.Receive(p)
			return g, out, err
		}
	}
	g := &Greeting{gr: gr, prev: prev, initiator: p.Source, seen: map[crypto.Signature]bool{}}
	out, err := g.start(p)
	return g, out, err
}

// Observe creates a verification-only Greeting, as member gr.Self, for an
// initial packet ServerOrder accepted, when we do not hold that member's
// secrets: the conformance runner uses it to replay a recorded session for
// every user. It checks every packet's signatures (with the keys the
// packets carry, and the static keys of the Directory) and keeps the ASKE
// state, so that Classify and ExpectsFinal answer as that member's own
// Greeting did. It never answers and derives no keys; it ends READY without
// a Result. gr.Identity may be nil.
func (gr *Greeter) Observe(p *wire.GreetPacket) (*Greeting, error) {
	g := &Greeting{gr: gr, initiator: p.Source, seen: map[crypto.Signature]bool{}, observer: true}
	_, err := g.start(p)
	return g, err
}

func hasDuplicates[T comparable](xs []T) bool {
	seen := make(map[T]struct{}, len(xs))
	for _, x := range xs {
		if _, ok := seen[x]; ok {
			return true
		}
		seen[x] = struct{}{}
	}
	return false
}

// diff returns next − prev (sorted) and prev − next (in prev order).
func diff(prev, next []string) (include, exclude []string) {
	for _, m := range next {
		if !slices.Contains(prev, m) {
			include = append(include, m)
		}
	}
	slices.Sort(include)
	for _, m := range prev {
		if !slices.Contains(next, m) {
			exclude = append(exclude, m)
		}
	}
	return include, exclude
}
