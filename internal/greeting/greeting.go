package greeting

import (
	"errors"
	"fmt"
	"slices"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/greeter"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/wire"
)

// ErrAbandoned is the reason of a Greeting the session gave up on.
var ErrAbandoned = errors.New("greeter: operation abandoned")

// Greeting is one membership operation (start, include, exclude, refresh)
// as seen by one member: an I/O-free state machine. Packets go in through
// [Greeting.Receive] in the order the channel delivers them (our own echoes
// included); packets to broadcast come out as wire strings.
//
// A Greeting works on copies: the previous result state is never modified,
// so a failed or abandoned operation leaves it untouched. A failure is
// sticky: once Err is non-nil, every call returns it.
//
// Not safe for concurrent use; the session's event loop owns it.
type Greeting struct {
	gr        *Greeter
	prev      *State // previous result state, read-only; nil for newcomers
	op        wire.Operation
	initiator string
	members   []string // M, in operation order
	// prevCount is |M'| for an include (the existing members come first).
	prevCount int
	pos       int // our index in members; -1 when the operation excludes us
	state     GreetingState

	// Our working values. contributions holds prev's list plus what this
	// operation added (fresh, zeroed on failure); eph is our ephemeral key
	// (freshEph when this operation made it).
	contributions []*primitive.X25519Key
	fresh         []*primitive.X25519Key
	eph           *crypto.SigningKey
	freshEph      bool
	nonce         [32]byte

	// What we know of every member so far, indexed like members. knownEph and
	// knownNonce are filled from the previous state and the packets we
	// processed; a later packet must agree with them.
	knownEph   map[int]crypto.PublicKey
	knownNonce map[int][32]byte

	// The complete lists, once the downflow has been processed.
	haveKeys bool
	intKeys  []wire.IntKey
	nonces   [][32]byte
	pubKeys  []crypto.PublicKey
	sid      [32]byte
	groupKey [32]byte

	authed    []bool // session signature verified (ours: produced)
	ownEchoed bool   // our own DOWN or confirm came back from the channel
	// upTo is the member the last upflow packet seen was addressed to:
	// while the downflow has not come, it is that member's turn.
	upTo string

	sent [][32]byte                // hashes of the packets we sent
	seen map[crypto.Signature]bool // signatures of the packets processed

	err    error
	result *State

	// observer: a verification-only Greeting for a member whose secrets we
	// do not hold (see Greeter.Observe).
	observer bool
}

// Op returns the operation.
func (g *Greeting) Op() wire.Operation { return g.op }

// Initiator returns the member who proposed the operation.
func (g *Greeting) Initiator() string { return g.initiator }

// Members returns the members after the operation, in operation order.
func (g *Greeting) Members() []string { return slices.Clone(g.members) }

// State returns the greeting state.
func (g *Greeting) State() GreetingState { return g.state }

// Err returns the reason the operation failed, or nil.
func (g *Greeting) Err() error { return g.err }

// Excluded reports whether the operation excludes us (state QUIT).
func (g *Greeting) Excluded() bool { return g.state == StateQuit }

// EphemeralKey returns our ephemeral signing key in this operation, or nil
// before we have one (a newcomer before its upflow). The session signs its
// abort packets with it. Read-only: it is the key of the new subsession.
func (g *Greeting) EphemeralKey() *crypto.SigningKey { return g.eph }

// Unconfirmed returns the members, other than us, whose confirmation (ASKE
// session signature) has not been verified: after a stall, the members
// that did not take their turn.
func (g *Greeting) Unconfirmed() []string {
	var out []string
	for i, ok := range g.authed {
		if !ok && i != g.pos {
			out = append(out, g.members[i])
		}
	}
	if g.authed == nil && g.pos >= 0 {
		for i, m := range g.members {
			if i != g.pos {
				out = append(out, m)
			}
		}
	}
	return out
}

// Stalled returns the members, other than us, that an operation which has
// not completed is waiting for: during the upflow, the one the last upflow
// packet was addressed to (nobody else could act); once the downflow came,
// those that have not confirmed. After an abort, these are the members
// that did not take their turn; the others had no chance to.
func (g *Greeting) Stalled() []string {
	if g.result != nil || g.state == StateQuit {
		return nil
	}
	if !g.haveKeys {
		if g.upTo != "" && g.upTo != g.gr.Self {
			return []string{g.upTo}
		}
		return nil
	}
	return g.Unconfirmed()
}

// Result returns the new result state once the operation succeeded (state
// READY), else nil.
func (g *Greeting) Result() *State { return g.result }

// Abandon ends the operation without a result (the session gave up on it:
// we left the channel, a member left, a timeout). It wipes the secrets this
// operation created; the previous state is untouched.
func (g *Greeting) Abandon() {
	if g.err == nil && g.result == nil {
		g.fail(ErrAbandoned)
	}
}

