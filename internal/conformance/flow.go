package conformance

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/greeter"
	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/internal/wire"
)

// drawReader replays recorded random draws. Each Read must ask for exactly
// the next draw's size, as the reference's calls did; anything else is an
// error (the greeter then fails, and the check reports it).
type drawReader struct {
	draws []Draw
	i     int
	err   error
}

func (r *drawReader) Read(p []byte) (int, error) {
	if r.i >= len(r.draws) {
		r.err = fmt.Errorf("random draw %d requested (%d bytes), only %d recorded", r.i+1, len(p), len(r.draws))
		return 0, r.err
	}
	d := r.draws[r.i]
	b, err := unhex(d.Hex)
	if err != nil || len(b) != len(p) || d.N != len(p) {
		r.err = fmt.Errorf("draw %d (%s) is %d bytes, %d requested", r.i+1, d.Label, d.N, len(p))
		return 0, r.err
	}
	r.i++
	return copy(p, b), nil
}

// staticDirectory builds the identities of a vector file.
func staticDirectory(keys map[string]struct {
	Seed string `json:"ed25519_seed"`
	Pub  string `json:"ed25519_pub"`
}, r *Report) (map[string]*crypto.SigningKey, greeter.Directory) {
	out := map[string]*crypto.SigningKey{}
	for id, k := range keys {
		seed, err := unhex32(k.Seed)
		if !r.check(err == nil, "static key of %q: %v", id, err) {
			continue
		}
		sk := crypto.NewSigningKey(seed)
		pub := sk.Public()
		r.equal(fmt.Sprintf("static public key of %q", id), hex.EncodeToString(pub[:]), k.Pub)
		out[id] = sk
	}
	dir := greeter.DirectoryFunc(func(m string) (crypto.PublicKey, error) {
		k, ok := out[m]
		if !ok {
			return crypto.PublicKey{}, fmt.Errorf("no identity key for %q", m)
		}
		return k.Public(), nil
	})
	return out, dir
}

// CheckFlow replays a greeter flow through package greeter: each operation
// is proposed by its initiator from the state the previous operations left,
// each member's recorded random draws are injected in order, and every
// recorded packet is delivered to every channel member in the recorded
// order. It checks that each member's greeter produces exactly the
// recorded packets, that each member classifies each packet as recorded,
// the packet ids and chain hashes, and every member's resulting state;
// then the data messages of the final subsession (see checkFlowData).
func CheckFlow(f *Flow, r *Report) {
	keys, dir := staticDirectory(f.StaticKeys, r)
	states := map[string]*greeting.State{}
	for oi, op := range f.Operations {
		if !checkFlowOp(oi, &op, keys, dir, states, r) {
			r.fail("operation %d (%s): stopped; later operations start from a wrong state", oi, op.Label)
			return
		}
	}
	for i, dm := range f.DataMessages {
		checkFlowData(i, &dm, f, states, r)
	}
}

