package trust

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/mpenc/mpenc/crypto"
)

// Policy says which keys may be used.
type Policy uint8

// Policies.
const (
	// BlindTrustBeforeVerification is XEP-0450's recommended policy
	// (§Security Considerations, "Trust Only Authenticated Keys After
	// First Authentication"): while a JID has no authenticated key, its
	// new keys are blindly trusted (protection against passive attackers
	// beats no encryption); from the first authentication on, only its
	// authenticated keys are used, so blindly trusted keys stop being
	// used and new keys wait for verification. A key that replaces
	// another for the same member is never trusted blindly.
	BlindTrustBeforeVerification Policy = 0
	// AuthenticatedOnly uses authenticated keys only: for bots and
	// rooms that must not include members nobody has verified.
	AuthenticatedOnly Policy = 1
)

// allows reports whether the policy lets a key in state s be used, given
// whether its JID has an authenticated key.
func (p Policy) allows(s State, jidAuthenticated bool) bool {
	switch s {
	case Authenticated:
		return true
	case BlindlyTrusted:
		return p == BlindTrustBeforeVerification && !jidAuthenticated
	}
	return false
}

// Config configures a Store. It is never modified and may be reused.
type Config struct {
	Policy Policy
	// Now gives the time recorded in records and events; nil means
	// time.Now. Safe for concurrent use, as the Store is.
	Now func() time.Time
	// Self is this device's full JID and SelfKey its identity key: trust
	// messages (Vouches, HandleTrustMessage) need to know which keys are
	// our own account's, and never carry or accept a statement about our
	// own key. Stores that neither send nor receive them leave both zero.
	Self    string
	SelfKey crypto.PublicKey
	// OnChange, if set, receives every decision this Store records (the
	// user's, trust messages', TOAKAFA's, and a trust message refused
	// because the user distrusted its key), after it is committed, on the
	// caller's goroutine: keep it short. Decisions made through another
	// Store over the same backend are not reported here.
	OnChange func(Event)
	// OnVouch, if set (with Self and SelfKey), receives each trust
	// message to send after the user authenticated or distrusted a key
	// through this Store (Verify, Distrust; XEP-0450 §4, docs/PROTOCOL.md
	// "Trust messages"), after OnChange has the decisions, on the
	// caller's goroutine: queue it for the device channel. Decisions the
	// user did not make send nothing.
	OnVouch func(Vouch)
}

// Store is the trust store: the policy over a Backend. It is safe for
// concurrent use as far as its Backend is (both backends of this project
// are); each method is one backend transaction.
type Store struct {
	b   Backend
	cfg Config
}

// New returns a trust store over b.
func New(b Backend, cfg Config) *Store {
	if b == nil {
		panic("trust: New with a nil Backend")
	}
	return &Store{b: b, cfg: cfg}
}

func (s *Store) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

func anyAuthenticated(rs []Record) bool {
	for _, r := range rs {
		if r.State == Authenticated {
			return true
		}
	}
	return false
}

func find(rs []Record, key crypto.PublicKey) (Record, bool) {
	for _, r := range rs {
		if crypto.Equal(r.Key[:], key[:]) {
			return r, true
		}
	}
	return Record{}, false
}

// withTrusted fills the computed Trusted field of each record.
func (s *Store) withTrusted(rs []Record) []Record {
	auth := map[string]bool{}
	for _, r := range rs {
		if r.State == Authenticated {
			auth[r.JID] = true
		}
	}
	for i := range rs {
		rs[i].Trusted = s.cfg.Policy.allows(rs[i].State, auth[rs[i].JID])
	}
	return rs
}

