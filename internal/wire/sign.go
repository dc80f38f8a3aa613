package wire

import (
	"sync"

	"github.com/mpenc/mpenc/crypto"
)

// Signature contexts of mpENC/1: fixed prefixes that keep a signature made
// for one packet type from being valid for another.
const (
	greetSigContext = "greetmsgsig"
	dataSigContext  = "datamsgsig"
	errorSigContext = "errormsgsig"
)

// sigInputs pools the buffers that hold ctx ‖ parts while a signature is
// made or checked: greetings of many members are kilobytes long, and every
// member checks every packet.
var sigInputs = sync.Pool{New: func() any { return new([]byte) }}

// withContext calls f with ctx ‖ parts in a pooled buffer, which must not be
// kept after f returns.
func withContext[T any](f func(m []byte) T, ctx string, parts ...[]byte) T {
	bp := sigInputs.Get().(*[]byte)
	m := append((*bp)[:0], ctx...)
	for _, p := range parts {
		m = append(m, p...)
	}
	r := f(m)
	if cap(m) <= MaxPacketSize+64 {
		*bp = m
		sigInputs.Put(bp)
	}
	return r
}

// SignGreet signs "greetmsgsig" ‖ signed with the ephemeral key k.
func SignGreet(k *crypto.SigningKey, signed []byte) crypto.Signature {
	return withContext(k.Sign, greetSigContext, signed)
}

// VerifyGreet verifies a greeting signature.
func VerifyGreet(pub crypto.PublicKey, signed []byte, sig *crypto.Signature) bool {
	return withContext(func(m []byte) bool { return crypto.Verify(pub, m, sig) }, greetSigContext, signed)
}

// SidKeyHash returns SHA256(sid ‖ groupKey), which binds a data signature to
// one subsession; its first byte is the SIDKEY_HINT.
func SidKeyHash(sid, groupKey []byte) [32]byte { return crypto.Hash(sid, groupKey) }

// SignData signs "datamsgsig" ‖ sidKeyHash ‖ signed with the ephemeral key k.
func SignData(k *crypto.SigningKey, sidKeyHash *[32]byte, signed []byte) crypto.Signature {
	return withContext(k.Sign, dataSigContext, sidKeyHash[:], signed)
}

// VerifyData verifies a data signature.
func VerifyData(pub crypto.PublicKey, sidKeyHash *[32]byte, signed []byte, sig *crypto.Signature) bool {
	return withContext(func(m []byte) bool { return crypto.Verify(pub, m, sig) }, dataSigContext, sidKeyHash[:], signed)
}

// SignError signs "errormsgsig" ‖ signed with k.
func SignError(k *crypto.SigningKey, signed []byte) crypto.Signature {
	return withContext(k.Sign, errorSigContext, signed)
}

// VerifyError verifies an error signature.
func VerifyError(pub crypto.PublicKey, signed []byte, sig *crypto.Signature) bool {
	return withContext(func(m []byte) bool { return crypto.Verify(pub, m, sig) }, errorSigContext, signed)
}
