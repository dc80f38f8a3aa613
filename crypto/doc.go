// Package crypto holds the cryptographic values that mpenc's public
// packages and the programs using them share: Ed25519 identity keys
// ([SigningKey], [PublicKey]) and signatures ([Signature], [Verify]),
// SHA-256 ([Hash]), and constant-time comparison and zeroing ([Equal],
// [Zero]).
//
// Entry points:
//
//   - [NewSigningKey] / [GenerateSigningKey] build an Ed25519 [SigningKey]
//     from its 32-byte seed; [Verify] checks a signature.
//   - [Hash], [Equal], [Zero].
//
// The primitives only the protocol engines use (X25519 for the key
// agreement, AES-CTR for data packets, HKDF, randomness from the caller's
// reader, the operation counters the benchmarks read) are in
// internal/primitive, which this package calls to
// count its signatures and verifications and to draw randomness.
//
// Randomness (GenerateSigningKey's) is always taken from an io.Reader
// passed by the caller, so that protocol state machines replay exactly in
// tests; a nil reader means crypto/rand.Reader.
//
// The package deliberately knows nothing of packets, contexts or protocol
// labels: those live in internal/wire and the protocol packages.
//
// # Secrets in memory
//
// Key types keep their secret in unexported fields, print nothing secret
// from String, and offer Zero to wipe what Go lets us wipe. Go gives no
// guarantee that secrets are erased: the garbage collector may have copied
// them, and crypto/ed25519 keeps internal copies that cannot be cleared
// from outside. Zeroing here narrows the window; it does not close it.
package crypto
