package greeting_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/greeter"
	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/internal/wire"
)

// snapshot renders everything a State holds, secrets included, so that a
// test can prove a failed operation left it untouched.
func snapshot(s *greeting.State) string {
	if s == nil {
		return "<nil>"
	}
	seed := s.OwnEphemeralKey().Seed()
	return fmt.Sprintf("%v|%x|%x|%x|%x|%x|%x|%x", s.Members, s.SID, s.GroupKey, s.Nonces, s.EphemeralKeys,
		s.IntKeys, s.UnsafeContributions(), seed)
}

func snapshots(r *room) map[string]string {
	out := map[string]string{}
	for m, s := range r.states {
		out[m] = snapshot(s)
	}
	return out
}

// edit decodes a wire string, applies f to the packet and re-encodes it with
// the original signature (what a tampering server can do).
func edit(tb testing.TB, w string, f func(p *wire.GreetPacket)) string {
	p, err := wire.DecodeWire(w)
	if err != nil {
		tb.Fatal(err)
	}
	gp := p.(*wire.GreetPacket)
	f(gp)
	raw, err := gp.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return wire.Armour(raw)
}

func greetType(tb testing.TB, w string) wire.GreetType {
	p, err := wire.DecodeWire(w)
	if err != nil {
		return 0
	}
	return p.(*wire.GreetPacket).Type
}

// attackSetup is a session {0,1,2,3} and the next operation: include 4,
// proposed by member 1.
func attackSetup(t *testing.T) (*room, []string, []string) {
	all := ids(5)
	r := newRoom(t, 7, all...)
	r.mustOp(all[0], all[:4])
	return r, all[:4], all
}

// expectFailure runs the operation and checks that it failed at failing
// (with a reason containing reason), that nobody got a result, and that
// every previous state is untouched.
func expectFailure(t *testing.T, r *room, initiator string, next []string, failing []string, reason string) {
	t.Helper()
	before := snapshots(r)
	o, err := r.run(initiator, next, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range failing {
		if o.failed[m] == nil {
			t.Errorf("%s did not fail", m)
		} else if e := o.failed[m].Error(); !strings.Contains(e, reason) && !strings.Contains(e, "in our name") {
			// The sender of an altered packet sees its own packet come back
			// changed, and says so instead.
			t.Errorf("%s failed with %q, want a reason containing %q", m, o.failed[m], reason)
		}
	}
	for m, g := range o.greetings {
		if g.Result() != nil {
			t.Errorf("%s completed the operation", m)
		}
	}
	for m, g := range o.greetings {
		if g.Result() == nil && r.states[m] != nil && snapshot(r.states[m]) != before[m] {
			t.Errorf("%s: previous state changed", m)
		}
	}
	if after := snapshots(r); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("previous states changed:\n%v\n%v", before, after)
	}
}

func isDown(t wire.GreetType) bool {
	return t == wire.GreetIncludeAuxParticipantDown || t == wire.GreetInitParticipantDown
}

func TestTamperedFieldsFailTheOperation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target func(wire.GreetType) bool
		f      func(p *wire.GreetPacket)
		reason string
	}{
		{"INT_KEY", isDown, func(p *wire.GreetPacket) { p.IntKeys[0][3] ^= 1 }, "signature"},
		{"NONCE", isDown, func(p *wire.GreetPacket) { p.Nonces[1][0] ^= 1 }, ""},
		// Another valid key (one that is not even a point never gets past
		// the decoder: wire's strict tests).
		{"PUB_KEY", isDown, func(p *wire.GreetPacket) { p.PubKeys[2] = otherKey() }, ""},
		{"SESSION_SIGNATURE", isDown, func(p *wire.GreetPacket) { p.SessionSignature[5] ^= 1 }, "signature"},
		{"GREET_TYPE", isDown, func(p *wire.GreetPacket) { p.Type = wire.GreetIncludeAuxParticipantConfirmDown }, ""},
		{"confirm SESSION_SIGNATURE", func(t wire.GreetType) bool { return t == wire.GreetIncludeAuxParticipantConfirmDown },
			func(p *wire.GreetPacket) { p.SessionSignature[0] ^= 1 }, "signature"},
		{"confirm MEMBER order", func(t wire.GreetType) bool { return t == wire.GreetIncludeAuxParticipantConfirmDown },
			func(p *wire.GreetPacket) { p.Members[0], p.Members[1] = p.Members[1], p.Members[0] }, "altered or forged"},
		{"confirm MEMBER altered", func(t wire.GreetType) bool { return t == wire.GreetIncludeAuxParticipantConfirmDown },
			func(p *wire.GreetPacket) { p.Members[4] = "mallory@example.org/x" }, "altered or forged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, m, all := attackSetup(t)
			done := false
			r.tamper = func(k int, sender, w string) string {
				if !done && tc.target(greetType(t, w)) {
					done = true
					return edit(t, w, tc.f)
				}
				return w
			}
			// Every member that sees the altered packet fails; the sender of
			// a confirm sees its own packet altered and fails as well.
			expectFailure(t, r, m[1], all, all, tc.reason)
			if !done {
				t.Fatal("nothing was tampered with")
			}
		})
	}
}