// packetHash identifies a decoded packet: SHA256(signature ‖ signed bytes).
func packetHash(p *wire.GreetPacket) [32]byte {
	if p.Signed == nil {
		if b, err := p.MarshalSigned(); err == nil {
			p.Signed = b
		}
	}
	return crypto.Hash(p.Signature[:], p.Signed)
}

// isConfirm reports whether t is a participant's confirmation.
func isConfirm(t wire.GreetType) bool {
	switch t {
	case wire.GreetInitParticipantConfirmDown, wire.GreetIncludeAuxParticipantConfirmDown,
		wire.GreetExcludeAuxParticipantConfirmDown:
		return true
	}
	return false
}

// ExpectsFinal reports whether p would be this operation's final packet: the
// confirm of the last member still to authenticate, judged after our own DOWN
// or confirm has been echoed (docs/SESSION.md, "Classification of a greeting
// packet": who decides "final"). Every member of the operation holds the same
// ASKE state at each position of the order, so all of them pick the same
// packet. No cryptography is done.
func (g *Greeting) ExpectsFinal(p *wire.GreetPacket) bool {
	if g.err != nil || g.result != nil || g.state == StateQuit || !isConfirm(p.Type) ||
		p.Type.Op() != g.op || !slices.Equal(p.Members, g.members) {
		return false
	}
	src := slices.Index(g.members, p.Source)
	if src < 0 || g.authed == nil {
		return false
	}
	unauthed, last := 0, -1
	for i, ok := range g.authed {
		if !ok {
			unauthed, last = unauthed+1, i
		}
	}
	if src == g.pos {
		return unauthed == 0 && !g.ownEchoed
	}
	return g.ownEchoed && unauthed == 1 && last == src
}

// fail records the sticky failure and wipes what this operation created.
func (g *Greeting) fail(err error) error {
	if g.err == nil {
		g.err = fmt.Errorf("greeter: %v by %s: %w", g.op, g.initiator, err)
		g.clear()
	}
	return g.err
}

// clear wipes the secrets created by this operation (never the previous
// state's).
func (g *Greeting) clear() {
	for _, k := range g.fresh {
		k.Zero()
	}
	g.fresh = nil
	if g.freshEph && g.eph != nil {
		g.eph.Zero()
	}
	crypto.Zero(g.groupKey[:])
}

// ------------------------------------------------------------------
// Proposals (we are the initiator)

func (g *Greeting) newContribution() (*primitive.X25519Key, error) {
	k, err := primitive.GenerateX25519Key(g.gr.Rand)
	if err != nil {
		return nil, err
	}
	g.fresh = append(g.fresh, k)
	g.contributions = append(g.contributions, k)
	return k, nil
}

func (g *Greeting) newNonce() error {
	n, err := primitive.Random32(g.gr.Rand)
	g.nonce = n
	return err
}

func (g *Greeting) newEphemeral() error {
	k, err := crypto.GenerateSigningKey(g.gr.Rand)
	if err != nil {
		return err
	}
	g.eph, g.freshEph = k, true
	return nil
}

// fromPrev loads our continuing values from the previous state.
func (g *Greeting) fromPrev() {
	g.contributions = slices.Clone(g.prev.contributions)
	g.eph = g.prev.ownEphemeral
	g.nonce = g.prev.OwnNonce()
}

func (g *Greeting) initAuth() { g.authed = make([]bool, len(g.members)) }

// proposeStart builds INIT_INITIATOR_UP: members [us] + sorted(others).
// Draws, in the reference's order: contribution, nonce, ephemeral seed.
func (g *Greeting) proposeStart(next []string) (*wire.GreetPacket, error) {
	g.op, g.pos, g.state = wire.OpStart, 0, StateInitUpflow
	others := slices.DeleteFunc(slices.Clone(next), func(m string) bool { return m == g.gr.Self })
	slices.Sort(others)
	g.members = append([]string{g.gr.Self}, others...)
	k, err := g.newContribution()
	if err != nil {
		return nil, err
	}
	if err := g.newNonce(); err != nil {
		return nil, err
	}
	if err := g.newEphemeral(); err != nil {
		return nil, err
	}
	g.knownNonce = map[int][32]byte{0: g.nonce}
	g.knownEph = map[int]crypto.PublicKey{0: g.eph.Public()}
	g.initAuth()
	return &wire.GreetPacket{
		Type: wire.GreetInitInitiatorUp, Source: g.gr.Self, Dest: g.members[1], Members: g.members,
		IntKeys: []wire.IntKey{wire.BaseIntKey, wire.IntKey(k.Public())},
		Nonces:  [][32]byte{g.nonce}, PubKeys: []crypto.PublicKey{g.eph.Public()},
	}, nil
}

