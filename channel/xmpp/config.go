package xmpp

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/crypto"
)

//go:generate go tool stringer -type=Security -linecomment

// Security says how the connection to the server is protected. Its String
// method gives the names in the constants' line comments.
type Security uint8

const (
	// StartTLS (the default) connects in plain TCP and upgrades with
	// StartTLS before authenticating (RFC 6120 §5). A server that does not
	// offer StartTLS is refused.
	StartTLS Security = iota // starttls
	// DirectTLS opens TLS first (XEP-0368, usually port 5223).
	DirectTLS // directtls
	// UnsafePlaintext uses no TLS at all. It is for tests against a server on
	// the loopback interface only: Dial refuses it for any other address.
	// Authentication is still SCRAM, which never sends the password.
	UnsafePlaintext // unsafe-plaintext
)

// Defaults for the zero values of Config's tuning fields (documented on
// the fields).
const (
	// defaultMaxStanzaSize is the largest stanza Send writes. Prosody (and
	// ejabberd by default) end the whole session of a client that sends a
	// stanza over 256 KiB, so we refuse well below that; an mpENC packet of
	// the codec's maximum size (128 KiB, about 171 KiB armoured) still fits.
	defaultMaxStanzaSize = 192 << 10
	// hardMaxStanzaSize bounds Config.MaxStanzaSize: a few KiB under the
	// common 256 KiB server limit, leaving room for what the server adds.
	hardMaxStanzaSize = 248 << 10

	defaultEventQueue     = 16384
	defaultConnectTimeout = 20 * time.Second
	defaultWriteTimeout   = 30 * time.Second
	defaultIQTimeout      = 30 * time.Second
	defaultJoinTimeout    = 30 * time.Second
	defaultKeepAlive      = 60 * time.Second
	defaultResumeWindow   = 60 * time.Second
	defaultReconnectMin   = 500 * time.Millisecond
	defaultReconnectMax   = 60 * time.Second
	defaultAnonymityGrace = 3 * time.Second
	defaultMaxOccupants   = 4096
)