// claimants returns the records that make rec a claimed key (KeyClaimed),
// oldest first: ours, our own key's record as the directory knows it
// (nil if none), if rec is our key for another JID, whatever the user
// decided (nobody else may hold our key); and the records of rec.Key
// for other JIDs (holders, from Tx.KeyHolders) first seen no later than
// rec, unless the user decided about rec at or after the latest of those
// appeared. Our key for our own JID is never claimed here. Within one
// JID a key is never claimed here: one device appears under a resource
// per room, so several members legitimately announce one key; only two
// of them present in one room at once are a claim, which the room's
// Directory judges (Directory.SetPresent; docs/STORE.md).
func claimants(rec Record, holders []Record, ours *Record) []Record {
	if ours != nil && !crypto.Equal(ours.Key[:], rec.Key[:]) {
		ours = nil
	}
	if ours != nil && ours.JID == rec.JID {
		return nil // our key for our account: ours, whoever announced it before
	}
	var out []Record
	var since time.Time
	for _, h := range holders {
		if h.JID == rec.JID || !crypto.Equal(h.Key[:], rec.Key[:]) || h.FirstSeen.After(rec.FirstSeen) ||
			ours != nil && h.JID == ours.JID {
			// Ours is named once, below (our other devices' record of
			// our key is in the store like anyone's).
			continue
		}
		out = append(out, h)
		if h.FirstSeen.After(since) {
			since = h.FirstSeen
		}
	}
	if len(out) > 0 && !rec.Decided.IsZero() && !rec.Decided.Before(since) {
		out = nil // the user decided about the key for this JID since
	}
	if ours != nil {
		out = append([]Record{*ours}, out...)
	}
	return out
}

// trustedAcross fills the computed Trusted field of records of any JIDs,
// each by its own JID's keys.
func (s *Store) trustedAcross(tx Tx, rs []Record) ([]Record, error) {
	for i := range rs {
		keys, err := tx.Keys(rs[i].JID)
		if err != nil {
			return nil, err
		}
		if _, ok := find(keys, rs[i].Key); !ok {
			keys = append(keys, rs[i]) // ours: not in the store
		}
		rs[i].Trusted = s.cfg.Policy.allows(rs[i].State, anyAuthenticated(keys))
	}
	return rs, nil
}

// observe records that member (a full JID, the participant id) announced
// key, and returns what that means. It never replaces a key: a member
// announcing a key other than the one it is known by is KeyChanged, and
// untrusted for it until the user decides about that key, whether or not
// the key is recorded (and trusted) for another device; a key another
// account has (or ours, our own key's record: see claimants) is
// KeyClaimed, and untrusted for this JID until the user decides about it.
// The error is non-nil only for invalid input or a backend failure; trust
// outcomes are in the Decision. [Directory.ObserveKey] is its entry
// point.
func (s *Store) observe(member string, key crypto.PublicKey, ours *Record) (Decision, error) {
	if err := CheckJID(member); err != nil {
		return Decision{}, err
	}
	if err := checkKey(key); err != nil {
		return Decision{}, err
	}
	jid := Bare(member)
	now := s.now()
	var d Decision
	err := s.b.Update(func(tx Tx) error {
		d = Decision{Member: member, JID: jid, Key: key}
		recs, err := tx.Keys(jid)
		if err != nil {
			return err
		}
		b, hasBinding, err := tx.Binding(member)
		if err != nil {
			return err
		}
		rec, known := find(recs, key)
		if !known {
			rec = Record{JID: jid, Key: key, FirstSeen: now, State: Undecided}
		}
		rec.LastSeen, rec.Member = now, member
		nb := Binding{Member: member, Key: key, Accepted: key, Since: now}
		if hasBinding && crypto.Equal(b.Key[:], key[:]) {
			nb.Since = b.Since // the same announcement again
		}
		ev := Event{At: now, Member: member, JID: jid, Key: key}
		record := false // whether the history gets an event
		changed := false
		switch {
		case hasBinding && !crypto.Equal(b.Accepted[:], key[:]):
			// The member is known by another key: never a silent
			// replacement, even by a key the JID has from another device
			// (a server can announce its own key for a device of its
			// own first, then for this one).
			nb.Accepted = b.Accepted
			if !crypto.Equal(b.Key[:], key[:]) {
				record, ev.Previous = true, b.Key
			} else if known && rec.Decided.After(b.Since) {
				// Announced again after the user decided about the key:
				// the change is accepted.
				nb.Accepted = key
				break
			}
			changed = true
			d.Kind = KeyChanged
			d.Previous = s.previous(recs, jid, b, key)
		case hasBinding && !known:
			// The key the member is known by has no record: only a
			// damaged database gets here. Untrusted until decided.
			changed, d.Kind = true, KeyChanged
			d.Previous = s.previous(recs, jid, b, key)
		case hasBinding, known:
			// The key the member is known by, or a key recorded for
			// the JID announced by a member we have not seen before
			// (the same device under another resource).
			d.Kind = KeyKnown
		case len(recs) == 0:
			record, d.Kind = true, KeyNew
			if s.cfg.Policy == BlindTrustBeforeVerification {
				rec.State = BlindlyTrusted
			}
		default:
			record, d.Kind = true, KeyNewDevice
			d.Previous = s.withTrusted(recs)
			if s.cfg.Policy == BlindTrustBeforeVerification && !anyAuthenticated(recs) {
				rec.State = BlindlyTrusted
			}
		}
		if d.Kind == 0 {
			d.Kind = KeyKnown // a change accepted by a decision since
		}
		holders, err := tx.KeyHolders(key)
		if err != nil {
			return err
		}
		claim := claimants(rec, holders, ours)
		claimed := len(claim) > 0
		if claimed && d.Kind != KeyChanged {
			// KeyChanged says more (the member is known by another key)
			// and is untrusted already.
			d.Kind = KeyClaimed
			if d.Previous, err = s.trustedAcross(tx, claim); err != nil {
				return err
			}
			if !known {
				rec.State = Undecided // never trusted blindly
			}
		}
		if rec.State == Distrusted {
			d.Kind = KeyDistrusted
		}
		if err := tx.PutKey(rec); err != nil {
			return err
		}
		if !hasBinding || b != nb {
			if err := tx.Bind(nb); err != nil {
				return err
			}
		}
		if record {
			// The history records the outcome: a new key, a new device,
			// a claimed key, or a change (also to a distrusted key).
			ev.Kind = d.Kind
			if ev.Previous != (crypto.PublicKey{}) {
				ev.Kind = KeyChanged
			}
			if err := tx.AppendEvent(ev); err != nil {
				return err
			}
		}
		d.State = rec.State
		d.Trusted = !changed && !claimed && s.cfg.Policy.allows(rec.State, anyAuthenticated(recs))
		return nil
	})
	if err != nil {
		return Decision{}, fmt.Errorf("trust: observing %s's key: %w", member, err)
	}
	return d, nil
}

