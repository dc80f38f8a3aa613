package xmpp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"sync/atomic"
	"time"

	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

// conn is one authenticated XMPP session and its socket.
type conn struct {
	sess *mxmpp.Session
	raw  net.Conn // the TCP socket under everything (closing it ends the session)
	// ctx ends when the connection is torn down; requests made over the
	// connection derive from it.
	ctx    context.Context
	cancel context.CancelFunc
	served chan struct{} // closed when Serve has returned
	// sm is the stream management session (sm.go) this connection runs,
	// nil without one; resumed: it was resumed here from a lost connection.
	sm      *smSession
	resumed bool
	early   []earlyStanza // for the handler before serving (sm.go)
	// ended: the server ended the stream on purpose (a stream error or its
	// closing tag), so its stream management session is gone.
	ended atomic.Bool
}

// watchdogConn is the socket we hand to mellium. It gives every write its
// own deadline (WriteTimeout), so a server that stops reading cannot block
// a sender for ever, and it ignores the deadlines mellium sets.
//
// mellium workaround (mellium problem 11 of docs/XMPP.md): Session.Send and
// friends run a goroutine that, when the context passed to them is cancelled,
// sets the connection's write deadline to the past and back to zero. If the
// context is cancelled just after the call returns, that goroutine can still
// fire later and fail an unrelated concurrent write with "i/o timeout", which
// breaks the stream in the middle of a stanza. With deadlines from outside
// ignored here, contexts passed to mellium only bound the waits, never the
// socket. Negotiation time-outs are enforced by closing the socket instead.
type watchdogConn struct {
	net.Conn
	timeout time.Duration
}

func (c *watchdogConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *watchdogConn) SetDeadline(time.Time) error      { return nil }
func (c *watchdogConn) SetReadDeadline(time.Time) error  { return nil }
func (c *watchdogConn) SetWriteDeadline(time.Time) error { return nil }

// addrs returns the addresses to try, in order.
func (s *settings) addrs(ctx context.Context) ([]string, error) {
	if s.Addr != "" {
		return []string{s.Addr}, nil
	}
	domain := s.account.Domainpart()
	service, port := "xmpp-client", 5222
	if s.Security == DirectTLS {
		service, port = "xmpps-client", 5223
	}
	_, srvs, err := net.DefaultResolver.LookupSRV(ctx, service, "tcp", domain)
	if err != nil || len(srvs) == 0 {
		// RFC 6120 §3.2.2: no SRV records, fall back to the domain itself.
		return []string{net.JoinHostPort(domain, strconv.Itoa(port))}, nil
	}
	if len(srvs) == 1 && srvs[0].Target == "." {
		return nil, fmt.Errorf("xmpp: %s declares no %s service (SRV target \".\")", domain, service)
	}
	var out []string
	for _, r := range srvs {
		out = append(out, net.JoinHostPort(r.Target, strconv.Itoa(int(r.Port))))
	}
	return out, nil
}

// connect dials, secures, authenticates and binds origin's resource. It
// does not start serving. A login whose channel binding the server refused
// is tried once more without it (unless RequireChannelBinding), on a new
// connection; once that worked, this channel's later connections go
// without channel binding from the start.
//
// With prev, a stream management session of a lost connection, the new
// connection resumes it if the server still has it (conn.resumed), and
// binds afresh otherwise.
func (s *settings) connect(ctx context.Context, origin jid.JID, prev *smSession) (*conn, error) {
	cn, err := s.connectOnce(ctx, origin, s.noChannelBinding.Load(), prev)
	if err != nil && errors.Is(err, errChannelBinding) && !s.RequireChannelBinding {
		s.logf("%v; retrying without it", errChannelBinding)
		cn, err = s.connectOnce(ctx, origin, true, prev)
		if err == nil {
			s.noChannelBinding.Store(true)
		}
	}
	return cn, err
}

// connectOnce is one connection attempt; noPlus leaves channel binding out
// of the SASL mechanisms.
func (s *settings) connectOnce(ctx context.Context, origin jid.JID, noPlus bool, prev *smSession) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.ConnectTimeout)
	defer cancel()
	addrs, err := s.addrs(ctx)
	if err != nil {
		return nil, err
	}
	var raw net.Conn
	var d net.Dialer
	for _, a := range addrs {
		raw, err = d.DialContext(ctx, "tcp", a)
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("xmpp: dial: %w", err)
	}
	// The socket is closed if negotiation outlives ctx (see watchdogConn).
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	cn, err := s.negotiate(ctx, raw, origin, noPlus, prev)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		raw.Close()
		return nil, classify(err)
	}
	return cn, nil
}

