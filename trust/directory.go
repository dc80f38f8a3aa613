package trust

import (
	"fmt"
	"sync"

	"github.com/mpenc/mpenc/crypto"
)

// Directory adapts a Store to the key directory a session needs: it
// implements greeter.Directory (IdentityKey) and session.KeyObserver
// (ObserveKey), so it can be session.Config.Directory. Make one per
// session: OnDecision then knows which room a decision came from, and
// the room's occupants (SetPresent) are that room's.
//
// Directory's exported fields are read, never modified; set them before
// first use.
// Its methods are safe for concurrent use.
type Directory struct {
	Store *Store
	// Self and SelfKey are our own participant id and identity public key:
	// answered directly, never recorded in the trust store (our own key
	// is not "authenticated" by us, and must not switch our other devices
	// to verified-only). An announcement of another key for Self is
	// reported as a changed key: someone impersonates us; an
	// announcement of SelfKey by a member of another account, or by
	// another member of our account in the room while we are in it, as a
	// claimed key (KeyClaimed), never used.
	Self    string
	SelfKey crypto.PublicKey
	// OnDecision, if set, receives every decision (new keys, new devices,
	// changes, claimed and distrusted keys), synchronously on the session's goroutine:
	// keep it short (hand it to the UI). A decision about another device
	// of our own account (the bare JID of Self) has Own set.
	OnDecision func(Decision)

	mu sync.Mutex
	// room: the members present in the room (SetPresent), with what each
	// announced since it entered; nil until SetPresent is first called,
	// and then no announcement is judged by who else is present.
	room map[string]presence
	seq  uint64 // announcements counted, to order them in room
}

// presence is what a member present in the room announced since it
// entered.
type presence struct {
	key crypto.PublicKey // the key it announced last; zero if none (checkKey refuses the zero key)
	at  uint64           // when it started announcing key: Directory.seq then; 0 for Self, which holds SelfKey first
}

// SetPresent tells the directory who is in its room (us included; none
// once we are out). The app has the room's session call it
// (session.Config.OnOccupants) at every change of the occupants, on the
// session's goroutine, in the channel's order with the announcements the
// session passes to ObserveKey. A member that is
// no longer present is forgotten with what it announced, so one that
// leaves and comes back starts afresh. From the first call on, a member
// that announces a key another present member of its account announced
// before it in this room (our own key, for Self, which holds it first)
// is a KeyClaimed warning and refused while both are present: our client
// has one full JID per device per room (app's resource per room), so one
// device cannot be present twice in a room, and one of the two is not
// the device it claims to be. Without SetPresent, announcements are
// judged by the store alone.
func (d *Directory) SetPresent(members []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	room := make(map[string]presence, len(members))
	for _, m := range members {
		room[m] = d.room[m] // zero: it just entered
	}
	if d.Self != "" {
		if _, ok := room[d.Self]; ok {
			room[d.Self] = presence{key: d.SelfKey}
		}
	}
	d.room = room
}

// announce notes in the room that member announced key, and returns the
// member that makes it a claim in the room (see firstHere).
func (d *Directory) announce(member string, key crypto.PublicKey) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.room[member]
	if !ok {
		return "", false // not present (or presence unknown): not judged by it
	}
	if p.key != key {
		d.seq++
		p = presence{key: key, at: d.seq}
		d.room[member] = p
	}
	return d.firstHereLocked(member, p)
}

// firstHere returns the member present in the room, of member's account
// and other than member, that announced key in the room before member did
// (the first such, by the order of announcements; Self first for our own
// key); ok is false if member is not present, did not announce key in the
// room, or is the first to.
func (d *Directory) firstHere(member string, key crypto.PublicKey) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.room[member]
	if !ok || p.key != key {
		return "", false
	}
	return d.firstHereLocked(member, p)
}

func (d *Directory) firstHereLocked(member string, p presence) (first string, ok bool) {
	jid := Bare(member)
	var at uint64
	for m, o := range d.room {
		if m == member || Bare(m) != jid || o.key != p.key || o.at >= p.at {
			continue
		}
		if !ok || o.at < at || o.at == at && m < first {
			first, at, ok = m, o.at, true
		}
	}
	return first, ok
}

// hereRecord is the record of key for first, the member of the same
// account present in the room that announced it first (Member set to it):
// ours for Self, else the store's record of the key, which is the same
// JID's.
func (d *Directory) hereRecord(first string, key crypto.PublicKey) (Record, error) {
	if first == d.Self {
		return *d.ours(), nil
	}
	r, err := d.Store.record(Bare(first), key)
	r.Member = first
	return r, err
}

