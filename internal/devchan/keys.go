package devchan

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

// Contexts: every hash, MAC and KDF of the channel starts with its own.
const (
	ctxKeyDigest  = "mpenc/v1/p2p-ek"
	ctxTranscript = "mpenc/v1/p2p-th"
	ctxKeys       = "mpenc/v1/p2p-keys"
	ctxMessage    = "mpenc/v1/p2p-msg"
	ctxSAS        = "mpenc/v1/p2p-sas"
	ctxVerifyMAC  = "mpenc/v1/p2p-verify-mac"
	ctxConfirmA   = "initiator confirms"
	ctxConfirmB   = "responder confirms"
)

// Digest is the published digest of an ephemeral X25519 public key:
// SHA-256(ctxKeyDigest ‖ key). Its first 8 bytes are the key's id.
func Digest(key [32]byte) [32]byte {
	return crypto.Hash([]byte(ctxKeyDigest), key[:])
}

// IDOf is the id of a digest.
func IDOf(digest [32]byte) KeyID { return KeyID(digest[:8]) }

// Party is one side of a session, as both sides name it.
type Party struct {
	Account  string // bare JID
	Device   DeviceID
	Identity crypto.PublicKey
}

// transcriptHash binds the session to both identities, devices, accounts
// and ephemeral keys: th = SHA-256(ctx ‖ IK_A ‖ IK_B ‖ AE ‖ BE ‖ A.id ‖
// B.id ‖ len(JID_A) ‖ JID_A ‖ len(JID_B) ‖ JID_B), lengths 2 bytes.
func transcriptHash(a, b *Party, ae, be [32]byte) [32]byte {
	jid := func(s string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...)
	}
	return crypto.Hash([]byte(ctxTranscript), a.Identity[:], b.Identity[:], ae[:], be[:], a.Device[:], b.Device[:], jid(a.Account), jid(b.Account))
}

// keys are what one handshake derives.
type keys struct {
	chainAB, chainBA   [32]byte // message chains: initiator → responder, and back
	confirmA, confirmB [32]byte // confirmation MAC keys
	sas                [32]byte // the short authentication string's key
}

func (k *keys) zero() {
	clear(k.chainAB[:])
	clear(k.chainBA[:])
	clear(k.confirmA[:])
	clear(k.confirmB[:])
	clear(k.sas[:])
}

// deriveKeys runs HKDF-SHA256 over the three DH values with th as salt.
func deriveKeys(dh1, dh2, dh3 [32]byte, th [32]byte) (keys, error) {
	ikm := make([]byte, 0, 96)
	ikm = append(append(append(ikm, dh1[:]...), dh2[:]...), dh3[:]...)
	defer clear(ikm)
	out, err := primitive.HKDF(ikm, th[:], ctxKeys, 160)
	if err != nil {
		return keys{}, err
	}
	defer clear(out)
	var k keys
	copy(k.chainAB[:], out[0:])
	copy(k.chainBA[:], out[32:])
	copy(k.confirmA[:], out[64:])
	copy(k.confirmB[:], out[96:])
	copy(k.sas[:], out[128:])
	return k, nil
}

func mac(key [32]byte, parts ...[]byte) [32]byte {
	m := hmac.New(sha256.New, key[:])
	for _, p := range parts {
		m.Write(p)
	}
	return [32]byte(m.Sum(nil))
}

// confirmation is one side's proof that it derived the same keys.
func confirmation(key [32]byte, label string, th [32]byte) [32]byte {
	return mac(key, []byte(label), th[:])
}

// step advances a chain: the message key of this step and the next chain
// key (a hash ratchet: a message key never yields an earlier one, so a
// key used and erased protects the messages before it).
func step(chain [32]byte) (messageKey, next [32]byte) {
	return mac(chain, []byte{1}), mac(chain, []byte{2})
}

// aead builds the AES-256-GCM key and nonce of a message key.
func aead(messageKey [32]byte) (cipher.AEAD, []byte, error) {
	kn, err := primitive.HKDF(messageKey[:], nil, ctxMessage, 32+12)
	if err != nil {
		return nil, nil, err
	}
	defer clear(kn[:32])
	block, err := aes.NewCipher(kn[:32])
	if err != nil {
		return nil, nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, err
	}
	return g, kn[32:], nil
}

// SASWords is the number of words of the short authentication string.
const SASWords = 5

// SASSize is the size of the word list the indices index (the EFF short
// word list #2 has 1,296 words: 5 words carry 51.7 bits).
const SASSize = 1296

// sasIndices turns the SAS key into SASWords indices below SASSize.
func sasIndices(sasKey [32]byte) [SASWords]int {
	b, _ := primitive.HKDF(sasKey[:], nil, ctxSAS, 8)
	v := binary.BigEndian.Uint64(b)
	var out [SASWords]int
	for i := range out {
		out[i] = int(v % SASSize)
		v /= SASSize
	}
	return out
}
