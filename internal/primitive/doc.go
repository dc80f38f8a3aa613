// Package primitive holds the cryptographic primitives that only the
// protocol engines use: X25519 Diffie-Hellman for CLIQUES ([X25519Key]),
// AES-CTR for data packets ([XORKeyStreamCTR]), HKDF-SHA256 for the group
// key ([HKDF]), the sizes the wire codec checks, and the counters of
// expensive operations ([ReadOpCounts]) that the benchmarks read.
//
// It is internal because no program using mpenc needs these: clients,
// bots and stores handle identity keys and signatures, which package
// crypto keeps public; the key agreement, the message layer and the codec
// below them are the module's own. Package crypto imports this one to
// count its signatures and verifications ([CountSign], [CountVerify]) and
// to draw randomness ([Random32], [RandomBytes]), so the counts cover
// every primitive wherever it runs.
//
// As in package crypto, randomness always comes from an io.Reader passed
// by the caller (nil means crypto/rand.Reader), secrets live in
// unexported fields, and Zero narrows the time a secret stays in memory
// without guaranteeing its erasure. Error texts keep the "crypto:" prefix
// they had when these primitives were part of package crypto.
package primitive