// An insider that re-signs the downflow with another member's ephemeral key
// claimed as its own is refused everywhere.
func TestDuplicateEphemeralKeyRefused(t *testing.T) {
	all := ids(3)
	r := newRoom(t, 11, all...)
	// Member 2, last in the upflow, builds the downflow; here it lists
	// member 0's ephemeral key for member 1 as well. Member 0 sees two
	// members with its key; member 1 sees its own key misstated.
	r.tamper = func(k int, sender, w string) string {
		if greetType(t, w) != wire.GreetInitParticipantDown {
			return w
		}
		p, _ := wire.DecodeWire(w)
		gp := p.(*wire.GreetPacket)
		gp.PubKeys[1] = gp.PubKeys[0]
		raw, _ := gp.Marshal()
		return wire.Armour(raw)
	}
	expectFailure(t, r, all[0], all, all[:1], "same ephemeral key")
}

// A reordered member list on an include's initial packet: the existing
// members see it does not start from their session.
func TestReorderedInitialMembers(t *testing.T) {
	r, m, all := attackSetup(t)
	r.tamper = func(k int, sender, w string) string {
		if k == 0 {
			return edit(t, w, func(p *wire.GreetPacket) { p.Members[0], p.Members[2] = p.Members[2], p.Members[0] })
		}
		return w
	}
	// The initiator's own echo no longer matches its proposal; the other
	// existing members refuse the member order; the newcomer sees a bad
	// signature.
	expectFailure(t, r, m[1], all, all, "")
}

// An altered downflow from a newcomer, whose key the existing members do
// not know yet: they cannot tell it from a packet of another operation and
// ignore it, so the operation stalls (the session's timeout ends it); it
// never completes and no state changes.
func TestAlteredPacketFromUnknownKeyStalls(t *testing.T) {
	r, m, all := attackSetup(t)
	r.tamper = func(k int, sender, w string) string {
		if isDown(greetType(t, w)) {
			return edit(t, w, func(p *wire.GreetPacket) { p.Members[0], p.Members[1] = p.Members[1], p.Members[0] })
		}
		return w
	}
	expectFailure(t, r, m[1], all, nil, "")
}

func TestWrongIdentityKey(t *testing.T) {
	r, m, all := attackSetup(t)
	impostor, _ := crypto.GenerateSigningKey(nil)
	real := r.keys[all[4]]
	r.keys[all[4]] = impostor // everyone's directory now has the wrong key for 4
	expectFailure(t, r, m[1], all, m, "bad session signature from \""+all[4])
	r.keys[all[4]] = real
}

