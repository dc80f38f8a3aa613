//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/channel/xmpp"
)

// raw is a bare XMPP client that is not mpenc: it writes whatever XML a
// test gives it and records what it receives as text. It plays the plain
// (non-mpENC) client, the room creator with other settings, and the hostile
// peer.
type raw struct {
	t    testing.TB
	sess *mxmpp.Session
	jid  jid.JID

	mu   sync.Mutex
	in   []string
	dead chan struct{}
}

// rawDial logs account i in (TLS as the server settings say).
func (s *server) rawDial(t testing.TB, i int) *raw {
	t.Helper()
	a := s.accounts[i%len(s.accounts)]
	origin := jid.MustParse(a.jid)
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	addr := s.addr
	var d net.Dialer
	var conn net.Conn
	var err error
	var state mxmpp.SessionState
	// No channel binding: a plain client does not need it, and ejabberd
	// 23.01 refuses mellium's on TLS 1.3 (docs/XMPP.md).
	features := []mxmpp.StreamFeature{
		mxmpp.SASL("", a.password, sasl.ScramSha256, sasl.ScramSha1),
		mxmpp.BindResource(),
	}
	tcfg := &tls.Config{ServerName: s.domain, RootCAs: s.roots}
	switch s.security {
	case xmpp.DirectTLS:
		conn, err = tls.DialWithDialer(&d, "tcp", s.tlsAddr, tcfg)
	case xmpp.UnsafePlaintext:
		conn, err = d.DialContext(ctx, "tcp", addr)
		state = mxmpp.Secure // mellium: plaintext login needs the Secure bit (loopback test server)
	default:
		conn, err = d.DialContext(ctx, "tcp", addr)
		features = append([]mxmpp.StreamFeature{mxmpp.StartTLS(tcfg)}, features...)
	}
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	sess, err := mxmpp.NewSession(ctx, origin.Domain(), origin, conn, state,
		mxmpp.NewNegotiator(func(*mxmpp.Session, *mxmpp.StreamConfig) mxmpp.StreamConfig {
			return mxmpp.StreamConfig{Features: features}
		}))
	if err != nil {
		conn.Close()
		t.Fatalf("raw login: %v", err)
	}
	r := &raw{t: t, sess: sess, jid: sess.LocalAddr(), dead: make(chan struct{})}
	go func() {
		defer close(r.dead)
		_ = sess.Serve(mxmpp.HandlerFunc(func(tr xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			var b bytes.Buffer
			e := xml.NewEncoder(&b)
			_ = e.EncodeToken(*start)
			_, _ = xmlstream.Copy(e, tr)
			_ = e.Flush()
			r.mu.Lock()
			r.in = append(r.in, b.String())
			r.mu.Unlock()
			return nil
		}))
		conn.Close()
	}()
	t.Cleanup(func() {
		_ = sess.Close()
		select {
		case <-r.dead:
		case <-time.After(3 * time.Second):
		}
		conn.Close()
		<-r.dead
	})
	return r
}

// write sends raw XML text on the stream as it is.
func (r *raw) write(text string) error {
	w := r.sess.TokenWriter() // holds the output lock while we write
	defer w.Close()
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := r.sess.Conn().Write([]byte(text))
	return err
}

func (r *raw) mustWrite(text string) {
	r.t.Helper()
	if err := r.write(text); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

// join enters room as nick; extra is added inside the presence.
func (r *raw) join(room, nick, extra string) {
	r.t.Helper()
	r.mustWrite(fmt.Sprintf(`<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x>%s</presence>`, room, nick, extra))
	r.waitFor("our own presence in "+room, func(s string) bool {
		return strings.HasPrefix(s, "<presence") && strings.Contains(s, `code="110"`) && strings.Contains(s, room)
	})
	r.waitFor("the subject of "+room, func(s string) bool {
		return strings.HasPrefix(s, "<message") && strings.Contains(s, "<subject")
	})
}

// waitFor waits for a received stanza matching pred and returns it.
func (r *raw) waitFor(what string, pred func(string) bool) string {
	r.t.Helper()
	deadline := time.Now().Add(waitBound)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, s := range r.in {
			if pred(s) {
				r.mu.Unlock()
				return s
			}
		}
		r.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t.Fatalf("raw %s: waited %v for %s; received:\n%s", r.jid, waitBound, what, strings.Join(r.in, "\n"))
	return ""
}

// iq sends an IQ and waits for its answer (result or error).
func (r *raw) iq(id, text string) string {
	r.t.Helper()
	r.mustWrite(text)
	return r.waitFor("answer to iq "+id, func(s string) bool {
		return strings.HasPrefix(s, "<iq") && strings.Contains(s, `id="`+id+`"`)
	})
}
