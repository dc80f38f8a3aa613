package xmpp

import (
	"encoding/xml"
	"io"
	"unicode/utf8"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mpenc/mpenc/crypto"
)

// Outgoing stanzas. Each builder returns a fresh token stream.

// joinPresence asks to enter the room as nick, with no history replay
// (XEP-0045 §7.2.14, maxstanzas='0'), announcing our identity key and
// label.
func joinPresence(occupant jid.JID, id string, a announcement) xml.TokenReader {
	mucX := xmlstream.Wrap(
		xmlstream.Wrap(nil, xml.StartElement{
			Name: xml.Name{Local: "history"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "maxstanzas"}, Value: "0"}},
		}),
		xml.StartElement{Name: xml.Name{Space: nsMUC, Local: "x"}},
	)
	payload := mucX
	if a.key != (crypto.PublicKey{}) {
		payload = xmlstream.MultiReader(mucX, identityElement(a))
	}
	return stanza.Presence{To: occupant, ID: id}.Wrap(payload)
}

// leavePresence leaves the room.
func leavePresence(occupant jid.JID, id string) xml.TokenReader {
	return stanza.Presence{To: occupant, ID: id, Type: stanza.UnavailablePresence}.Wrap(nil)
}

// groupchat is a message to the whole room.
func groupchat(room jid.JID, id, body string) xml.TokenReader {
	return stanza.Message{To: room, ID: id, Type: stanza.GroupChatMessage}.Wrap(
		xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}}),
	)
}

// invitation asks the room to invite to (a bare or full JID) on our behalf:
// a mediated invitation (XEP-0045 §7.8.2), a normal message to the room
// with the invitee and a reason. The room forwards it with our JID.
func invitation(room jid.JID, id, to, reason string) xml.TokenReader {
	var why xml.TokenReader
	if reason != "" {
		why = xmlstream.Wrap(xmlstream.Token(xml.CharData(reason)), xml.StartElement{Name: xml.Name{Local: "reason"}})
	}
	return stanza.Message{To: room, ID: id, Type: stanza.NormalMessage}.Wrap(
		xmlstream.Wrap(
			xmlstream.Wrap(why, xml.StartElement{
				Name: xml.Name{Local: "invite"},
				Attr: []xml.Attr{{Name: xml.Name{Local: "to"}, Value: to}},
			}),
			xml.StartElement{Name: xml.Name{Space: nsMUCUser, Local: "x"}},
		),
	)
}

// kickPayload removes the occupant nick (XEP-0045 §8.2: role none).
func kickPayload(nick, reason string) xml.TokenReader {
	var why xml.TokenReader
	if reason != "" {
		why = xmlstream.Wrap(xmlstream.Token(xml.CharData(reason)), xml.StartElement{Name: xml.Name{Local: "reason"}})
	}
	return xmlstream.Wrap(
		xmlstream.Wrap(why, xml.StartElement{
			Name: xml.Name{Local: "item"},
			Attr: []xml.Attr{
				{Name: xml.Name{Local: "nick"}, Value: nick},
				{Name: xml.Name{Local: "role"}, Value: "none"},
			},
		}),
		xml.StartElement{Name: xml.Name{Space: nsMUCAdmin, Local: "query"}},
	)
}

// nonAnonymousForm submits the room configuration that shows real JIDs to
// every occupant (XEP-0045 §10.1.3, muc#roomconfig_whois = anyone). Only
// that field is submitted: the others keep their values.
func nonAnonymousForm() xml.TokenReader {
	field := func(v, value string) xml.TokenReader {
		return xmlstream.Wrap(
			xmlstream.Wrap(xmlstream.Token(xml.CharData(value)), xml.StartElement{Name: xml.Name{Local: "value"}}),
			xml.StartElement{Name: xml.Name{Local: "field"}, Attr: []xml.Attr{{Name: xml.Name{Local: "var"}, Value: v}}},
		)
	}
	return xmlstream.Wrap(
		xmlstream.Wrap(
			xmlstream.MultiReader(
				field("FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig"),
				field("muc#roomconfig_whois", "anyone"),
			),
			xml.StartElement{
				Name: xml.Name{Space: nsDataForms, Local: "x"},
				Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "submit"}},
			},
		),
		xml.StartElement{Name: xml.Name{Space: nsMUCOwner, Local: "query"}},
	)
}

// discoInfoQuery asks an entity for its identity and features (XEP-0030);
// we send it to the room to learn whether it exists.
func discoInfoQuery() xml.TokenReader {
	return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: nsDiscoInfo, Local: "query"}})
}

// stanzaSize returns the number of bytes r encodes to, as the session will
// write it (give or take the namespace declaration the session adds, which
// the size limit's margin covers).
func stanzaSize(r xml.TokenReader) (int, error) {
	var n countWriter
	e := xml.NewEncoder(&n)
	if _, err := xmlstream.Copy(e, r); err != nil {
		return 0, err
	}
	if err := e.Flush(); err != nil {
		return 0, err
	}
	return int(n), nil
}

type countWriter int

func (w *countWriter) Write(b []byte) (int, error) {
	*w += countWriter(len(b))
	return len(b), nil
}

var _ io.Writer = (*countWriter)(nil)

// xmlSafe reports whether s survives an XML round trip unchanged: valid
// UTF-8 made only of XML 1.0 characters (§2.2), without CR, which parsers
// normalise to LF. encoding/xml would silently replace anything else, and a
// changed body would change an mpENC packet's id.
func xmlSafe(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		switch {
		case r == 0x09 || r == 0x0A:
		case r >= 0x20 && r <= 0xD7FF:
		case r >= 0xE000 && r <= 0xFFFD:
		case r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
		i += size
	}
	return true
}
