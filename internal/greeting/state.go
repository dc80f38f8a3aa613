package greeting

import (
	"fmt"
	"slices"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/wire"
)

// GreetingState is the state of a Greeting, with the reference's values.
type GreetingState uint8

// Greeting states (docs/PROTOCOL.md §10, "Greeting states").
const (
	StateNull         GreetingState = 0 // no operation has touched us yet
	StateInitUpflow   GreetingState = 1 // START: we took part in the upflow
	StateInitDownflow GreetingState = 2 // START: we have the keys, confirms pending
	StateReady        GreetingState = 3 // every member authenticated, our confirm echoed
	StateAuxUpflow    GreetingState = 4 // INCLUDE: upflow under way
	StateAuxDownflow  GreetingState = 5 // INCLUDE/EXCLUDE: keys known, confirms pending
	StateQuit         GreetingState = 6 // the operation excludes us
)

func (s GreetingState) String() string {
	switch s {
	case StateNull:
		return "NULL"
	case StateInitUpflow:
		return "INIT_UPFLOW"
	case StateInitDownflow:
		return "INIT_DOWNFLOW"
	case StateReady:
		return "READY"
	case StateAuxUpflow:
		return "AUX_UPFLOW"
	case StateAuxDownflow:
		return "AUX_DOWNFLOW"
	case StateQuit:
		return "QUIT"
	}
	return fmt.Sprintf("GreetingState(%d)", uint8(s))
}

// State is what a member holds after a successful operation (the "result
// state"): everything the next operation and the new subsession need.
//
// A State is immutable once a Greeting has produced it: operations build a
// new State and leave the previous one untouched, so that a failed or
// abandoned operation changes nothing. Slices are never shared with a
// Greeting's working copies.
type State struct {
	// Self is our participant id; Members are all members in operation
	// order (the order of the MEMBER records), Self among them.
	Self    string
	Members []string
	// SID is the ASKE session id; GroupKey the HKDF of the CLIQUES secret.
	SID      [32]byte
	GroupKey [32]byte
	// Nonces and EphemeralKeys hold every member's ASKE nonce and ephemeral
	// Ed25519 public key, indexed like Members.
	Nonces        [][32]byte
	EphemeralKeys []crypto.PublicKey
	// IntKeys are the CLIQUES intermediate keys, indexed like Members:
	// IntKeys[i] lacks exactly member i's contributions.
	IntKeys []wire.IntKey

	// ownEphemeral is our ephemeral signing key, kept across operations.
	ownEphemeral *crypto.SigningKey
	// contributions are all our CLIQUES private contributions, oldest first.
	// They cannot be multiplied into one scalar (X25519 clamps its inputs),
	// so every group-key computation folds over the whole list.
	contributions []*primitive.X25519Key
}

// Position returns the index of member in s.Members, or -1.
func (s *State) Position(member string) int { return slices.Index(s.Members, member) }

// OwnEphemeralKey returns our ephemeral signing key, used to sign data
// messages of the subsession. The caller must not modify or zero it while
// the State is in use.
func (s *State) OwnEphemeralKey() *crypto.SigningKey { return s.ownEphemeral }

// OwnNonce returns our current ASKE nonce.
func (s *State) OwnNonce() [32]byte { return s.Nonces[s.Position(s.Self)] }

// ContributionCount is the length of our list of CLIQUES contributions. It
// grows by one with every include, exclude and refresh we initiate, and
// each group-key computation costs one X25519 per entry; only a START
// (fresh contributions from every member) shortens it, which the session
// runs every few operations for forward secrecy (docs/SESSION.md,
// "Forward secrecy").
func (s *State) ContributionCount() int { return len(s.contributions) }

// Wipe zeroes what s holds that next does not share: its group key, and
// the CLIQUES contributions next no longer uses (after a START, all of
// them). Once a State is replaced nobody derives from it again; its
// ephemeral signing key is left to the caller, whose subsessions may still
// sign with it (and which zeroes it when the last of them is done).
func (s *State) Wipe(next *State) {
	crypto.Zero(s.GroupKey[:])
	for _, c := range s.contributions {
		if next == nil || !slices.Contains(next.contributions, c) {
			c.Zero()
		}
	}
}

// Contributions returns copies of our private CLIQUES contributions, oldest
// first. It exists for conformance tests; the caller owns and must zero the
// copies.
func (s *State) UnsafeContributions() [][32]byte {
	out := make([][32]byte, len(s.contributions))
	for i, c := range s.contributions {
		out[i] = c.Scalar()
	}
	return out
}

// SidKeyHint is the SIDKEY_HINT of this subsession's data packets.
func (s *State) SidKeyHint() byte {
	h := wire.SidKeyHash(s.SID[:], s.GroupKey[:])
	return h[0]
}

// clone returns a deep copy of the slices (the keys themselves are
// immutable objects and are shared).
func (s *State) clone() *State {
	c := *s
	c.Members = slices.Clone(s.Members)
	c.Nonces = slices.Clone(s.Nonces)
	c.EphemeralKeys = slices.Clone(s.EphemeralKeys)
	c.IntKeys = slices.Clone(s.IntKeys)
	c.contributions = slices.Clone(s.contributions)
	return &c
}
