package greeter_test

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/greeter"
	"github.com/mpenc/mpenc/internal/testvectors"
	"github.com/mpenc/mpenc/internal/wire"
)

func staticKeys(t *testing.T, f *testvectors.Flow) (map[string]*crypto.SigningKey, greeter.Directory) {
	keys := map[string]*crypto.SigningKey{}
	for id, k := range f.StaticKeys {
		sk := crypto.NewSigningKey(testvectors.Hex32(t, k.Seed))
		if hex.EncodeToString(sk.Public().Bytes()) != k.Pub {
			t.Fatalf("static key of %s does not match its public key", id)
		}
		keys[id] = sk
	}
	dir := greeter.DirectoryFunc(func(m string) (crypto.PublicKey, error) {
		k, ok := keys[m]
		if !ok {
			return crypto.PublicKey{}, fmt.Errorf("no identity key for %q", m)
		}
		return k.Public(), nil
	})
	return keys, dir
}

func hexes[T ~[32]byte](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = hex.EncodeToString(x[:])
	}
	return out
}

func classString(c greeter.Class) *string {
	if c == greeter.ClassNone {
		return nil
	}
	s := fmt.Sprint(int(c))
	return &s
}

// TestGreeterFlowVector replays derived_greeter_flow.json: four chained
// operations among five members, the reference's random draws injected in
// order. Every packet must come out byte for byte, every member must
// classify every packet as the reference did, packet ids and chain hashes
// must match, and every member's resulting state must equal the recorded
// one.
func TestGreeterFlowVector(t *testing.T) {
	f := testvectors.LoadFlow(t, "derived_greeter_flow.json")
	keys, dir := staticKeys(t, f)
	states := map[string]*greeter.State{}
	for _, op := range f.Operations {
		t.Run(op.Label, func(t *testing.T) {
			rnd := testvectors.NewDrawReader(t, op.RNGDraws)
			greeters := map[string]*greeter.Greeter{}
			for id, k := range keys {
				greeters[id] = &greeter.Greeter{Self: id, Identity: k, Directory: dir, Rand: rnd}
			}
			meta := &wire.Metadata{PrevPF: testvectors.Hex32(t, op.Metadata.PrevPF), ChainHash: testvectors.Hex32(t, op.Metadata.PrevCh)}
			for _, pm := range op.Metadata.Parents {
				meta.LatestPM = append(meta.LatestPM, wire.MessageID(testvectors.Hex(t, pm)))
			}
			prop, err := greeters[op.Initiator].Propose(states[op.Initiator], op.NextMembers, meta)
			if err != nil {
				t.Fatalf("propose: %v", err)
			}
			// The room: packets in server order, each delivered to every
			// channel member in turn; answers join the queue as they are made.
			queue := []struct{ sender, wire string }{{op.Initiator, prop.Wire}}
			greetings := map[string]*greeter.Greeting{}
			chain := testvectors.Hex32(t, op.Metadata.PrevCh)
			members := slices.Sorted(slices.Values(op.ChannelMembers))
			for k := 0; k < len(queue); k++ {
				if k >= len(op.Packets) {
					t.Fatalf("more packets than recorded: %d", len(queue))
				}
				want := op.Packets[k]
				if queue[k].wire != want.Wire || queue[k].sender != want.Sender {
					t.Fatalf("packet %d (%s from %s): differs from the vector\n got %s\nwant %s", k, want.GreetTypeName, want.Sender, queue[k].wire, want.Wire)
				}
				pid := wire.PacketID(want.Wire, want.Sender, op.ChannelMembers)
				if hex.EncodeToString(pid[:]) != want.PacketID {
					t.Errorf("packet %d: id %x, want %s", k, pid, want.PacketID)
				}
				var class greeter.Class
				for _, m := range members {
					p, err := wire.DecodeWire(want.Wire)
					if err != nil {
						t.Fatalf("packet %d: %v", k, err)
					}
					gp := p.(*wire.GreetPacket)
					c := greeter.Classify(gp, greetings[m])
					if got, exp := classString(c), want.SummaryByMember[m]; (got == nil) != (exp == nil) || (got != nil && *got != *exp) {
						t.Errorf("packet %d at %s: class %v, want %v", k, m, c, deref(exp))
					}
					if _, ok := want.SummaryByMember[m]; ok && c != greeter.ClassNone {
						class = c
					}
					var out string
					switch {
					case c == greeter.ClassInitial || c == greeter.ClassBoth:
						var own *greeter.Proposal
						if m == op.Initiator {
							own = prop
						}
						greetings[m], out, err = greeters[m].Accept(states[m], gp, own)
					case greetings[m] != nil:
						out, err = greetings[m].Receive(gp)
					}
					if errors.Is(err, greeter.ErrNotForThisOperation) && greetings[m].Excluded() {
						err = nil // an excluded member ignores the rest of the operation
					}
					if err != nil {
						t.Fatalf("packet %d at %s: %v", k, m, err)
					}
					if out != "" {
						queue = append(queue, struct{ sender, wire string }{m, out})
					}
				}
				if class != greeter.ClassNone {
					chain = wire.ChainHash(chain[:], pid, fmt.Sprint(int(class)))
					if hex.EncodeToString(chain[:]) != want.ChainHashAfter {
						t.Errorf("packet %d: chain hash %x, want %s", k, chain, want.ChainHashAfter)
					}
				} else if want.ChainHashAfter != "" {
					t.Errorf("packet %d: no chain entry, the vector has one", k)
				}
			}
			if len(queue) != len(op.Packets) {
				t.Fatalf("%d packets, want %d", len(queue), len(op.Packets))
			}
			if rnd.Remaining() != 0 {
				t.Errorf("%d random draws left unused", rnd.Remaining())
			}
			for m, want := range op.Results {
				g := greetings[m]
				if g == nil || g.Result() == nil {
					t.Fatalf("member %s: no result (state %v, err %v)", m, g.State(), g.Err())
				}
				if g.State().String() != want.OpState {
					t.Errorf("member %s: state %v, want %s", m, g.State(), want.OpState)
				}
				checkState(t, m, g.Result(), want)
				states[m] = g.Result()
			}
			for _, m := range members {
				if _, ok := op.Results[m]; ok {
					continue
				}
				if g := greetings[m]; g != nil && !g.Excluded() {
					t.Errorf("member %s is not in the result but its greeting is %v", m, g.State())
				}
				delete(states, m)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "none"
	}
	return *s
}

func checkState(t *testing.T, m string, s *greeter.State, want testvectors.FlowResult) {
	t.Helper()
	eph := s.OwnEphemeralKey()
	seed, pub := eph.Seed(), eph.Public()
	checks := []struct {
		name      string
		got, want any
	}{
		{"members", s.Members, want.Members},
		{"sid", hex.EncodeToString(s.SID[:]), want.SessionID},
		{"group key", hex.EncodeToString(s.GroupKey[:]), want.GroupKey},
		{"ephemeral seed", hex.EncodeToString(seed[:]), want.EphemeralSeed},
		{"ephemeral public", hex.EncodeToString(pub[:]), want.EphemeralPub},
		{"nonce", hexes([][32]byte{s.OwnNonce()})[0], want.Nonce},
		{"ephemeral keys", hexes(s.EphemeralKeys), want.EphemeralPubKeys},
		{"nonces", hexes(s.Nonces), want.Nonces},
		{"contributions", hexes(s.UnsafeContributions()), want.PrivKeyList},
		{"intermediate keys", hexes(s.IntKeys), want.IntKeys},
		{"sidkey hint", fmt.Sprintf("%02x", s.SidKeyHint()), want.SidkeyHint},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("member %s %s:\n got %v\nwant %v", m, c.name, c.got, c.want)
		}
	}
	if s.ContributionCount() != len(want.PrivKeyList) {
		t.Errorf("member %s: ContributionCount %d", m, s.ContributionCount())
	}
}
