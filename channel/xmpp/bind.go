package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

const nsBind = "urn:ietf:params:xml:ns:xmpp-bind"

// bindResource is the client side of resource binding (RFC 6120 §7) asking
// for a given resource.
//
// mellium workaround: in v0.23.0, xmpp.BindResource writes the requested
// resource element with the (still empty) bound JID as its text, so the
// server always picks a random resource. Our participant id is the full
// JID, and it must stay the same across reconnects, so we request the
// resource ourselves.
func bindResource(resource string) mxmpp.StreamFeature {
	return mxmpp.StreamFeature{
		Name:       xml.Name{Space: nsBind, Local: "bind"},
		Necessary:  mxmpp.Authn,
		Prohibited: mxmpp.Ready,
		List: func(context.Context, xmlstream.TokenWriter, xml.StartElement) (bool, error) {
			return true, errors.New("xmpp: bind: client only")
		},
		Parse: func(_ context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, session *mxmpp.Session, _ interface{}) (mxmpp.SessionState, io.ReadWriter, error) {
			id := randomID()
			var inner xml.TokenReader
			if resource != "" {
				inner = xmlstream.Wrap(xmlstream.Token(xml.CharData(resource)), xml.StartElement{Name: xml.Name{Local: "resource"}})
			}
			req := stanza.IQ{ID: id, Type: stanza.SetIQ}.Wrap(
				xmlstream.Wrap(inner, xml.StartElement{Name: xml.Name{Space: nsBind, Local: "bind"}}))
			w := session.TokenWriter()
			_, err := xmlstream.Copy(w, req)
			if err == nil {
				err = w.Flush()
			}
			w.Close()
			if err != nil {
				return 0, nil, err
			}

			r := session.TokenReader()
			defer r.Close()
			d := xml.NewTokenDecoder(r)
			tok, err := d.Token()
			if err != nil {
				return 0, nil, err
			}
			start, ok := tok.(xml.StartElement)
			if !ok || start.Name.Local != "iq" {
				return 0, nil, fmt.Errorf("xmpp: bind: expected an iq, got %T", tok)
			}
			var resp struct {
				stanza.IQ
				Bind struct {
					JID string `xml:"jid"`
				} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
				Err stanza.Error `xml:"error"`
			}
			if err := d.DecodeElement(&resp, &start); err != nil {
				return 0, nil, err
			}
			switch {
			case resp.ID != id:
				return 0, nil, errors.New("xmpp: bind: answer to another request")
			case resp.Type == stanza.ErrorIQ:
				return 0, nil, fmt.Errorf("xmpp: bind: %w", resp.Err)
			case resp.Type != stanza.ResultIQ:
				return 0, nil, errors.New("xmpp: bind: unexpected answer")
			}
			j, err := jid.Parse(resp.Bind.JID)
			if err != nil || j.Resourcepart() == "" {
				return 0, nil, fmt.Errorf("xmpp: bind: bad JID %q", clip(resp.Bind.JID, maxJID))
			}
			session.UpdateAddr(j)
			return mxmpp.Ready, nil, nil
		},
	}
}