// proposeInclude builds INCLUDE_AUX_INITIATOR_UP (design document 5.2.1,
// Member Inclusion): append our cardinal for the newcomers, renew our
// contribution over every key but our own, renew our nonce.
func (g *Greeting) proposeInclude(include []string) (*wire.GreetPacket, error) {
	prev := g.prev
	g.op, g.state = wire.OpInclude, StateAuxUpflow
	g.members = append(slices.Clone(prev.Members), include...)
	g.prevCount = len(prev.Members)
	g.pos = prev.Position(g.gr.Self)
	g.fromPrev()
	card, err := cardinal(g.contributions, prev.IntKeys[g.pos])
	if err != nil {
		return nil, err
	}
	keys := append(slices.Clone(prev.IntKeys), card)
	k, err := g.newContribution()
	if err != nil {
		return nil, err
	}
	if err := multiplyOthers(keys, g.pos, k); err != nil {
		return nil, err
	}
	crypto.Zero(card[:])
	if err := g.newNonce(); err != nil {
		return nil, err
	}
	nonces := slices.Clone(prev.Nonces)
	nonces[g.pos] = g.nonce
	g.knownEph, g.knownNonce = map[int]crypto.PublicKey{}, map[int][32]byte{}
	for i := range prev.Members {
		g.knownEph[i] = prev.EphemeralKeys[i]
		g.knownNonce[i] = nonces[i]
	}
	g.initAuth()
	return &wire.GreetPacket{
		Type: wire.GreetIncludeAuxInitiatorUp, Source: g.gr.Self, Dest: include[0], Members: g.members,
		IntKeys: keys, Nonces: nonces, PubKeys: slices.Clone(prev.EphemeralKeys),
	}, nil
}

// proposeExclude builds EXCLUDE_AUX_INITIATOR_DOWN (Member Exclusion): renew
// our contribution and nonce, drop the excluded members' entries, and sign
// the new session at once.
func (g *Greeting) proposeExclude(exclude []string) (*wire.GreetPacket, error) {
	prev := g.prev
	g.op, g.state = wire.OpExclude, StateAuxDownflow
	prevPos := prev.Position(g.gr.Self)
	g.fromPrev()
	keys := slices.Clone(prev.IntKeys)
	k, err := g.newContribution()
	if err != nil {
		return nil, err
	}
	if err := multiplyOthers(keys, prevPos, k); err != nil {
		return nil, err
	}
	if err := g.newNonce(); err != nil {
		return nil, err
	}
	nonces := slices.Clone(prev.Nonces)
	nonces[prevPos] = g.nonce
	var members []string
	var intKeys []wire.IntKey
	var ns [][32]byte
	var pubs []crypto.PublicKey
	for i, m := range prev.Members {
		if slices.Contains(exclude, m) {
			continue
		}
		members = append(members, m)
		intKeys = append(intKeys, keys[i])
		ns = append(ns, nonces[i])
		pubs = append(pubs, prev.EphemeralKeys[i])
	}
	g.members = members
	g.pos = slices.Index(members, g.gr.Self)
	g.initAuth()
	if err := g.setKeys(intKeys, ns, pubs); err != nil {
		return nil, err
	}
	sig := g.ownSessionSig()
	return &wire.GreetPacket{
		Type: wire.GreetExcludeAuxInitiatorDown, Source: g.gr.Self, Members: g.members,
		IntKeys: intKeys, Nonces: ns, PubKeys: pubs, SessionSignature: &sig,
	}, nil
}

// proposeRefresh builds REFRESH_AUX_INITIATOR_DOWN: a new contribution over
// every key but ours; sid, nonces and ephemeral keys stay.
func (g *Greeting) proposeRefresh() (*wire.GreetPacket, error) {
	prev := g.prev
	g.op, g.state = wire.OpRefresh, StateAuxDownflow
	g.members = slices.Clone(prev.Members)
	g.pos = prev.Position(g.gr.Self)
	g.fromPrev()
	keys := slices.Clone(prev.IntKeys)
	k, err := g.newContribution()
	if err != nil {
		return nil, err
	}
	if err := multiplyOthers(keys, g.pos, k); err != nil {
		return nil, err
	}
	g.initAuth()
	if err := g.setRefreshKeys(keys); err != nil {
		return nil, err
	}
	return &wire.GreetPacket{
		Type: wire.GreetRefreshAuxInitiatorDown, Source: g.gr.Self, Members: g.members, IntKeys: keys,
	}, nil
}

// ------------------------------------------------------------------
// Starting from someone else's accepted initial packet

