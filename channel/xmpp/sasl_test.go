package xmpp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"
)

func mechNames(ms []sasl.Mechanism) string {
	var n []string
	for _, m := range ms {
		n = append(n, m.Name)
	}
	return strings.Join(n, " ")
}

// TestLoginMechanisms: channel binding only where it is known to work, for
// every TLS version, advertisement (XEP-0440) and the require switch.
func TestLoginMechanisms(t *testing.T) {
	tls13 := &tls.ConnectionState{Version: tls.VersionTLS13}
	tls12 := &tls.ConnectionState{Version: tls.VersionTLS12, TLSUnique: []byte{1, 2, 3}}
	tls12NoUnique := &tls.ConnectionState{Version: tls.VersionTLS12}
	none := cbOffer{}
	exporter := cbOffer{advertised: true, types: []string{"tls-server-end-point", cbExporter}}
	unique := cbOffer{advertised: true, types: []string{cbUnique}}
	both := cbOffer{advertised: true, types: []string{cbUnique, cbExporter}}
	endPoint := cbOffer{advertised: true, types: []string{"tls-server-end-point"}}
	empty := cbOffer{advertised: true}
	withPlus := []string{"PLAIN", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"}
	withoutPlus := []string{"PLAIN", "SCRAM-SHA-1"}

	const (
		plain = "SCRAM-SHA-256 SCRAM-SHA-1"
		all   = "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-1"
		plus  = "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS"
	)
	for _, c := range []struct {
		name    string
		cs      *tls.ConnectionState
		offer   cbOffer
		remote  []string
		require bool
		noPlus  bool
		want    string // mechanisms, or the error's text when it starts with "xmpp:"
	}{
		// Not required: -PLUS only where known to work.
		{"plaintext", nil, none, withPlus, false, false, plain},
		{"plaintext, advertised", nil, both, withPlus, false, false, plain},
		{"tls1.3, nothing advertised (ejabberd 23.01)", tls13, none, withPlus, false, false, plain},
		{"tls1.3, tls-exporter advertised", tls13, exporter, withPlus, false, false, all},
		{"tls1.3, both advertised", tls13, both, withPlus, false, false, all},
		{"tls1.3, tls-unique only", tls13, unique, withPlus, false, false, plain},
		{"tls1.3, tls-server-end-point only", tls13, endPoint, withPlus, false, false, plain},
		{"tls1.3, empty advertisement", tls13, empty, withPlus, false, false, plain},
		{"tls1.3, exporter, refused before", tls13, exporter, withPlus, false, true, plain},
		{"tls1.2, nothing advertised", tls12, none, withPlus, false, false, all},
		{"tls1.2, tls-unique advertised", tls12, unique, withPlus, false, false, all},
		{"tls1.2, tls-exporter only", tls12, exporter, withPlus, false, false, plain},
		{"tls1.2, no tls-unique value", tls12NoUnique, none, withPlus, false, false, plain},
		{"tls1.2, refused before", tls12, none, withPlus, false, true, plain},
		{"tls1.3, server without -PLUS", tls13, exporter, withoutPlus, false, false, all},

		// Required: -PLUS only, or an error saying why not.
		{"required, plaintext", nil, both, withPlus, true, false, "xmpp: channel binding is required but not possible: the connection has no TLS"},
		{"required, tls1.3, nothing advertised", tls13, none, withPlus, true, false, plus},
		{"required, tls1.3, exporter", tls13, exporter, withPlus, true, false, plus},
		{"required, tls1.3, tls-unique only", tls13, unique, withPlus, true, false, `xmpp: channel binding is required but not possible: the server does not support tls-exporter (it lists ["tls-unique"])`},
		{"required, tls1.3, empty advertisement", tls13, empty, withPlus, true, false, `xmpp: channel binding is required but not possible: the server does not support tls-exporter (it lists [])`},
		{"required, tls1.2", tls12, none, withPlus, true, false, plus},
		{"required, tls1.2, tls-unique", tls12, unique, withPlus, true, false, plus},
		{"required, tls1.2, exporter only", tls12, exporter, withPlus, true, false, `xmpp: channel binding is required but not possible: the server does not support tls-unique (it lists ["tls-server-end-point" "tls-exporter"])`},
		{"required, tls1.2, no tls-unique value", tls12NoUnique, none, withPlus, true, false, "xmpp: channel binding is required but not possible: the TLS 1.2 session has no tls-unique value"},
		{"required, server without -PLUS", tls13, exporter, withoutPlus, true, false, "xmpp: channel binding is required but not possible: the server offers no SCRAM-SHA-256-PLUS or SCRAM-SHA-1-PLUS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ms, err := loginMechanisms(c.cs, c.offer, c.remote, c.require, c.noPlus)
			if strings.HasPrefix(c.want, "xmpp:") {
				if err == nil || err.Error() != c.want || !errors.Is(err, errNoChannelBinding) || !permanent(err) {
					t.Fatalf("got %q, %v; want the error %q", mechNames(ms), err, c.want)
				}
				return
			}
			if err != nil || mechNames(ms) != c.want {
				t.Fatalf("got %q, %v; want %q", mechNames(ms), err, c.want)
			}
		})
	}
}

