package keysync

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// Namespace is the namespace of KeySync messages on the wire
// (docs/PROTOCOL.md "KeySync"): one element, carried as a device channel
// payload.
const Namespace = "https://github.com/mpenc/mpenc/ns/keysync/1"

// maxPayload bounds what a message carries (what the group shares), and
// maxEncoded a whole encoded message.
const (
	maxPayload = 16 << 10
	maxEncoded = 2*maxPayload + 512
)

// ErrMalformed is returned (wrapped) by Decode.
var ErrMalformed = errors.New("keysync: malformed message")

// names are the wire names of the messages.
var names = map[Event]string{
	Beacon: "Beacon", NegotiationRequest: "NegotiationRequest", NegotiationOpen: "NegotiationOpen",
	Rollback: "Rollback", CommitReject: "CommitReject", CommitAcceptOfferer: "CommitAcceptOfferer",
	CommitAcceptRequester: "CommitAcceptRequester", CommitAccept: "CommitAccept",
	CommitAcceptForGroup: "CommitAcceptForGroup", GroupTrustThisKey: "GroupTrustThisKey",
	GroupKeys: "GroupKeys", OwnKeysOfferer: "OwnKeysOfferer", OwnKeysRequester: "OwnKeysRequester",
	LeaveGroup: "LeaveGroup",
}

// hasNegotiation reports whether messages of type t name their
// negotiation: all but Beacon and LeaveGroup, which belong to none.
func hasNegotiation(t Event) bool { return t != Beacon && t != LeaveGroup }

// Encode writes m as one element:
//
//	<keysync xmlns='…/ns/keysync/1' type='NegotiationRequest' challenge='32 hex' negotiation='32 hex' group='1'>Base64 payload</keysync>
//
// challenge only for Beacon and NegotiationRequest, negotiation for every
// message but Beacon and LeaveGroup, group only for NegotiationRequest.
func Encode(m Message) ([]byte, error) {
	name, ok := names[m.Type]
	if !ok {
		return nil, fmt.Errorf("keysync: %v is not a message", m.Type)
	}
	if len(m.Payload) > maxPayload {
		return nil, fmt.Errorf("keysync: a payload of %d bytes, more than %d", len(m.Payload), maxPayload)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "<keysync xmlns='%s' type='%s'", Namespace, name)
	if m.Type == Beacon || m.Type == NegotiationRequest {
		fmt.Fprintf(&b, " challenge='%x'", m.Challenge[:])
	}
	if hasNegotiation(m.Type) {
		fmt.Fprintf(&b, " negotiation='%x'", m.Negotiation[:])
	}
	if m.Type == NegotiationRequest && m.IsGroup {
		b.WriteString(" group='1'")
	}
	b.WriteString(">")
	b.WriteString(base64.StdEncoding.EncodeToString(m.Payload))
	b.WriteString("</keysync>")
	return b.Bytes(), nil
}

// Decode reads one message as Encode writes it, strictly: the size first,
// then one element in the namespace with a known type, exactly the
// attributes that type has, 32 lowercase hex digits each, and a payload
// of standard Base64 (nothing else inside).
func Decode(p []byte) (Message, error) {
	bad := func(why string) (Message, error) { return Message{}, fmt.Errorf("%w: %s", ErrMalformed, why) }
	if len(p) > maxEncoded {
		return bad("too long")
	}
	d := xml.NewDecoder(bytes.NewReader(p))
	var start xml.StartElement
	for {
		t, err := d.Token()
		if err != nil {
			return bad("no element")
		}
		if s, ok := t.(xml.StartElement); ok {
			start = s
			break
		}
		if c, ok := t.(xml.CharData); !ok || len(bytes.TrimSpace(c)) > 0 {
			return bad("something before the element")
		}
	}
	if start.Name.Space != Namespace || start.Name.Local != "keysync" {
		return bad("not a keysync element")
	}
	var m Message
	var haveChallenge, haveNegotiation, group bool
	tid := func(v string) (TID, bool) {
		var t TID
		if len(v) != 32 {
			return t, false
		}
		for i := range len(v) {
			if c := v[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return t, false
			}
		}
		_, err := hex.Decode(t[:], []byte(v))
		return t, err == nil
	}
	for _, a := range start.Attr {
		if a.Name.Space != "" && a.Name.Local != "xmlns" {
			return bad("a foreign attribute")
		}
		var ok bool
		switch a.Name.Local {
		case "xmlns":
			continue
		case "type":
			for e, n := range names {
				if n == a.Value {
					m.Type = e
				}
			}
			ok = m.Type != 0
		case "challenge":
			m.Challenge, ok = tid(a.Value)
			ok = ok && !haveChallenge
			haveChallenge = true
		case "negotiation":
			m.Negotiation, ok = tid(a.Value)
			ok = ok && !haveNegotiation
			haveNegotiation = true
		case "group":
			ok = a.Value == "1" && !group
			group, m.IsGroup = true, true
		}
		if !ok {
			return bad("attribute " + a.Name.Local)
		}
	}
	if m.Type == 0 || haveChallenge != (m.Type == Beacon || m.Type == NegotiationRequest) ||
		haveNegotiation != hasNegotiation(m.Type) || (group && m.Type != NegotiationRequest) {
		return bad("attributes do not fit the type")
	}
	var text []byte
	for {
		t, err := d.Token()
		if err != nil {
			return bad("unterminated")
		}
		switch t := t.(type) {
		case xml.CharData:
			text = append(text, t...)
			if len(text) > 2*maxPayload {
				return bad("payload too long")
			}
			continue
		case xml.EndElement:
		default:
			return bad("something inside the element")
		}
		break
	}
	for {
		t, err := d.Token()
		if err == io.EOF {
			break
		}
		if c, ok := t.(xml.CharData); err != nil || !ok || len(bytes.TrimSpace(c)) > 0 {
			return bad("something after the element")
		}
	}
	pl, err := base64.StdEncoding.DecodeString(string(text))
	if err != nil || len(pl) > maxPayload {
		return bad("payload")
	}
	if len(pl) > 0 {
		m.Payload = pl
	}
	return m, nil
}