// start sets up a Greeting from an accepted initial packet of another
// member and processes it.
func (g *Greeting) start(p *wire.GreetPacket) (string, error) {
	g.op = p.Type.Op()
	g.members = slices.Clone(p.Members)
	g.pos = slices.Index(g.members, g.gr.Self)
	g.knownEph, g.knownNonce = map[int]crypto.PublicKey{}, map[int][32]byte{}
	if !p.Type.Init() || p.Type == wire.GreetQuitDown {
		g.state = StateNull
		return "", g.fail(fmt.Errorf("%v is not an initial packet", p.Type))
	}
	if p.Source == g.gr.Self && !g.observer {
		// Our own proposals continue in their prepared Greeting; an initial
		// packet in our name that we did not prepare is a replay or a
		// forgery (the own-pI guard, docs/SESSION.md, "ServerOrder").
		return "", g.fail(errors.New("an initial packet in our name that we did not send"))
	}
	if g.pos < 0 {
		g.state = StateQuit
		g.seen[p.Signature] = true
		return "", nil
	}
	g.initAuth()
	if g.observer {
		if slices.Index(g.members, p.Source) < 0 || hasDuplicates(g.members) {
			return "", g.fail(errors.New("malformed initial packet"))
		}
		if g.op == wire.OpInclude {
			g.prevCount = len(p.Nonces)
		}
		return g.Receive(p)
	}
	if err := g.setup(p); err != nil {
		return "", g.fail(err)
	}
	if err := g.gr.checkIdentities(g.members); err != nil {
		return "", g.fail(err)
	}
	if g.prev != nil {
		g.state = StateReady // a continuing member, idle until its turn
	}
	return g.Receive(p)
}

// setup checks an initial packet against our previous state and loads what
// we know before processing it.
func (g *Greeting) setup(p *wire.GreetPacket) error {
	if slices.Index(g.members, p.Source) < 0 {
		return errors.New("initiator is not a member of the operation")
	}
	if hasDuplicates(g.members) {
		return errors.New("duplicate member")
	}
	switch g.op {
	case wire.OpStart:
		if g.members[0] != p.Source {
			return errors.New("START initiator is not the first member")
		}
		g.prev = nil // a START begins from scratch for everyone
		return nil
	case wire.OpInclude:
		g.prevCount = len(p.Nonces)
		if g.prevCount < 1 || g.prevCount >= len(g.members) || slices.Index(g.members, p.Source) >= g.prevCount {
			return errors.New("malformed include: existing and new members")
		}
		if g.pos >= g.prevCount { // a newcomer: we know nothing yet
			g.prev = nil
			return nil
		}
		if g.prev == nil || !slices.Equal(g.prev.Members, g.members[:g.prevCount]) {
			return errors.New("include does not start from our session's members")
		}
		g.fromPrev()
		init := slices.Index(g.members, p.Source)
		for i := range g.prevCount {
			g.knownEph[i] = g.prev.EphemeralKeys[i]
			if i != init {
				g.knownNonce[i] = g.prev.Nonces[i]
			}
		}
		return nil
	case wire.OpExclude:
		if g.prev == nil || !isSubsequence(g.members, g.prev.Members) || len(g.members) == len(g.prev.Members) {
			return errors.New("exclude does not start from our session's members")
		}
		g.fromPrev()
		for i, m := range g.members {
			pp := g.prev.Position(m)
			g.knownEph[i] = g.prev.EphemeralKeys[pp]
			if m != p.Source {
				g.knownNonce[i] = g.prev.Nonces[pp]
			}
		}
		return nil
	case wire.OpRefresh:
		if g.prev == nil || !slices.Equal(g.prev.Members, g.members) {
			return errors.New("refresh does not start from our session's members")
		}
		g.fromPrev()
		return nil
	}
	return fmt.Errorf("unsupported operation %v", g.op)
}

// isSubsequence reports whether sub appears in seq in the same order.
func isSubsequence(sub, seq []string) bool {
	i := 0
	for _, s := range seq {
		if i < len(sub) && sub[i] == s {
			i++
		}
	}
	return i == len(sub)
}

// ------------------------------------------------------------------
// Receiving

// stableKey returns member's ephemeral key if it signs every packet the
// member sends in this operation and in any other it may still have packets
// of: an existing member's key, which include, exclude and refresh keep
// (known from the previous state or, for a newcomer, from the include's
// initial packet). A START gives everyone a fresh key, an include gives
// one to each newcomer, and ours may be fresh: a late packet of a failed
// attempt carries another key, which proves nothing.
func (g *Greeting) stableKey(member string) (crypto.PublicKey, bool) {
	i := slices.Index(g.members, member)
	switch {
	case i < 0 || g.op == wire.OpStart:
		return crypto.PublicKey{}, false
	case g.op == wire.OpInclude && i >= g.prevCount:
		return crypto.PublicKey{}, false
	case i == g.pos && g.freshEph:
		return crypto.PublicKey{}, false
	case i == g.pos && g.eph != nil:
		return g.eph.Public(), true
	}
	k, ok := g.knownEph[i]
	return k, ok
}

