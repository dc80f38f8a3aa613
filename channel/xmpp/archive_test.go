package xmpp

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
)

func mamStanza(queryID, to, inner string) string {
	return `<message xmlns='jabber:client' to='me@example.org/mpenc-1'><result xmlns='urn:xmpp:mam:2' queryid='` + queryID + `' id='A1'>` +
		`<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-12-07T10:00:00Z'/>` +
		`<message xmlns='jabber:client' from='bob@example.org/mpenc-2' to='` + to + `' type='chat'>` + inner + `</message>` +
		`</forwarded></result></message>`
}

// TestArchiveResults: an archived device channel packet to this device,
// answering our query, is taken; one for another query, another device,
// or without a payload is not; the archive's id is noted either way.
func TestArchiveResults(t *testing.T) {
	p2p := "<p2p xmlns='" + nsP2P + "'>AQID</p2p>"
	a := &Account{cfg: &settings{}, self: jid.MustParse("me@example.org/mpenc-1")}
	a.cfg.account = a.self.Bare()
	cases := []struct {
		name, stanza string
		want         bool
	}{
		{"ours", mamStanza("q1", "me@example.org/mpenc-1", p2p), true},
		{"another query", mamStanza("q2", "me@example.org/mpenc-1", p2p), false},
		{"another device", mamStanza("q1", "me@example.org/mpenc-9", p2p), false},
		{"no payload", mamStanza("q1", "me@example.org/mpenc-1", "<body>hi</body>"), false},
		{"two payloads", mamStanza("q1", "me@example.org/mpenc-1", p2p+p2p), false},
	}
	for _, c := range cases {
		a.archive = &archiveQuery{id: "q1", deliver: true}
		st := mustDecode(t, c.stanza)
		if st.MAM == nil {
			t.Fatalf("%s: no result decoded", c.name)
		}
		from, payload, ok := a.archivedLocked(st)
		if ok != c.want {
			t.Errorf("%s: taken %v", c.name, ok)
		}
		if ok && (from != "bob@example.org/mpenc-2" || !bytes.Equal(payload, []byte{1, 2, 3})) {
			t.Errorf("%s: from %s, payload %x", c.name, from, payload)
		}
		if c.name != "another query" && a.archive.last != "A1" {
			t.Errorf("%s: archive id %q not noted", c.name, a.archive.last)
		}
	}
	// While finding the archive's end, nothing is delivered.
	a.archive = &archiveQuery{id: "q1"}
	if _, _, ok := a.archivedLocked(mustDecode(t, mamStanza("q1", "me@example.org/mpenc-1", p2p))); ok {
		t.Error("a result delivered while only finding the end")
	}
}

func TestParseFin(t *testing.T) {
	complete, last, err := parseFin([]byte(`<iq type='result'><fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><first>a</first><last>z9</last></set></fin></iq>`))
	if err != nil || !complete || last != "z9" {
		t.Fatalf("%v %q %v", complete, last, err)
	}
	complete, last, err = parseFin([]byte(`<iq type='result'><fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'/></fin></iq>`))
	if err != nil || complete || last != "" {
		t.Fatalf("empty page: %v %q %v", complete, last, err)
	}
	if _, _, err := parseFin([]byte(`<iq type='error'><error type='cancel'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)); err == nil || !strings.Contains(err.Error(), "feature-not-implemented") {
		t.Fatalf("refusal: %v", err)
	}
	// A position the archive no longer has (XEP-0313 §5.1.2).
	if _, _, err := parseFin([]byte(`<iq type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)); !errors.Is(err, errArchivePosition) {
		t.Fatalf("an unknown position: %v", err)
	}
	for _, bad := range []string{"", `<iq type='result'/>`, `<iq type='result'><fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><last>` + strings.Repeat("x", maxArchiveID+1) + `</last></set></fin></iq>`} {
		if _, _, err := parseFin([]byte(bad)); err == nil {
			t.Errorf("%.40q accepted", bad)
		}
	}
}