func (s *settings) negotiate(ctx context.Context, raw net.Conn, origin jid.JID, noPlus bool, prev *smSession) (*conn, error) {
	wd := &watchdogConn{Conn: raw, timeout: s.WriteTimeout}
	var rw net.Conn
	var state mxmpp.SessionState
	var features []mxmpp.StreamFeature
	offer := &cbOffer{}
	// The stream management wire (sm.go) sits right under mellium: over
	// TLS, so that it sees the stream's bytes.
	sm := &smNegotiation{window: s.ResumeWindow, prev: prev}
	switch s.Security {
	case DirectTLS:
		tc := tls.Client(wd, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("%w: %w", errTLS, err)
		}
		sm.wire = newSMWire(tc)
		rw = sm.wire
		state = mxmpp.Secure // mellium only recognises a bare *tls.Conn
	case StartTLS:
		rw = wd
		features = append(features, startTLS(s.tls, offer, sm))
	case UnsafePlaintext:
		// mellium workaround (mellium problem 1 of docs/XMPP.md): mellium only offers
		// SASL on a session it believes secure. validate made sure the
		// server is on loopback; SCRAM never sends the password anyway.
		state = mxmpp.Secure
		sm.wire = newSMWire(wd)
		rw = sm.wire
	}
	// SCRAM only: the password never crosses the wire, even without TLS.
	// With channel binding where it is known to work (saslFeature).
	features = append(features,
		channelBindingTypes(offer),
		s.saslFeature(offer, noPlus),
		bindResource(origin, sm),
	)
	sess, err := mxmpp.NewSession(ctx, origin.Domain(), origin, rw, state,
		mxmpp.NewNegotiator(func(*mxmpp.Session, *mxmpp.StreamConfig) mxmpp.StreamConfig {
			return mxmpp.StreamConfig{Features: features}
		}))
	if err != nil {
		return nil, err
	}
	if s.Security != UnsafePlaintext && !sess.ConnectionState().HandshakeComplete {
		return nil, fmt.Errorf("%w: the server did not negotiate TLS", errTLS)
	}
	if sess.State()&mxmpp.Ready == 0 || sess.LocalAddr().Resourcepart() == "" {
		return nil, errors.New("xmpp: session not ready after negotiation")
	}
	cctx, ccancel := context.WithCancel(context.Background())
	return &conn{sess: sess, raw: raw, ctx: cctx, cancel: ccancel, served: make(chan struct{}), sm: sm.session, resumed: sm.resumed, early: sm.early}, nil
}

// classify wraps the errors that retrying cannot fix into errAuth or
// errTLS.
func classify(err error) error {
	if errors.Is(err, errTLS) || errors.Is(err, ErrAuth) || errors.Is(err, errChannelBinding) || errors.Is(err, errNoChannelBinding) {
		return err
	}
	var cve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) {
		return fmt.Errorf("%w: %w", errTLS, err)
	}
	if isSASLFailure(err) {
		return fmt.Errorf("%w: %w", ErrAuth, err)
	}
	return err
}

// isSASLFailure recognises a SASL <failure/> from the server.
//
// mellium workaround: the failure is returned as a value of
// mellium.im/xmpp/internal/saslerr.Error, an internal package we cannot
// name, so we recognise it by its type's package path. "No matching
// mechanism" is a plain error value; we match its text.
func isSASLFailure(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		t := reflect.TypeOf(e)
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.PkgPath() == "mellium.im/xmpp/internal/saslerr" {
			return true
		}
		if e.Error() == "xmpp: no matching SASL mechanisms found" {
			return true
		}
	}
	return false
}

// permanent reports whether err is not worth retrying.
func permanent(err error) bool {
	var re *roomError
	if errors.As(err, &re) {
		return re.permanent()
	}
	return errors.Is(err, ErrAuth) || errors.Is(err, errTLS) || errors.Is(err, errRoomAnonymous) ||
		errors.Is(err, errConfig) || errors.Is(err, errClosed) || errors.Is(err, errChannelBinding) ||
		errors.Is(err, errNoChannelBinding)
}

// randomID returns a fresh stanza id or resource suffix.
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}