// Receive processes one greeting packet delivered by the channel, our own
// echoes included, and returns the packet to broadcast in answer ("" if
// none).
//
// [ErrNotForThisOperation] and [ErrDuplicate] mean the packet was ignored
// and nothing changed. Any other error means the operation failed (sticky):
// a packet of this operation that does not verify or does not agree with
// what we know.
func (g *Greeting) Receive(p *wire.GreetPacket) (string, error) {
	if g.err != nil {
		return "", g.err
	}
	// Deduplicate by signature: cheap, and a different packet carrying a
	// copied signature would not verify anyway.
	if g.seen[p.Signature] {
		return "", ErrDuplicate
	}
	if g.result != nil || g.state == StateQuit {
		return "", fmt.Errorf("%w: operation already ended", ErrNotForThisOperation)
	}
	if err := g.belongs(p); err != nil {
		// A packet of another operation is normal (a late packet of an
		// operation that failed). But one that claims a sender whose
		// ephemeral key is stable across operations and does not verify
		// under it was altered or forged: that ends the operation.
		if k, ok := g.stableKey(p.Source); ok && !p.Verify(k) {
			return "", g.fail(fmt.Errorf("altered or forged packet from %q: %v", p.Source, err))
		}
		return "", err
	}
	g.seen[p.Signature] = true
	if !p.Type.Down() && p.Dest != "" {
		g.upTo = p.Dest
	}
	if p.Source == g.gr.Self {
		if g.observer {
			return "", g.observeOwn(p)
		}
		return "", g.ownEcho(p, packetHash(p))
	}
	var out *wire.GreetPacket
	var err error
	switch p.Type {
	case wire.GreetInitInitiatorUp, wire.GreetInitParticipantUp, wire.GreetIncludeAuxParticipantUp:
		if p.Dest != g.gr.Self {
			return "", nil // someone else's turn in the upflow
		}
		out, err = g.upflow(p)
	case wire.GreetIncludeAuxInitiatorUp:
		if g.pos < g.prevCount {
			err = g.checkIncludeInitial(p)
		} else if p.Dest == g.gr.Self {
			out, err = g.upflow(p)
		}
	case wire.GreetInitParticipantDown, wire.GreetIncludeAuxParticipantDown, wire.GreetExcludeAuxInitiatorDown:
		out, err = g.downflow(p)
	case wire.GreetInitParticipantConfirmDown, wire.GreetIncludeAuxParticipantConfirmDown,
		wire.GreetExcludeAuxParticipantConfirmDown:
		err = g.confirm(p)
	case wire.GreetRefreshAuxInitiatorDown:
		err = g.refresh(p)
	default:
		err = fmt.Errorf("unexpected %v", p.Type)
	}
	if err != nil {
		return "", g.fail(err)
	}
	if out == nil {
		return "", nil
	}
	raw, err := out.Sign(g.eph)
	if err != nil {
		return "", g.fail(err)
	}
	g.sent = append(g.sent, packetHash(out))
	return wire.Armour(raw), nil
}

// belongs decides whether p is part of this operation at all; packets that
// are not are ignored without touching any state.
func (g *Greeting) belongs(p *wire.GreetPacket) error {
	switch {
	case p.Type.Op() != g.op:
		return fmt.Errorf("%w: %v during %v", ErrNotForThisOperation, p.Type, g.op)
	case !slices.Equal(p.Members, g.members):
		return fmt.Errorf("%w: other member list", ErrNotForThisOperation)
	case slices.Index(g.members, p.Source) < 0:
		return fmt.Errorf("%w: from non-member %q", ErrNotForThisOperation, p.Source)
	case p.Dest != "" && slices.Index(g.members, p.Dest) < 0:
		return fmt.Errorf("%w: to non-member %q", ErrNotForThisOperation, p.Dest)
	}
	return nil
}

// ownEcho handles our own packet coming back from the channel.
func (g *Greeting) ownEcho(p *wire.GreetPacket, h [32]byte) error {
	if !slices.Contains(g.sent, h) {
		return g.fail(errors.New("a packet in our name that we did not send"))
	}
	if p.Type.Down() {
		g.ownEchoed = true
		g.maybeReady()
	}
	return nil
}

// observeOwn handles, in an observer, the observed member's own packet: its
// upflow contribution (nothing to check), its DOWN (it has the keys and its
// session signature; the echo counts), its confirm (the echo counts).
func (g *Greeting) observeOwn(p *wire.GreetPacket) error {
	if !p.Type.Down() {
		return nil
	}
	if !g.haveKeys && p.Type != wire.GreetRefreshAuxInitiatorDown {
		n := len(g.members)
		if err := checkLayout(p, n, n, n, true); err != nil {
			return err
		}
		if !p.Verify(p.PubKeys[g.pos]) {
			return errors.New("bad signature on our own packet")
		}
		if err := g.setKeys(p.IntKeys, p.Nonces, p.PubKeys); err != nil {
			return err
		}
		if err := g.verifySession(p, g.pos); err != nil {
			return err
		}
	}
	if p.Type == wire.GreetRefreshAuxInitiatorDown {
		g.haveKeys = true
	}
	g.authed[g.pos] = true
	g.ownEchoed = true
	g.maybeReady()
	return nil
}