// fakeServer is a minimal XMPP server on loopback with direct TLS: it
// advertises the SASL mechanisms and channel-binding types it is given,
// refuses every SCRAM-…-PLUS login (as ejabberd 23.01 does on TLS 1.3),
// runs SCRAM-SHA-256 with the password "pw", and binds the resource asked
// for. It records the mechanism and GS2 header of every login attempt.
type fakeServer struct {
	t        *testing.T
	ln       net.Listener
	tls      *tls.Config
	roots    *x509.CertPool
	mechs    []string
	cbTypes  []string // nil: no XEP-0440 element
	password string

	mu       sync.Mutex
	attempts []string // "MECHANISM gs2-header"
}

func newFakeServer(t *testing.T, maxVersion uint16, mechs, cbTypes []string) *fakeServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{
		t:  t,
		ln: ln,
		tls: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
			MaxVersion:   maxVersion,
		},
		roots:    roots,
		mechs:    mechs,
		cbTypes:  cbTypes,
		password: "pw",
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := tls.Server(c, s.tls)
				// A client that goes away mid-stream is no news.
				if err := s.serve(tc); err != nil && !errors.Is(err, errFakeDone) && !strings.Contains(err.Error(), "EOF") {
					t.Logf("fake server: %v", err)
				}
			})
		}
	})
	return s
}

var errFakeDone = errors.New("done")

func (s *fakeServer) config() *Config {
	return &Config{
		JID: "user@localhost/res", Password: "pw", Addr: s.ln.Addr().String(), Security: DirectTLS,
		TLS: &tls.Config{RootCAs: s.roots},
	}
}

func (s *fakeServer) logins() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts)
}

const fakeHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>`

// next returns the next start element of d (a stream header or a
// top-level element).
func next(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se, nil
		}
	}
}

func (s *fakeServer) serve(c net.Conn) error {
	write := func(text string) error { _, err := c.Write([]byte(text)); return err }
	// Every stream (a new one after SASL) gets a new decoder: the client
	// waits for our answers, so nothing is left buffered.
	d := xml.NewDecoder(c)
	if _, err := next(d); err != nil {
		return err
	}
	features := "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
	for _, m := range s.mechs {
		features += "<mechanism>" + m + "</mechanism>"
	}
	features += "</mechanisms>"
	if s.cbTypes != nil {
		features += "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>"
		for _, typ := range s.cbTypes {
			features += "<channel-binding type='" + typ + "'/>"
		}
		features += "</sasl-channel-binding>"
	}
	if err := write(fakeHeader + features + "</stream:features>"); err != nil {
		return err
	}
	var auth struct {
		Mechanism string `xml:"mechanism,attr"`
		Data      string `xml:",chardata"`
	}
	start, err := next(d)
	if err != nil {
		return err
	}
	if err := d.DecodeElement(&auth, &start); err != nil {
		return err
	}
	first, err := base64.StdEncoding.DecodeString(auth.Data)
	if err != nil {
		return err
	}
	gs2, _, _ := strings.Cut(string(first), ",n=")
	s.mu.Lock()
	s.attempts = append(s.attempts, auth.Mechanism+" "+gs2)
	s.mu.Unlock()
	const failure = `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text>%s</text></failure></stream:stream>`
	if strings.HasSuffix(auth.Mechanism, "-PLUS") {
		_ = write(fmt.Sprintf(failure, "Invalid channel binding"))
		return errFakeDone
	}
	if auth.Mechanism != "SCRAM-SHA-256" {
		return fmt.Errorf("unexpected mechanism %q", auth.Mechanism)
	}
	salt := []byte("fake-salt")
	srv := sasl.NewServer(sasl.ScramSha256, nil, sasl.SaltedCredentials(func(_, _ []byte, _ string) ([]byte, []byte, int64, error) {
		return salt, sasl.SCRAMSaltPassword(sha256.New, []byte(s.password), salt, 4096), 4096, nil
	}))
	_, challenge, err := srv.Step(first)
	if err != nil {
		return err
	}
	if err := write("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64.StdEncoding.EncodeToString(challenge) + "</challenge>"); err != nil {
		return err
	}
	var resp struct {
		Data string `xml:",chardata"`
	}
	if start, err = next(d); err != nil {
		return err
	}
	if err := d.DecodeElement(&resp, &start); err != nil {
		return err
	}
	final, err := base64.StdEncoding.DecodeString(resp.Data)
	if err != nil {
		return err
	}
	_, verifier, err := srv.Step(final)
	if err != nil {
		_ = write(fmt.Sprintf(failure, "Invalid username or password"))
		return errFakeDone
	}
	if err := write("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64.StdEncoding.EncodeToString(verifier) + "</success>"); err != nil {
		return err
	}
	// The restarted stream: resource binding.
	d = xml.NewDecoder(c)
	if _, err := next(d); err != nil {
		return err
	}
	if err := write(fakeHeader + "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"); err != nil {
		return err
	}
	var iq struct {
		ID       string `xml:"id,attr"`
		Resource string `xml:"bind>resource"`
	}
	if start, err = next(d); err != nil {
		return err
	}
	if err := d.DecodeElement(&iq, &start); err != nil {
		return err
	}
	if err := write(fmt.Sprintf(`<iq type='result' id='%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>user@localhost/%s</jid></bind></iq>`, iq.ID, iq.Resource)); err != nil {
		return err
	}
	// Until the client goes.
	_, _ = next(d)
	return errFakeDone
}