func checkFlowOp(oi int, op *FlowOp, keys map[string]*crypto.SigningKey, dir greeter.Directory, states map[string]*greeting.State, r *Report) bool {
	where := fmt.Sprintf("operation %d (%s)", oi, op.Label)
	rnd := &drawReader{draws: op.RNGDraws}
	greeters := map[string]*greeting.Greeter{}
	for id, k := range keys {
		greeters[id] = &greeting.Greeter{Self: id, Identity: k, Directory: dir, Rand: rnd}
	}
	if greeters[op.Initiator] == nil {
		r.fail("%s: no static key for initiator %q", where, op.Initiator)
		return false
	}
	prevPF, err1 := unhex32(op.Metadata.PrevPF)
	prevCH, err2 := unhex32(op.Metadata.PrevCh)
	if !r.check(err1 == nil && err2 == nil, "%s: bad metadata", where) {
		return false
	}
	meta := &wire.Metadata{PrevPF: prevPF, ChainHash: prevCH}
	for _, pm := range op.Metadata.Parents {
		b, err := unhex(pm)
		if !r.check(err == nil && len(b) == wire.MessageIDSize, "%s: bad parent %q", where, pm) {
			return false
		}
		meta.LatestPM = append(meta.LatestPM, wire.MessageID(b))
	}
	prop, err := greeters[op.Initiator].Propose(states[op.Initiator], op.NextMembers, meta)
	if !r.check(err == nil, "%s: propose: %v (draws: %v)", where, err, rnd.err) {
		return false
	}
	// What each member produced and has not been matched with the record yet.
	produced := map[string][]string{op.Initiator: {prop.Wire}}
	greetings := map[string]*greeting.Greeting{}
	// Verification-only observers of every member, holding no secrets: they
	// must classify every packet exactly as the members' own greeters did
	// (the session-trace checks rely on them).
	observers := map[string]*greeting.Greeting{}
	watchers := map[string]*greeting.Greeter{}
	for id := range keys {
		watchers[id] = &greeting.Greeter{Self: id, Directory: dir}
	}
	chain := prevCH
	members := slices.Sorted(slices.Values(op.ChannelMembers))
	ok := true
	for k, want := range op.Packets {
		pw := fmt.Sprintf("%s packet %d (%s from %s)", where, k, want.GreetTypeName, want.Sender)
		if i := slices.Index(produced[want.Sender], want.Wire); i >= 0 {
			produced[want.Sender] = slices.Delete(produced[want.Sender], i, i+1)
			r.check(true, "")
		} else {
			r.fail("%s: not what %s's greeter produced (it has %d other packets pending)", pw, want.Sender, len(produced[want.Sender]))
			ok = false
		}
		pid := wire.PacketID(want.Wire, want.Sender, op.ChannelMembers)
		r.equal(pw+" packet id", hex.EncodeToString(pid[:]), want.PacketID)
		var class greeting.Class
		for _, m := range members {
			p, err := wire.DecodeWire(want.Wire)
			if !r.check(err == nil, "%s: decode at %s: %v", pw, m, err) {
				return false
			}
			gp, isGreet := p.(*wire.GreetPacket)
			if !r.check(isGreet, "%s: not a greeting packet", pw) {
				return false
			}
			c := greeting.Classify(gp, greetings[m])
			oc := greeting.Classify(gp, observers[m])
			r.check(oc == c, "%s: %s's observer classifies it %v, its greeter %v", pw, m, oc, c)
			switch {
			case (oc == greeting.ClassInitial || oc == greeting.ClassBoth) && observers[m] == nil:
				var oerr error
				observers[m], oerr = watchers[m].Observe(gp)
				r.check(oerr == nil || errors.Is(oerr, greeting.ErrNotForThisOperation), "%s: %s's observer: %v", pw, m, oerr)
			case observers[m] != nil:
				_, oerr := observers[m].Receive(gp)
				r.check(oerr == nil || errors.Is(oerr, greeting.ErrNotForThisOperation) && observers[m].Excluded(),
					"%s: %s's observer: %v", pw, m, oerr)
			}
			exp, known := want.SummaryByMember[m]
			if known {
				got := classString(c)
				r.check((got == nil) == (exp == nil) && (got == nil || *got == *exp),
					"%s: %s classifies it %v, the record says %s", pw, m, c, deref(exp))
				if c != greeting.ClassNone {
					class = c
				}
			}
			var out string
			switch {
			case (c == greeting.ClassInitial || c == greeting.ClassBoth) && greetings[m] == nil:
				var own *greeting.Proposal
				if m == op.Initiator {
					own = prop
				}
				greetings[m], out, err = greeters[m].Accept(states[m], gp, own)
			case greetings[m] != nil:
				out, err = greetings[m].Receive(gp)
			}
			if err != nil && !(errors.Is(err, greeting.ErrNotForThisOperation) && greetings[m].Excluded()) {
				r.fail("%s: at %s: %v (draws: %v)", pw, m, err, rnd.err)
				return false
			}
			if out != "" {
				produced[m] = append(produced[m], out)
			}
		}
		if class != greeting.ClassNone {
			chain = wire.ChainHash(chain[:], pid, fmt.Sprint(int(class)))
			r.equal(pw+" chain hash", hex.EncodeToString(chain[:]), want.ChainHashAfter)
		} else {
			r.check(want.ChainHashAfter == "", "%s: no chain entry, the record has one", pw)
		}
	}
	for m, left := range produced {
		r.check(len(left) == 0, "%s: %s produced %d packets the record does not have", where, m, len(left))
	}
	r.check(rnd.i == len(rnd.draws) && rnd.err == nil, "%s: %d of %d random draws used (%v)", where, rnd.i, len(rnd.draws), rnd.err)
	for _, m := range slices.Sorted(func(yield func(string) bool) {
		for m := range op.Results {
			if !yield(m) {
				return
			}
		}
	}) {
		want := op.Results[m]
		g := greetings[m]
		if !r.check(g != nil && g.Result() != nil, "%s: member %s has no result", where, m) {
			ok = false
			continue
		}
		r.equal(where+" member "+m+" state", g.State(), want.OpState)
		if o := observers[m]; o != nil {
			r.equal(where+" member "+m+" observer state", o.State(), want.OpState)
		}
		checkState(where+" member "+m, g.Result(), &want, r)
		states[m] = g.Result()
	}
	for m, g := range greetings {
		if _, inResult := op.Results[m]; !inResult {
			r.check(g.Excluded(), "%s: member %s is not in the result but its greeting is %v", where, m, g.State())
			delete(states, m)
		}
	}
	return ok
}

func classString(c greeting.Class) *string {
	if c == greeting.ClassNone {
		return nil
	}
	s := fmt.Sprint(int(c))
	return &s
}

func deref(s *string) string {
	if s == nil {
		return "none"
	}
	return *s
}

func checkState(where string, s *greeting.State, want *FlowResult, r *Report) {
	eph := s.OwnEphemeralKey()
	seed, pub := eph.Seed(), eph.Public()
	r.equal(where+" members", s.Members, want.Members)
	r.equal(where+" sid", hex.EncodeToString(s.SID[:]), want.SessionID)
	r.equal(where+" group key", hex.EncodeToString(s.GroupKey[:]), want.GroupKey)
	r.equal(where+" ephemeral seed", hex.EncodeToString(seed[:]), want.EphemeralSeed)
	r.equal(where+" ephemeral public key", hex.EncodeToString(pub[:]), want.EphemeralPub)
	r.equal(where+" nonce", hexes([][32]byte{s.OwnNonce()})[0], want.Nonce)
	r.equal(where+" ephemeral keys", hexes(s.EphemeralKeys), want.EphemeralPubKeys)
	r.equal(where+" nonces", hexes(s.Nonces), want.Nonces)
	r.equal(where+" contributions", hexes(s.UnsafeContributions()), want.PrivKeyList)
	r.equal(where+" intermediate keys", hexes(s.IntKeys), want.IntKeys)
	r.equal(where+" sidkey hint", fmt.Sprintf("%02x", s.SidKeyHint()), want.SidkeyHint)
	r.equal(where+" contribution count", s.ContributionCount(), len(want.PrivKeyList))
}