// previous returns the records a KeyChanged decision reports: the key the
// member is known by, and the one it announced last if that is a third.
func (s *Store) previous(recs []Record, jid string, b Binding, key crypto.PublicKey) []Record {
	var out []Record
	for _, k := range []crypto.PublicKey{b.Accepted, b.Key} {
		if crypto.Equal(k[:], key[:]) || len(out) == 1 && crypto.Equal(k[:], out[0].Key[:]) {
			continue
		}
		r, ok := find(recs, k)
		if !ok {
			// A binding without its record: only a damaged database
			// gets here. Report the old key anyway.
			r = Record{JID: jid, Key: k, State: Undecided}
		}
		out = append(out, r)
	}
	return s.withTrusted(out)
}

// Verify records that the user authenticated key as jid's (a bare or full
// JID: the bare part is used), for example after comparing fingerprints or
// scanning a QR code. The key need not have been seen yet. From now on
// only jid's authenticated keys are used (XEP-0450 TOAKAFA). Like Trust,
// it also settles every KeyChanged of jid's devices to this key observed
// before it: a decision about a key counts for the members that changed
// to it earlier, not for those that change to it later.
func (s *Store) Verify(jid string, key crypto.PublicKey) (Record, error) {
	return s.decide(jid, key, Authenticated, kindVerified)
}

// Trust records that the user trusts key as jid's without having verified
// it (for example to accept a changed key). Blind trust only counts while
// jid has no authenticated key and the policy allows it; the returned
// record's Trusted field says whether it does.
func (s *Store) Trust(jid string, key crypto.PublicKey) (Record, error) {
	return s.decide(jid, key, BlindlyTrusted, kindTrusted)
}

// Distrust records that key must never be used for jid.
func (s *Store) Distrust(jid string, key crypto.PublicKey) (Record, error) {
	return s.decide(jid, key, Distrusted, kindDistrusted)
}

// DistrustMismatch records that a live verification with the device of
// key failed (the two screens showed different words, or its proof did
// not match): key is distrusted for jid as if by the user (a trust
// message never overturns it), what it said while unverified is dropped,
// and, unlike Distrust, no trust message is sent: a verification can
// fail by a user's slip, and the other devices keep their own judgement
// (docs/PROTOCOL.md "Verification").
func (s *Store) DistrustMismatch(jid string, key crypto.PublicKey) (Record, error) {
	return s.decide(jid, key, Distrusted, kindVerifyFailed)
}