// connectTo logs in to s with cfg as the channel would, and returns the
// error and the diagnostics.
func connectTo(t *testing.T, st *settings) (error, []string) {
	t.Helper()
	var mu sync.Mutex
	var logs []string
	st.Logf = func(format string, args ...any) {
		mu.Lock()
		logs = append(logs, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cn, err := st.connect(ctx, jid.MustParse("user@localhost/res"), nil)
	if cn != nil {
		cn.cancel()
		_ = cn.raw.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	return err, slices.Clone(logs)
}

func mustSettings(t *testing.T, cfg *Config) *settings {
	t.Helper()
	s, err := cfg.validate()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLoginChannelBindingRefused: a server that advertises tls-exporter on
// TLS 1.3 but refuses the channel binding (as ejabberd 23.01 does with
// every binding on TLS 1.3) gets one attempt with it and one without,
// and the channel's later connections go without it from the start. Not a
// wrong password.
func TestLoginChannelBindingRefused(t *testing.T) {
	srv := newFakeServer(t, tls.VersionTLS13, []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}, []string{cbExporter})
	st := mustSettings(t, srv.config())
	err, logs := connectTo(t, st)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	want := []string{"SCRAM-SHA-256-PLUS p=tls-exporter,", "SCRAM-SHA-256 n,"}
	if got := srv.logins(); !slices.Equal(got, want) {
		t.Fatalf("logins %q, want %q", got, want)
	}
	if !slices.Contains(logs, "xmpp: the server refused channel binding; retrying without it") ||
		!slices.Contains(logs, "xmpp: authenticated with SCRAM-SHA-256") {
		t.Fatalf("diagnostics %q", logs)
	}
	// The next connection of the same channel goes without it at once.
	if err, _ := connectTo(t, st); err != nil {
		t.Fatalf("second connect: %v", err)
	}
	if got := srv.logins(); !slices.Equal(got, append(want, "SCRAM-SHA-256 n,")) {
		t.Fatalf("logins %q after the second connection", got)
	}
}

// TestLoginChannelBindingRequired: with RequireChannelBinding the refusal
// is final, says so, and is not a wrong password; without any way to bind
// nothing is even tried.
func TestLoginChannelBindingRequired(t *testing.T) {
	srv := newFakeServer(t, tls.VersionTLS13, []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}, []string{cbExporter})
	cfg := srv.config()
	cfg.RequireChannelBinding = true
	err, _ := connectTo(t, mustSettings(t, cfg))
	if !errors.Is(err, errChannelBinding) || errors.Is(err, ErrAuth) || !permanent(err) ||
		!strings.HasPrefix(err.Error(), "xmpp: the server refused channel binding: ") {
		t.Fatalf("connect: %v, want the final refusal of channel binding", err)
	}
	if got := srv.logins(); !slices.Equal(got, []string{"SCRAM-SHA-256-PLUS p=tls-exporter,"}) {
		t.Fatalf("logins %q", got)
	}

	// TLS 1.2, and the server lists only tls-exporter: impossible.
	srv = newFakeServer(t, tls.VersionTLS12, []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}, []string{cbExporter})
	cfg = srv.config()
	cfg.RequireChannelBinding = true
	err, _ = connectTo(t, mustSettings(t, cfg))
	if !errors.Is(err, errNoChannelBinding) || !permanent(err) {
		t.Fatalf("connect: %v, want channel binding impossible", err)
	}
	if got := srv.logins(); len(got) != 0 {
		t.Fatalf("logins %q, want none", got)
	}

	// And plaintext cannot require it at all.
	cfg = srv.config()
	cfg.Security, cfg.Addr, cfg.RequireChannelBinding = UnsafePlaintext, "127.0.0.1:5222", true
	if _, err := cfg.validate(); !errors.Is(err, errConfig) {
		t.Fatalf("validate: %v, want an invalid configuration", err)
	}
}

// TestLoginChoosesPerConnection: what each connection offers follows its
// TLS version and the server's advertisement: tls-unique on TLS 1.2 (the
// fake server refuses it, so the login goes on without it), nothing on TLS
// 1.3 without an advertisement; a wrong password after a refused channel
// binding is a wrong password.
func TestLoginChoosesPerConnection(t *testing.T) {
	srv := newFakeServer(t, tls.VersionTLS12, []string{"SCRAM-SHA-1-PLUS", "SCRAM-SHA-256"}, nil)
	if err, _ := connectTo(t, mustSettings(t, srv.config())); err != nil {
		t.Fatalf("connect: %v", err)
	}
	if got, want := srv.logins(), []string{"SCRAM-SHA-1-PLUS p=tls-unique,", "SCRAM-SHA-256 n,"}; !slices.Equal(got, want) {
		t.Fatalf("TLS 1.2: logins %q, want %q", got, want)
	}

	srv = newFakeServer(t, tls.VersionTLS13, []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}, nil)
	err, logs := connectTo(t, mustSettings(t, srv.config()))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if got, want := srv.logins(), []string{"SCRAM-SHA-256 n,"}; !slices.Equal(got, want) {
		t.Fatalf("TLS 1.3 without XEP-0440: logins %q, want %q", got, want)
	}
	if slices.ContainsFunc(logs, func(l string) bool { return strings.Contains(l, "refused") }) {
		t.Fatalf("diagnostics %q", logs)
	}

	srv = newFakeServer(t, tls.VersionTLS13, []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}, []string{cbExporter})
	cfg := srv.config()
	cfg.Password = "wrong"
	err, _ = connectTo(t, mustSettings(t, cfg))
	if !errors.Is(err, ErrAuth) || errors.Is(err, errChannelBinding) {
		t.Fatalf("connect with a wrong password: %v, want authentication failed", err)
	}
	if got := srv.logins(); len(got) != 2 {
		t.Fatalf("logins %q, want one with channel binding and one without", got)
	}
}
