package xmpp

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"mellium.im/xmlstream"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

// nsIdentity is the namespace of the identity announcement we put in our
// room presence (docs/XMPP.md, docs/PROTOCOL.md "Devices"):
//
//	<identity xmlns='https://github.com/mpenc/mpenc/ns/identity/1'
//	          alg='ed25519' label='laptop' labelsig='BASE64(64-byte signature)'
//	          >BASE64(32-byte public key)</identity>
//
// label and labelsig are optional, and present together: the device's
// label, signed by its identity key over labelContext ‖ label, so that the
// server cannot rename someone's device.
const nsIdentity = "https://github.com/mpenc/mpenc/ns/identity/1"

// identityAlg is the only algorithm defined; other values are ignored so the
// element can grow new key types without breaking old readers.
const identityAlg = "ed25519"

// identityTextLen is the length of the canonical text: padded standard
// base64 of 32 bytes.
var identityTextLen = base64.StdEncoding.EncodedLen(crypto.PublicKeySize)

var errIdentity = errors.New("xmpp: malformed identity announcement")

// labelContext separates label signatures from every other signature made
// with an identity key (mpENC's own messages start otherwise).
const labelContext = "mpenc/v1/device-label\x00"

// maxLabel caps a device label (bytes).
const maxLabel = 32

// labelSigTextLen is the length of a label signature's text: padded
// standard base64 of 64 bytes.
var labelSigTextLen = base64.StdEncoding.EncodedLen(len(crypto.Signature{}))

// labelMessage is what a device signs to announce label.
func labelMessage(label string) []byte {
	return append([]byte(labelContext), label...)
}

// validLabel reports whether l can be a device label: 1 to maxLabel bytes
// of UTF-8 without control characters, not blank.
func validLabel(l string) bool {
	if l == "" || len(l) > maxLabel || !utf8.ValidString(l) || strings.TrimSpace(l) == "" {
		return false
	}
	for _, r := range l {
		if unicode.IsControl(r) || r == utf8.RuneError || r == '\u2028' || r == '\u2029' ||
			unicode.Is(unicode.Cf, r) { // format characters: bidi overrides and the like
			return false
		}
	}
	return true
}

// announcement is what our presence says of this device: its identity
// key and, optionally, its label with the key's signature over it.
type announcement struct {
	key   crypto.PublicKey
	label string
	sig   crypto.Signature
}

// identityElement is our identity announcement.
func identityElement(a announcement) xml.TokenReader {
	attrs := []xml.Attr{{Name: xml.Name{Local: "alg"}, Value: identityAlg}}
	if a.label != "" {
		attrs = append(attrs,
			xml.Attr{Name: xml.Name{Local: "label"}, Value: a.label},
			xml.Attr{Name: xml.Name{Local: "labelsig"}, Value: base64.StdEncoding.EncodeToString(a.sig[:])})
	}
	return xmlstream.Wrap(
		xmlstream.Token(xml.CharData(base64.StdEncoding.EncodeToString(a.key[:]))),
		xml.StartElement{Name: xml.Name{Space: nsIdentity, Local: "identity"}, Attr: attrs},
	)
}

// parseLabel reads the label and its signature from an identity element's
// attributes, with the cheap checks only: a valid label and a signature
// of the right form. The signature is checked against the announced key
// later, and only when the label is new for its occupant (checkLabel).
func parseLabel(attrs []xml.Attr) (label string, sig crypto.Signature, ok bool) {
	var text string
	for _, a := range attrs {
		switch {
		case a.Name.Space != "":
		case a.Name.Local == "label":
			label = a.Value
		case a.Name.Local == "labelsig":
			text = a.Value
		}
	}
	if !validLabel(label) || len(text) != labelSigTextLen {
		return "", sig, false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil || len(b) != len(sig) {
		return "", sig, false
	}
	copy(sig[:], b)
	return label, sig, true
}

// checkLabel reports whether sig is key's signature of label.
func checkLabel(key crypto.PublicKey, label string, sig *crypto.Signature) bool {
	return crypto.Verify(key, labelMessage(label), sig)
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
