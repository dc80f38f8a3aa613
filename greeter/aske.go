package greeter

import (
	"cmp"
	"slices"

	"github.com/mpenc/mpenc/crypto"
)

// sessionSigContext prefixes the ASKE authenticator message (design
// document 5.2.2, "acksig").
const sessionSigContext = "acksig"

// SessionID computes the ASKE session id
//
//	sid = SHA256(pid_σ1 ‖ … ‖ pid_σn ‖ k_σ1 ‖ … ‖ k_σn)
//
// where σ sorts the participant ids byte-wise (the reference sorts by UTF-16
// code unit over byte strings, which is the same order) and nonces[i] is the
// nonce of members[i]. There are no separators: that is the reference's
// encoding, ambiguous in theory, kept for wire compatibility.
func SessionID(members []string, nonces [][]byte) [32]byte {
	idx := make([]int, len(members))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(members[a], members[b]) })
	parts := make([][]byte, 0, 2*len(members))
	for _, i := range idx {
		parts = append(parts, []byte(members[i]))
	}
	for _, i := range idx {
		parts = append(parts, nonces[i])
	}
	return crypto.Hash(parts...)
}

// sessionSigDigest is SHA256("acksig" ‖ pid ‖ E ‖ k ‖ sid): the reference
// signs this digest, where the design document says the message itself.
func sessionSigDigest(pid string, eph crypto.PublicKey, nonce []byte, sid [32]byte) [32]byte {
	return crypto.Hash([]byte(sessionSigContext), []byte(pid), eph[:], nonce, sid[:])
}

// SignSession makes member pid's ASKE session signature with its static
// identity key: Ed25519_static(SHA256("acksig" ‖ pid ‖ E ‖ k ‖ sid)).
func SignSession(static *crypto.SigningKey, pid string, eph crypto.PublicKey, nonce []byte, sid [32]byte) crypto.Signature {
	d := sessionSigDigest(pid, eph, nonce, sid)
	return static.Sign(d[:])
}

// VerifySession checks member pid's session signature against its static
// public key.
func VerifySession(static crypto.PublicKey, pid string, eph crypto.PublicKey, nonce []byte, sid [32]byte, sig *crypto.Signature) bool {
	d := sessionSigDigest(pid, eph, nonce, sid)
	return crypto.Verify(static, d[:], sig)
}
