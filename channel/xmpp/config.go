package xmpp

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/crypto"
)

// Security says how the connection to the server is protected.
type Security uint8

const (
	// StartTLS (the default) connects in plain TCP and upgrades with
	// StartTLS before authenticating (RFC 6120 §5). A server that does not
	// offer StartTLS is refused.
	StartTLS Security = iota
	// DirectTLS opens TLS first (XEP-0368, usually port 5223).
	DirectTLS
	// UnsafePlaintext uses no TLS at all. It is for tests against a server on
	// the loopback interface only: Dial refuses it for any other address.
	// Authentication is still SCRAM, which never sends the password.
	UnsafePlaintext
)

func (s Security) String() string {
	switch s {
	case StartTLS:
		return "starttls"
	case DirectTLS:
		return "directtls"
	case UnsafePlaintext:
		return "unsafe-plaintext"
	}
	return fmt.Sprintf("Security(%d)", uint8(s))
}

// Defaults for the zero values of Config's tuning fields.
const (
	// DefaultMaxStanzaSize is the largest stanza Send writes. Prosody (and
	// ejabberd by default) end the whole session of a client that sends a
	// stanza over 256 KiB, so we refuse well below that; an mpENC packet of
	// the codec's maximum size (128 KiB, about 171 KiB armoured) still fits.
	DefaultMaxStanzaSize = 192 << 10
	// HardMaxStanzaSize bounds Config.MaxStanzaSize: a few KiB under the
	// common 256 KiB server limit, leaving room for what the server adds.
	HardMaxStanzaSize = 248 << 10

	DefaultEventQueue     = 16384
	DefaultConnectTimeout = 20 * time.Second
	DefaultWriteTimeout   = 30 * time.Second
	DefaultIQTimeout      = 30 * time.Second
	DefaultJoinTimeout    = 30 * time.Second
	DefaultKeepAlive      = 60 * time.Second
	DefaultReconnectMin   = 500 * time.Millisecond
	DefaultReconnectMax   = 60 * time.Second
	DefaultAnonymityGrace = 3 * time.Second
	DefaultMaxOccupants   = 4096
)

// Config configures a Channel. A Config is never modified by this package
// and may be reused for several channels (give each its own Nick).
type Config struct {
	// JID is our account, "user@example.org" or "user@example.org/resource".
	// The resource is requested at every (re)connection so that our
	// participant id, the full JID, stays the same across reconnects; when
	// empty, Dial picks a random one and keeps it for the channel's life.
	JID string
	// Password for SCRAM authentication. The caller reads it from the
	// environment or a prompt; this package never logs or prints it (Config's
	// String method redacts it).
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

	// Room is the bare JID of the multi-user chat, "room@conference.example.org".
	Room string
	// Nick is our nickname in the room. It must be unique per device: some
	// servers merge two devices of one account that share a nick.
	Nick string
	// Identity is our Ed25519 identity public key, announced in our room
	// presence (see NSIdentity). The zero key is not announced.
	Identity crypto.PublicKey

	// MaxStanzaSize bounds what Send writes (default DefaultMaxStanzaSize,
	// at most HardMaxStanzaSize).
	MaxStanzaSize int
	// EventQueue is how many events may wait for the consumer (default
	// DefaultEventQueue). See the package documentation for what happens
	// when it is full.
	EventQueue int
	// MaxOccupants caps the occupants tracked per room (default
	// DefaultMaxOccupants); presences beyond it are ignored.
	MaxOccupants int

	ConnectTimeout time.Duration // dial, TLS, authentication, binding
	WriteTimeout   time.Duration // one write to the socket; the connection is dropped past it
	IQTimeout      time.Duration // a request to the server or the room
	JoinTimeout    time.Duration // one attempt to enter the room
	KeepAlive      time.Duration // interval of pings (self-pings in the room, XEP-0410); negative disables
	ReconnectMin   time.Duration // first delay before reconnecting, doubled up to ReconnectMax
	ReconnectMax   time.Duration
	// AnonymityGrace is how long an occupant of a room that does not (yet)
	// show real JIDs waits for the room's owner to make it non-anonymous
	// (status 172) before refusing it. It covers a room that its creator is
	// still configuring.
	AnonymityGrace time.Duration

	// Logf, when set, receives diagnostics (connection state, reconnects,
	// dropped stanzas). It never receives passwords, keys or message bodies.
	Logf func(format string, args ...any)
}

