package trust_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

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
// user decides about that key afterwards, a key another account had
// first (or at the same time, or our own key) is never trusted for a
// JID until the user decides about it for that JID at or after the other
// account's record appeared (never, for our own key), a new key's event
// says what its decision said, and the directory answers exactly what
// the policy allows. Op 4 stops the clock for the next reading, so that
// records can be first seen at the same time.
func FuzzStore(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 0, 2, 1, 0, 1, 4, 0, 0})
	f.Add([]byte{0x80, 0, 1, 0, 3, 1, 1, 0, 3, 2, 2, 3, 3, 4, 3})
	// b@x's key announced by a@x and trusted for it; a tie (the clock
	// held); our own key announced by our account, then by a@x, and
	// trusted for it (which settles nothing).
	f.Add([]byte{0, 3, 0, 0, 0, 0, 2, 0, 0, 0, 4, 2, 4, 0, 0, 0, 1, 2, 0, 4, 2, 0, 5, 4, 0, 2, 4, 2, 2, 4, 0, 2, 4})
	// Our key announced by b@x first, then by our account (ours all the
	// same), then by a@x.
	f.Add([]byte{0, 3, 4, 0, 5, 4, 0, 0, 4})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 600 {
			return
		}
		policy := trust.BlindTrustBeforeVerification
		if len(ops) > 0 && ops[0]&0x80 != 0 {
			policy = trust.AuthenticatedOnly
		}
		clk := &fuzzClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
		b := new(trust.Memory)
		s := trust.New(b, trust.Config{Policy: policy, Now: clk.now})
		m := newModel(policy)
		// c@y/me is us: c@y announcing our key is our own account (not a
		// claim), a@x or b@x announcing it is.
		members := []string{"a@x/1", "a@x/2", "a@x/3", "b@x/1", "b@x/2", "c@y"}
		for i := 0; i+2 < len(ops); i += 3 {
			op, who, k := ops[i]%6, members[int(ops[i+1])%len(members)], trusttest.Key(ops[i+2]%5+1)
			step := fmt.Sprintf("step %d op %d %s key %d", i/3, op, who, ops[i+2]%5+1)
			switch op {
			case 0, 5:
				var d trust.Decision
				decided := false
				dir := &trust.Directory{Store: s, Self: fuzzSelf, SelfKey: fuzzSelfKey, OnDecision: func(dec trust.Decision) { d, decided = dec, true }}
				nev := len(fuzzEvents(t, b))
				err := dir.ObserveKey(who, k)
				if !decided {
					t.Fatalf("%s: %v", step, err)
				}
				m.tick(clk)
				if newKey := m.observe(t, step, who, k, d, err); newKey {
					evs := fuzzEvents(t, b)
					if len(evs) != nev+1 || evs[nev].Kind != d.Kind || evs[nev].Key != k || evs[nev].Member != who {
						t.Fatalf("%s: a new key's event: %+v after decision %v", step, evs[nev:], d)
					}
				}
			case 1:
				mustDecide(t, step, s.Verify, who, k)
				m.tick(clk)
				m.decide(who, k, trust.Authenticated)
			case 2:
				mustDecide(t, step, s.Trust, who, k)
				m.tick(clk)
				m.decide(who, k, trust.BlindlyTrusted)
			case 3:
				mustDecide(t, step, s.Distrust, who, k)
				m.tick(clk)
				m.decide(who, k, trust.Distrusted)
			case 4:
				clk.hold()
			}
			m.check(t, step, s, members)
		}
	})
}

const fuzzSelf = "c@y/me"

var fuzzSelfKey = trusttest.Key(5)

// fuzzClock advances by a second at each reading, except the reading
// after hold, which gives the time of the one before.
type fuzzClock struct {
	t      time.Time
	held   bool
	stayed bool // the last reading did not advance
}

func (c *fuzzClock) hold() { c.held = true }

func (c *fuzzClock) now() time.Time {
	c.stayed = c.held
	if !c.held {
		c.t = c.t.Add(time.Second)
	}
	c.held = false
	return c.t
}