// DistrustLeft records that the device of key, one of our own, left the
// account's device group (it said so over the device channel, as
// docs/PROTOCOL.md "KeySync" has it): key is distrusted as if by the
// user (a trust message never overturns it), and trust messages tell the
// other devices, as Distrust's do; the history says why.
func (s *Store) DistrustLeft(jid string, key crypto.PublicKey) (Record, error) {
	return s.decide(jid, key, Distrusted, kindLeft)
}

func (s *Store) decide(jid string, key crypto.PublicKey, st State, kind Kind) (Record, error) {
	if err := CheckJID(jid); err != nil {
		return Record{}, err
	}
	if err := checkKey(key); err != nil {
		return Record{}, err
	}
	jid = Bare(jid)
	now := s.now()
	var out Record
	var changes []Event
	err := s.b.Update(func(tx Tx) error {
		changes = nil
		recs, err := tx.Keys(jid)
		if err != nil {
			return err
		}
		rec, ok := find(recs, key)
		if !ok {
			rec = Record{JID: jid, Key: key, FirstSeen: now, LastSeen: now}
		}
		c, err := s.setState(tx, recs, rec, st, Event{At: now, Kind: kind, JID: jid, Key: key})
		if err != nil {
			return err
		}
		changes = c
		if st == Distrusted {
			// What a distrusted device said while we had not
			// authenticated it is never applied (a failed
			// verification distrusts it).
			if err := tx.Unpark(jid, key); err != nil {
				return err
			}
		}
		if st == Authenticated {
			// Trust messages parked until this key was authenticated
			// (XEP-0450 §5.1) apply now.
			more, err := s.unpark(tx, jid, key, now)
			if err != nil {
				return err
			}
			changes = append(changes, more...)
		}
		if recs, err = tx.Keys(jid); err != nil {
			return err
		}
		out, _ = find(s.withTrusted(recs), key)
		return nil
	})
	if err != nil {
		return Record{}, fmt.Errorf("trust: recording %v for %s: %w", st, jid, err)
	}
	s.report(changes)
	if s.cfg.OnVouch != nil && s.cfg.Self != "" && (kind == kindVerified || kind == kindDistrusted || kind == kindLeft) {
		vs, err := s.vouches(jid, key)
		if err != nil {
			return out, fmt.Errorf("trust: %v recorded for %s, but not told to other devices: %w", st, jid, err)
		}
		for _, v := range vs {
			s.cfg.OnVouch(v)
		}
	}
	return out, nil
}