// senderKey returns the ephemeral key to verify the sender at index i with:
// the one we know, or the packet's own PUB_KEY entry (authenticated by the
// ASKE before the operation completes).
func (g *Greeting) senderKey(p *wire.GreetPacket, i int) (crypto.PublicKey, error) {
	if k, ok := g.knownEph[i]; ok {
		if i < len(p.PubKeys) && p.PubKeys[i] != k {
			return k, fmt.Errorf("ephemeral key of %q differs from the one we know", g.members[i])
		}
		return k, nil
	}
	if i >= len(p.PubKeys) {
		return crypto.PublicKey{}, fmt.Errorf("no ephemeral key for %q", g.members[i])
	}
	return p.PubKeys[i], nil
}

func (g *Greeting) verifyMessage(p *wire.GreetPacket, i int) error {
	k, err := g.senderKey(p, i)
	if err != nil {
		return err
	}
	if !p.Verify(k) {
		return fmt.Errorf("bad packet signature from %q", g.members[i])
	}
	return nil
}

// checkKnown checks a packet's nonce and key lists against what we know.
func (g *Greeting) checkKnown(p *wire.GreetPacket) error {
	for i, k := range g.knownEph {
		if i < len(p.PubKeys) && p.PubKeys[i] != k {
			return fmt.Errorf("ephemeral key of %q changed", g.members[i])
		}
	}
	for i, n := range g.knownNonce {
		if i < len(p.Nonces) && p.Nonces[i] != n {
			return fmt.Errorf("nonce of %q changed", g.members[i])
		}
	}
	return nil
}

func checkLayout(p *wire.GreetPacket, intKeys, nonces, pubKeys int, sessionSig bool) error {
	switch {
	case len(p.IntKeys) != intKeys:
		return fmt.Errorf("%v with %d intermediate keys, want %d", p.Type, len(p.IntKeys), intKeys)
	case len(p.Nonces) != nonces:
		return fmt.Errorf("%v with %d nonces, want %d", p.Type, len(p.Nonces), nonces)
	case len(p.PubKeys) != pubKeys:
		return fmt.Errorf("%v with %d ephemeral keys, want %d", p.Type, len(p.PubKeys), pubKeys)
	case (p.SessionSignature != nil) != sessionSig:
		return fmt.Errorf("%v: session signature present %v, want %v", p.Type, p.SessionSignature != nil, sessionSig)
	case (p.Metadata != nil) != p.Type.Init():
		return fmt.Errorf("%v: proposal metadata present %v", p.Type, p.Metadata != nil)
	case p.SigningKey != nil:
		return fmt.Errorf("%v with a signing key", p.Type)
	}
	return nil
}

// checkIncludeInitial checks, at an existing member, the initiator's
// INCLUDE_AUX_INITIATOR_UP against our session; we answer nothing.
func (g *Greeting) checkIncludeInitial(p *wire.GreetPacket) error {
	if err := checkLayout(p, g.prevCount+1, g.prevCount, g.prevCount, false); err != nil {
		return err
	}
	if p.Dest != g.members[g.prevCount] {
		return errors.New("include upflow not addressed to the first newcomer")
	}
	init := slices.Index(g.members, p.Source)
	if err := g.verifyMessage(p, init); err != nil {
		return err
	}
	if err := g.checkKnown(p); err != nil {
		return err
	}
	g.knownNonce[init] = p.Nonces[init]
	g.state = StateAuxUpflow
	return nil
}

// upflow handles an upflow packet addressed to us: add our contribution,
// nonce and ephemeral key, and pass it on, or, as the last member, start the
// downflow (design document 5.2.1 Upflow and 5.2.2 Phase 1).
func (g *Greeting) upflow(p *wire.GreetPacket) (*wire.GreetPacket, error) {
	if g.eph != nil && g.freshEph || g.observer && g.state != StateNull && g.state != StateReady {
		return nil, errors.New("a second upflow for us")
	}
	src := slices.Index(g.members, p.Source)
	switch {
	case p.Type == wire.GreetIncludeAuxInitiatorUp && p.Source != g.initiator:
		return nil, fmt.Errorf("include upflow from %q, not the initiator", p.Source)
	case p.Type != wire.GreetIncludeAuxInitiatorUp && src != g.pos-1:
		return nil, fmt.Errorf("upflow from %q, who is not our predecessor", p.Source)
	}
	if err := checkLayout(p, g.pos+1, g.pos, g.pos, false); err != nil {
		return nil, err
	}
	if err := g.verifyMessage(p, src); err != nil {
		return nil, err
	}
	if err := g.checkKnown(p); err != nil {
		return nil, err
	}
	for i := range g.pos {
		g.knownEph[i], g.knownNonce[i] = p.PubKeys[i], p.Nonces[i]
	}
	if g.observer {
		// Our contribution will show in our own next packet.
		g.state = StateInitUpflow
		if g.op == wire.OpInclude {
			g.state = StateAuxUpflow
		}
		return nil, nil
	}
	// Draws in the reference's order: contribution, nonce, ephemeral seed.
	g.contributions = nil
	k, err := g.newContribution()
	if err != nil {
		return nil, err
	}
	if err := g.newNonce(); err != nil {
		return nil, err
	}
	if err := g.newEphemeral(); err != nil {
		return nil, err
	}
	g.knownEph[g.pos], g.knownNonce[g.pos] = g.eph.Public(), g.nonce
	keys := slices.Clone(p.IntKeys)
	if err := multiplyOthers(keys[:g.pos], -1, k); err != nil {
		return nil, err
	}
	nonces := append(slices.Clone(p.Nonces), g.nonce)
	pubs := append(slices.Clone(p.PubKeys), g.eph.Public())
	last := g.pos == len(g.members)-1
	out := &wire.GreetPacket{Source: g.gr.Self, Members: g.members, Nonces: nonces, PubKeys: pubs}
	if !last {
		next, err := mult(k, keys[g.pos])
		if err != nil {
			return nil, err
		}
		out.IntKeys = append(keys, next)
		out.Dest = g.members[g.pos+1]
		if g.op == wire.OpStart {
			out.Type, g.state = wire.GreetInitParticipantUp, StateInitUpflow
		} else {
			out.Type, g.state = wire.GreetIncludeAuxParticipantUp, StateAuxUpflow
		}
		return out, nil
	}
	if err := g.setKeys(keys, nonces, pubs); err != nil {
		return nil, err
	}
	sig := g.ownSessionSig()
	out.IntKeys, out.SessionSignature = keys, &sig
	if g.op == wire.OpStart {
		out.Type, g.state = wire.GreetInitParticipantDown, StateInitDownflow
	} else {
		out.Type, g.state = wire.GreetIncludeAuxParticipantDown, StateAuxDownflow
	}
	return out, nil
}