// An identity key the directory does not give (unknown, changed and not
// accepted, distrusted): the initiator does not propose; any other member
// refuses at the initial packet, before contributing or confirming, so the
// operation completes for nobody (the session aborts it) instead of for
// everyone but the refusing member.
func TestUnknownIdentityKey(t *testing.T) {
	r, m, all := attackSetup(t)
	delete(r.keys, all[4])
	if _, err := r.greeters[m[1]].Propose(r.states[m[1]], all, &wire.Metadata{}); !errors.Is(err, greeting.ErrIdentityRefused) {
		t.Fatalf("propose with an unknown key: %v", err)
	}
	r.addMember(all[4])

	// Only m[2] refuses all[4]'s key.
	accepting := r.greeters[m[2]].Directory
	r.greeters[m[2]].Directory = greeter.DirectoryFunc(func(id string) (crypto.PublicKey, error) {
		if id == all[4] {
			return crypto.PublicKey{}, errors.New("key changed, not accepted by the user")
		}
		return accepting.IdentityKey(id)
	})
	var senders []string
	r.tamper = func(k int, sender, w string) string { senders = append(senders, sender); return w }
	expectFailure(t, r, m[1], all, []string{m[2]}, "no accepted identity key for \""+all[4])
	if slices.Contains(senders, m[2]) {
		t.Errorf("the refusing member sent packets: %v", senders)
	}
}

// A key the directory stops giving during the operation (the user, or a
// trust message, distrusted it after the initial packet): the member
// whose directory changed fails with ErrIdentityRefused, its own decision
// (the session shows no security warning for it), not a fault of the
// member whose key it was.
func TestIdentityRefusedMidOperation(t *testing.T) {
	r, m, all := attackSetup(t)
	r.addMember(all[4])
	accepting := r.greeters[m[2]].Directory
	refuse := false
	r.greeters[m[2]].Directory = greeter.DirectoryFunc(func(id string) (crypto.PublicKey, error) {
		if id == all[4] && refuse {
			return crypto.PublicKey{}, errors.New("distrusted by the user")
		}
		return accepting.IdentityKey(id)
	})
	r.tamper = func(k int, sender, w string) string {
		if isDown(greetType(t, w)) {
			refuse = true
		}
		return w
	}
	before := snapshots(r)
	o, err := r.run(m[1], all, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(o.failed[m[2]], greeting.ErrIdentityRefused) {
		t.Fatalf("%s failed with %v, want ErrIdentityRefused", m[2], o.failed[m[2]])
	}
	if fmt.Sprint(snapshots(r)) != fmt.Sprint(before) {
		t.Error("previous states changed")
	}
}

// A confirm of an earlier operation with the same members and type, replayed
// during a later one, does not verify against the new session.
func TestReplayFromEarlierOperation(t *testing.T) {
	all := ids(4)
	r := newRoom(t, 9, all...)
	r.mustOp(all[0], all)
	// Exclude 3 and record its packets.
	var recorded []string
	r.tamper = func(k int, sender, w string) string { recorded = append(recorded, w); return w }
	r.mustOp(all[1], all[:3])
	r.tamper = nil
	r.mustOp(all[0], all) // include 3 back
	// Exclude 3 again, with the old confirms replayed after the new pI.
	r.inject = func(k int) [][2]string {
		if k != 0 {
			return nil
		}
		var out [][2]string
		for _, w := range recorded[1:] {
			out = append(out, [2]string{"replayer", w})
		}
		return out
	}
	expectFailure(t, r, all[1], all[:3], all[:3], "disagrees on nonces")
}

// Packets of an earlier operation with another member set are recognised as
// genuine but foreign and ignored: the running operation completes.
func TestForeignOperationPacketsIgnored(t *testing.T) {
	all := ids(5)
	r := newRoom(t, 10, all...)
	var start []string
	r.tamper = func(k int, sender, w string) string { start = append(start, w); return w }
	r.mustOp(all[0], all[:4])
	r.tamper = nil
	r.inject = func(k int) [][2]string {
		var out [][2]string
		for _, w := range start {
			out = append(out, [2]string{"replayer", w})
		}
		return out
	}
	r.mustOp(all[2], all)
}

// A packet from a non-member is ignored; the operation completes.
func TestNonMemberPacketIgnored(t *testing.T) {
	r, m, all := attackSetup(t)
	outsiderKey, _ := crypto.GenerateSigningKey(nil)
	r.inject = func(k int) [][2]string {
		p := &wire.GreetPacket{Type: wire.GreetIncludeAuxParticipantConfirmDown, Source: "outsider@evil.example/x",
			Members: all, Nonces: make([][32]byte, 5), PubKeys: make([]crypto.PublicKey, 5), SessionSignature: &crypto.Signature{}}
		raw, err := p.Sign(outsiderKey)
		if err != nil {
			t.Fatal(err)
		}
		return [][2]string{{"outsider@evil.example/x", wire.Armour(raw)}}
	}
	r.mustOp(m[1], all)
}

// A forged packet in a member's name, signed with another key, fails the
// operation at everyone who knows that member's ephemeral key.
func TestForgedPacketInMembersName(t *testing.T) {
	r, m, all := attackSetup(t)
	forger, _ := crypto.GenerateSigningKey(nil)
	r.inject = func(k int) [][2]string {
		if k != 0 {
			return nil
		}
		p := &wire.GreetPacket{Type: wire.GreetIncludeAuxParticipantConfirmDown, Source: m[2], Members: all[:3]}
		raw, _ := p.Sign(forger)
		return [][2]string{{m[2], wire.Armour(raw)}}
	}
	expectFailure(t, r, m[1], all, []string{m[0], m[1], m[3]}, "altered or forged")
}

// Every packet delivered twice: the duplicates are ignored and the result is
// the one without duplicates.
func TestDuplicatesIgnored(t *testing.T) {
	r, m, all := attackSetup(t)
	var seen []string
	r.tamper = func(k int, sender, w string) string { seen = append(seen, w); return w }
	r.inject = func(k int) [][2]string { return [][2]string{{"dup", seen[len(seen)-1]}} }
	r.mustOp(m[1], all)
	r.inject = func(k int) [][2]string { return [][2]string{{"dup", seen[len(seen)-1]}, {"dup", seen[0]}} }
	r.mustOp(m[0], all[:3])
}

// Truncating the downflow at every byte: the packet is either dropped (it
// does not decode) or fails verification; no member completes and no state
// changes.
func TestTruncationAtEveryByte(t *testing.T) {
	r, m, all := attackSetup(t)
	before := snapshots(r)
	// Find the downflow's length with a clean run on a copy of the room.
	var down string
	probe, _, _ := attackSetup(t)
	probe.tamper = func(k int, sender, w string) string {
		if isDown(greetType(t, w)) {
			down = w
		}
		return w
	}
	if _, err := probe.run(m[1], all, nil); err != nil || down == "" {
		t.Fatal("no downflow")
	}
	raw, _ := wire.Dearmour(down)
	for cut := 0; cut < len(raw); cut++ {
		r.tamper = func(k int, sender, w string) string {
			if isDown(greetType(t, w)) {
				b, _ := wire.Dearmour(w)
				return wire.Armour(b[:cut])
			}
			return w
		}
		o, err := r.run(m[1], all, nil)
		if err != nil {
			t.Fatal(err)
		}
		for who, g := range o.greetings {
			if g.Result() != nil {
				t.Fatalf("cut %d: %s completed", cut, who)
			}
		}
	}
	if after := snapshots(r); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("previous states changed")
	}
}

