package xmpp

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/crypto"
)

// decodeString decodes one stanza from XML text the way the receive loop
// does: the start element, then its inner tokens and its end element.
func decodeString(s string) (*inStanza, error) {
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if start, ok := tok.(xml.StartElement); ok {
			return decodeStanza(start, xmlstream.InnerElement(d))
		}
	}
}

func mustDecode(t testing.TB, s string) *inStanza {
	t.Helper()
	st, err := decodeString(s)
	if err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return st
}

// testKey returns the public key of the Ed25519 seed {n, n, ...}: a real
// key, as the identity decoder refuses small-order and non-canonical ones.
func testKey(n byte) crypto.PublicKey {
	seed := bytes.Repeat([]byte{n}, ed25519.SeedSize)
	return crypto.PublicKey(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
}

var testKeyA = testKey(1)

func identityEl(k crypto.PublicKey) string {
	return fmt.Sprintf(`<identity xmlns='%s' alg='ed25519'>%s</identity>`, nsIdentity, base64.StdEncoding.EncodeToString(k[:]))
}

func TestDecodeStanza(t *testing.T) {
	const room = "r@muc.example"
	tests := []struct {
		in   string
		want inStanza
	}{
		0: {
			in: `<message xmlns='jabber:client' from='r@muc.example/alice' type='groupchat' id='m1'><body>?mpENC:AAAA.</body></message>`,
			want: inStanza{Kind: kindMessage, From: jid.MustParse(room + "/alice"), FromOK: true, Type: "groupchat", ID: "m1",
				HasBody: true, Body: "?mpENC:AAAA."},
		},
		1: { // history is marked delayed; only the first body counts
			in: `<message xmlns='jabber:client' from='r@muc.example/a' type='groupchat'><body>one</body><body xml:lang='de'>zwei</body><delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:08:25Z'/></message>`,
			want: inStanza{Kind: kindMessage, From: jid.MustParse(room + "/a"), FromOK: true, Type: "groupchat",
				HasBody: true, Body: "one", Delayed: true},
		},
		// The room's own history mark, from the room: delayed. Stream
		// management's mark on a stanza it resends (Prosody: from our
		// own account): live.
		12: {
			in: `<message xmlns='jabber:client' from='r@muc.example/a' type='groupchat'><body>old</body><delay xmlns='urn:xmpp:delay' from='r@muc.example' stamp='2002-09-10T23:08:25Z'/></message>`,
			want: inStanza{Kind: kindMessage, From: jid.MustParse(room + "/a"), FromOK: true, Type: "groupchat",
				HasBody: true, Body: "old", Delayed: true},
		},
		13: {
			in: `<message xmlns='jabber:client' from='r@muc.example/a' type='groupchat'><body>resent</body><delay xmlns='urn:xmpp:delay' from='me@example.org' stamp='2026-12-07T14:26:17Z'/></message>`,
			want: inStanza{Kind: kindMessage, From: jid.MustParse(room + "/a"), FromOK: true, Type: "groupchat",
				HasBody: true, Body: "resent"},
		},
		2: { // a subject without a body; escaped text
			in:   `<message xmlns='jabber:client' from='r@muc.example' type='groupchat'><subject>a &amp; b</subject></message>`,
			want: inStanza{Kind: kindMessage, From: jid.MustParse(room), FromOK: true, Type: "groupchat", HasSubject: true},
		},
		3: { // self-presence with status codes, item and identity
			in: `<presence xmlns='jabber:client' from='r@muc.example/me'><x xmlns='http://jabber.org/protocol/muc#user'><item jid='me@example.org/dev' affiliation='owner' role='moderator'/><status code='110'/><status code='100'/><status code='201'/></x>` + identityEl(testKeyA) + `</presence>`,
			want: inStanza{Kind: kindPresence, From: jid.MustParse(room + "/me"), FromOK: true,
				HasMUCUser: true, Item: &mucItem{JID: "me@example.org/dev", Role: "moderator", Affiliation: "owner"}, Status: []int{110, 100, 201},
				HasIdentity: true, IdentityOK: true, Identity: testKeyA},
		},
		4: { // a presence error
			in: `<presence xmlns='jabber:client' from='r@muc.example/me' type='error'><x xmlns='http://jabber.org/protocol/muc'/><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>nick in use</text></error></presence>`,
			want: inStanza{Kind: kindPresence, From: jid.MustParse(room + "/me"), FromOK: true, Type: "error",
				ErrCondition: "conflict", ErrText: "nick in use"},
		},
		5: { // bad status codes, a nick change, a destroy
			in: `<presence xmlns='jabber:client' from='r@muc.example/old' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item nick='new' jid='a@b/c'/><item nick='ignored'/><status code='303'/><status code='abc'/><status code='1000'/><status code='99'/><destroy/></x></presence>`,
			want: inStanza{Kind: kindPresence, From: jid.MustParse(room + "/old"), FromOK: true, Type: "unavailable",
				HasMUCUser: true, Item: &mucItem{JID: "a@b/c", Nick: "new"}, Status: []int{303}, Destroyed: true},
		},
		6: { // a malformed from, a bad identity
			in:   `<presence xmlns='jabber:client' from='@@@'><identity xmlns='` + nsIdentity + `' alg='ed25519'>AAAA</identity></presence>`,
			want: inStanza{Kind: kindPresence, HasIdentity: true},
		},
		7: { // two identities: neither counts
			in:   `<presence xmlns='jabber:client' from='r@muc.example/x'>` + identityEl(testKeyA) + identityEl(testKey(9)) + `</presence>`,
			want: inStanza{Kind: kindPresence, From: jid.MustParse(room + "/x"), FromOK: true, HasIdentity: true},
		},
		8: { // text of nested elements inside a body is not body text; wrong namespaces are not ours
			in:   `<message xmlns='jabber:client' from='r@muc.example/a' type='groupchat'><body>a<b>x</b>c</body><x xmlns='urn:other'><status code='110'/></x><delay xmlns='urn:not-delay'/></message>`,
			want: inStanza{Kind: kindMessage, From: jid.MustParse(room + "/a"), FromOK: true, Type: "groupchat", HasBody: true, Body: "ac"},
		},
		10: { // a mediated invitation (XEP-0045 §7.8.2); only the first counts
			in: `<message xmlns='jabber:client' from='other@muc.example' id='i1'><x xmlns='http://jabber.org/protocol/muc#user'><invite from='alice@example.org/x'><reason>come &amp; see</reason><other/></invite><invite from='bob@example.org'/><password>pw</password></x></message>`,
			want: inStanza{Kind: kindMessage, From: jid.MustParse("other@muc.example"), FromOK: true, ID: "i1",
				HasMUCUser: true, Invite: &inInvite{From: "alice@example.org/x", Reason: "come & see"}},
		},
		11: { // a direct invitation (XEP-0249)
			in: `<message xmlns='jabber:client' from='alice@example.org/x'><x xmlns='jabber:x:conference' jid='other@muc.example' reason='hi' password='pw'/></message>`,
			want: inStanza{Kind: kindMessage, From: jid.MustParse("alice@example.org/x"), FromOK: true,
				Invite: &inInvite{Direct: true, Room: "other@muc.example", Reason: "hi"}},
		},
		9: { // an IQ: only the envelope is looked at
			in:   `<iq xmlns='jabber:client' from='example.org' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`,
			want: inStanza{Kind: kindIQ, From: jid.MustParse("example.org"), FromOK: true, Type: "get", ID: "p"},
		},
		14: { // a history service request (issue [N])
			in: `<iq xmlns='jabber:client' from='a@example.org/r' type='set' id='h1'><request xmlns='https://github.com/mpenc/mpenc/ns/history/1'>AQI=</request></iq>`,
			want: inStanza{Kind: kindIQ, From: jid.MustParse("a@example.org/r"), FromOK: true, Type: "set", ID: "h1",
				HistoryRequest: []byte{1, 2}},
		},
		15: { // two requests in one IQ: neither is taken
			in:   `<iq xmlns='jabber:client' from='a@example.org/r' type='set' id='h1'><request xmlns='https://github.com/mpenc/mpenc/ns/history/1'>AQI=</request><request xmlns='https://github.com/mpenc/mpenc/ns/history/1'>AQI=</request></iq>`,
			want: inStanza{Kind: kindIQ, From: jid.MustParse("a@example.org/r"), FromOK: true, Type: "set", ID: "h1", HistoryBad: true},
		},
		16: { // not base64; and an id too long to answer
			in:   `<iq xmlns='jabber:client' from='a@example.org/r' type='set' id='` + strings.Repeat("i", maxIQID+1) + `'><request xmlns='https://github.com/mpenc/mpenc/ns/history/1'>A!I=</request></iq>`,
			want: inStanza{Kind: kindIQ, From: jid.MustParse("a@example.org/r"), FromOK: true, Type: "set", IDTooLong: true, HistoryBad: true},
		},
		17: { // a request in an IQ get is not read
			in:   `<iq xmlns='jabber:client' from='a@example.org/r' type='get' id='h1'><request xmlns='https://github.com/mpenc/mpenc/ns/history/1'>AQI=</request></iq>`,
			want: inStanza{Kind: kindIQ, From: jid.MustParse("a@example.org/r"), FromOK: true, Type: "get", ID: "h1"},
		},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got := mustDecode(t, tc.in)
			if !reflect.DeepEqual(*got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestInvitationOf(t *testing.T) {
	const mediated = `<message xmlns='jabber:client' from='%s' type='%s' id='i'><x xmlns='http://jabber.org/protocol/muc#user'><invite from='%s'><reason>r</reason></invite></x></message>`
	const direct = `<message xmlns='jabber:client' from='%s' type='%s'><x xmlns='jabber:x:conference' jid='%s' reason='r'/></message>`
	tests := []struct {
		in   string
		want *Invitation
	}{
		0: {fmt.Sprintf(mediated, "room@muc.example", "", "alice@example.org/dev"),
			&Invitation{Room: "room@muc.example", From: "alice@example.org", Reason: "r", ID: "i"}},
		1: {fmt.Sprintf(mediated, "room@muc.example", "normal", "not a jid@@"),
			&Invitation{Room: "room@muc.example", Reason: "r", ID: "i"}},
		2: {fmt.Sprintf(mediated, "room@muc.example/nick", "", "alice@example.org"), nil}, // not from a room
		3: {fmt.Sprintf(mediated, "muc.example", "", "alice@example.org"), nil},           // a service, not a room
		4: {fmt.Sprintf(mediated, "room@muc.example", "error", "alice@example.org"), nil}, // our own invitation bounced
		5: {fmt.Sprintf(mediated, "room@muc.example", "groupchat", "alice@example.org"), nil},
		6: {fmt.Sprintf(direct, "alice@example.org/dev", "", "room@muc.example"),
			&Invitation{Room: "room@muc.example", From: "alice@example.org", Reason: "r", Direct: true}},
		7:  {fmt.Sprintf(direct, "alice@example.org/dev", "", "room@muc.example/nick"), nil},
		8:  {fmt.Sprintf(direct, "alice@example.org/dev", "", "muc.example"), nil},
		9:  {fmt.Sprintf(direct, "alice@example.org/dev", "error", "room@muc.example"), nil},
		10: {`<message xmlns='jabber:client' type='normal'><x xmlns='jabber:x:conference' jid='room@muc.example'/></message>`, nil}, // no sender
	}
	for i, tc := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got, ok := invitationOf(mustDecode(t, tc.in))
			switch {
			case tc.want == nil && ok:
				t.Fatalf("accepted %+v", got)
			case tc.want != nil && !ok:
				t.Fatal("refused")
			case tc.want != nil && got != *tc.want:
				t.Fatalf("got  %+v\nwant %+v", got, *tc.want)
			}
		})
	}
	// A room relaying an occupant's stanza: the room's invitation wins over
	// a direct one the occupant put in; a direct one relayed alone by a
	// room is not taken.
	st := mustDecode(t, `<message xmlns='jabber:client' from='room@muc.example'><x xmlns='jabber:x:conference' jid='evil@muc.example'/><x xmlns='http://jabber.org/protocol/muc#user'><invite from='alice@example.org'/></x></message>`)
	if inv, ok := invitationOf(st); !ok || inv.Direct || inv.Room != "room@muc.example" || inv.From != "alice@example.org" {
		t.Fatalf("both kinds: %+v %v", inv, ok)
	}
	st = mustDecode(t, `<message xmlns='jabber:client' from='room@muc.example/mallory' type='chat'><x xmlns='jabber:x:conference' jid='evil@muc.example'/><x xmlns='http://jabber.org/protocol/muc#user'/></message>`)
	if inv, ok := invitationOf(st); ok {
		t.Fatalf("a direct invitation relayed by a room: %+v", inv)
	}
	// A reason over the cap is dropped in a mediated invitation, cut in a
	// direct one (an attribute, already read whole by the XML decoder).
	long := strings.Repeat("x", maxInviteReason+1)
	st = mustDecode(t, fmt.Sprintf(`<message xmlns='jabber:client' from='room@muc.example'><x xmlns='http://jabber.org/protocol/muc#user'><invite><reason>%s</reason></invite></x></message>`, long))
	if st.Invite == nil || st.Invite.Reason != "" {
		t.Fatalf("mediated: %+v", st.Invite)
	}
	st = mustDecode(t, fmt.Sprintf(`<message xmlns='jabber:client' from='a@b/c'><x xmlns='jabber:x:conference' jid='room@muc.example' reason='%s'/></message>`, long))
	if st.Invite == nil || len(st.Invite.Reason) != maxInviteReason {
		t.Fatalf("direct: %d bytes", len(st.Invite.Reason))
	}
}

func TestDecodeCaps(t *testing.T) {
	// A body over the cap is flagged, not kept.
	long := `<message xmlns='jabber:client' from='r@m/a' type='groupchat'><body>` + strings.Repeat("x", maxBody+1) + `</body></message>`
	st := mustDecode(t, long)
	if !st.HasBody || !st.BodyTooLong || st.Body != "" {
		t.Fatalf("long body: HasBody %v TooLong %v len %d", st.HasBody, st.BodyTooLong, len(st.Body))
	}
	exact := `<message xmlns='jabber:client' from='r@m/a' type='groupchat'><body>` + strings.Repeat("x", maxBody) + `</body></message>`
	if st := mustDecode(t, exact); st.BodyTooLong || len(st.Body) != maxBody {
		t.Fatalf("body at the cap: TooLong %v len %d", st.BodyTooLong, len(st.Body))
	}
	// Deep nesting and many tokens stop the walk without an error.
	deep := `<message xmlns='jabber:client' from='r@m/a' type='groupchat'>` + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + `<body>late</body></message>`
	if st := mustDecode(t, deep); !st.Truncated || st.HasBody {
		t.Fatalf("deep: truncated %v body %v", st.Truncated, st.HasBody)
	}
	many := `<message xmlns='jabber:client' from='r@m/a' type='groupchat'>` + strings.Repeat("<a/>", maxTokens) + `<body>late</body></message>`
	if st := mustDecode(t, many); !st.Truncated || st.HasBody {
		t.Fatalf("many: truncated %v body %v", st.Truncated, st.HasBody)
	}
	codes := `<presence xmlns='jabber:client' from='r@m/a'><x xmlns='http://jabber.org/protocol/muc#user'>` + strings.Repeat("<status code='110'/>", 100) + `</x></presence>`
	if st := mustDecode(t, codes); len(st.Status) != maxStatus {
		t.Fatalf("%d status codes kept", len(st.Status))
	}
	longAttr := `<presence xmlns='jabber:client' from='r@m/a' type='` + strings.Repeat("t", 1000) + `'/>`
	if st := mustDecode(t, longAttr); len(st.Type) != maxAttr {
		t.Fatalf("type of %d bytes kept", len(st.Type))
	}
}

func TestDecodeNotStanza(t *testing.T) {
	for _, s := range []string{
		`<features xmlns='http://etherx.jabber.org/streams'/>`,
		`<message xmlns='urn:other'/>`,
		`<r xmlns='urn:xmpp:sm:3'/>`,
	} {
		if _, err := decodeString(s); !errors.Is(err, errNotStanza) {
			t.Errorf("%s: %v, want errNotStanza", s, err)
		}
	}
}

// A stream that breaks inside a stanza is an error, not a stanza.
func TestDecodeBrokenStream(t *testing.T) {
	if _, err := decodeString(`<message xmlns='jabber:client' from='r@m/a'><body>abc`); err == nil {
		t.Fatal("no error for a truncated stream")
	}
}

func TestClip(t *testing.T) {
	if got := clip("héllo", 2); got != "h" {
		t.Fatalf("clip at a rune boundary: %q", got)
	}
	if got := clip("abc", 5); got != "abc" {
		t.Fatalf("clip short: %q", got)
	}
}
