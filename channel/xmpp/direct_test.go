package xmpp

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"strings"
	"testing"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
)

func directText(t *testing.T, payload []byte) string {
	t.Helper()
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	if _, err := xmlstream.Copy(e, directMessage(jid.MustParse("bob@example.org/mpenc-1"), "id1", payload)); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(b.String(), "<message ", "<message from='alice@example.org/mpenc-2' ", 1)
}

// TestDirectMessage: a device channel message reads back as its payload,
// with the hints that keep it out of other clients' views; one that
// breaks a rule carries no payload.
func TestDirectMessage(t *testing.T) {
	payload := []byte("\x01\x03packet bytes")
	text := directText(t, payload)
	for _, want := range []string{`type="chat"`, `xmlns="` + nsEME + `"`, `<no-copy xmlns="urn:xmpp:hints">`, `<store xmlns="urn:xmpp:hints">`, `<private xmlns="urn:xmpp:carbons:2">`} {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %s", text, want)
		}
	}
	if strings.Contains(text, "<body") {
		t.Error("a body: other clients would show it")
	}
	st := mustDecode(t, text)
	if !bytes.Equal(st.P2P, payload) || st.P2PBad || st.Type != "chat" {
		t.Fatalf("decoded %q bad=%v type %q", st.P2P, st.P2PBad, st.Type)
	}
	b64 := base64.StdEncoding.EncodeToString(payload)
	p2p := func(s string) string { return "<p2p xmlns='" + nsP2P + "'>" + s + "</p2p>" }
	for name, body := range map[string]string{
		"two payloads": p2p(b64) + p2p(b64),
		"not base64":   p2p("!!"),
		"empty":        p2p(""),
		"oversized":    p2p(base64.StdEncoding.EncodeToString(make([]byte, maxDirect+3))),
	} {
		st := mustDecode(t, "<message xmlns='jabber:client' from='a@b/c' type='chat'>"+body+"</message>")
		if st.P2P != nil || !st.P2PBad {
			t.Errorf("%s: payload %d bytes, bad %v", name, len(st.P2P), st.P2PBad)
		}
	}
	st = mustDecode(t, "<presence xmlns='jabber:client' from='a@b/c'>"+p2p(b64)+"</presence>")
	if st.P2P != nil {
		t.Error("a payload read from a presence")
	}
}