// Config configures an Account. A Config is never modified by this
// package.
type Config struct {
	// JID is our account, "user@example.org" or "user@example.org/resource".
	// The resource is requested at every (re)connection so that our
	// participant id, the full JID, stays the same across reconnects; when
	// empty, Dial picks a random one and keeps it for the channel's life.
	JID string
	// Password for SCRAM authentication. The caller reads it from the
	// environment or a prompt; this package never logs or prints it (Config
	// formats without it, whatever the verb).
	Password string

	// Addr is the server's "host:port". When empty, the client-to-server
	// SRV records of JID's domain are looked up (_xmpp-client._tcp for
	// StartTLS, _xmpps-client._tcp for DirectTLS), falling back to the domain
	// on port 5222 or 5223.
	Addr string
	// Security selects StartTLS (default), DirectTLS or UnsafePlaintext.
	Security Security
	// TLS is an optional base TLS configuration (for example RootCAs holding
	// a private CA). It is cloned; ServerName defaults to JID's domain and
	// certificates are always verified unless UnsafeSkipVerify is set.
	TLS *tls.Config
	// UnsafeSkipVerify accepts any server certificate. Loopback only, for
	// tests; Dial refuses it for any other address.
	UnsafeSkipVerify bool
	// RequireChannelBinding refuses to log in without SASL channel binding
	// (SCRAM-SHA-256-PLUS or SCRAM-SHA-1-PLUS), which ties the login to this
	// TLS connection: a man in the middle holding a certificate we trust
	// could then not relay it. By default channel binding is used only
	// where it is known to work (TLS 1.3 with a server that advertises
	// tls-exporter, XEP-0440; TLS 1.2 with tls-unique), plain SCRAM over
	// the verified TLS connection elsewhere, and a server's refusal of it
	// is retried once without it. With this set, a connection or server
	// that cannot do it fails ("xmpp: channel binding is required but not
	// possible"), and so does the server's refusal ("xmpp: the server
	// refused channel binding"); neither is retried. Not with
	// UnsafePlaintext.
	RequireChannelBinding bool

	// Identity is our Ed25519 identity public key, announced in our
	// presence in every room (an <identity/> element, docs/XMPP.md) and
	// in our account's published device list (Account.Devices). The zero
	// key is announced nowhere.
	Identity crypto.PublicKey
	// Label names this device to people ("laptop"): announced with
	// Identity, signed with Sign, and shown by the others' clients next to
	// our name. At most 32 bytes of text without control characters;
	// empty: none.
	Label string
	// Sign signs with the identity key (Identity's private half, which
	// this package never holds) what we announce: the label in room
	// presence, this device's entry in the device list, and its bundle;
	// each message starts with its own context (docs/PROTOCOL.md
	// "Devices"). Required with Label. Without it, nothing is published
	// in the account's device list.
	Sign func(message []byte) crypto.Signature

	// MaxStanzaSize bounds what Send writes: default 192 KiB, at most
	// 248 KiB. Prosody (and ejabberd by default) end the whole session of a
	// client that sends a stanza over 256 KiB, so the default stays well
	// below that; an mpENC packet of the codec's maximum size (128 KiB,
	// about 171 KiB armoured) still fits.
	MaxStanzaSize int
	// EventQueue is how many events of one room may wait for the consumer
	// (default 16384). See the package documentation for what happens when it is
	// full.
	EventQueue int
	// MaxOccupants caps the occupants tracked per room (default 4096);
	// presences beyond it are ignored.
	MaxOccupants int

	// Timeouts and intervals; zero means the default in parentheses.
	ConnectTimeout time.Duration // dial, TLS, authentication, binding (20s)
	WriteTimeout   time.Duration // one write to the socket; the connection is dropped past it (30s)
	IQTimeout      time.Duration // a request to the server or the room (30s)
	JoinTimeout    time.Duration // one attempt to enter the room (30s)
	KeepAlive      time.Duration // interval of pings (self-pings in the room, XEP-0410); negative disables (60s)
	ReconnectMin   time.Duration // first delay before reconnecting, doubled up to ReconnectMax (500ms)
	ReconnectMax   time.Duration // (60s; at least ReconnectMin)
	// ResumeWindow is how long a lost connection may be resumed (stream
	// management, XEP-0198, where the server offers it) before every room
	// is left; negative disables resumption (60s). While the server holds
	// the session, the rooms keep our occupants, and what either side sent
	// meanwhile is delivered after the resumption: a short outage is
	// invisible to the rooms. The server may hold it longer than we ask
	// (Prosody ignores the request: 10 minutes by default), so an occupant
	// whose device died stays that long unless it connects again.
	ResumeWindow time.Duration
	// AnonymityGrace is how long an occupant of a room that does not (yet)
	// show real JIDs waits for the room's owner to make it non-anonymous
	// (status 172) before refusing it (default 3s). It covers a room that
	// its creator is still configuring.
	AnonymityGrace time.Duration

	// OnInvitation, when set, is called with each invitation to a room we
	// have no channel for, in the order they arrive. It runs on the
	// receive loop: it must return quickly, and must not call the
	// Account. Anyone who knows our full JID can send invitations: rate
	// limit what you show.
	OnInvitation func(Invitation)

	// OneTimeKeys, when set, gives the key digests this device's bundle
	// publishes (Bundle.OneTimeKeys and LastResort, at most 100): called
	// each time the bundle is published (after each connection, and by
	// PublishBundle). Without it the bundle carries none.
	OneTimeKeys func() (oneTime []KeyDigest, lastResort KeyDigest)

	// OnDirect, when set, is called with each device channel payload
	// (SendDirect's) sent to our full JID by another device (from, its full
	// JID), in the order they arrive. Like OnInvitation it runs on the
	// receive loop: it must return quickly and must not call the Account.
	// Anyone can send them: the payload is unauthenticated bytes of at
	// most 64 KiB, and a flood must be bounded by the callee.
	OnDirect func(from string, payload []byte)

	// OnHistoryRequest, when set, makes this account a history service
	// (issue [N]): it is called with each history request (from: the
	// sender's full JID, as the server vouches for it; request: at most
	// 50 KiB of unauthenticated bytes) and returns the answer (1 byte to
	// 98 KiB), which goes back as the IQ's result. It runs on the receive
	// loop, which waits for it: it must answer promptly and must not call
	// the Account. Without it such requests get service-unavailable.
	OnHistoryRequest func(from string, request []byte) (answer []byte)

	// ArchiveCursor and SaveArchiveCursor, when both set with OnDirect,
	// make the account read its own archive (XEP-0313) after each
	// connection for device channel payloads sent to this device while it
	// was offline, and hand them to OnDirect in the archive's order before
	// the live ones that arrived meanwhile. ArchiveCursor gives where the
	// last catch-up stopped ("" the first time: then it only finds where
	// the archive ends), SaveArchiveCursor keeps the new position (the
	// caller stores it: it must survive restarts). Both are called from
	// the account's own goroutine; an error from ArchiveCursor skips the
	// catch-up (rather than taking it for the first time, which would
	// skip what is unread).
	ArchiveCursor     func() (string, error)
	SaveArchiveCursor func(string)

	// Logf, when set, receives diagnostics (connection state, reconnects,
	// dropped stanzas). It never receives passwords, keys or message bodies.
	Logf func(format string, args ...any)
}

