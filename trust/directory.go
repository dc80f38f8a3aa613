package trust

import (
	"fmt"

	"github.com/mpenc/mpenc/crypto"
)

// Directory adapts a Store to the key directory a session needs: it
// implements greeter.Directory (IdentityKey) and session.KeyObserver
// (ObserveKey), so it can be session.Config.Directory. Make one per
// session: OnDecision then knows which room a decision came from.
//
// Directory fields are read, never modified; set them before first use.
// Its methods are safe for concurrent use.
type Directory struct {
	Store *Store
	// Self and SelfKey are our own participant id and identity public key:
	// answered directly, never recorded in the trust store (our own key
	// is not "authenticated" by us, and must not switch our other devices
	// to verified-only). An announcement of another key for Self is
	// reported as a changed key: someone impersonates us; an
	// announcement of SelfKey by a member of another account, as a
	// claimed key (KeyClaimed), never used.
	Self    string
	SelfKey crypto.PublicKey
	// OnDecision, if set, receives every decision (new keys, new devices,
	// changes, claimed and distrusted keys), synchronously on the session's goroutine:
	// keep it short (hand it to the UI). A decision about another device
	// of our own account (the bare JID of Self) has Own set.
	OnDecision func(Decision)
}

// IdentityKey implements greeter.Directory: our own key for Self, else the
// key the member announced last if the policy lets it be used and it is
// neither changed nor claimed (our own key announced by a member of
// another account is claimed, whatever the user decided); otherwise an
// error that the session shows as the reason an operation failed (the
// member announced no key, or its key is not trusted, and why).
func (d *Directory) IdentityKey(member string) (crypto.PublicKey, error) {
	if d.Self != "" && member == d.Self {
		return d.SelfKey, nil
	}
	return d.Store.identityKey(member, d.ours())
}

// ObserveKey implements session.KeyObserver: it records the announcement
// (a key is never replaced: a member announcing a key other than the one
// it is known by is a KeyChanged warning, and untrusted for it until the
// user decides, even when the key is known from another device; a key
// another account has, our own included, is a KeyClaimed warning), hands
// the Decision to OnDecision, and returns an error only for a changed,
// claimed or distrusted key (which the session shows as a security
// warning, naming the member and the fingerprints). Invalid input and
// backend failures are returned too, without a decision: a key we could
// not record is not silently accepted.
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
	dec.Own = d.Self != "" && Bare(member) == Bare(d.Self)
	if d.OnDecision != nil {
		d.OnDecision(dec)
	}
	return dec.err()
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
