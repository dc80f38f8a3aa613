package trust_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/trusttest"
	"github.com/mpenc/mpenc/trust"
)

// FuzzParseURI: no input crashes the parser, and whatever it accepts has
// exactly one spelling: URI(ParseURI(s)) == s.
func FuzzParseURI(f *testing.F) {
	f.Add(trust.URI("alice@example.org/phone", trusttest.Key(1)))
	f.Add(trust.URI("ünï@例え.jp/a b?c&d#e%f", trusttest.Key(2)))
	f.Add("mpenc:a%2f@b?ed25519=00")
	f.Fuzz(func(t *testing.T, s string) {
		member, key, err := trust.ParseURI(s)
		if err != nil {
			if !errors.Is(err, trust.ErrInvalid) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if again := trust.URI(member, key); again != s {
			t.Fatalf("accepted %q, which re-encodes as %q", s, again)
		}
		if trust.CheckJID(member) != nil {
			t.Fatal("accepted an invalid JID")
		}
	})
}

// FuzzParseFingerprint: both parsers are total, and what they accept
// formats and parses back to the same fingerprint.
func FuzzParseFingerprint(f *testing.F) {
	fp := trust.FingerprintOf(trusttest.Key(1))
	f.Add(fp.String())
	f.Add(fp.Words())
	f.Add(strings.ToUpper(fp.Words()))
	f.Add("98:41:65:45:49:ca:a8:79:78:e5:51:5a:db:40:7d:6b")
	f.Fuzz(func(t *testing.T, s string) {
		if g, err := trust.ParseFingerprint(s); err == nil {
			if h, err := trust.ParseFingerprint(g.String()); err != nil || h != g {
				t.Fatalf("hex round trip of %q", s)
			}
		} else if !errors.Is(err, trust.ErrInvalid) {
			t.Fatalf("untyped error %v", err)
		}
		if g, err := trust.ParseWords(s); err == nil {
			if h, err := trust.ParseWords(g.Words()); err != nil || h != g {
				t.Fatalf("words round trip of %q", s)
			}
		} else if !errors.Is(err, trust.ErrInvalid) {
			t.Fatalf("untyped error %v", err)
		}
	})
}

// FuzzStore drives a store with a sequence of observations and decisions
// decoded from the input and checks it against a reference model after
// every step: no key is ever replaced or forgotten, observations never
// change a recorded state, a member that announces a key other than the
// one it is known by (known elsewhere or not) is never trusted until the
// user decides about that key afterwards, and the directory answers
// exactly what the policy allows.
func FuzzStore(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 0, 2, 1, 0, 1, 4, 0, 0})
	f.Add([]byte{0x80, 0, 1, 0, 3, 1, 1, 0, 3, 2, 2, 3, 3, 4, 3})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 600 {
			return
		}
		policy := trust.BlindTrustBeforeVerification
		if len(ops) > 0 && ops[0]&0x80 != 0 {
			policy = trust.AuthenticatedOnly
		}
		s := trust.New(new(trust.Memory), trust.Config{Policy: policy, Now: trusttest.NewClock().Now})
		m := newModel(policy)
		members := []string{"a@x/1", "a@x/2", "a@x/3", "b@x/1", "b@x/2", "c@y"}
		for i := 0; i+2 < len(ops); i += 3 {
			op, who, k := ops[i]%6, members[int(ops[i+1])%len(members)], trusttest.Key(ops[i+2]%5+1)
			step := fmt.Sprintf("step %d op %d %s key %d", i/3, op, who, ops[i+2]%5+1)
			switch op {
			case 0, 5:
				var d trust.Decision
				decided := false
				dir := &trust.Directory{Store: s, OnDecision: func(dec trust.Decision) { d, decided = dec, true }}
				err := dir.ObserveKey(who, k)
				if !decided {
					t.Fatalf("%s: %v", step, err)
				}
				m.observe(t, step, who, k, d, err)
			case 1:
				mustDecide(t, step, s.Verify, who, k)
				m.decide(who, k, trust.Authenticated)
			case 2:
				mustDecide(t, step, s.Trust, who, k)
				m.decide(who, k, trust.BlindlyTrusted)
			case 3:
				mustDecide(t, step, s.Distrust, who, k)
				m.decide(who, k, trust.Distrusted)
			case 4:
			}
			m.check(t, step, s, members)
		}
	})
}

func mustDecide(t *testing.T, step string, fn func(string, crypto.PublicKey) (trust.Record, error), who string, k crypto.PublicKey) {
	t.Helper()
	if _, err := fn(who, k); err != nil {
		t.Fatalf("%s: %v", step, err)
	}
}

type modelKey struct {
	jid string
	key crypto.PublicKey
}

type model struct {
	policy   trust.Policy
	state    map[modelKey]trust.State
	decided  map[modelKey]int            // step of the last decision about the key
	bound    map[string]crypto.PublicKey // the key each member announced last
	accepted map[string]crypto.PublicKey // the key each member is known by
	since    map[string]int              // step at which it started announcing bound
	step     int
}