// A failed Greeting stays failed: later packets return the same error.
func TestFailureIsSticky(t *testing.T) {
	r, m, all := attackSetup(t)
	r.tamper = func(k int, sender, w string) string {
		if isDown(greetType(t, w)) {
			return edit(t, w, func(p *wire.GreetPacket) { p.IntKeys[1][0] ^= 1 })
		}
		return w
	}
	o, err := r.run(m[1], all, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := o.greetings[m[0]]
	if g.Err() == nil {
		t.Fatal("no failure")
	}
	p, _ := wire.DecodeWire(edit(t, "?mpENC:"+strings.TrimPrefix(mustWireOf(t, r, m), "?mpENC:"), func(*wire.GreetPacket) {}))
	if _, err := g.Receive(p.(*wire.GreetPacket)); !errors.Is(err, g.Err()) && err != g.Err() {
		t.Errorf("after failure: %v", err)
	}
	g.Abandon()
	if g.Result() != nil || g.Err() == nil {
		t.Error("abandon changed a failed greeting")
	}
}

// mustWireOf builds some valid greeting packet to feed a failed Greeting.
func mustWireOf(t *testing.T, r *room, m []string) string {
	prop, err := r.greeters[m[0]].Propose(r.states[m[0]], m, &wire.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	return prop.Wire
}

// Abandoning a running operation leaves the previous state untouched and
// wipes what the operation created.
func TestAbandonKeepsPreviousState(t *testing.T) {
	r, m, all := attackSetup(t)
	before := snapshots(r)
	r.tamper = func(k int, sender, w string) string {
		if isDown(greetType(t, w)) {
			return "" // the downflow is lost
		}
		return w
	}
	o, err := r.run(m[1], all, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range o.greetings {
		g.Abandon()
		if !errors.Is(g.Err(), greeting.ErrAbandoned) && g.Err() == nil {
			t.Errorf("abandon: %v", g.Err())
		}
	}
	r.commit(o)
	if after := snapshots(r); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("previous states changed")
	}
	// The session can run the next operation from the untouched state.
	r.tamper = nil
	r.mustOp(m[0], slices.Clone(all))
}

// Late packets of a failed attempt to include a newcomer reach the room after
// the initial packet of the next attempt, made after another member was
// excluded (docs/SESSION.md, "Channel rules": the include fails by LOI, the
// dead member is excluded, the newcomer is included again). The newcomer's
// ephemeral key is new with every attempt, so its old packets, its own
// included as it sees them come back, do not verify under the new key: they
// belong to another operation, are ignored, and the new attempt completes.
// (The integration test TestIntegrationSessionLateGreetingPacket is the same
// over XMPP.)
func TestLatePacketsOfFailedInclude(t *testing.T) {
	all := ids(5)
	r := newRoom(t, 12, all...)
	r.mustOp(all[0], all[:4])
	var late []string
	r.tamper = func(k int, sender, w string) string {
		late = append(late, w)
		if greetType(t, w) == wire.GreetIncludeAuxParticipantConfirmDown {
			return "" // the first attempt never completes
		}
		return w
	}
	o, err := r.run(all[1], all, nil)
	if err != nil {
		t.Fatal(err)
	}
	for m, g := range o.greetings {
		if g.Result() != nil {
			t.Fatalf("%s completed the first attempt", m)
		}
		g.Abandon()
	}
	r.tamper = nil
	r.mustOp(all[0], all[:3]) // the dead member goes
	r.inject = func(k int) [][2]string {
		if k != 0 {
			return nil
		}
		var out [][2]string
		for _, w := range late[1:] { // every answer, after the new initial packet
			p, err := wire.DecodeWire(w)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, [2]string{p.(*wire.GreetPacket).Source, w})
		}
		return out
	}
	r.mustOp(all[1], []string{all[0], all[1], all[2], all[4]})
}

// otherKey is a valid Ed25519 public key nobody in the tests holds.
func otherKey() crypto.PublicKey {
	var seed [crypto.SeedSize]byte
	seed[0] = 0xee
	return crypto.NewSigningKey(seed).Public()
}

// After refusing a newcomer (at the initial packet, or once the
// operation ran), the refusing member that later accepts the key
// proposes the inclusion itself (the client's held inclusion), and it
// succeeds for everyone: the refusal left nothing behind, its nonce
// included.
func TestIncludeAfterRefusal(t *testing.T) {
	for _, mid := range []bool{false, true} {
		r, m, all := attackSetup(t)
		r.addMember(all[4])
		accepting := r.greeters[m[2]].Directory
		refuse := !mid
		r.greeters[m[2]].Directory = greeter.DirectoryFunc(func(id string) (crypto.PublicKey, error) {
			if id == all[4] && refuse {
				return crypto.PublicKey{}, errors.New("undecided")
			}
			return accepting.IdentityKey(id)
		})
		if mid {
			r.tamper = func(k int, sender, w string) string {
				if isDown(greetType(t, w)) {
					refuse = true
				}
				return w
			}
		}
		o, err := r.run(m[1], all, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(o.failed[m[2]], greeting.ErrIdentityRefused) {
			t.Fatalf("mid=%v: %s failed with %v, want ErrIdentityRefused", mid, m[2], o.failed[m[2]])
		}
		r.tamper = nil
		refuse = false
		r.greeters[m[2]].Directory = accepting
		r.mustOp(m[2], all)
	}
}