// String describes the configuration without the password.
func (c Config) String() string {
	return fmt.Sprintf("xmpp.Config{JID:%q Addr:%q Security:%v Room:%q Nick:%q Password:[redacted]}",
		c.JID, c.Addr, c.Security, c.Room, c.Nick)
}

// GoString is like String, so that %#v does not print the password either.
func (c Config) GoString() string { return c.String() }

// settings is a validated, defaulted copy of a Config.
type settings struct {
	Config
	account  jid.JID // bare
	resource string
	room     jid.JID // bare
	tls      *tls.Config
}

func (c *Config) validate() (*settings, error) {
	s := &settings{Config: *c}
	s.TLS = nil
	j, err := jid.Parse(c.JID)
	if err != nil {
		return nil, fmt.Errorf("%w: JID %q: %v", ErrConfig, c.JID, err)
	}
	if j.Localpart() == "" {
		return nil, fmt.Errorf("%w: JID %q has no local part", ErrConfig, c.JID)
	}
	s.account = j.Bare()
	s.resource = j.Resourcepart()
	if c.Password == "" {
		return nil, fmt.Errorf("%w: empty password", ErrConfig)
	}
	r, err := jid.Parse(c.Room)
	if err != nil {
		return nil, fmt.Errorf("%w: room %q: %v", ErrConfig, c.Room, err)
	}
	if r.Localpart() == "" || r.Resourcepart() != "" {
		return nil, fmt.Errorf("%w: room %q must be a bare JID room@service", ErrConfig, c.Room)
	}
	s.room = r
	if c.Nick == "" {
		return nil, fmt.Errorf("%w: empty nick", ErrConfig)
	}
	if _, err := r.WithResource(c.Nick); err != nil {
		return nil, fmt.Errorf("%w: nick %q: %v", ErrConfig, c.Nick, err)
	}
	if c.Security > UnsafePlaintext {
		return nil, fmt.Errorf("%w: unknown security mode %d", ErrConfig, c.Security)
	}
	if c.Security == UnsafePlaintext || c.UnsafeSkipVerify {
		if !isLoopback(c.Addr) {
			return nil, fmt.Errorf("%w: %v/UnsafeSkipVerify need a loopback Addr, not %q", ErrInsecure, c.Security, c.Addr)
		}
	}
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return nil, fmt.Errorf("%w: Addr %q: %v", ErrConfig, c.Addr, err)
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
	def(&s.ConnectTimeout, DefaultConnectTimeout)
	def(&s.WriteTimeout, DefaultWriteTimeout)
	def(&s.IQTimeout, DefaultIQTimeout)
	def(&s.JoinTimeout, DefaultJoinTimeout)
	def(&s.KeepAlive, DefaultKeepAlive)
	def(&s.ReconnectMin, DefaultReconnectMin)
	def(&s.ReconnectMax, DefaultReconnectMax)
	def(&s.AnonymityGrace, DefaultAnonymityGrace)
	if s.ReconnectMax < s.ReconnectMin {
		s.ReconnectMax = s.ReconnectMin
	}
	if s.MaxStanzaSize <= 0 {
		s.MaxStanzaSize = DefaultMaxStanzaSize
	}
	if s.MaxStanzaSize > HardMaxStanzaSize {
		return nil, fmt.Errorf("%w: MaxStanzaSize %d over %d", ErrConfig, s.MaxStanzaSize, HardMaxStanzaSize)
	}
	if s.EventQueue <= 0 {
		s.EventQueue = DefaultEventQueue
	}
	if s.MaxOccupants <= 0 {
		s.MaxOccupants = DefaultMaxOccupants
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
