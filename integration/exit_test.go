//go:build integration

package integration

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// TestIntegrationClientExitStatus: the line mode's exit status, as a
// script reads it (docs/USAGE.md "Exit status"): a wrong password is 4
// and a server that cannot be reached 3, both at once (input still open,
// no 30 s wait for acknowledgements); a message acknowledged by everyone
// is 0 (TestIntegrationClientWaitsToBeIncluded ends that way).
func TestIntegrationClientExitStatus(t *testing.T) {
	s := serverFromEnv(t)
	acct := s.cmdAccount(t, 1)
	room := s.newRoom(t)
	clientBin, _ := buildCommands(t)
	for _, tc := range []struct {
		name, password, server string
		want                   int
	}{
		{"a wrong password", "not the password", "", 4},
		{"an unreachable server", acct.password, "127.0.0.1:1", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := s.clientConfig(t, dir, "c", acct, "manual", room)
			if tc.server != "" {
				b, err := os.ReadFile(cfg)
				if err != nil {
					t.Fatal(err)
				}
				b = regexp.MustCompile(`(?m)^server = .*$`).ReplaceAll(b, []byte(`server = "`+tc.server+`"`))
				if err := os.WriteFile(cfg, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			env := append(os.Environ(), "MPENC_PASSWORD="+tc.password, "MPENC_PASSPHRASE=passphrase of c")
			start := time.Now()
			p := startProc(t, "client", env, true, clientBin, "-plain", "-config", cfg)
			err := p.wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.want {
				t.Fatalf("exit: %v, want status %d; output:\n%s", err, tc.want, p.output())
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %v to give up", d.Round(time.Second))
			}
		})
	}
}
