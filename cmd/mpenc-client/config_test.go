package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	p := writeFile(t, "c.toml", `
account = "alice@example.org"
server = "127.0.0.1:5222"
security = "plaintext"
timing = "loopback"
rooms = ["a@muc.example.org"]
include = "trusted"
store = "/tmp/x/alice.db"
`)
	c, err := loadConfig([]string{"-config", p, "-room", "b@muc.example.org,c@muc.example.org", "-nick", "al", "-v"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Account != "alice@example.org" || c.Nick != "al" || c.Server != "127.0.0.1:5222" || c.Include != "trusted" || c.LogLevel != "debug" {
		t.Errorf("config: %+v", c)
	}
	if want := []string{"a@muc.example.org", "b@muc.example.org", "c@muc.example.org"}; !slices.Equal(c.Rooms, want) {
		t.Errorf("rooms %v, want %v", c.Rooms, want)
	}
	if c.LogFile != "/tmp/x/alice.db.log" {
		t.Errorf("log file %q", c.LogFile)
	}
	// Flags override the file.
	c, err = loadConfig([]string{"-config", p, "-include", "everyone", "-security", "starttls", "-plain"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Include != "everyone" || c.Security != "starttls" || !c.Plain {
		t.Errorf("flags did not override: %+v", c)
	}
	// The channel-binding switch: from the file, and the flag overrides it
	// either way.
	p = writeFile(t, "cb.toml", "account = \"alice@example.org\"\nrequire_channel_binding = true\n")
	if c, err = loadConfig([]string{"-config", p}); err != nil || !c.RequireChannelBinding {
		t.Errorf("require_channel_binding from the file: %+v, %v", c, err)
	}
	if c, err = loadConfig([]string{"-config", p, "-require-channel-binding=false"}); err != nil || c.RequireChannelBinding {
		t.Errorf("-require-channel-binding=false: %+v, %v", c, err)
	}
	if c, err = loadConfig([]string{"-account", "alice@example.org", "-require-channel-binding"}); err != nil || !c.RequireChannelBinding {
		t.Errorf("-require-channel-binding: %+v, %v", c, err)
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	cfgHome, home := t.TempDir(), t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfgHome)
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", home)
	c, err := loadConfig([]string{"-account", "bob@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(home, ".local", "share", "mpenc", "bob@example.org.db"); c.Store != want {
		t.Errorf("store %q, want %q", c.Store, want)
	}
	if c.Include != "manual" || c.PasswordEnv != "MPENC_PASSWORD" || c.PassphraseEnv != "MPENC_PASSPHRASE" || c.HistoryLines != 200 {
		t.Errorf("defaults: %+v", c)
	}
	// The default file is read when it exists.
	if err := os.MkdirAll(filepath.Join(cfgHome, "mpenc"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgHome, "mpenc", "client.toml"), []byte(`account = "carol@example.org"`+"\nstore = \"~/c.db\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Account != "carol@example.org" || c.Store != filepath.Join(home, "c.db") {
		t.Errorf("default file: %+v", c)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for i, tt := range []struct {
		file string
		args []string
		want string
	}{
		0: {"", nil, "no account"},
		1: {`account = "a@b"` + "\nsecurty = \"plaintext\"\n", nil, "unknown keys: securty"},
		2: {`account = "a@b"` + "\nsecurity = \"none\"\n", nil, "want starttls, directtls or plaintext"},
		3: {`account = "a@b"` + "\ninclude = \"all\"\n", nil, "include policy"},
		4: {`account = "a@b"` + "\ntiming = \"fast\"\n", nil, "want internet or loopback"},
		5: {`account = "a@b"` + "\nca_file = \"/nonexistent/ca.pem\"\n", nil, "CA file"},
		6: {`account = `, nil, "config"},
		7: {"", []string{"-account", "a@b", "extra"}, "unexpected argument"},
		8: {"", []string{"-config", "/nonexistent/c.toml"}, "does not exist"},
		{`account = "a@b"` + "\nrequire_channel_bindings = true\n", nil, "unknown keys: require_channel_bindings"},
		{`account = "a@b"` + "\nsecurity = \"plaintext\"\n", []string{"-require-channel-binding"}, "require_channel_binding needs TLS"},
	} {
		args := tt.args
		if tt.file != "" {
			args = append([]string{"-config", writeFile(t, "c.toml", tt.file)}, args...)
		}
		_, err := loadConfig(args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%d: error %v, want %q", i, err, tt.want)
		}
	}
}
