// Command mpenc-bot is an mpENC bot: it sits in encrypted rooms, includes
// newcomers by policy, greets them and answers commands. It uses only the
// module's exported API (package app and below).
//
// See the usage constant (mpenc-bot -h) and docs/USAGE.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/mpenc/mpenc/app"
)

const usage = `mpenc-bot: an mpENC bot for XMPP rooms.

Usage:
    mpenc-bot -config FILE [-v]

The configuration file (TOML):

    account  = "bot@example.org"      # required
    label    = "bot"                  # this device's name, shown to others; default: the host's name
    nick     = "bot"                  # default: local part/label-device, one per device
    store    = "bot.db"               # identity key, trust, history (SQLite)
    server   = "xmpp.example.org:5222"  # default: SRV records
    security = "starttls"             # starttls | directtls | plaintext (loopback only)
    ca_file  = ""                     # PEM roots; default: the system's
    require_channel_binding = false   # true: log in only with SASL channel binding
    timing   = "internet"             # internet | loopback
    password_env   = "MPENC_PASSWORD"    # variable holding the XMPP password
    passphrase_env = "MPENC_PASSPHRASE"  # variable holding the key's passphrase
    prefix   = "!"
    greeting = "Hello {name}! ..."    # "" for none
    log_file = ""                     # JSON logs (mode 0600, rotated at 10 MiB, 3 old
                                      # files kept); default: standard error
    log_level = "info"                # debug | info | warn | error
    rejoin   = true                   # rejoin a room we were removed from (kicked, destroyed,
                                      # a failed join), 5 s doubling to 5 min; false: exit
                                      # with an error once out of every room
    history_service = ""              # a database path: also serve as a history service
                                      # for users' own archives (then [[rooms]] may be empty)

    [[rooms]]
    jid     = "lobby@conference.example.org"
    include = "everyone"              # everyone | trusted (verified keys) | manual

Commands in the rooms: !help, !ping, !echo TEXT, !members, !fingerprint [JID].

The bot stays in its rooms: after a lost connection or a server restart
the session re-forms by itself; when it is kicked, the room destroyed, or
nobody includes it in time, it logs why and rejoins with backoff.

The password and the passphrase are read from the environment and removed
from it. The first run creates the bot's identity key, sealed with the
passphrase, in the store. SIGINT or SIGTERM make the bot leave its rooms
properly and exit.

Example:
    MPENC_PASSWORD=... MPENC_PASSPHRASE=... mpenc-bot -config bot.toml
`

// expandHome replaces a leading "~/" with the home directory.
func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

func main() {
	fs := flag.NewFlagSet("mpenc-bot", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	cfgPath := fs.String("config", "", "configuration file (TOML)")
	verbose := fs.Bool("v", false, "debug logs")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if *cfgPath == "" || fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mpenc-bot: error: %v\n", err)
		os.Exit(1)
	}
	var out io.Writer = os.Stderr
	if cfg.LogFile != "" {
		f, err := openLog(cfg.LogFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mpenc-bot: error: log file: %v\n", err)
			os.Exit(1)
		}
		defer f.Close()
		out = f
	}
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mpenc-bot: error: log_level: %v\n", err)
		os.Exit(1)
	}
	if *verbose {
		level = zerolog.DebugLevel
	}
	zl, log := newLogger(out, level)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		zl.Error().Err(err).Msg("exit")
		fmt.Fprintf(os.Stderr, "mpenc-bot: error: %v\n", err)
		os.Exit(1)
	}
	zl.Info().Msg("stopped")
}

// openLog opens the log file of the configuration: mode 0600, rotated
// at 10 MiB with three old files kept (app.OpenLog), its directory created
// mode 0700 if missing.
func openLog(path string) (io.WriteCloser, error) {
	return app.OpenLog(expandHome(path))
}

// newLogger returns the bot's logger, JSON lines on out from level up
// (level, cmd, the key/values, time, message), and the same logger for
// package app, whose log/slog records zerolog's handler writes as such
// lines.
func newLogger(out io.Writer, level zerolog.Level) (zerolog.Logger, *slog.Logger) {
	zl := zerolog.New(out).Level(level).With().Timestamp().Str("cmd", "mpenc-bot").Logger()
	return zl, slog.New(zerolog.NewSlogHandler(zl))
}
