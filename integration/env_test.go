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
func (s *server) config(i int, room string, key crypto.PublicKey) *xmpp.Config {
	a := s.accounts[i%len(s.accounts)]
	cfg := &xmpp.Config{
		JID:            fmt.Sprintf("%s/dev%d-%d", a.jid, i, time.Now().UnixNano()%1e6),
		Password:       a.password,
		Addr:           s.addr,
		Security:       s.security,
		Room:           room,
		Nick:           fmt.Sprintf("dev%d", i),
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
