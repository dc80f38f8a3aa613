package trust

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/mpenc/mpenc/crypto"
)

// uriScheme is the scheme of the QR code payload: an XMPP URI (RFC 5122).
const uriScheme = "xmpp:"

// uriKeyParam is its query: an XEP-0434 trust message URI for one key
// of the identity keys mpENC members announce (the encryption of
// docs/PROTOCOL.md "Trust messages"), the key in lowercase hex.
const uriKeyParam = "?trust-message;encryption=" + encryption + ";trust="

// maxURISize bounds a URI: a JID escaped in full, and the key.
const maxURISize = len(uriScheme) + 3*maxJIDSize + len(uriKeyParam) + 2*crypto.PublicKeySize

// URI returns the payload of a QR code that authenticates key as the
// account's of member (a bare or full JID: the bare part is used), as an
// XEP-0434 trust message URI:
//
//	xmpp:alice@example.org?trust-message;encryption=https://github.com/mpenc/mpenc/ns/identity/1;trust=<64 lowercase hex digits>
//
// The JID is percent-encoded (uppercase hex) except for ASCII letters,
// digits and "-._~@/", so that a payload has one spelling; a reader must
// accept no other. The client renders the string as a QR code; a scanner
// checks it and then calls Store.Verify (XEP-0434: a URI from a source
// not authenticated needs the user's confirmation).
func URI(member string, key crypto.PublicKey) string {
	member = Bare(member)
	var b strings.Builder
	b.Grow(len(uriScheme) + len(member) + len(uriKeyParam) + 2*len(key))
	b.WriteString(uriScheme)
	const hexdig = "0123456789ABCDEF"
	for i := 0; i < len(member); i++ {
		c := member[i]
		if uriPlain(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexdig[c>>4])
			b.WriteByte(hexdig[c&15])
		}
	}
	b.WriteString(uriKeyParam)
	b.WriteString(hex.EncodeToString(key[:]))
	return b.String()
}

func uriPlain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '@' || c == '/'
}

func unhexUpper(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// parseURI parses a QR code payload made by URI. It is strict: the scheme,
// the canonical escaping, exactly URI's query with one trust parameter of
// 64 lowercase hex digits, a valid bare JID (CheckJID) and a valid key;
// anything else is refused.
func parseURI(s string) (member string, key crypto.PublicKey, err error) {
	bad := func(why string) (string, crypto.PublicKey, error) {
		return "", crypto.PublicKey{}, fmt.Errorf("%w: trust message URI: %s", errInvalid, why)
	}
	if len(s) > maxURISize {
		return bad("too long")
	}
	rest, ok := strings.CutPrefix(s, uriScheme)
	if !ok {
		return bad("not an " + uriScheme + " URI")
	}
	i := strings.IndexByte(rest, '?')
	if i < 0 {
		return bad("no key")
	}
	escaped, query := rest[:i], rest[i:]
	hexKey, ok := strings.CutPrefix(query, uriKeyParam)
	if !ok || len(hexKey) != 2*crypto.PublicKeySize {
		return bad("want one trust parameter of 64 hex digits, nothing else")
	}
	for j := 0; j < len(hexKey); j++ {
		if c := hexKey[j]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return bad("key is not lowercase hex")
		}
	}
	if _, err := hex.Decode(key[:], []byte(hexKey)); err != nil {
		return bad("key is not hex")
	}
	jid := make([]byte, 0, len(escaped))
	for j := 0; j < len(escaped); j++ {
		c := escaped[j]
		switch {
		case uriPlain(c):
			jid = append(jid, c)
		case c == '%':
			if j+2 >= len(escaped) {
				return bad("truncated escape")
			}
			hi, ok1 := unhexUpper(escaped[j+1])
			lo, ok2 := unhexUpper(escaped[j+2])
			if !ok1 || !ok2 {
				return bad("escape is not uppercase hex")
			}
			v := hi<<4 | lo
			if uriPlain(v) {
				return bad("needless escape")
			}
			jid = append(jid, v)
			j += 2
		default:
			return bad("JID character must be escaped")
		}
	}
	member = string(jid)
	if strings.Contains(member, "/") {
		return bad("not a bare JID")
	}
	if err := CheckJID(member); err != nil {
		return "", crypto.PublicKey{}, err
	}
	if err := checkKey(key); err != nil {
		return "", crypto.PublicKey{}, err
	}
	return member, key, nil
}