// setKeys stores the complete lists and derives sid and group key (an
// observer derives the sid only).
func (g *Greeting) setKeys(intKeys []wire.IntKey, nonces [][32]byte, pubs []crypto.PublicKey) error {
	var gk [32]byte
	if !g.observer {
		var err error
		if gk, err = groupKey(g.contributions, intKeys[g.pos]); err != nil {
			return err
		}
	}
	g.intKeys, g.nonces, g.pubKeys = slices.Clone(intKeys), slices.Clone(nonces), slices.Clone(pubs)
	ns := make([][]byte, len(nonces))
	for i := range nonces {
		ns[i] = g.nonces[i][:]
	}
	g.sid = greeter.SessionID(g.members, ns)
	g.groupKey = gk
	g.haveKeys = true
	return nil
}

// setRefreshKeys is setKeys for a refresh: only the group key changes.
func (g *Greeting) setRefreshKeys(intKeys []wire.IntKey) error {
	gk, err := groupKey(g.contributions, intKeys[g.pos])
	if err != nil {
		return err
	}
	g.intKeys = slices.Clone(intKeys)
	g.nonces, g.pubKeys = slices.Clone(g.prev.Nonces), slices.Clone(g.prev.EphemeralKeys)
	g.sid, g.groupKey, g.haveKeys = g.prev.SID, gk, true
	return nil
}

// ownSessionSig signs our ASKE authenticator and counts us authenticated.
func (g *Greeting) ownSessionSig() crypto.Signature {
	g.authed[g.pos] = true
	return greeter.SignSession(g.gr.Identity, g.gr.Self, g.eph.Public(), g.nonce[:], g.sid)
}

// verifySession checks member i's session signature with its static key.
func (g *Greeting) verifySession(p *wire.GreetPacket, i int) error {
	static, err := g.gr.Directory.IdentityKey(g.members[i])
	if err != nil {
		// Our directory no longer gives the key (the user, or a trust
		// message, changed its trust during the operation): our
		// decision, as checkIdentities' refusal is, not a fault of the
		// member's.
		return fmt.Errorf("%w for %q: %w", ErrIdentityRefused, g.members[i], err)
	}
	if err := primitive.CheckEd25519PublicKey(static); err != nil {
		return fmt.Errorf("identity key of %q: %w", g.members[i], err)
	}
	if !greeter.VerifySession(static, g.members[i], g.pubKeys[i], g.nonces[i][:], g.sid, p.SessionSignature) {
		return fmt.Errorf("bad session signature from %q", g.members[i])
	}
	if g.authed[i] {
		return fmt.Errorf("a second confirmation from %q", g.members[i])
	}
	g.authed[i] = true
	return nil
}

