package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/mpenc/mpenc/app"
)

// Config is the client's configuration: the file (TOML), then the flags.
type Config struct {
	app.Settings
	// Rooms are joined at start, besides the rooms joined with /join
	// earlier (remembered in the store).
	Rooms []string `toml:"rooms"`
	// Include: whom to include automatically when they enter a room:
	// "manual" (default: you are asked, /invite), "trusted" (verified
	// keys) or "everyone".
	Include string `toml:"include"`
	// LogFile receives JSON logs (never message text, keys or
	// passwords); default: the store's path with ".log".
	LogFile  string `toml:"log_file"`
	LogLevel string `toml:"log_level"`
	// PasswordEnv and PassphraseEnv name the environment variables read
	// for the XMPP password and the key's passphrase before prompting.
	PasswordEnv   string `toml:"password_env"`
	PassphraseEnv string `toml:"passphrase_env"`
	// HistoryLines is how many lines of history each room shows at start.
	HistoryLines int `toml:"history_lines"`

	Plain bool `toml:"-"` // --plain
}

// defaultConfigPath is $XDG_CONFIG_HOME/mpenc/client.toml.
func defaultConfigPath() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "mpenc", "client.toml")
}

func defaultStorePath(account string) string {
	dir := os.Getenv("XDG_DATA_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return account + ".db"
		}
		dir = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(dir, "mpenc", account+".db")
}

// roomList is a flag that may be repeated or hold a comma-separated list.
type roomList []string

func (r *roomList) String() string { return strings.Join(*r, ",") }
func (r *roomList) Set(s string) error {
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*r = append(*r, x)
		}
	}
	return nil
}

// loadConfig reads the flags in args and the configuration file they name
// (or the default one, if it exists); flags override the file. Unknown
// keys in the file are an error.
func loadConfig(args []string) (*Config, error) {
	fs := flag.NewFlagSet("mpenc-client", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	var (
		path                                = fs.String("config", "", "configuration file")
		account, nick, server, security, ca string
		label                               string
		storePath, timing, include, logFile string
		logLevel                            string
		plain, verbose, requireCB           bool
		rooms                               roomList
	)
	fs.StringVar(&account, "account", "", "account JID")
	fs.StringVar(&nick, "nick", "", "nick in rooms")
	fs.StringVar(&label, "label", "", "this device's name shown to others")
	fs.StringVar(&server, "server", "", "server host:port")
	fs.StringVar(&security, "security", "", "starttls, directtls or plaintext")
	fs.StringVar(&ca, "ca", "", "PEM file of root certificates")
	fs.BoolVar(&requireCB, "require-channel-binding", false, "log in only with SASL channel binding")
	fs.StringVar(&storePath, "store", "", "database file")
	fs.StringVar(&timing, "timing", "", "internet or loopback")
	fs.StringVar(&include, "include", "", "manual, trusted or everyone")
	fs.StringVar(&logFile, "log", "", "log file")
	fs.StringVar(&logLevel, "log-level", "", "debug, info, warn or error")
	fs.BoolVar(&plain, "plain", false, "line mode for pipes and scripts")
	fs.BoolVar(&verbose, "v", false, "debug logs (to the log file)")
	fs.Var(&rooms, "room", "room to join (repeat, or comma-separated)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see -h)", fs.Arg(0))
	}
	c := &Config{Include: "manual", LogLevel: "info", PasswordEnv: "MPENC_PASSWORD", PassphraseEnv: "MPENC_PASSPHRASE", HistoryLines: 200}
	file := *path
	if file == "" {
		if p := defaultConfigPath(); p != "" {
			if _, err := os.Stat(p); err == nil {
				file = p
			}
		}
	}
	if file != "" {
		if err := decodeFile(file, c); err != nil {
			return nil, err
		}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.Account, account)
	set(&c.Nick, nick)
	set(&c.Label, label)
	set(&c.Server, server)
	set(&c.Security, security)
	set(&c.CAFile, ca)
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "require-channel-binding" { // given: it overrides the file, either way
			c.RequireChannelBinding = requireCB
		}
	})
	set(&c.Store, storePath)
	set(&c.Timing, timing)
	set(&c.Include, include)
	set(&c.LogFile, logFile)
	set(&c.LogLevel, logLevel)
	if verbose {
		c.LogLevel = "debug"
	}
	c.Plain = plain
	c.Rooms = append(c.Rooms, rooms...)
	return c, c.check()
}

func decodeFile(path string, c *Config) error {
	md, err := toml.DecodeFile(path, c)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("config %s does not exist", path)
	}
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		var keys []string
		for _, k := range und {
			keys = append(keys, k.String())
		}
		return fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return nil
}

// maxHistoryLines is the most history App.History returns at once.
const maxHistoryLines = 1000

// expandHome replaces a leading "~/" with the home directory.
func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

func (c *Config) check() error {
	if c.Account == "" {
		return errors.New("no account: set account in the configuration file or use -account user@example.org")
	}
	if c.Store == "" {
		c.Store = defaultStorePath(c.Account)
	}
	c.Store = expandHome(c.Store)
	if c.LogFile == "" {
		c.LogFile = c.Store + ".log"
	}
	c.LogFile = expandHome(c.LogFile)
	switch c.Include {
	case "manual", "trusted", "everyone":
	default:
		return fmt.Errorf("include policy %.40q: want manual, trusted or everyone", c.Include)
	}
	if c.HistoryLines <= 0 || c.HistoryLines > maxHistoryLines {
		return fmt.Errorf("history_lines must be 1 to %d", maxHistoryLines)
	}
	if _, err := c.Settings.Config(); err != nil {
		return err
	}
	return nil
}
