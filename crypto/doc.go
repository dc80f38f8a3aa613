// Package crypto holds the cryptographic primitives of mpENC/1 and nothing
// else: X25519 Diffie-Hellman (for CLIQUES), Ed25519 signatures (static
// identity keys and ephemeral session keys), AES-CTR (data packets),
// HKDF-SHA256 and SHA-256, constant-time comparison and zeroing helpers.
//
// Entry points:
//
//   - [NewX25519Key] / [GenerateX25519Key] build an [X25519Key] once; its
//     [X25519Key.DH] then costs one Montgomery ladder per call.
//   - [NewSigningKey] / [GenerateSigningKey] build an Ed25519 [SigningKey]
//     from its 32-byte seed; [Verify] checks a signature.
//   - [XORKeyStreamCTR] encrypts or decrypts with AES-CTR, the key length
//     selecting AES-128 or AES-256.
//   - [HKDF], [Hash], [Equal], [Zero].
//
// Randomness is always taken from an io.Reader passed by the caller, so that
// protocol state machines replay exactly in tests; a nil reader means
// crypto/rand.Reader.
//
// The package deliberately knows nothing of packets, contexts or protocol
// labels: those live in internal/wire and the protocol packages.
//
// # Secrets in memory
//
// Key types keep their secret in unexported fields, print nothing secret
// from String, and offer Zero or Clear to wipe what Go lets us wipe. Go gives
// no guarantee that secrets are erased: the garbage collector may have copied
// them, and crypto/ecdh and crypto/ed25519 keep internal copies that cannot
// be cleared from outside. Zeroing here narrows the window; it does not close
// it.
package crypto
