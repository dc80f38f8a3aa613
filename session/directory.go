package session

import (
	"crypto/subtle"
	"fmt"
	"sync"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

// KeyObserver is implemented by key directories that learn identity keys
// from the room (a trust store). The session passes every announced key
// (channel.EventIdentity) to it synchronously, in the channel's order, so a
// key is known before any later packet needs it. A non-nil error is shown
// as a SecurityWarning naming the member (a changed key, a distrusted
// key); the directory decides what IdentityKey answers afterwards.
type KeyObserver interface {
	ObserveKey(member string, key crypto.PublicKey) error
}

// MemoryDirectory is an in-memory key directory that trusts the first key
// announced for each member and refuses a different one later (a changed
// key is reported, never silently accepted). It is for tests and for bots
// configured to trust blindly; a client uses its trust store instead.
// Safe for concurrent use. The zero value is ready to use.
type MemoryDirectory struct {
	mu   sync.Mutex
	keys map[string]crypto.PublicKey
}

var _ KeyObserver = (*MemoryDirectory)(nil)

// Set records a member's key (replacing any).
func (d *MemoryDirectory) Set(member string, key crypto.PublicKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keys == nil {
		d.keys = map[string]crypto.PublicKey{}
	}
	d.keys[member] = key
}

// IdentityKey returns the member's key.
func (d *MemoryDirectory) IdentityKey(member string) (crypto.PublicKey, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k, ok := d.keys[member]
	if !ok {
		return k, fmt.Errorf("session: no identity key known for %q", member)
	}
	return k, nil
}

// ObserveKey records the first key announced for a member; a different
// one later is refused with an error (and the first stays).
func (d *MemoryDirectory) ObserveKey(member string, key crypto.PublicKey) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keys == nil {
		d.keys = map[string]crypto.PublicKey{}
	}
	if err := primitive.CheckEd25519PublicKey(key); err != nil {
		return fmt.Errorf("session: %s announced an unusable identity key %x: %w", member, key[:4], err)
	}
	old, ok := d.keys[member]
	switch {
	case !ok:
		d.keys[member] = key
	case subtle.ConstantTimeCompare(old[:], key[:]) != 1:
		return fmt.Errorf("session: %s announced a different identity key %x (known: %x); the known key stays", member, key[:4], old[:4])
	}
	return nil
}
