package xmpp

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Device channel messages: one device's packets to another device, as
// directed chat messages without a body (docs/XMPP.md "Device channel
// messages").
const (
	// nsP2P is the device channel payload element's namespace.
	nsP2P = "https://github.com/mpenc/mpenc/ns/p2p/1"
	// maxDirect bounds a payload (devchan's packets are at most 64 KiB).
	maxDirect = 64 << 10
	nsEME     = "urn:xmpp:eme:0"
	nsHints   = "urn:xmpp:hints"
	nsCarbons = "urn:xmpp:carbons:2"
)

// maxP2PText is the longest <p2p/> text we read: maxDirect in base64.
var maxP2PText = base64.StdEncoding.EncodedLen(maxDirect)

// directMessage is the stanza that carries payload to a device.
func directMessage(to jid.JID, id string, payload []byte) xml.TokenReader {
	empty := func(space, local string, attrs ...xml.Attr) xml.TokenReader {
		return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: space, Local: local}, Attr: attrs})
	}
	return stanza.Message{To: to, ID: id, Type: stanza.ChatMessage}.Wrap(xmlstream.MultiReader(
		xmlstream.Wrap(xmlstream.Token(xml.CharData(base64.StdEncoding.EncodeToString(payload))),
			xml.StartElement{Name: xml.Name{Space: nsP2P, Local: "p2p"}}),
		// XEP-0380: other clients say "encrypted with mpENC device
		// channel" instead of showing nothing; XEP-0334: keep it in the
		// archive, but do not copy it to other resources; XEP-0280: no
		// carbon copies either.
		empty(nsEME, "encryption", xml.Attr{Name: xml.Name{Local: "namespace"}, Value: nsP2P},
			xml.Attr{Name: xml.Name{Local: "name"}, Value: "mpENC device channel"}),
		empty(nsHints, "store"),
		empty(nsHints, "no-copy"),
		empty(nsCarbons, "private"),
	))
}

// SendDirect sends payload (at most 64 KiB: a device channel packet) to
// one device, its full JID, as a chat message without a body. It returns
// once the stanza is written: delivery is not confirmed (the channel's
// own acknowledgements do that). It fails while the account is
// reconnecting ("xmpp: account offline").
func (a *Account) SendDirect(ctx context.Context, to string, payload []byte) error {
	j, err := jid.Parse(to)
	if err != nil || j.Resourcepart() == "" {
		return fmt.Errorf("%w: %q is not a device's full JID", errConfig, to)
	}
	if len(payload) == 0 || len(payload) > maxDirect {
		return fmt.Errorf("%w: a direct payload of %d bytes (1 to %d)", errConfig, len(payload), maxDirect)
	}
	a.mu.Lock()
	cn := a.conn
	a.mu.Unlock()
	if cn == nil {
		return errOffline
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.WriteTimeout)
	defer cancel()
	if err := cn.sess.Send(ctx, directMessage(j, randomID(), payload)); err != nil {
		return fmt.Errorf("xmpp: sending to %s: %w", j, err)
	}
	return nil
}
