package primitive

import "crypto/ed25519"

// SignatureSize is the size of an Ed25519 signature (crypto.Signature), as
// the wire codec checks it.
const SignatureSize = ed25519.SignatureSize // 64