func fuzzEvents(t *testing.T, b trust.Backend) []trust.Event {
	var evs []trust.Event
	if err := b.View(func(tx trust.Tx) error {
		var err error
		evs, err = tx.Events("", 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return evs
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
	first    map[modelKey]int            // time the record was made
	decided  map[modelKey]int            // time of the last decision about the key
	bound    map[string]crypto.PublicKey // the key each member announced last
	accepted map[string]crypto.PublicKey // the key each member is known by
	since    map[string]int              // time at which it started announcing bound
	now      int                         // the store's clock, in its readings
}

func newModel(p trust.Policy) *model {
	return &model{policy: p, state: map[modelKey]trust.State{}, first: map[modelKey]int{}, decided: map[modelKey]int{},
		bound: map[string]crypto.PublicKey{}, accepted: map[string]crypto.PublicKey{}, since: map[string]int{}}
}

// tick follows the store's clock, which the operation just read.
func (m *model) tick(c *fuzzClock) {
	if !c.stayed {
		m.now++
	}
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

// claimants returns the JIDs that make mk a claimed key, as the store
// orders them: us first (our own key, for another account, if withOurs:
// the directory knows our key, Store.Current does not), then the other
// JIDs whose record of the key is no newer, by age then JID; none if the
// user decided about mk at or after the newest of those appeared.
func (m *model) claimants(mk modelKey, withOurs bool) []string {
	type holder struct {
		jid   string
		first int
	}
	var hs []holder
	latest := 0
	ours := withOurs && mk.key == fuzzSelfKey && mk.jid != trust.Bare(fuzzSelf)
	if withOurs && mk.key == fuzzSelfKey && mk.jid == trust.Bare(fuzzSelf) {
		return nil // our key, for our account
	}
	for o, f := range m.first {
		if o.key == mk.key && o.jid != mk.jid && f <= m.first[mk] && !(ours && o.jid == trust.Bare(fuzzSelf)) {
			hs = append(hs, holder{o.jid, f})
			latest = max(latest, f)
		}
	}
	if d, ok := m.decided[mk]; ok && d >= latest {
		hs = nil
	}
	slices.SortFunc(hs, func(a, b holder) int {
		if a.first != b.first {
			return a.first - b.first
		}
		return strings.Compare(a.jid, b.jid)
	})
	var out []string
	if ours {
		out = append(out, trust.Bare(fuzzSelf))
	}
	for _, h := range hs {
		out = append(out, h.jid)
	}
	return out
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

func jidsOf(rs []trust.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.JID)
	}
	return out
}

// observe checks the decision of an observation against the model and
// reports whether the key was new for the JID.
func (m *model) observe(t *testing.T, step, member string, k crypto.PublicKey, d trust.Decision, err error) bool {
	jid := trust.Bare(member)
	mk := modelKey{jid, k}
	st, known := m.state[mk]
	prev, hadBinding := m.bound[member]
	if !hadBinding || prev != k {
		m.since[member] = m.now
	}
	if !hadBinding {
		m.accepted[member] = k
	}
	m.bound[member] = k
	if !known {
		m.first[mk] = m.now
	}
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
	claim := m.claimants(mk, true)
	if len(claim) > 0 && want != trust.KeyChanged {
		want = trust.KeyClaimed
		if !known {
			st = trust.Undecided
		}
	}
	if st == trust.Distrusted {
		want = trust.KeyDistrusted
	}
	m.state[mk] = st
	trusted := m.allows(st, m.jidAuth(jid)) && !m.changed(member) && len(claim) == 0
	if d.Kind != want || d.State != st || d.Trusted != trusted {
		t.Fatalf("%s: decision %v, model wants %v %v trusted=%v (claimed by %v)", step, d, want, st, trusted, claim)
	}
	if want == trust.KeyClaimed && !slices.Equal(jidsOf(d.Previous), claim) {
		t.Fatalf("%s: claimed, Previous %v, model wants %v", step, jidsOf(d.Previous), claim)
	}
	if d.Warning() != (want == trust.KeyChanged || want == trust.KeyClaimed || want == trust.KeyDistrusted) ||
		(err != nil) != d.Warning() || (d.Err() != nil) != d.Warning() {
		t.Fatalf("%s: warning/err mismatch for %v", step, d)
	}
	return !known
}

func (m *model) decide(who string, k crypto.PublicKey, st trust.State) {
	mk := modelKey{trust.Bare(who), k}
	if st == trust.Authenticated && !m.jidAuth(mk.jid) {
		// TOAKAFA: the account's first authenticated key turns its
		// blindly trusted keys automatically distrusted.
		for o, ost := range m.state {
			if o.jid == mk.jid && o != mk && ost == trust.BlindlyTrusted {
				m.state[o] = trust.AutoDistrusted
			}
		}
	}
	if _, ok := m.state[mk]; !ok {
		m.first[mk] = m.now
	}
	m.state[mk] = st
	m.decided[mk] = m.now
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
	dir := &trust.Directory{Store: s, Self: fuzzSelf, SelfKey: fuzzSelfKey}
	for _, member := range members {
		k, err := dir.IdentityKey(member)
		bk, bound := m.bound[member]
		mk := modelKey{trust.Bare(member), bk}
		claim := m.claimants(mk, true)
		switch {
		case !bound:
			if !errors.Is(err, trust.ErrUnknownMember) {
				t.Fatalf("%s: %s never announced a key: %v", step, member, err)
			}
		case m.allows(m.state[mk], m.jidAuth(trust.Bare(member))) && !m.changed(member) && len(claim) == 0:
			if err != nil || k != bk {
				t.Fatalf("%s: %s: allowed key refused: %v", step, member, err)
			}
		default:
			var ue *trust.UntrustedError
			if !errors.As(err, &ue) || ue.Key != bk || ue.Changed != m.changed(member) || !slices.Equal(jidsOf(ue.ClaimedBy), claim) {
				t.Fatalf("%s: %s: refused key answered: %v (model: claimed by %v)", step, member, err, claim)
			}
		}
		// Store.Current does not know our key.
		if bound {
			claimedHere := m.claimants(mk, false)
			trusted := m.allows(m.state[mk], m.jidAuth(mk.jid)) && !m.changed(member) && len(claimedHere) == 0
			if r, ok, err := s.Current(member); err != nil || !ok || r.Claimed != (len(claimedHere) > 0) || r.Changed != m.changed(member) || r.Trusted != trusted {
				t.Fatalf("%s: Current(%s) = %+v, %v: model claimed by %v", step, member, r, err, claimedHere)
			}
		}
	}
}
