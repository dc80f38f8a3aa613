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
// change a recorded state, a changed key is never trusted until decided,
// and the directory answers exactly what the policy allows.
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
	policy trust.Policy
	state  map[modelKey]trust.State
	bound  map[string]crypto.PublicKey
}

func newModel(p trust.Policy) *model {
	return &model{policy: p, state: map[modelKey]trust.State{}, bound: map[string]crypto.PublicKey{}}
}

// allows is the policy rule as the model states it: authenticated keys
// always, blindly trusted ones only under BlindTrustBeforeVerification and
// while their JID has no authenticated key.
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
	jid := trust.Bare(member)
	mk := modelKey{jid, k}
	st, known := m.state[mk]
	prev, hadBinding := m.bound[member]
	var want trust.Kind
	switch {
	case known && st == trust.Distrusted:
		want = trust.KeyDistrusted
	case known:
		want = trust.KeyKnown
	case hadBinding:
		want, st = trust.KeyChanged, trust.Undecided
		if len(d.Previous) != 1 || d.Previous[0].Key != prev {
			t.Fatalf("%s: changed without the previous key: %+v", step, d)
		}
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
	m.state[mk] = st
	m.bound[member] = k
	if d.Kind != want || d.State != st || d.Trusted != m.allows(st, m.jidAuth(jid)) {
		t.Fatalf("%s: decision %v, model wants %v %v", step, d, want, st)
	}
	if d.Warning() != (want == trust.KeyChanged || want == trust.KeyDistrusted) || (err != nil) != d.Warning() || (d.Err() != nil) != d.Warning() {
		t.Fatalf("%s: warning/err mismatch for %v", step, d)
	}
}

func (m *model) decide(who string, k crypto.PublicKey, st trust.State) {
	m.state[modelKey{trust.Bare(who), k}] = st
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
		case m.allows(m.state[modelKey{trust.Bare(member), bk}], m.jidAuth(trust.Bare(member))):
			if err != nil || k != bk {
				t.Fatalf("%s: %s: allowed key refused: %v", step, member, err)
			}
		default:
			var ue *trust.UntrustedError
			if !errors.As(err, &ue) || ue.Key != bk {
				t.Fatalf("%s: %s: refused key answered: %v", step, member, err)
			}
		}
	}
}