// setState records a decision: rec (one of recs, jid's records, or a new
// one) gets state st, cause ev.Kind and, unless TOAKAFA made it, Decided
// ev.At; ev goes into the history. The first authenticated key of a JID
// turns its blindly trusted keys automatically distrusted (TOAKAFA,
// XEP-0450 §6.2), each with its own event. It returns the events
// recorded, for Config.OnChange.
func (s *Store) setState(tx Tx, recs []Record, rec Record, st State, ev Event) ([]Event, error) {
	first := st == Authenticated && !anyAuthenticated(recs)
	rec.State, rec.Cause = st, ev.Kind
	if ev.Kind != kindAutoDistrusted {
		rec.Decided = ev.At
	}
	if err := tx.PutKey(rec); err != nil {
		return nil, err
	}
	if err := tx.AppendEvent(ev); err != nil {
		return nil, err
	}
	out := []Event{ev}
	if !first {
		return out, nil
	}
	for _, r := range recs {
		if r.State != BlindlyTrusted || r.Key == rec.Key {
			continue
		}
		r.State, r.Cause = AutoDistrusted, kindAutoDistrusted
		e := Event{At: ev.At, Kind: kindAutoDistrusted, JID: r.JID, Key: r.Key, By: rec.Key}
		if err := tx.PutKey(r); err != nil {
			return nil, err
		}
		if err := tx.AppendEvent(e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// report hands changes to Config.OnChange, after they are committed.
func (s *Store) report(changes []Event) {
	if s.cfg.OnChange == nil {
		return
	}
	for _, e := range changes {
		s.cfg.OnChange(e)
	}
}

// Current returns the record of the key member (a full JID) announced
// last, with Trusted, Changed and Claimed filled in; ok is false if it
// announced none. A member that announced a key in place of the one it is
// known by is Changed, and one whose key another account has (first) is
// Claimed, and neither is Trusted until the user decides about that key.
// The store does not know our own key, nor who is in a room: a member of
// another account announcing our key, and a member announcing a key
// another present member of its account announced first, are claimed by
// the Directory (Directory.Current), not here.
func (s *Store) Current(member string) (rec Record, ok bool, err error) {
	rec, _, _, ok, err = s.current(member, nil)
	return rec, ok, err
}

// current is Current, with our own key's record (ours, nil if none: see
// claimants), the records that make the key claimed, and whether the JID
// has an authenticated key.
func (s *Store) current(member string, ours *Record) (rec Record, claim []Record, jidAuth, ok bool, err error) {
	if err := CheckJID(member); err != nil {
		return Record{}, nil, false, false, err
	}
	err = s.b.View(func(tx Tx) error {
		b, bound, err := tx.Binding(member)
		if err != nil || !bound {
			return err
		}
		recs, err := tx.Keys(Bare(member))
		if err != nil {
			return err
		}
		r, found := find(recs, b.Key)
		if !found {
			// Damaged database: a binding without its record. Treat
			// the key as undecided rather than guessing.
			r = Record{JID: Bare(member), Key: b.Key, State: Undecided}
		}
		holders, err := tx.KeyHolders(b.Key)
		if err != nil {
			return err
		}
		rec, ok, jidAuth = r, true, anyAuthenticated(recs)
		claim = claimants(r, holders, ours)
		rec.Changed = !crypto.Equal(b.Key[:], b.Accepted[:]) && !(found && r.Decided.After(b.Since))
		rec.Claimed = len(claim) > 0
		rec.Trusted = !rec.Changed && !rec.Claimed && s.cfg.Policy.allows(r.State, jidAuth)
		return nil
	})
	if err != nil {
		return Record{}, nil, false, false, fmt.Errorf("trust: looking up %s: %w", member, err)
	}
	return rec, claim, jidAuth, ok, nil
}

// maxLabel bounds a label SetLabel keeps (bytes).
const maxLabel = 64

// Keys returns the records of jid (a bare JID), or of every JID when jid
// is "", with Trusted filled in, ordered by JID, then FirstSeen: every
// device this account has seen, for a device list. Changed and Claimed
// depend on who announced a key where, and are left false: Current has
// them.
func (s *Store) Keys(jid string) ([]Record, error) {
	if jid != "" {
		if err := CheckJID(jid); err != nil {
			return nil, err
		}
		jid = Bare(jid)
	}
	var out []Record
	err := s.b.View(func(tx Tx) error {
		recs, err := tx.Keys(jid)
		out = recs
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("trust: listing keys: %w", err)
	}
	return s.withTrusted(out), nil
}

// SetLabel records label as the name of the device holding key for jid (a
// bare JID), when the store has that key for jid; otherwise it does
// nothing. The caller checks the label's signature first (channel/xmpp
// does, for the labels it reports).
func (s *Store) SetLabel(jid string, key crypto.PublicKey, label string) error {
	if err := CheckJID(jid); err != nil {
		return err
	}
	if len(label) > maxLabel || !utf8.ValidString(label) {
		return fmt.Errorf("trust: label of %d bytes", len(label))
	}
	jid = Bare(jid)
	err := s.b.Update(func(tx Tx) error {
		recs, err := tx.Keys(jid)
		if err != nil {
			return err
		}
		r, ok := find(recs, key)
		if !ok || r.Label == label {
			return nil
		}
		r.Label = label
		return tx.PutKey(r)
	})
	if err != nil {
		return fmt.Errorf("trust: labelling a key of %s: %w", jid, err)
	}
	return nil
}

// record returns the record of key for jid (a bare JID), with Trusted
// filled in; an undecided record if there is none (only a damaged
// database gets here: the caller saw the key announced for jid).
func (s *Store) record(jid string, key crypto.PublicKey) (Record, error) {
	var out Record
	err := s.b.View(func(tx Tx) error {
		recs, err := tx.Keys(jid)
		if err != nil {
			return err
		}
		r, ok := find(s.withTrusted(recs), key)
		if !ok {
			r = Record{JID: jid, Key: key, State: Undecided}
		}
		out = r
		return nil
	})
	return out, err
}