// IdentityKey implements greeter.Directory: our own key for Self, else the
// key the member announced last if the policy lets it be used and it is
// neither changed nor claimed (our own key announced by a member of
// another account is claimed, whatever the user decided; so is a key
// another present member of its account announced in the room before it:
// see SetPresent); otherwise an error that the session shows as the
// reason an operation failed (the member announced no key, or its key is
// not trusted, and why).
func (d *Directory) IdentityKey(member string) (crypto.PublicKey, error) {
	if d.Self != "" && member == d.Self {
		return d.SelfKey, nil
	}
	rec, claim, jidAuth, ok, err := d.current(member)
	if err != nil {
		return crypto.PublicKey{}, err
	}
	if !ok {
		return crypto.PublicKey{}, fmt.Errorf("%w: %s", errUnknownMember, member)
	}
	if !rec.Trusted {
		return crypto.PublicKey{}, &untrustedError{Member: member, Key: rec.Key, State: rec.State, JIDAuthenticated: jidAuth,
			Changed: rec.Changed, ClaimedBy: claim, self: d.Self}
	}
	return rec.Key, nil
}

// Current is Store.Current as the directory judges the member, which
// IdentityKey answers by: the record of the key member announced last,
// also Claimed (and not Trusted) when it is our own key and member is not
// Self, or when another present member of its account announced it in
// the room first (SetPresent); claimedBy holds the records that make it
// claimed, as Decision.Previous for KeyClaimed. For Self it is our own
// key's record, as IdentityKey answers SelfKey.
func (d *Directory) Current(member string) (rec Record, claimedBy []Record, ok bool, err error) {
	if d.Self != "" && member == d.Self {
		return *d.ours(), nil, true, nil
	}
	rec, claimedBy, _, ok, err = d.current(member)
	return rec, claimedBy, ok, err
}

func (d *Directory) current(member string) (rec Record, claim []Record, jidAuth, ok bool, err error) {
	rec, claim, jidAuth, ok, err = d.Store.current(member, d.ours())
	if err != nil || !ok {
		return rec, claim, jidAuth, ok, err
	}
	if first, here := d.firstHere(member, rec.Key); here {
		r, err := d.hereRecord(first, rec.Key)
		if err != nil {
			return Record{}, nil, false, false, fmt.Errorf("trust: looking up %s: %w", member, err)
		}
		claim = append(claim, r)
		rec.Claimed, rec.Trusted = true, false
	}
	return rec, claim, jidAuth, ok, nil
}

// ObserveKey implements session.KeyObserver: it records the announcement
// (a key is never replaced: a member announcing a key other than the one
// it is known by is a KeyChanged warning, and untrusted for it until the
// user decides, even when the key is known from another device; a key
// another account has, our own included, is a KeyClaimed warning, and so
// is a key another present member of its account announced in the room
// first: see SetPresent), hands the Decision to OnDecision, and returns
// an error only for a changed, claimed or distrusted key (which the
// session shows as a security warning, naming the member and the
// fingerprints). Invalid input and backend failures are returned too,
// without a decision: a key we could not record is not silently accepted.
func (d *Directory) ObserveKey(member string, key crypto.PublicKey) error {
	if d.Self != "" && member == d.Self {
		if !crypto.Equal(key[:], d.SelfKey[:]) {
			return &keyChangedError{Member: member, Key: key, Previous: []Record{*d.ours()}}
		}
		return nil
	}
	dec, err := d.Store.observe(member, key, d.ours())
	if err != nil {
		return fmt.Errorf("trust: key from %s not recorded: %w", member, err)
	}
	if first, here := d.announce(member, key); here && dec.Kind != KeyChanged && dec.Kind != KeyDistrusted {
		// A claim in the room, not in the store: nothing more is
		// recorded (the store's outcome is KeyKnown, or the key's
		// first record for our account if first is Self).
		r, err := d.hereRecord(first, key)
		if err != nil {
			return fmt.Errorf("trust: key from %s: looking up %s: %w", member, first, err)
		}
		if dec.Kind != KeyClaimed {
			dec.Kind, dec.Previous = KeyClaimed, nil
		}
		dec.Previous = append(dec.Previous, r)
		dec.Trusted = false
	}
	dec.Own = d.Self != "" && Bare(member) == Bare(d.Self)
	if d.OnDecision != nil {
		d.OnDecision(dec)
	}
	err = dec.err()
	if e, ok := err.(*keyClaimedError); ok {
		e.self = d.Self
	}
	return err
}

// ours is our own key's record as the directory answers it (nil without
// Self), which the store counts as a holder of SelfKey that no other
// account may be. Our key is never recorded in the store (see Self), so
// the store cannot remember that another account claimed it; it need
// not: the directory passes ours to every observation and every lookup,
// so a member of another account announcing our key is KeyClaimed when
// observed and refused by IdentityKey for as long as it announces it,
// and no decision of the user settles that.
func (d *Directory) ours() *Record {
	if d.Self == "" {
		return nil
	}
	return &Record{JID: Bare(d.Self), Key: d.SelfKey, State: Authenticated, Trusted: true, Member: d.Self}
}
