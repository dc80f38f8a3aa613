//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/crypto"
)

// server is the XMPP server under test, from the environment (docs/XMPP.md).
type server struct {
	addr, tlsAddr string
	domain, muc   string
	accounts      []account
	roots         *x509.CertPool
	insecure      bool
	security      xmpp.Security
	restartCmd    string
	forgetCmd     string // MPENC_XMPP_FORGET_CMD ROOM JID: the room forgets JID silently
	forgetRoomCmd string // MPENC_XMPP_FORGET_ROOM_CMD ROOM: the room vanishes silently
}

type account struct{ jid, password string }

func serverFromEnv(t testing.TB) *server {
	t.Helper()
	get := func(name string, required bool) string {
		v := os.Getenv(name)
		if v == "" && required {
			t.Fatalf("%s is not set: run the integration tests through integration/run.sh (make integration), or set the MPENC_XMPP_* variables of docs/XMPP.md", name)
		}
		return v
	}
	s := &server{
		addr:       get("MPENC_XMPP_ADDR", false),
		tlsAddr:    get("MPENC_XMPP_TLS_ADDR", false),
		domain:     get("MPENC_XMPP_DOMAIN", true),
		muc:        get("MPENC_XMPP_MUC", true),
		insecure:   get("MPENC_XMPP_INSECURE", false) == "1",
		restartCmd: get("MPENC_XMPP_RESTART_CMD", false),
		forgetCmd:  get("MPENC_XMPP_FORGET_CMD", false),

		forgetRoomCmd: get("MPENC_XMPP_FORGET_ROOM_CMD", false),
	}
	for _, f := range strings.Fields(get("MPENC_XMPP_ACCOUNTS", true)) {
		j, pw, ok := strings.Cut(f, ":")
		if !ok || j == "" || pw == "" {
			t.Fatalf("MPENC_XMPP_ACCOUNTS: %q is not JID:PASSWORD", j)
		}
		s.accounts = append(s.accounts, account{j, pw})
	}
	if len(s.accounts) < 2 {
		t.Fatalf("MPENC_XMPP_ACCOUNTS: need at least 2 accounts, have %d", len(s.accounts))
	}
	if ca := get("MPENC_XMPP_CA", false); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			t.Fatalf("MPENC_XMPP_CA: %v", err)
		}
		s.roots = x509.NewCertPool()
		if !s.roots.AppendCertsFromPEM(pem) {
			t.Fatalf("MPENC_XMPP_CA: no certificate in %s", ca)
		}
	}
	switch sec := get("MPENC_XMPP_SECURITY", false); sec {
	case "", "starttls":
		s.security = xmpp.StartTLS
	case "directtls":
		s.security = xmpp.DirectTLS
	case "plaintext":
		s.security = xmpp.UnsafePlaintext
	default:
		t.Fatalf("MPENC_XMPP_SECURITY: unknown mode %q", sec)
	}
	return s
}

var roomSeq atomic.Uint64

// newRoom returns a fresh room JID for one test.
func (s *server) newRoom(t testing.TB) string {
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	return fmt.Sprintf("%s-%d-%d@%s", name, time.Now().UnixNano()%1e9, roomSeq.Add(1), s.muc)
}

// config returns a Config for device i (accounts are shared round-robin;
// every device has its own resource and nick).
// config is device i's account configuration (its rooms are opened with
// openRoom).
func (s *server) config(i int, key crypto.PublicKey) *xmpp.Config {
	a := s.accounts[i%len(s.accounts)]
	cfg := &xmpp.Config{
		JID:            fmt.Sprintf("%s/dev%d-%d", a.jid, i, time.Now().UnixNano()%1e6),
		Password:       a.password,
		Addr:           s.addr,
		Security:       s.security,
		Identity:       key,
		ReconnectMin:   100 * time.Millisecond,
		ReconnectMax:   2 * time.Second,
		AnonymityGrace: 2 * time.Second,
	}
	if s.security == xmpp.DirectTLS {
		cfg.Addr = s.tlsAddr
	}
	if s.roots != nil {
		cfg.TLS = &tls.Config{RootCAs: s.roots}
	}
	return cfg
}

func (s *server) restart(t testing.TB) {
	t.Helper()
	if s.restartCmd == "" {
		t.Fatal("MPENC_XMPP_RESTART_CMD is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", "-c", s.restartCmd).CombinedOutput()
	if err != nil {
		t.Fatalf("restarting the server: %v\n%s", err, out)
	}
}

// nicks holds the nick a tweak asked for, by config (see withNick).
var nicks = map[*xmpp.Config]string{}

// withNick is a dial tweak: the device enters under nick rather than
// "dev<i>".
func withNick(nick string) func(*xmpp.Config) {
	return func(cfg *xmpp.Config) { nicks[cfg] = nick }
}

// openRoom dials cfg's account (a connection of its own) and opens the
// channel of room on it under device i's nick ("dev<i>", or withNick's).
// Closing the account closes the channel too.
func openRoom(ctx context.Context, cfg *xmpp.Config, i int, room string) (*xmpp.Account, *xmpp.Channel, error) {
	nick := fmt.Sprintf("dev%d", i)
	if n, ok := nicks[cfg]; ok {
		nick = n
		delete(nicks, cfg)
	}
	a, err := xmpp.Dial(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	ch, err := a.Room(room, nick)
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, ch, nil
}