// downflow handles the first broadcast of the operation's downflow: the
// last upflow member's DOWN, or the exclude initiator's packet. We derive
// sid and group key, check the sender's session signature, and confirm.
func (g *Greeting) downflow(p *wire.GreetPacket) (*wire.GreetPacket, error) {
	if g.haveKeys {
		return nil, errors.New("a second downflow")
	}
	src := slices.Index(g.members, p.Source)
	n := len(g.members)
	switch {
	case g.op == wire.OpExclude && p.Source != g.initiator:
		return nil, errors.New("exclude downflow not from the initiator")
	case g.op != wire.OpExclude && src != n-1:
		return nil, errors.New("downflow not from the last member")
	case g.eph == nil && !g.observer:
		return nil, errors.New("downflow before our own upflow")
	case p.Dest != "":
		return nil, errors.New("downflow addressed to one member")
	}
	if err := checkLayout(p, n, n, n, true); err != nil {
		return nil, err
	}
	if !g.observer && (p.PubKeys[g.pos] != g.eph.Public() || p.Nonces[g.pos] != g.nonce) {
		return nil, errors.New("downflow misstates our own contribution")
	}
	// Distinct ephemeral keys: a member claiming another's key could have
	// that member's data messages attributed to itself.
	if hasDuplicates(p.PubKeys) {
		return nil, errors.New("two members claim the same ephemeral key")
	}
	if err := g.checkKnown(p); err != nil {
		return nil, err
	}
	if err := g.verifyMessage(p, src); err != nil {
		return nil, err
	}
	if err := g.setKeys(p.IntKeys, p.Nonces, p.PubKeys); err != nil {
		return nil, err
	}
	if err := g.verifySession(p, src); err != nil {
		return nil, err
	}
	if g.observer {
		g.authed[g.pos] = true // we confirm now; our confirm comes later in the record
		g.state = StateAuxDownflow
		if g.op == wire.OpStart {
			g.state = StateInitDownflow
		}
		return nil, nil
	}
	sig := g.ownSessionSig()
	out := &wire.GreetPacket{Source: g.gr.Self, Members: g.members, Nonces: g.nonces, PubKeys: g.pubKeys, SessionSignature: &sig}
	switch g.op {
	case wire.OpStart:
		out.Type, g.state = wire.GreetInitParticipantConfirmDown, StateInitDownflow
	case wire.OpInclude:
		out.Type, g.state = wire.GreetIncludeAuxParticipantConfirmDown, StateAuxDownflow
	default:
		out.Type, g.state = wire.GreetExcludeAuxParticipantConfirmDown, StateAuxDownflow
	}
	return out, nil
}

// confirm handles another member's confirmation (design document 5.2.2,
// Phase 3).
func (g *Greeting) confirm(p *wire.GreetPacket) error {
	if !g.haveKeys {
		return errors.New("confirmation before the downflow")
	}
	n := len(g.members)
	if err := checkLayout(p, 0, n, n, true); err != nil {
		return err
	}
	if p.Dest != "" {
		return errors.New("confirmation addressed to one member")
	}
	if !slices.Equal(p.Nonces, g.nonces) || !slices.Equal(p.PubKeys, g.pubKeys) {
		return fmt.Errorf("confirmation from %q disagrees on nonces or keys", p.Source)
	}
	src := slices.Index(g.members, p.Source)
	if !p.Verify(g.pubKeys[src]) {
		return fmt.Errorf("bad packet signature from %q", p.Source)
	}
	if err := g.verifySession(p, src); err != nil {
		return err
	}
	g.maybeReady()
	return nil
}

// refresh handles another member's REFRESH_AUX_INITIATOR_DOWN: a new group
// key from its new contribution; nothing else changes, nothing to answer.
func (g *Greeting) refresh(p *wire.GreetPacket) error {
	if g.haveKeys {
		return errors.New("a second refresh")
	}
	if err := checkLayout(p, len(g.members), 0, 0, false); err != nil {
		return err
	}
	if p.Dest != "" {
		return errors.New("refresh addressed to one member")
	}
	src := slices.Index(g.members, p.Source)
	if g.observer {
		// An observer knows no previous keys: it cannot check a refresh,
		// which has no ASKE part; it notes it.
		g.haveKeys, g.ownEchoed = true, true
		g.maybeReady()
		return nil
	}
	if !p.Verify(g.prev.EphemeralKeys[src]) {
		return fmt.Errorf("bad packet signature from %q", p.Source)
	}
	if err := g.setRefreshKeys(p.IntKeys); err != nil {
		return err
	}
	g.ownEchoed = true // a refresh needs no confirmation from anyone
	g.maybeReady()
	return nil
}

// maybeReady completes the operation when every member is authenticated and
// our own DOWN or confirm has come back (for a refresh: at once).
func (g *Greeting) maybeReady() {
	if !g.haveKeys || !g.ownEchoed {
		return
	}
	if g.op == wire.OpRefresh {
		for i := range g.authed {
			g.authed[i] = true
		}
	}
	for _, ok := range g.authed {
		if !ok {
			return
		}
	}
	g.state = StateReady
	if g.observer {
		return // no keys, no result: only the state
	}
	g.result = &State{
		Self:          g.gr.Self,
		Members:       slices.Clone(g.members),
		SID:           g.sid,
		GroupKey:      g.groupKey,
		Nonces:        slices.Clone(g.nonces),
		EphemeralKeys: slices.Clone(g.pubKeys),
		IntKeys:       slices.Clone(g.intKeys),
		ownEphemeral:  g.eph,
		contributions: slices.Clone(g.contributions),
	}
	g.fresh, g.freshEph = nil, false // now owned by the result
	crypto.Zero(g.groupKey[:])       // the result has its own copy
}
