// Command mpenc-client is the terminal client of mpenc: end-to-end
// encrypted group chat in XMPP rooms (the mpENC protocol). It has a
// full-screen interface and a line mode (-plain) for pipes and scripts.
//
// See the usage constant (mpenc-client -h) and docs/USAGE.md.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/store"
)

const usage = `mpenc-client: end-to-end encrypted group chat over XMPP (mpENC).

Usage:
    mpenc-client [flags]

Flags (they override the configuration file):
    -config FILE     configuration file (TOML); default ~/.config/mpenc/client.toml if it exists
    -account JID     your account, user@example.org
    -room ROOM       a room to join, room@conference.example.org (repeat, or comma-separated)
    -label NAME      this device's name shown to others (default: the host's name)
    -nick NICK       your nick in rooms, one per device (default: local part/label-device, alice/laptop-1a2b3c4d)
    -server H:P      the server's host:port (default: the domain's SRV records)
    -security S      starttls (default), directtls, or plaintext (loopback servers only)
    -ca FILE         PEM roots to verify the server with (default: the system's)
    -require-channel-binding
                     log in only with SASL channel binding (SCRAM-...-PLUS,
                     tied to the TLS connection); default: where it is known to work
    -store FILE      database: identity key, trust, history (default ~/.local/share/mpenc/ACCOUNT.db)
    -timing T        internet (default) or loopback (a server on this machine)
    -include P       whom to include when they enter: manual (default), trusted, everyone
    -log FILE        log file (default: the store's path + ".log"); never the screen
    -log-level L     debug, info (default), warn, error; -v is debug
    -plain           line mode: read lines from standard input, print events as lines

The XMPP password is read from $MPENC_PASSWORD, else prompted for; the
passphrase that seals your identity key from $MPENC_PASSPHRASE, else
prompted for (twice, the first time). Both variables are read at start,
then overwritten and removed from the environment (docs/USAGE.md says
what stays visible). The log file rotates at 10 MiB (three old files kept).

In the client, type a message and Enter to send it to the room, encrypted.
Commands: /join /part /invite /kick /refresh /who /devices /history /info /resend
/fingerprint /verify /why /trust /distrust /rooms /room /help /quit. Keys (full screen): Up
with an empty input selects messages (Up/Down move, Ctrl-R sends the
selected one again if it did not reach everyone, Esc leaves), PgUp/PgDn
scroll, Ctrl-N/Ctrl-P or Alt-1..9 switch rooms, Ctrl-C quits.

Exit status: 0 all went well, 1 another error, 2 bad flags or
configuration, 3 the server unreachable, 4 the login refused, 5 in no
room, 6 a message typed did not reach everyone (docs/USAGE.md).

Examples:
    mpenc-client -account alice@example.org -room team@conference.example.org
    MPENC_PASSWORD=... MPENC_PASSPHRASE=... mpenc-client -plain -config bot-peer.toml < script.txt
`

func main() {
	cfg, err := loadConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mpenc-client: error: %v\n", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "mpenc-client: error: %v\n", err)
		os.Exit(exitCode(err))
	}
}

func run(cfg *Config) error {
	// Secrets from the environment are read (and scrubbed from it)
	// first, so they stay readable in /proc/PID/environ as briefly as
	// possible; prompts come later, when they are needed.
	password, _ := store.PassphraseFromEnv(cfg.PasswordEnv)
	envPassphrase, _ := store.PassphraseFromEnv(cfg.PassphraseEnv)
	defer clear(envPassphrase)
	lf, err := openLogFile(cfg)
	if err != nil {
		return err
	}
	defer lf.Close()
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	log, alog := newLogger(lf, level)

	if password == nil {
		if password, err = secret(cfg.PasswordEnv, "XMPP password for "+cfg.Account+": ", false); err != nil {
			return err
		}
	}
	acfg, err := cfg.Settings.Config()
	if err != nil {
		return err
	}
	acfg.Password = string(password)
	clear(password)
	acfg.Logger = alog
	acfg.Passphrase = func(create bool) ([]byte, error) {
		if create {
			fmt.Fprintf(os.Stderr, "mpenc-client: creating this device's identity key for %s\n", cfg.Account)
		}
		if p := envPassphrase; p != nil {
			envPassphrase = nil // the App zeroes what it is given
			return p, nil
		}
		return secret(cfg.PassphraseEnv, "passphrase for your identity key: ", create)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	a, err := app.Open(ctx, acfg)
	if err != nil {
		return err
	}
	c := newClient(a, cfg, log)
	var fe interface {
		run(ctx context.Context) error
	}
	if cfg.Plain {
		fe = newPlainUI(c, os.Stdin, os.Stdout)
	} else {
		fe = newTUI(c)
	}
	// Rooms: the configured ones, then those remembered from /join.
	rooms := cfg.Rooms
	if saved, err := a.SavedRooms(ctx); err == nil {
		for _, r := range saved {
			rooms = append(rooms, r.JID)
		}
	}
	seen := map[string]bool{}
	for _, r := range rooms {
		if !seen[r] {
			seen[r] = true
			c.initial = append(c.initial, r)
		}
	}
	runErr := fe.run(ctx)
	if runErr == nil && !cfg.Plain {
		// The full-screen client quits when the user asks; its status
		// still says when no room could be joined (a wrong password).
		if code, ok := c.stuck(); ok {
			runErr = &statusError{code, errors.New("in no room: none could be joined, or each one removed us")}
		}
	}
	if !cfg.Plain {
		fmt.Fprintln(os.Stderr, "mpenc-client: leaving the rooms properly…")
	}
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Close(cctx); err != nil {
		log.Warn().Err(err).Msg("close")
	}
	log.Info().Msg("exit")
	return runErr
}

// openLogFile creates the store's directory if it is missing (mode 0700,
// as the log's: app.OpenLog creates that one) and opens the log file,
// which rotates itself (10 MiB, three old files) and is mode 0600.
func openLogFile(cfg *Config) (io.WriteCloser, error) {
	if err := privateDir(filepath.Dir(cfg.Store)); err != nil {
		return nil, err
	}
	w, err := app.OpenLog(cfg.LogFile)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return w, nil
}

// privateDir creates dir, mode 0700, if it does not exist; a directory
// that exists is left as it is (it may be shared on purpose).
func privateDir(dir string) error {
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700) // exactly, whatever the umask
}

// newLogger returns the client's logger, JSON lines on out (the log file)
// from level up (level, cmd, the key/values, time, message), and the same
// logger for package app, whose log/slog records zerolog's handler writes
// as such lines.
func newLogger(out io.Writer, level zerolog.Level) (zerolog.Logger, *slog.Logger) {
	zl := zerolog.New(out).Level(level).With().Timestamp().Str("cmd", "mpenc-client").Logger()
	return zl, slog.New(zerolog.NewSlogHandler(zl))
}

// secret reads a secret from the environment variable env (removing it),
// else prompts on the terminal; confirm asks twice.
func secret(env, prompt string, confirm bool) ([]byte, error) {
	if v, err := store.PassphraseFromEnv(env); err == nil {
		return v, nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("$%s is not set and there is no terminal to ask on", env)
	}
	defer tty.Close()
	for {
		fmt.Fprint(tty, prompt)
		v, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		if err != nil {
			return nil, err
		}
		if !confirm {
			return v, nil
		}
		fmt.Fprint(tty, "again: ")
		w, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(v, w) {
			clear(w)
			return v, nil
		}
		clear(v)
		clear(w)
		fmt.Fprintln(tty, "they differ; once more")
	}
}
