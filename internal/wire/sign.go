package wire

import (
	"github.com/mpenc/mpenc/crypto"
)

// Signature contexts of mpENC/1: fixed prefixes that keep a signature made
// for one packet type from being valid for another.
const (
	greetSigContext = "greetmsgsig"
	dataSigContext  = "datamsgsig"
	errorSigContext = "errormsgsig"
)

func withContext(ctx string, parts ...[]byte) []byte {
	n := len(ctx)
	for _, p := range parts {
		n += len(p)
	}
	m := make([]byte, 0, n)
	m = append(m, ctx...)
	for _, p := range parts {
		m = append(m, p...)
	}
	return m
}

// SignGreet signs "greetmsgsig" ‖ signed with the ephemeral key k.
func SignGreet(k *crypto.SigningKey, signed []byte) crypto.Signature {
	return k.Sign(withContext(greetSigContext, signed))
}

// VerifyGreet verifies a greeting signature.
func VerifyGreet(pub crypto.PublicKey, signed []byte, sig *crypto.Signature) bool {
	return crypto.Verify(pub, withContext(greetSigContext, signed), sig)
}

// SidKeyHash returns SHA256(sid ‖ groupKey), which binds a data signature to
// one subsession; its first byte is the SIDKEY_HINT.
func SidKeyHash(sid, groupKey []byte) [32]byte { return crypto.Hash(sid, groupKey) }

// SignData signs "datamsgsig" ‖ sidKeyHash ‖ signed with the ephemeral key k.
func SignData(k *crypto.SigningKey, sidKeyHash *[32]byte, signed []byte) crypto.Signature {
	return k.Sign(withContext(dataSigContext, sidKeyHash[:], signed))
}

// VerifyData verifies a data signature.
func VerifyData(pub crypto.PublicKey, sidKeyHash *[32]byte, signed []byte, sig *crypto.Signature) bool {
	return crypto.Verify(pub, withContext(dataSigContext, sidKeyHash[:], signed), sig)
}

// SignError signs "errormsgsig" ‖ signed with k.
func SignError(k *crypto.SigningKey, signed []byte) crypto.Signature {
	return k.Sign(withContext(errorSigContext, signed))
}

// VerifyError verifies an error signature.
func VerifyError(pub crypto.PublicKey, signed []byte, sig *crypto.Signature) bool {
	return crypto.Verify(pub, withContext(errorSigContext, signed), sig)
}
