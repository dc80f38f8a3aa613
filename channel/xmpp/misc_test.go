package xmpp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/crypto"
)

func encode(t testing.TB, r xml.TokenReader) string {
	t.Helper()
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	if _, err := xmlstream.Copy(e, r); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestIdentityRoundTrip(t *testing.T) {
	got := encode(t, identityElement(announcement{key: testKeyA}))
	want := fmt.Sprintf(`<identity xmlns="%s" alg="ed25519">%s</identity>`, nsIdentity, base64.StdEncoding.EncodeToString(testKeyA[:]))
	if got != want {
		t.Fatalf("encoded:\n%s\nwant\n%s", got, want)
	}
	// What we announce is what the receive path reads.
	st := mustDecode(t, `<presence xmlns='jabber:client' from='r@muc.example/a'>`+got+`</presence>`)
	if !st.HasIdentity || !st.IdentityOK || st.Identity != testKeyA {
		t.Fatalf("decoded: has %v ok %v key %x", st.HasIdentity, st.IdentityOK, st.Identity[:4])
	}
}

// TestIdentityStrict: the receive path refuses every identity
// announcement but the canonical one. (Child elements inside <identity/>
// are skipped, not refused: only the text counts.)
func TestIdentityStrict(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(testKeyA[:])
	// A canonical encoding with non-zero padding bits is not canonical.
	nonCanon := good[:len(good)-2] + "B="
	b64 := func(k [32]byte) string { return base64.StdEncoding.EncodeToString(k[:]) }
	identityPoint := [32]byte{1}
	// 0xc7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a,
	// a point of order 8 (the list of small-order points in
	// internal/primitive's tests).
	order8 := [32]byte{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
		0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a}
	yIsP := [32]byte{0xed}
	for i := 1; i < 31; i++ {
		yIsP[i] = 0xff
	}
	yIsP[31] = 0x7f
	for i, s := range []string{
		`<identity xmlns='%[1]s' alg='ed448'>%[2]s</identity>`,
		`<identity xmlns='%[1]s'>%[2]s</identity>`,
		`<identity xmlns='%[1]s' alg='ed25519'>%[2]sAAAA</identity>`,
		`<identity xmlns='%[1]s' alg='ed25519'> %[2]s</identity>`,
		`<identity xmlns='%[1]s' alg='ed25519'>` + nonCanon + `</identity>`,
		`<identity xmlns='%[1]s' alg='ed25519'>` + strings.Replace(good, "A", "\n", 1) + `</identity>`,
		`<identity xmlns='%[1]s' alg='ed25519'></identity>`,
		// The identity point (small order: anyone can sign under it).
		`<identity xmlns='%[1]s' alg='ed25519'>` + b64(identityPoint) + `</identity>`,
		// A point of order 8.
		`<identity xmlns='%[1]s' alg='ed25519'>` + b64(order8) + `</identity>`,
		// y = p: not reduced, a non-canonical encoding of y = 0.
		`<identity xmlns='%[1]s' alg='ed25519'>` + b64(yIsP) + `</identity>`,
	} {
		el := fmt.Sprintf(s, nsIdentity, good)
		st := mustDecode(t, `<presence xmlns='jabber:client' from='r@muc.example/a'>`+el+`</presence>`)
		if !st.HasIdentity || st.IdentityOK || st.Identity != (crypto.PublicKey{}) {
			t.Errorf("%d: accepted %q (ok %v key %x)", i, el, st.IdentityOK, st.Identity[:4])
		}
	}
}

func TestOutgoingStanzas(t *testing.T) {
	room := jid.MustParse("r@muc.example")
	occ := jid.MustParse("r@muc.example/nick")
	p := encode(t, joinPresence(occ, "id1", announcement{key: testKeyA}))
	for _, want := range []string{`to="r@muc.example/nick"`, `<history maxstanzas="0">`, `xmlns="http://jabber.org/protocol/muc"`, nsIdentity} {
		if !strings.Contains(p, want) {
			t.Errorf("join presence %s lacks %s", p, want)
		}
	}
	if p := encode(t, joinPresence(occ, "id1", announcement{})); strings.Contains(p, nsIdentity) {
		t.Errorf("the zero key was announced: %s", p)
	}
	// The join presence decodes back into what the room expects of us.
	st := mustDecode(t, strings.Replace(encode(t, joinPresence(occ, "id1", announcement{key: testKeyA})), "<presence", "<presence xmlns='jabber:client' from='r@muc.example/nick'", 1))
	if !st.IdentityOK || st.Identity != testKeyA {
		t.Fatalf("own announcement does not decode: %+v", st)
	}
	if p := encode(t, leavePresence(occ, "id2")); !strings.Contains(p, `type="unavailable"`) {
		t.Errorf("leave presence %s", p)
	}
	m := encode(t, groupchat(room, "id3", "a<b&c"))
	if m != `<message type="groupchat" to="r@muc.example" id="id3"><body>a&lt;b&amp;c</body></message>` {
		t.Errorf("groupchat %s", m)
	}
	n, err := stanzaSize(groupchat(room, "id3", "a<b&c"))
	if err != nil || n != len(m) {
		t.Errorf("stanzaSize %d %v, encoded %d", n, err, len(m))
	}
	if k := encode(t, kickPayload("bad'nick", "")); !strings.Contains(k, `nick="bad&#39;nick"`) || !strings.Contains(k, `role="none"`) || strings.Contains(k, "reason") {
		t.Errorf("kick %s", k)
	}
	if k := encode(t, kickPayload("n", "left & came <back>")); !strings.Contains(k, `<reason>left &amp; came &lt;back&gt;</reason></item>`) {
		t.Errorf("kick with a reason %s", k)
	}
	inv := encode(t, invitation(room, "id4", "b@example.org", "a&b"))
	if inv != `<message type="normal" to="r@muc.example" id="id4"><x xmlns="http://jabber.org/protocol/muc#user"><invite to="b@example.org"><reason>a&amp;b</reason></invite></x></message>` {
		t.Errorf("invitation %s", inv)
	}
	if inv := encode(t, invitation(room, "id5", "b@example.org", "")); strings.Contains(inv, "reason") {
		t.Errorf("invitation without a reason %s", inv)
	}
	f := encode(t, nonAnonymousForm())
	for _, want := range []string{`type="submit"`, `var="muc#roomconfig_whois"`, `<value>anyone</value>`, `http://jabber.org/protocol/muc#roomconfig`} {
		if !strings.Contains(f, want) {
			t.Errorf("config form %s lacks %s", f, want)
		}
	}
}

func TestXMLSafe(t *testing.T) {
	for s, want := range map[string]bool{
		"?mpENC:QUFB.":  true,
		"tab\tand\nlf":  true,
		"snow ☃ 𝄞":      true,
		"nul \x00":      false,
		"cr \r":         false,
		"bell \x07":     false,
		"bad \xff utf8": false,
		"\uFFFE":        false,
		"\uFFFD":        true,
	} {
		if got := xmlSafe(s); got != want {
			t.Errorf("xmlSafe(%q) = %v", s, got)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	base := Config{JID: "me@example.org", Password: "pw"}
	if _, err := base.validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, tc := range map[string]struct {
		mod  func(*Config)
		want error
	}{
		"no local part":      {func(c *Config) { c.JID = "example.org" }, errConfig},
		"no password":        {func(c *Config) { c.Password = "" }, errConfig},
		"bad addr":           {func(c *Config) { c.Addr = "nohostport" }, errConfig},
		"plaintext remote":   {func(c *Config) { c.Security = UnsafePlaintext; c.Addr = "192.0.2.1:5222" }, errInsecure},
		"plaintext no addr":  {func(c *Config) { c.Security = UnsafePlaintext }, errInsecure},
		"skip verify remote": {func(c *Config) { c.UnsafeSkipVerify = true; c.Addr = "xmpp.example.org:5222" }, errInsecure},
		"huge stanza limit":  {func(c *Config) { c.MaxStanzaSize = 300 << 10 }, errConfig},
		"unknown security":   {func(c *Config) { c.Security = 9 }, errConfig},
	} {
		c := base
		tc.mod(&c)
		if _, err := c.validate(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	for _, addr := range []string{"127.0.0.1:5222", "[::1]:5222", "localhost:1", "127.1.2.3:9"} {
		c := base
		c.Security, c.Addr = UnsafePlaintext, addr
		if _, err := c.validate(); err != nil {
			t.Errorf("loopback %s refused: %v", addr, err)
		}
	}
	r := jid.MustParse("r@muc.example.org")
	for nick, ok := range map[string]bool{"n": true, "alice/laptop": true, "": false, "bad\x00": false} {
		if err := checkNick(r, nick); (err == nil) != ok || (err != nil && !errors.Is(err, errConfig)) {
			t.Errorf("nick %q: %v", nick, err)
		}
	}
	s, _ := base.validate()
	if s.tls.ServerName != "example.org" || s.tls.InsecureSkipVerify || s.MaxStanzaSize != defaultMaxStanzaSize {
		t.Errorf("defaults: %+v", s.tls)
	}
}

func TestConfigRedactsPassword(t *testing.T) {
	c := Config{JID: "me@example.org", Password: "hunter2-secret", Security: DirectTLS}
	const want = `xmpp.Config{JID:"me@example.org" Addr:"" Security:directtls Password:[redacted]}`
	for _, s := range []string{
		fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s %q %x %X %d %t", c, c, c, c, c, c, c, c, c), fmt.Sprint(&c),
		fmt.Sprintf("%+v %#v", struct{ C Config }{c}, struct{ C Config }{c}), fmt.Sprintf("%v", []*Config{&c}),
	} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, hex.EncodeToString([]byte("hunter2"))) {
			t.Fatalf("password printed: %s", s)
		}
	}
	// The text is what String and GoString used to give, padded as asked.
	for format, out := range map[string]string{
		"%v": want, "%+v": want, "%#v": want, "%s": want,
		"%q":      strconv.Quote(want),
		"%x":      hex.EncodeToString([]byte(want)),
		"%.13s":   want[:13],
		"%-120v|": want + strings.Repeat(" ", 120-len(want)) + "|",
	} {
		if got := fmt.Sprintf(format, c); got != out {
			t.Errorf("%s: %s, want %s", format, got, out)
		}
	}
}

func TestErrors(t *testing.T) {
	var err error = &stanzaTooLargeError{Size: 10, Limit: 5}
	if !errors.Is(err, errStanzaTooLarge) {
		t.Fatal("StanzaTooLargeError is not ErrStanzaTooLarge")
	}
	if !permanent(fmt.Errorf("x: %w", ErrAuth)) || permanent(errors.New("i/o timeout")) {
		t.Fatal("permanent")
	}
	if !permanent(&roomError{Condition: "forbidden"}) || permanent(&roomError{Condition: "item-not-found"}) {
		t.Fatal("room error permanence")
	}
}

// TestInviteRefusesBeforeSending: an invalid invitee or reason, or a
// channel out of the room, fails without writing anything (there is no
// connection to write to here).
func TestInviteRefusesBeforeSending(t *testing.T) {
	c := &Channel{addr: jid.MustParse("r@muc.example"), room: newRoom(jid.MustParse("r@muc.example"), "a@example.org/x", 0)}
	ctx := context.Background()
	for _, to := range []string{"", "muc.example", "a@b@c", "@example.org"} {
		if err := c.Invite(ctx, to, "hi"); err == nil {
			t.Errorf("invitee %q accepted", to)
		}
	}
	for _, reason := range []string{"bad\x00", "cr\r", strings.Repeat("x", maxInviteReason+1)} {
		if err := c.Invite(ctx, "b@example.org", reason); !errors.Is(err, errInvalidBody) {
			t.Errorf("reason %q: %v", reason, err)
		}
	}
	if err := c.Invite(ctx, "b@example.org", "hi"); !errors.Is(err, errNotInRoom) {
		t.Errorf("out of the room: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Invite(cancelled, "b@example.org", "hi"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestInvitationsQueued(t *testing.T) {
	a := &Account{cfg: &settings{Config: Config{OnInvitation: func(Invitation) {}}}, rooms: map[string]*Channel{"r@muc.example": {}}}
	mediated := func(room string) *inStanza {
		return mustDecode(t, fmt.Sprintf(`<message xmlns='jabber:client' from='%s' id='i'><x xmlns='http://jabber.org/protocol/muc#user'><invite from='alice@example.org'/></x></message>`, room))
	}
	if _, ok := a.invitationLocked(mediated("r@muc.example")); ok { // a room we have a channel for: nothing to tell
		t.Fatal("an invitation to our own room")
	}
	got, ok := a.invitationLocked(mediated("other@muc.example"))
	if want := (Invitation{Room: "other@muc.example", From: "alice@example.org", ID: "i"}); !ok || got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	a.cfg.OnInvitation = nil // nobody wants them
	if _, ok := a.invitationLocked(mediated("other@muc.example")); ok {
		t.Fatal("an invitation nobody asked for")
	}
	if s := a.invStats; s.Invites != 1 || s.InvitesDropped != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// signedLabel is an announcement of testKey(n)'s device labelled label.
func signedLabel(n byte, label string) announcement {
	sk := crypto.NewSigningKey([32]byte(bytes.Repeat([]byte{n}, 32)))
	return announcement{key: sk.Public(), label: label, sig: sk.Sign(labelMessage(label))}
}

// TestLabelAnnouncement: a label travels with its signature, decodes back,
// and only well-formed labels are read; the signature itself is checked
// by the room (TestRoomLabels).
func TestLabelAnnouncement(t *testing.T) {
	a := signedLabel(5, "laptop")
	if a.key != testKey(5) {
		t.Fatal("test keys disagree")
	}
	el := encode(t, identityElement(a))
	st := mustDecode(t, `<presence xmlns='jabber:client' from='r@muc.example/a'>`+el+`</presence>`)
	if !st.IdentityOK || st.Identity != a.key || st.Label != "laptop" || st.LabelSig != a.sig || !checkLabel(st.Identity, st.Label, &st.LabelSig) {
		t.Fatalf("decoded %+v from %s", st, el)
	}
	sig := base64.StdEncoding.EncodeToString(a.sig[:])
	key := base64.StdEncoding.EncodeToString(a.key[:])
	for _, attrs := range []string{
		`label='laptop'`,                     // no signature
		`labelsig='` + sig + `'`,             // no label
		`label='' labelsig='` + sig + `'`,    // empty
		`label='   ' labelsig='` + sig + `'`, // blank
		`label='` + strings.Repeat("x", maxLabel+1) + `' labelsig='` + sig + `'`,
		`label='a&#x85;b' labelsig='` + sig + `'`,            // control character
		`label='a&#x202E;b' labelsig='` + sig + `'`,          // bidi override
		`label='laptop' labelsig='` + sig[:len(sig)-4] + `'`, // short
		`label='laptop' labelsig='` + strings.Repeat("!", len(sig)) + `'`,
	} {
		el := fmt.Sprintf(`<identity xmlns='%s' alg='ed25519' %s>%s</identity>`, nsIdentity, attrs, key)
		st := mustDecode(t, `<presence xmlns='jabber:client' from='r@muc.example/a'>`+el+`</presence>`)
		if !st.IdentityOK || st.Label != "" {
			t.Errorf("%s: identity ok %v, label %q", attrs, st.IdentityOK, st.Label)
		}
	}
	// The configuration signs our label with the caller's function, and
	// refuses a signer of another key or a bad label.
	sk := crypto.NewSigningKey([32]byte(bytes.Repeat([]byte{5}, 32)))
	base := Config{JID: "me@example.org", Password: "pw", Identity: sk.Public(), Label: "laptop", Sign: sk.Sign}
	s, err := base.validate()
	if err != nil || s.announce != a {
		t.Fatalf("validate: %v, %+v", err, s.announce)
	}
	other := crypto.NewSigningKey([32]byte(bytes.Repeat([]byte{6}, 32)))
	for name, mod := range map[string]func(*Config){
		"other key": func(c *Config) { c.Sign = other.Sign },
		"no signer": func(c *Config) { c.Sign = nil },
		"no key":    func(c *Config) { c.Identity = crypto.PublicKey{} },
		"bad label": func(c *Config) { c.Label = "a\nb" },
	} {
		c := base
		mod(&c)
		if _, err := c.validate(); !errors.Is(err, errConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
