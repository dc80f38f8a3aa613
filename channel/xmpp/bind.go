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
//
// Stream management (sm.go) rides on this feature, as XEP-0198 places it
// around resource binding: where the server offers it, a lost session is
// resumed in place of binding, and a new one enabled after binding.
func bindResource(origin jid.JID, sm *smNegotiation) mxmpp.StreamFeature {
	resource := origin.Resourcepart()
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
			_, offered := session.Feature(nsSM)
			offered = offered && sm.wire != nil && sm.window >= 0
			if offered && sm.prev != nil && sm.prev.resumable() {
				ok, err := smResume(ctx, session, sm.wire, sm.prev, &sm.early)
				if err != nil {
					return 0, nil, err
				}
				if ok {
					session.UpdateAddr(origin)
					sm.session, sm.resumed = sm.prev, true
					return mxmpp.Ready, nil, nil
				}
			}
			j, err := bindIQ(session, resource)
			if err != nil {
				return 0, nil, err
			}
			session.UpdateAddr(j)
			if offered {
				m, err := smEnable(ctx, session, sm.wire, sm.window, &sm.early)
				if err != nil {
					return 0, nil, err
				}
				sm.session = m
			}
			return mxmpp.Ready, nil, nil
		},
	}
}

// bindIQ requests resource (the server picks one when empty) and returns
// the full JID bound.
func bindIQ(session *mxmpp.Session, resource string) (jid.JID, error) {
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
		return jid.JID{}, err
	}

	r := session.TokenReader()
	defer r.Close()
	d := xml.NewTokenDecoder(r)
	tok, err := d.Token()
	if err != nil {
		return jid.JID{}, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok || start.Name.Local != "iq" {
		return jid.JID{}, fmt.Errorf("xmpp: bind: expected an iq, got %T", tok)
	}
	var resp struct {
		stanza.IQ
		Bind struct {
			JID string `xml:"jid"`
		} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
		Err stanza.Error `xml:"error"`
	}
	if err := d.DecodeElement(&resp, &start); err != nil {
		return jid.JID{}, err
	}
	switch {
	case resp.ID != id:
		return jid.JID{}, errors.New("xmpp: bind: answer to another request")
	case resp.Type == stanza.ErrorIQ:
		return jid.JID{}, fmt.Errorf("xmpp: bind: %w", resp.Err)
	case resp.Type != stanza.ResultIQ:
		return jid.JID{}, errors.New("xmpp: bind: unexpected answer")
	}
	j, err := jid.Parse(resp.Bind.JID)
	if err != nil || j.Resourcepart() == "" {
		return jid.JID{}, fmt.Errorf("xmpp: bind: bad JID %q", clip(resp.Bind.JID, maxJID))
	}
	return j, nil
}
