package primitive

import "sync/atomic"

// OpCounts counts the expensive primitive operations performed by this
// package and by package crypto since the process started. Benchmarks read
// it to express a protocol's cost as a ratio to the primitive-operation
// model (docs/PERFORMANCE.md); nothing else should depend on it.
type OpCounts struct {
	// X25519 counts variable-base scalar multiplications (DH) and the
	// fixed-base one done when a key is built.
	X25519 int64
	// Sign counts Ed25519 signatures and key expansions from a seed (each
	// costs one fixed-base multiplication, as a signature does).
	Sign int64
	// Verify counts Ed25519 verifications.
	Verify int64
	// SignBytes and VerifyBytes sum the lengths of the messages signed and
	// verified (key expansions add nothing): Ed25519 hashes its message
	// with SHA-512, so a long message costs more than the 64-byte one a
	// primitive benchmark signs.
	SignBytes, VerifyBytes int64
}

var opCounts struct {
	x25519, sign, verify, signBytes, verifyBytes atomic.Int64
}

// CountSign records one Ed25519 signature of a message of n bytes, or, with
// n = 0, one key expansion from a seed. Package crypto calls it.
func CountSign(n int) {
	opCounts.sign.Add(1)
	opCounts.signBytes.Add(int64(n))
}

// CountVerify records one Ed25519 verification of a message of n bytes.
// Package crypto calls it.
func CountVerify(n int) {
	opCounts.verify.Add(1)
	opCounts.verifyBytes.Add(int64(n))
}

// ReadOpCounts returns the counts so far. Take two readings and subtract.
func ReadOpCounts() OpCounts {
	return OpCounts{
		X25519: opCounts.x25519.Load(), Sign: opCounts.sign.Load(), Verify: opCounts.verify.Load(),
		SignBytes: opCounts.signBytes.Load(), VerifyBytes: opCounts.verifyBytes.Load(),
	}
}

// Sub returns c − d.
func (c OpCounts) Sub(d OpCounts) OpCounts {
	return OpCounts{
		X25519: c.X25519 - d.X25519, Sign: c.Sign - d.Sign, Verify: c.Verify - d.Verify,
		SignBytes: c.SignBytes - d.SignBytes, VerifyBytes: c.VerifyBytes - d.VerifyBytes,
	}
}
