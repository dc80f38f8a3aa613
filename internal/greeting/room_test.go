package greeting_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/greeter"
	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/internal/wire"
)

// room drives the greeters of several members through operations the way a
// server-ordered channel would: every packet, our own echoes included, goes
// to every member present, in one order. It plays the part of ServerOrder
// as far as the greeter needs: the first initial packet creates the
// Greeting, the final packet ends the operation.
type room struct {
	tb       testing.TB
	rand     io.Reader
	keys     map[string]*crypto.SigningKey
	dir      greeter.DirectoryFunc
	greeters map[string]*greeting.Greeter
	states   map[string]*greeting.State
	// tamper, when set, may replace packet k (sent by sender) before the
	// room delivers it to everyone; returning "" drops it.
	tamper func(k int, sender, wire string) string
	// inject, when set, returns extra packets the room delivers right after
	// packet k: (sender, wire) pairs.
	inject func(k int) [][2]string
	// packets counts the packets of the last operation.
	packets int
}

func memberID(i int) string { return fmt.Sprintf("member%02d@example.org/dev", i) }

func newRoom(tb testing.TB, seed uint64, ids ...string) *room {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	r := &room{
		tb:       tb,
		rand:     rand.NewChaCha8(s),
		keys:     map[string]*crypto.SigningKey{},
		greeters: map[string]*greeting.Greeter{},
		states:   map[string]*greeting.State{},
	}
	r.dir = func(m string) (crypto.PublicKey, error) {
		k, ok := r.keys[m]
		if !ok {
			return crypto.PublicKey{}, fmt.Errorf("no identity key for %q", m)
		}
		return k.Public(), nil
	}
	for _, id := range ids {
		r.addMember(id)
	}
	return r
}

func (r *room) addMember(id string) {
	k, err := crypto.GenerateSigningKey(r.rand)
	if err != nil {
		r.tb.Fatal(err)
	}
	r.keys[id] = k
	r.greeters[id] = &greeting.Greeter{Self: id, Identity: k, Directory: r.dir, Rand: r.rand}
}

// outcome is what each member ended with.
type outcome struct {
	greetings map[string]*greeting.Greeting
	failed    map[string]error // members whose Greeting failed, and why
}

// run proposes next from initiator and delivers every packet to channel
// (all members, sorted, when nil) until the room is quiet. It does not
// commit the results: call commit.
func (r *room) run(initiator string, next, channel []string) (*outcome, error) {
	r.tb.Helper()
	if channel == nil {
		channel = slices.Sorted(func(yield func(string) bool) {
			for id := range r.greeters {
				if !yield(id) {
					return
				}
			}
		})
	}
	var meta wire.Metadata
	meta.PrevPF[0] = 1
	prop, err := r.greeters[initiator].Propose(r.states[initiator], next, &meta)
	if err != nil {
		return nil, err
	}
	out := &outcome{greetings: map[string]*greeting.Greeting{}, failed: map[string]error{}}
	queue := [][2]string{{initiator, prop.Wire}}
	for k := 0; k < len(queue); k++ {
		sender, w := queue[k][0], queue[k][1]
		if r.tamper != nil {
			if w = r.tamper(k, sender, w); w == "" {
				continue
			}
		}
		deliveries := [][2]string{{sender, w}}
		if r.inject != nil {
			deliveries = append(deliveries, r.inject(k)...)
		}
		for _, d := range deliveries {
			for _, m := range channel {
				// Every member decodes the packet itself, as it would in a
				// real room, and drops what does not decode.
				p, derr := wire.DecodeWire(d[1])
				if derr != nil {
					continue
				}
				gp, ok := p.(*wire.GreetPacket)
				if !ok {
					continue
				}
				g := out.greetings[m]
				c := greeting.Classify(gp, g)
				var answer string
				var err error
				switch {
				case (c == greeting.ClassInitial || c == greeting.ClassBoth) && g == nil:
					var own *greeting.Proposal
					if m == initiator {
						own = prop
					}
					out.greetings[m], answer, err = r.greeters[m].Accept(r.states[m], gp, own)
				case g != nil:
					answer, err = g.Receive(gp)
				}
				if err != nil && !errors.Is(err, greeting.ErrNotForThisOperation) && !errors.Is(err, greeting.ErrDuplicate) {
					out.failed[m] = err
				}
				if answer != "" {
					queue = append(queue, [2]string{m, answer})
				}
			}
		}
	}
	r.packets = len(queue)
	return out, nil
}

// commit stores the results of a completed operation.
func (r *room) commit(o *outcome) {
	for m, g := range o.greetings {
		switch {
		case g.Result() != nil:
			r.states[m] = g.Result()
		case g.Excluded():
			delete(r.states, m)
		}
	}
}