func newModel(p trust.Policy) *model {
	return &model{policy: p, state: map[modelKey]trust.State{}, decided: map[modelKey]int{}, bound: map[string]crypto.PublicKey{},
		accepted: map[string]crypto.PublicKey{}, since: map[string]int{}}
}

// changed reports whether member announces a key other than the one it
// is known by, with no decision about that key since.
func (m *model) changed(member string) bool {
	k := m.bound[member]
	if k == m.accepted[member] {
		return false
	}
	d, ok := m.decided[modelKey{trust.Bare(member), k}]
	return !ok || d <= m.since[member]
}

func (m *model) allows(st trust.State, jidAuth bool) bool {
	return st == trust.Authenticated ||
		st == trust.BlindlyTrusted && m.policy == trust.BlindTrustBeforeVerification && !jidAuth
}

func (m *model) jidAuth(jid string) bool {
	for mk, st := range m.state {
		if mk.jid == jid && st == trust.Authenticated {
			return true
		}
	}
	return false
}

func (m *model) jidKnown(jid string) bool {
	for mk := range m.state {
		if mk.jid == jid {
			return true
		}
	}
	return false
}

func (m *model) observe(t *testing.T, step, member string, k crypto.PublicKey, d trust.Decision, err error) {
	m.step++
	jid := trust.Bare(member)
	mk := modelKey{jid, k}
	st, known := m.state[mk]
	prev, hadBinding := m.bound[member]
	if !hadBinding || prev != k {
		m.since[member] = m.step
	}
	if !hadBinding {
		m.accepted[member] = k
	}
	m.bound[member] = k
	var want trust.Kind
	switch {
	case hadBinding && m.accepted[member] != k && prev == k && known && !m.changed(member):
		// A change the user decided about since: settled.
		m.accepted[member] = k
		want = trust.KeyKnown
	case hadBinding && m.accepted[member] != k:
		want = trust.KeyChanged
		if !known {
			st = trust.Undecided
		}
		if len(d.Previous) == 0 || d.Previous[0].Key != m.accepted[member] {
			t.Fatalf("%s: changed without the key the member is known by: %+v", step, d)
		}
	case known:
		want = trust.KeyKnown
	case !m.jidKnown(jid):
		want, st = trust.KeyNew, trust.Undecided
		if m.policy == trust.BlindTrustBeforeVerification {
			st = trust.BlindlyTrusted
		}
	default:
		want, st = trust.KeyNewDevice, trust.Undecided
		if m.policy == trust.BlindTrustBeforeVerification && !m.jidAuth(jid) {
			st = trust.BlindlyTrusted
		}
	}
	if st == trust.Distrusted {
		want = trust.KeyDistrusted
	}
	m.state[mk] = st
	trusted := m.allows(st, m.jidAuth(jid)) && !m.changed(member)
	if d.Kind != want || d.State != st || d.Trusted != trusted {
		t.Fatalf("%s: decision %v, model wants %v %v trusted=%v", step, d, want, st, trusted)
	}
	if d.Warning() != (want == trust.KeyChanged || want == trust.KeyDistrusted) || (err != nil) != d.Warning() || (d.Err() != nil) != d.Warning() {
		t.Fatalf("%s: warning/err mismatch for %v", step, d)
	}
}

func (m *model) decide(who string, k crypto.PublicKey, st trust.State) {
	m.step++
	mk := modelKey{trust.Bare(who), k}
	m.state[mk] = st
	m.decided[mk] = m.step
}

func (m *model) check(t *testing.T, step string, s *trust.Store, members []string) {
	all, err := s.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(m.state) {
		t.Fatalf("%s: %d records, model has %d", step, len(all), len(m.state))
	}
	for _, r := range all {
		st, ok := m.state[modelKey{r.JID, r.Key}]
		if !ok || st != r.State || r.Trusted != m.allows(st, m.jidAuth(r.JID)) {
			t.Fatalf("%s: record %+v, model state %v", step, r, st)
		}
	}
	for _, member := range members {
		k, err := (&trust.Directory{Store: s}).IdentityKey(member)
		bk, bound := m.bound[member]
		switch {
		case !bound:
			if !errors.Is(err, trust.ErrUnknownMember) {
				t.Fatalf("%s: %s never announced a key: %v", step, member, err)
			}
		case m.allows(m.state[modelKey{trust.Bare(member), bk}], m.jidAuth(trust.Bare(member))) && !m.changed(member):
			if err != nil || k != bk {
				t.Fatalf("%s: %s: allowed key refused: %v", step, member, err)
			}
		default:
			var ue *trust.UntrustedError
			if !errors.As(err, &ue) || ue.Key != bk || ue.Changed != m.changed(member) {
				t.Fatalf("%s: %s: refused key answered: %v", step, member, err)
			}
		}
	}
}