// Format prints the configuration without the password, whatever the verb:
// %v, %+v, %#v and %s give
//
//	xmpp.Config{JID:"…" Addr:"…" Security:starttls Password:[redacted]}
//
// (honouring width and precision), %q that text quoted, %x and %X its hex.
// Config is a fmt.Formatter rather than a Stringer so that no verb (%d, for
// one) falls back to printing the fields.
func (c Config) Format(f fmt.State, verb rune) {
	s := fmt.Sprintf("xmpp.Config{JID:%q Addr:%q Security:%v Password:[redacted]}",
		c.JID, c.Addr, c.Security)
	switch verb {
	case 'q', 'x', 'X':
	default:
		verb = 's'
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), s)
}

// settings is a validated, defaulted copy of a Config.
type settings struct {
	Config
	account  jid.JID // bare
	resource string
	tls      *tls.Config
	// announce is what our room presence says: Identity, Label and its
	// signature.
	announce announcement
	// noChannelBinding: the server refused channel binding and a login
	// without it worked; the account's later connections go without it
	// from the start.
	noChannelBinding atomic.Bool
}

func (c *Config) validate() (*settings, error) {
	s := &settings{Config: *c}
	s.TLS = nil
	j, err := jid.Parse(c.JID)
	if err != nil {
		return nil, fmt.Errorf("%w: JID %q: %v", errConfig, c.JID, err)
	}
	if j.Localpart() == "" {
		return nil, fmt.Errorf("%w: JID %q has no local part", errConfig, c.JID)
	}
	s.account = j.Bare()
	s.resource = j.Resourcepart()
	if c.Password == "" {
		return nil, fmt.Errorf("%w: empty password", errConfig)
	}
	s.announce.key = c.Identity
	if c.Label != "" {
		if !validLabel(c.Label) {
			return nil, fmt.Errorf("%w: label %.40q: want 1 to %d bytes of text", errConfig, c.Label, maxLabel)
		}
		if c.Sign == nil || c.Identity == (crypto.PublicKey{}) {
			return nil, fmt.Errorf("%w: a label needs Identity and Sign", errConfig)
		}
		sig := c.Sign(labelMessage(c.Label))
		if !checkLabel(c.Identity, c.Label, &sig) {
			return nil, fmt.Errorf("%w: Sign does not sign with Identity's key", errConfig)
		}
		s.announce.label, s.announce.sig = c.Label, sig
	}
	if c.Security > UnsafePlaintext {
		return nil, fmt.Errorf("%w: unknown security mode %d", errConfig, c.Security)
	}
	if c.Security == UnsafePlaintext && c.RequireChannelBinding {
		return nil, fmt.Errorf("%w: RequireChannelBinding needs TLS, not %v", errConfig, c.Security)
	}
	if c.Security == UnsafePlaintext || c.UnsafeSkipVerify {
		if !isLoopback(c.Addr) {
			return nil, fmt.Errorf("%w: %v/UnsafeSkipVerify need a loopback Addr, not %q", errInsecure, c.Security, c.Addr)
		}
	}
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return nil, fmt.Errorf("%w: Addr %q: %v", errConfig, c.Addr, err)
		}
	}
	if c.TLS != nil {
		s.tls = c.TLS.Clone()
	} else {
		s.tls = &tls.Config{}
	}
	if s.tls.ServerName == "" {
		s.tls.ServerName = j.Domainpart()
	}
	if s.tls.MinVersion < tls.VersionTLS12 {
		s.tls.MinVersion = tls.VersionTLS12
	}
	if c.Security == DirectTLS && len(s.tls.NextProtos) == 0 {
		s.tls.NextProtos = []string{"xmpp-client"} // XEP-0368
	}
	s.tls.InsecureSkipVerify = c.UnsafeSkipVerify
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&s.ConnectTimeout, defaultConnectTimeout)
	def(&s.WriteTimeout, defaultWriteTimeout)
	def(&s.IQTimeout, defaultIQTimeout)
	def(&s.JoinTimeout, defaultJoinTimeout)
	def(&s.KeepAlive, defaultKeepAlive)
	def(&s.ResumeWindow, defaultResumeWindow)
	def(&s.ReconnectMin, defaultReconnectMin)
	def(&s.ReconnectMax, defaultReconnectMax)
	def(&s.AnonymityGrace, defaultAnonymityGrace)
	if s.ReconnectMax < s.ReconnectMin {
		s.ReconnectMax = s.ReconnectMin
	}
	if s.MaxStanzaSize <= 0 {
		s.MaxStanzaSize = defaultMaxStanzaSize
	}
	if s.MaxStanzaSize > hardMaxStanzaSize {
		return nil, fmt.Errorf("%w: MaxStanzaSize %d over %d", errConfig, s.MaxStanzaSize, hardMaxStanzaSize)
	}
	if s.EventQueue <= 0 {
		s.EventQueue = defaultEventQueue
	}
	if s.MaxOccupants <= 0 {
		s.MaxOccupants = defaultMaxOccupants
	}
	return s, nil
}

// isLoopback reports whether addr ("host:port") names the loopback
// interface: a loopback IP literal or "localhost".
func isLoopback(addr string) bool {
	if addr == "" {
		return false
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *settings) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}
