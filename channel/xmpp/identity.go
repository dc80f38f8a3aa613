package xmpp

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmlstream"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

// nsIdentity is the namespace of the identity announcement we put in our
// room presence (docs/XMPP.md):
//
//	<identity xmlns='https://github.com/mpenc/mpenc/ns/identity/1'
//	          alg='ed25519'>BASE64(32-byte public key)</identity>
const nsIdentity = "https://github.com/mpenc/mpenc/ns/identity/1"

// identityAlg is the only algorithm defined; other values are ignored so the
// element can grow new key types without breaking old readers.
const identityAlg = "ed25519"

// identityTextLen is the length of the canonical text: padded standard
// base64 of 32 bytes.
var identityTextLen = base64.StdEncoding.EncodedLen(crypto.PublicKeySize)

var errIdentity = errors.New("xmpp: malformed identity announcement")

// identityElement is our identity announcement, carrying key.
func identityElement(key crypto.PublicKey) xml.TokenReader {
	return xmlstream.Wrap(
		xmlstream.Token(xml.CharData(base64.StdEncoding.EncodeToString(key[:]))),
		xml.StartElement{
			Name: xml.Name{Space: nsIdentity, Local: "identity"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "alg"}, Value: identityAlg}},
		},
	)
}

// parseIdentity checks the alg attribute and decodes the key text.
func parseIdentity(attrs []xml.Attr, text string) (crypto.PublicKey, error) {
	var key crypto.PublicKey
	alg := ""
	for _, a := range attrs {
		if a.Name.Local == "alg" && a.Name.Space == "" {
			alg = a.Value
		}
	}
	if alg != identityAlg {
		return key, fmt.Errorf("%w: alg %.16q", errIdentity, alg)
	}
	if len(text) != identityTextLen {
		return key, fmt.Errorf("%w: %d bytes of text", errIdentity, len(text))
	}
	b, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil || len(b) != crypto.PublicKeySize {
		return key, fmt.Errorf("%w: not base64 of %d bytes", errIdentity, crypto.PublicKeySize)
	}
	copy(key[:], b)
	// A small-order or non-canonical key lets anyone sign as its holder:
	// no honest client announces one (docs/PROTOCOL.md §7).
	if err := primitive.CheckEd25519PublicKey(key); err != nil {
		return crypto.PublicKey{}, fmt.Errorf("%w: %w", errIdentity, err)
	}
	return key, nil
}
