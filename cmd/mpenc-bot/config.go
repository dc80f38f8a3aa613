package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/store"
)

// Config is the bot's configuration file (TOML). See usage.
type Config struct {
	app.Settings
	// PasswordEnv and PassphraseEnv name the environment variables that
	// hold the XMPP password and the identity key's passphrase.
	PasswordEnv   string `toml:"password_env"`
	PassphraseEnv string `toml:"passphrase_env"`
	// Prefix starts a command ("!").
	Prefix string `toml:"prefix"`
	// Greeting is sent to members when they are included; "" disables it.
	// "{name}" is replaced by their bare JID.
	Greeting string `toml:"greeting"`
	// LogFile: JSON logs go there (appended, mode 0600, rotated at 10 MiB
	// with three old files kept); empty: standard error.
	LogFile string `toml:"log_file"`
	// LogLevel: debug, info, warn or error.
	LogLevel string `toml:"log_level"`
	// Rejoin: enter again, with backoff, a room the bot was removed from
	// (kicked, banned, the room destroyed), whose join failed, or whose
	// session stopped; nil (not set) means true. Off, the bot exits with
	// an error once it is out of every room.
	Rejoin *bool `toml:"rejoin"`
	// HistoryService is the database of the history service the bot
	// hosts (issue [N], docs/USAGE.md "The bot as a history service");
	// "" (default): none. "~/" is the home directory.
	HistoryService string       `toml:"history_service"`
	Rooms          []RoomConfig `toml:"rooms"`
}

// rejoin reports whether the bot rejoins the rooms it was removed from.
func (c *Config) rejoin() bool { return c.Rejoin == nil || *c.Rejoin }

// RoomConfig is one [[rooms]] table.
type RoomConfig struct {
	JID  string `toml:"jid"`
	Nick string `toml:"nick"`
	// Include: "everyone" (default), "trusted" (verified keys only) or
	// "manual".
	Include string `toml:"include"`
}

const defaultGreeting = "Hello {name}! I am an mpENC bot: this conversation is end-to-end encrypted, the server cannot read it. Type !help for my commands."

// loadConfig reads a configuration file; unknown keys are an error (a
// typo must not silently change a security setting).
func loadConfig(path string) (*Config, error) {
	c := &Config{PasswordEnv: "MPENC_PASSWORD", PassphraseEnv: "MPENC_PASSPHRASE", Prefix: "!", Greeting: defaultGreeting, LogLevel: "info"}
	md, err := toml.DecodeFile(path, c)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		var keys []string
		for _, k := range und {
			keys = append(keys, k.String())
		}
		return nil, fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return c, c.check()
}

func (c *Config) check() error {
	if c.Account == "" {
		return fmt.Errorf("config: account is required")
	}
	if c.Store == "" {
		c.Store = "mpenc-bot.db"
	}
	if len(c.Rooms) == 0 && c.HistoryService == "" {
		return fmt.Errorf("config: no [[rooms]] and no history_service: nothing to do")
	}
	if c.HistoryService != "" && expandHome(c.HistoryService) == expandHome(c.Store) {
		return fmt.Errorf("config: history_service must be a database of its own, not the store")
	}
	if c.Prefix == "" {
		return fmt.Errorf("config: empty prefix")
	}
	seen := map[string]bool{}
	for i, r := range c.Rooms {
		if r.JID == "" {
			return fmt.Errorf("config: rooms[%d] has no jid", i)
		}
		if seen[r.JID] {
			return fmt.Errorf("config: room %s listed twice", r.JID)
		}
		seen[r.JID] = true
		if r.Include == "" {
			c.Rooms[i].Include = "everyone"
		}
		switch c.Rooms[i].Include {
		case "manual", "trusted", "everyone":
		default:
			return fmt.Errorf("config: room %s: include policy %.40q: want manual, trusted or everyone", r.JID, c.Rooms[i].Include)
		}
	}
	if _, err := c.Settings.Config(); err != nil {
		return err
	}
	return nil
}

// secrets reads the password and the passphrase from the environment and
// removes the variables.
func (c *Config) secrets() (password string, passphrase []byte, err error) {
	pw, err := store.PassphraseFromEnv(c.PasswordEnv)
	if err != nil {
		return "", nil, fmt.Errorf("the XMPP password: %w", err)
	}
	pp, err := store.PassphraseFromEnv(c.PassphraseEnv)
	if err != nil {
		return "", nil, fmt.Errorf("the identity key's passphrase: %w", err)
	}
	_ = os.Unsetenv(c.PasswordEnv)
	return string(pw), pp, nil
}
