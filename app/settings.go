package app

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/session"
)

// Settings are the account settings that the client's and the bot's
// configuration files share (TOML keys in the tags). Settings.Config
// turns them into a Config.
type Settings struct {
	// Account is the bare JID, "alice@example.org".
	Account string `toml:"account" json:"account"`
	// Label names this device to people; empty: the host's name
	// (Config.Label).
	Label string `toml:"label" json:"label"`
	// Nick in rooms; empty: the account's local part, the label and the
	// device's resource suffix, "alice/laptop-1a2b3c4d" (Config.Nick).
	Nick string `toml:"nick" json:"nick"`
	// Store is the database path; "~/" is the home directory. Empty: the
	// caller's default.
	Store string `toml:"store" json:"store"`
	// Server is "host:port"; empty: the domain's SRV records.
	Server string `toml:"server" json:"server"`
	// Security: "starttls" (default), "directtls" or "plaintext"
	// (loopback servers only).
	Security string `toml:"security" json:"security"`
	// CAFile is a PEM file of roots to verify the server with; empty:
	// the system roots.
	CAFile string `toml:"ca_file" json:"ca_file"`
	// RequireChannelBinding: log in only with SASL channel binding
	// (SCRAM-…-PLUS, tied to the TLS connection); false: channel binding
	// where it is known to work (docs/XMPP.md, "Connection").
	RequireChannelBinding bool `toml:"require_channel_binding" json:"require_channel_binding"`
	// Timing: "internet" (default) or "loopback" (a server on this
	// machine: faster acknowledgements and timeouts).
	Timing string `toml:"timing" json:"timing"`
}

// parseSecurity parses "starttls", "directtls" or "plaintext".
func parseSecurity(s string) (xmpp.Security, error) {
	switch strings.ToLower(s) {
	case "", "starttls":
		return xmpp.StartTLS, nil
	case "directtls", "tls":
		return xmpp.DirectTLS, nil
	case "plaintext", "plain":
		return xmpp.UnsafePlaintext, nil
	}
	return 0, fmt.Errorf("app: security %q: want starttls, directtls or plaintext", s)
}

// parseTiming parses "internet" or "loopback".
func parseTiming(s string) (session.Timing, error) {
	switch strings.ToLower(s) {
	case "", "internet":
		return session.InternetTiming(), nil
	case "loopback", "local":
		return session.LoopbackTiming(), nil
	}
	return session.Timing{}, fmt.Errorf("app: timing %q: want internet or loopback", s)
}

// expandHome replaces a leading "~/" with the home directory.
func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// Config returns the Config these settings describe, without the
// password and passphrase, which the caller adds.
func (s Settings) Config() (Config, error) {
	var c Config
	if s.Account == "" {
		return c, fmt.Errorf("app: no account configured")
	}
	sec, err := parseSecurity(s.Security)
	if err != nil {
		return c, err
	}
	tm, err := parseTiming(s.Timing)
	if err != nil {
		return c, err
	}
	c = Config{Store: expandHome(s.Store), Account: s.Account, Label: s.Label, Nick: s.Nick, Server: s.Server, Security: sec, Timing: tm,
		RequireChannelBinding: s.RequireChannelBinding}
	if c.RequireChannelBinding && sec == xmpp.UnsafePlaintext {
		return c, fmt.Errorf("app: require_channel_binding needs TLS, not security %q", s.Security)
	}
	if s.CAFile != "" {
		if c.RootCAs, err = loadCAFile(expandHome(s.CAFile)); err != nil {
			return c, err
		}
	}
	return c, nil
}

// maxLabel caps a device label (bytes).
const maxLabel = 32

// checkLabel checks a device label: 1 to maxLabel bytes of UTF-8 without
// control characters, not blank.
func checkLabel(l string) error {
	if l == "" || len(l) > maxLabel || !utf8.ValidString(l) || strings.TrimSpace(l) == "" {
		return fmt.Errorf("app: device label %.40q: want 1 to %d bytes of text", l, maxLabel)
	}
	for _, r := range l {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("app: device label %.40q has a control character", l)
		}
	}
	return nil
}

// hostLabel is the default device label: the host name's first label
// (letters, digits, '-' and '_' only, at most maxLabel bytes), or
// "device".
func hostLabel() string {
	h, _ := os.Hostname()
	h, _, _ = strings.Cut(h, ".")
	var b strings.Builder
	for _, r := range h {
		if b.Len() >= maxLabel {
			break
		}
		if r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_') {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "device"
	}
	return b.String()
}

// defaultNick is a device's default nick in rooms: the account's local
// part, "/", the label and the resource's suffix after "mpenc-"
// ("alice/laptop-1a2b3c4d"): unique per device, as the resource is.
func defaultNick(local, label, resource string) string {
	return local + "/" + label + "-" + strings.TrimPrefix(resource, "mpenc-")
}