// mustOp runs an operation that must succeed at every member of next, and
// checks that they agree.
func (r *room) mustOp(initiator string, next []string) {
	r.tb.Helper()
	prevSID := [32]byte{}
	if s := r.states[initiator]; s != nil {
		prevSID = s.SID
	}
	o, err := r.run(initiator, next, nil)
	if err != nil {
		r.tb.Fatalf("propose: %v", err)
	}
	if len(o.failed) > 0 {
		r.tb.Fatalf("operation failed: %v", o.failed)
	}
	var ref *greeting.State
	for _, m := range next {
		g := o.greetings[m]
		if g == nil || g.Result() == nil {
			r.tb.Fatalf("%s has no result (greeting %v)", m, g)
		}
		s := g.Result()
		if ref == nil {
			ref = s
			continue
		}
		if s.SID != ref.SID || s.GroupKey != ref.GroupKey || !slices.Equal(s.Members, ref.Members) ||
			!slices.Equal(s.IntKeys, ref.IntKeys) || !slices.Equal(s.EphemeralKeys, ref.EphemeralKeys) {
			r.tb.Fatalf("%s disagrees with %s", m, ref.Self)
		}
	}
	if !sameSet(ref.Members, next) {
		r.tb.Fatalf("members %v, want %v", ref.Members, next)
	}
	op := o.greetings[initiator].Op()
	if op != wire.OpRefresh && ref.SID == prevSID {
		r.tb.Fatalf("%v kept the session id", op)
	}
	for m, g := range o.greetings {
		if !slices.Contains(next, m) && !g.Excluded() {
			r.tb.Fatalf("%s is not in the result but not excluded (%v)", m, g.State())
		}
	}
	r.commit(o)
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = memberID(i)
	}
	return out
}

// TestOperationsAllSizes runs every operation for n = 2 … 20 members.
func TestOperationsAllSizes(t *testing.T) {
	for n := 2; n <= 20; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			all := ids(n + 3)
			r := newRoom(t, uint64(n), all...)
			members := all[:n]
			// Start: 2n−1 packets.
			r.mustOp(members[0], members)
			if r.packets != 2*n-1 {
				t.Errorf("start: %d packets, want %d", r.packets, 2*n-1)
			}
			gk := r.states[members[0]].GroupKey
			// Refresh by the last member: one packet, same sid, new key.
			sid := r.states[members[0]].SID
			r.mustOp(members[n-1], members)
			if r.packets != 1 || r.states[members[0]].SID != sid || r.states[members[0]].GroupKey == gk {
				t.Errorf("refresh: %d packets, sid kept %v, key changed %v", r.packets,
					r.states[members[0]].SID == sid, r.states[members[0]].GroupKey != gk)
			}
			// Include one, by a member in the middle: upflow of 1, then a
			// downflow and n confirms.
			members = append(slices.Clone(members), all[n])
			r.mustOp(members[n/2], members)
			if r.packets != n+2 {
				t.Errorf("include one: %d packets, want %d", r.packets, n+2)
			}
			// Include several.
			members = append(members, all[n+1], all[n+2])
			r.mustOp(members[0], members)
			// Exclude one (the first newcomer), by the last member.
			members = slices.DeleteFunc(slices.Clone(members), func(m string) bool { return m == all[n] })
			r.mustOp(members[len(members)-1], members)
			if want := len(members); r.packets != want {
				t.Errorf("exclude one: %d packets, want %d", r.packets, want)
			}
			// Exclude several: every other member but the initiator.
			var keep []string
			for i, m := range members {
				if i%2 == 0 || m == members[1] {
					keep = append(keep, m)
				}
			}
			if len(keep) < len(members) {
				r.mustOp(members[1], keep)
				members = keep
			}
			// Refresh again, then exclude down to one member: one packet.
			r.mustOp(members[0], members)
			r.mustOp(members[0], members[:1])
			if r.packets != 1 {
				t.Errorf("exclude to one: %d packets", r.packets)
			}
			s := r.states[members[0]]
			if len(s.Members) != 1 || s.ContributionCount() < 3 {
				t.Errorf("solo result: %d members, %d contributions", len(s.Members), s.ContributionCount())
			}
		})
	}
}

// The contribution list grows by one per operation a member initiates.
func TestContributionCountGrows(t *testing.T) {
	r := newRoom(t, 1, ids(3)...)
	m := ids(3)
	r.mustOp(m[0], m)
	for i := 1; i <= 5; i++ {
		r.mustOp(m[0], m)
		if got := r.states[m[0]].ContributionCount(); got != i+1 {
			t.Fatalf("after %d refreshes: %d contributions", i, got)
		}
		if got := r.states[m[1]].ContributionCount(); got != 1 {
			t.Fatalf("a member that initiated nothing holds %d contributions", got)
		}
	}
}

func TestProposeRefusals(t *testing.T) {
	r := newRoom(t, 2, ids(4)...)
	m := ids(4)
	r.mustOp(m[0], m[:3])
	gr := r.greeters[m[0]]
	meta := &wire.Metadata{}
	for name, next := range map[string][]string{
		"include and exclude": {m[0], m[1], m[3]},
		"exclude ourselves":   {m[1], m[2]},
		"duplicate member":    {m[0], m[1], m[2], m[2]},
	} {
		if _, err := gr.Propose(r.states[m[0]], next, meta); !errors.Is(err, greeting.ErrInvalidProposal) {
			t.Errorf("%s: %v, want ErrInvalidProposal", name, err)
		}
	}
	if _, err := gr.Propose(nil, []string{m[0]}, meta); !errors.Is(err, greeting.ErrInvalidProposal) {
		t.Errorf("solo start: %v", err)
	}
	if _, err := gr.Propose(r.states[m[0]], m[:3], nil); !errors.Is(err, greeting.ErrInvalidProposal) {
		t.Errorf("no metadata: %v", err)
	}
}
