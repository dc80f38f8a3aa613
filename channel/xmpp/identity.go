package xmpp

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmlstream"

	"github.com/mpenc/mpenc/crypto"
)

// NSIdentity is the namespace of the identity announcement we put in our
// room presence (docs/XMPP.md):
//
//	<identity xmlns='https://github.com/mpenc/mpenc/ns/identity/1'
//	          alg='ed25519'>BASE64(32-byte public key)</identity>
const NSIdentity = "https://github.com/mpenc/mpenc/ns/identity/1"

// identityAlg is the only algorithm defined; other values are ignored so the
// element can grow new key types without breaking old readers.
const identityAlg = "ed25519"

// identityTextLen is the length of the canonical text: padded standard
// base64 of 32 bytes.
var identityTextLen = base64.StdEncoding.EncodedLen(crypto.PublicKeySize)

var errIdentity = errors.New("xmpp: malformed identity announcement")

// Identity is the identity announcement payload. Its zero value holds the
// zero key.
type Identity struct {
	Key crypto.PublicKey
}

func (id Identity) start() xml.StartElement {
	return xml.StartElement{
		Name: xml.Name{Space: NSIdentity, Local: "identity"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "alg"}, Value: identityAlg}},
	}
}

// TokenReader satisfies xmlstream.Marshaler.
func (id Identity) TokenReader() xml.TokenReader {
	return xmlstream.Wrap(
		xmlstream.Token(xml.CharData(base64.StdEncoding.EncodeToString(id.Key[:]))),
		id.start(),
	)
}

// WriteXML satisfies xmlstream.WriterTo.
func (id Identity) WriteXML(w xmlstream.TokenWriter) (int, error) {
	return xmlstream.Copy(w, id.TokenReader())
}

// MarshalXML satisfies xml.Marshaler.
func (id Identity) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	if _, err := id.WriteXML(e); err != nil {
		return err
	}
	return e.Flush()
}

// UnmarshalXML satisfies xml.Unmarshaler. It is strict: the alg attribute
// must be "ed25519", the content exactly the canonical base64 of 32 bytes,
// with no child elements. On error the key is cleared.
func (id *Identity) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	id.Key = crypto.PublicKey{}
	var text []byte
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(text)+len(t) > identityTextLen {
				_ = d.Skip()
				return errIdentity
			}
			text = append(text, t...)
		case xml.StartElement:
			_ = d.Skip() // the child
			_ = d.Skip() // the rest of the identity element
			return errIdentity
		case xml.EndElement:
			key, err := parseIdentity(start.Attr, string(text))
			if err != nil {
				return err
			}
			id.Key = key
			return nil
		}
	}
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
	return key, nil
}
