package greeter

import "github.com/mpenc/mpenc/crypto"

// Directory maps participant ids to their static Ed25519 identity keys. An
// error (for example an unknown member, or a key the trust store refuses)
// makes the operation that needs the key fail with that error as reason.
type Directory interface {
	IdentityKey(member string) (crypto.PublicKey, error)
}

// DirectoryFunc adapts a function to the Directory interface.
type DirectoryFunc func(member string) (crypto.PublicKey, error)

// IdentityKey calls f.
func (f DirectoryFunc) IdentityKey(member string) (crypto.PublicKey, error) { return f(member) }
