package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/store"
	"github.com/mpenc/mpenc/trust"
)

// The trust store's directory is what feeds announced keys to the trust
// store: the session calls ObserveKey for every EventIdentity.
var _ session.KeyObserver = (*trust.Directory)(nil)

// Config configures an App. Only Store, Account, Password and Passphrase
// are required.
type Config struct {
	// Store is the path of the SQLite database (created mode 0600).
	Store string
	// Account is our bare JID, "alice@example.org".
	Account string
	// Label names this device to people ("laptop", "phone"): it is shown
	// next to our name when we have several devices in a room, and
	// announced, signed by the device's key, in our room presence. Empty:
	// the host's name (its first label), or "device". At most 32 bytes of
	// printable text.
	Label string
	// Nick is our default nick in rooms; empty: the account's local part,
	// "/", the label and the device's resource suffix
	// ("alice/laptop-1a2b3c4d"), so that two devices of one account never
	// share one: Prosody and ejabberd merge two sessions of one account
	// under one nick into one occupant, which breaks the session. A nick
	// set here is used as it is: give each device its own.
	Nick string
	// Password is the XMPP account password.
	Password string
	// Passphrase returns the passphrase that seals the device's identity
	// key: create is true when a new key is being made (a prompt should
	// ask twice). The App zeroes the returned slice.
	Passphrase func(create bool) ([]byte, error)
	// KDF seals a new device's key; zero: Argon2id t=3, 64 MiB, p=4.
	// Tests use small parameters.
	KDF store.KDFParams

	// Server is the server's "host:port"; empty: SRV lookup.
	Server string
	// Security: StartTLS (default), DirectTLS, or UnsafePlaintext
	// (loopback only).
	Security xmpp.Security
	// RootCAs verifies the server's certificate; nil: the system roots.
	RootCAs *x509.CertPool
	// RequireChannelBinding: log in only with SASL channel binding
	// (xmpp.Config.RequireChannelBinding); false: where it is known to
	// work.
	RequireChannelBinding bool

	// Timing of the sessions; zero: session.InternetTiming().
	Timing session.Timing
	// PartTimeout bounds how long leaving a room properly may take at
	// Close and Leave (default 15 s); after it the room is left anyway.
	PartTimeout time.Duration
	// JoinTimeout bounds entering a room (default 30 s).
	JoinTimeout time.Duration
	// JoinWindow is how long we wait to be included in a room's session,
	// how long the members of our last session who lost the room are
	// included again by themselves when they come back, and how long a
	// message typed while out of the session waits for its readers (0:
	// the session's default, 5 minutes: a period for people).
	JoinWindow time.Duration

	// Logger receives diagnostics, from several goroutines: Debug is
	// detail (each notice's kind), Info the normal course of things
	// (connections, joins), Warn something wrong the App carries on from
	// (a warning notice, a failed join or part), Error something lost (a
	// history entry not recorded). The values never hold message text,
	// keys or passwords. nil: discard.
	Logger *slog.Logger
	// XMPP, if set, may adjust the account's connection configuration
	// before it is dialled (tests shorten timers with it).
	XMPP func(*xmpp.Config)
}

// App runs one account: its device, its rooms, their sessions. Create it
// with Open and end it with Close. Its methods are safe for concurrent use.
type App struct {
	cfg   Config
	st    *store.Store
	acct  store.Account
	res   string // the device's resource
	key   *crypto.SigningKey
	trust *trust.Store

	q *queue

	// xmu guards xa, the account's connection, dialled by the first Join
	// and shared by every room.
	xmu sync.Mutex
	xa  *xmpp.Account

	// hist is the own archive (history.go); histStop ends its loop
	// (Close, before the last write).
	hist     *archiver
	histStop context.CancelFunc

	// dev is the device channel; devStop ends its loop (Close).
	dev     *devices
	devStop context.CancelFunc
	devWG   sync.WaitGroup

	mu      sync.Mutex
	rooms   map[string]*Room
	closed  bool
	invites recentInvites // guarded by mu
}

// errClosed is returned by the methods of a closed App.
var errClosed = errors.New("app: closed")

// ErrConnect is the error (wrapped, with the XMPP layer's reason) of a
// Join or a device send that could not connect the account: the server
// unreachable, TLS refused, the login refused (xmpp.ErrAuth). A
// connection that worked once and dropped is not reported this way: it is
// reconnected by itself.
var ErrConnect = errors.New("app: could not connect")

// discard is the logger of an App whose Config has none.
var discard = slog.New(slog.DiscardHandler)

// log is where the App's diagnostics go: Config.Logger, or discard.
func (a *App) log() *slog.Logger {
	if a.cfg.Logger != nil {
		return a.cfg.Logger
	}
	return discard
}

// Open opens the store (creating it if needed), finds or creates the
// account and its device, and unlocks the device's identity key (or makes
// one) with the passphrase from cfg.Passphrase (store.Store.Unlock). A
// wrong passphrase gives an error that says so.
func Open(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Store == "" || cfg.Account == "" {
		return nil, errors.New("app: Config.Store and Config.Account are required")
	}
	if cfg.Password == "" {
		return nil, errors.New("app: no XMPP password")
	}
	if cfg.Passphrase == nil {
		return nil, errors.New("app: Config.Passphrase is required")
	}
	j, err := jid.Parse(cfg.Account)
	if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
		return nil, fmt.Errorf("app: account %q must be a bare JID user@example.org", cfg.Account)
	}
	if cfg.Label == "" {
		cfg.Label = hostLabel()
	}
	if err := checkLabel(cfg.Label); err != nil {
		return nil, err
	}
	if cfg.Timing == (session.Timing{}) {
		cfg.Timing = session.InternetTiming()
	}
	if err := cfg.Timing.Validate(); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if cfg.PartTimeout <= 0 {
		cfg.PartTimeout = 15 * time.Second
	}
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = 30 * time.Second
	}
	st, err := store.Open(cfg.Store, nil)
	if err != nil {
		return nil, fmt.Errorf("app: opening the store %s: %w", cfg.Store, err)
	}
	a := &App{cfg: cfg, st: st, rooms: map[string]*Room{}, q: newQueue()}
	if err := a.unlock(ctx); err != nil {
		st.Close()
		return nil, err
	}
	a.dev = newDevices(a)
	a.hist = newArchiver(a)
	a.trust = st.Trust(a.acct.ID, trust.Config{
		Self: a.acct.JID + "/" + a.res, SelfKey: a.key.Public(),
		OnChange: a.trustChanged, OnVouch: a.dev.vouch,
	})
	a.log().Info("device ready", "account", a.acct.JID, "device", a.res,
		"fingerprint", trust.FingerprintOf(a.key.Public()).String())
	return a, nil
}

// unlock finds or creates the account and the device and unlocks its key.
func (a *App) unlock(ctx context.Context) error {
	created := false
	ask := func(create bool) ([]byte, error) {
		created = create
		return a.cfg.Passphrase(create)
	}
	local, _, _ := strings.Cut(a.cfg.Account, "@")
	acct, res, key, err := a.st.Unlock(ctx, a.cfg.Account, local, ask, a.cfg.KDF)
	if err != nil {
		return fmt.Errorf("app: the identity key of %s: %w", a.cfg.Account, err)
	}
	a.acct, a.res, a.key = acct, res, key
	if a.cfg.Nick == "" {
		a.cfg.Nick = defaultNick(local, a.cfg.Label, res)
	}
	if created {
		a.log().Info("created device", "device", res)
	}
	return nil
}

// Account returns our bare JID.
func (a *App) Account() string { return a.acct.JID }

// PublicKey returns our identity public key.
func (a *App) PublicKey() crypto.PublicKey { return a.key.Public() }

// Trust returns the account's trust store (for /verify, /trust,
// /distrust, and listing keys).
func (a *App) Trust() *trust.Store { return a.trust }

// Connect opens the account's connection now, if it is not open (the
// first Join opens it by itself): for a bot that serves only as a
// history service, or a device in no room. A failure is ErrConnect.
func (a *App) Connect(ctx context.Context) error {
	_, err := a.account(ctx)
	return err
}

// PublishedDevices fetches the device list that account (a bare JID)
// publishes (xmpp.Account.Devices): the devices whose entry is signed by
// their key for that account. It returns none and no error for an account
// that publishes no list, and fails before the first room is joined (the
// connection is opened then).
func (a *App) PublishedDevices(ctx context.Context, account string) ([]xmpp.Device, error) {
	a.xmu.Lock()
	xa := a.xa
	a.xmu.Unlock()
	if xa == nil {
		return nil, errors.New("app: not connected yet (the connection opens with the first room)")
	}
	return xa.Devices(ctx, account)
}

// Events returns every room's events, in order per room. It must be
// drained; it is closed by Close.
func (a *App) Events() <-chan Event { return a.q.out }

// Room returns the room with this bare JID, or nil (also while Join is
// still connecting to it).
func (a *App) Room(roomJID string) *Room {
	a.mu.Lock()
	r := a.rooms[normRoom(roomJID)]
	a.mu.Unlock()
	if r == nil || !r.running() {
		return nil
	}
	return r
}

// SavedRooms returns the rooms recorded to be joined at start.
func (a *App) SavedRooms(ctx context.Context) ([]store.Room, error) {
	rs, err := a.st.Rooms(ctx, a.acct.ID)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(rs, func(r store.Room) bool { return !r.AutoJoin }), nil
}

// History returns up to limit entries of a room's history older than
// before (a Seq; 0: from the newest), oldest first: what EventEntry
// delivered, as it was last delivered (the latest acknowledgement state),
// with the messages of an earlier session that were still waiting marked
// Unconfirmed. Pass the first entry's Seq to get the page before it; an
// empty page is the beginning. limit is capped at 1000.
func (a *App) History(ctx context.Context, roomJID string, before int64, limit int) ([]Entry, error) {
	room := normRoom(roomJID)
	rows, err := a.st.History(ctx, a.acct.ID, room, before, limit)
	if err != nil {
		return nil, fmt.Errorf("app: history of %s: %w", room, err)
	}
	a.mu.Lock()
	r := a.rooms[room]
	a.mu.Unlock()
	out := make([]Entry, 0, len(rows))
	for _, row := range rows {
		e, err := fromStore(row)
		if err != nil {
			return nil, err
		}
		switch {
		case e.Kind == session.Message && e.Ack == 0, e.Kind == session.Queued && len(e.NotDelivered) == 0:
			e.Unconfirmed = r == nil || !r.isWaiting(e.ID)
		}
		out = append(out, e)
	}
	return out, nil
}

func normRoom(s string) string {
	j, err := jid.Parse(s)
	if err != nil {
		return s
	}
	return j.Bare().String()
}

// account returns the account's connection, dialling it the first time:
// one connection, one resource (the device's) for every room.
func (a *App) account(ctx context.Context) (*xmpp.Account, error) {
	a.xmu.Lock()
	defer a.xmu.Unlock()
	if a.xa != nil {
		return a.xa, nil
	}
	xc := &xmpp.Config{
		JID:      a.acct.JID + "/" + a.res,
		Password: a.cfg.Password,
		Addr:     a.cfg.Server,
		Security: a.cfg.Security,
		TLS:      a.tlsConfig(),
		Identity: a.key.Public(),
		Label:    a.cfg.Label,
		Sign:     a.key.Sign,

		RequireChannelBinding: a.cfg.RequireChannelBinding,
		OnInvitation:          a.invitation,
		OneTimeKeys:           a.dev.keyDigests,
		OnDirect:              a.dev.receive,
		ArchiveCursor:         a.dev.archiveCursor,
		SaveArchiveCursor:     a.dev.saveArchiveCursor,
		Logf: func(format string, args ...any) {
			a.log().Debug(fmt.Sprintf(format, args...))
		},
	}
	if a.cfg.XMPP != nil {
		a.cfg.XMPP(xc)
	}
	// The device channel's keys are made before the first connection
	// publishes them, and its saved sessions read.
	if err := a.dev.refill(ctx); err != nil {
		return nil, fmt.Errorf("app: the device channel's keys: %w", err)
	}
	if err := a.dev.load(ctx); err != nil {
		return nil, fmt.Errorf("app: the device channel's sessions: %w", err)
	}
	xa, err := xmpp.Dial(ctx, xc)
	if err != nil {
		return nil, fmt.Errorf("%w: connecting %s: %w", ErrConnect, a.acct.JID, err)
	}
	a.xa = xa
	dctx, stop := context.WithCancel(context.Background())
	a.devStop = stop
	a.devWG.Go(func() { a.dev.loop(dctx) })
	a.devWG.Go(func() { a.dev.sendRestored(dctx) })
	hctx, hstop := context.WithCancel(context.Background())
	a.histStop = hstop
	a.devWG.Go(func() { a.hist.loop(hctx) })
	a.log().Info("connected", "self", xc.JID)
	return xa, nil
}

// RoomOptions configures one room.
type RoomOptions struct {
	// Nick in the room; empty: the App's.
	Nick string
	// Include is whom we include automatically when they enter: "manual"
	// or "" (nobody: a JoinRequest notice, then Room.Invite), "trusted"
	// (members whose key is verified) or "everyone" (every member that
	// announces an identity key that is not distrusted or changed).
	Include string
	// Remember records the room to be joined at the next start.
	Remember bool
	// StayIfLastMember keeps us in the room, and the session's chain,
	// when everyone else left (bots).
	StayIfLastMember bool
}

// Join connects to a room and joins its session in the background: the
// outcome arrives as an EventJoined (Err set if it failed). It returns
// once the connection is up; ctx bounds only that.
//
// For a room we are in already it enters the room and joins the session
// again, in the background (after a failed join, a kick, or a part of the
// session alone; joining while joined reports success), and returns the
// room; of opt, only Remember counts then.
func (a *App) Join(ctx context.Context, roomJID string, opt RoomOptions) (*Room, error) {
	rj, err := jid.Parse(roomJID)
	if err != nil || rj.Localpart() == "" || rj.Resourcepart() != "" {
		return nil, fmt.Errorf("app: room %q must be a bare JID room@conference.example.org", roomJID)
	}
	room := rj.String()
	if _, _, err := includePolicy(opt.Include); err != nil {
		return nil, err
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, errClosed
	}
	r, ok := a.rooms[room]
	if ok && r.running() && r.fatal() {
		// A session in ERROR never joins again: a new one does.
		a.mu.Unlock()
		if err := r.stop(ctx, false); err != nil {
			a.log().Warn("stopped the failed session", "room", room, "err", err)
		}
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			return nil, errClosed
		}
		r, ok = a.rooms[room]
	}
	if ok {
		a.mu.Unlock()
		if !r.running() {
			return nil, fmt.Errorf("app: already connecting to %s", room)
		}
		go r.join(r.rctx)
	} else {
		r = newRoom(a, room, opt)
		a.rooms[room] = r
		a.mu.Unlock()
		if err := r.start(ctx); err != nil {
			a.mu.Lock()
			delete(a.rooms, room)
			a.mu.Unlock()
			return nil, err
		}
	}
	if opt.Remember {
		nick := opt.Nick
		if nick == "" {
			nick = a.cfg.Nick
		}
		if _, err := a.st.SaveRoom(ctx, store.Room{Account: a.acct.ID, JID: room, Nick: nick, AutoJoin: true, Include: opt.Include}); err != nil {
			a.log().Warn("could not record the room", "room", room, "err", err)
		}
	}
	return r, nil
}

// Leave parts a room properly (bounded by Config.PartTimeout) and closes
// its connection. forget also removes it from the rooms joined at start.
func (a *App) Leave(ctx context.Context, roomJID string, forget bool) error {
	room := normRoom(roomJID)
	r := a.Room(room)
	if forget {
		rs, err := a.st.Rooms(ctx, a.acct.ID)
		for _, sr := range rs {
			if sr.JID == room && sr.AutoJoin {
				sr.AutoJoin = false
				_, err = a.st.SaveRoom(ctx, sr)
			}
		}
		if err != nil {
			a.log().Warn("could not update the room", "room", room, "err", err)
		}
	}
	if r == nil {
		return fmt.Errorf("app: not in %s", room)
	}
	return r.stop(ctx, true)
}

// Close parts every room properly (each bounded by Config.PartTimeout, in
// parallel), closes the connections and the store, zeroes the identity key
// and closes Events. It is idempotent.
func (a *App) Close(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	var rooms []*Room
	for _, r := range a.rooms {
		rooms = append(rooms, r)
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range rooms {
		wg.Go(func() {
			if err := r.stop(ctx, true); err != nil {
				a.log().Warn("part", "room", r.jid, "err", err)
			}
		})
	}
	wg.Wait()
	// While the connection is up: the other ends of verifications and
	// pairings under way hear that this device stops.
	a.dev.op.Lock()
	a.dev.cancelAll(ctx)
	a.dev.op.Unlock()
	a.xmu.Lock()
	connected, histStop := a.xa != nil, a.histStop
	a.xmu.Unlock()
	if connected {
		// What this device saw last reaches the archive: the loop's
		// requests end first (a service that does not answer must not
		// hold up quitting), then one bounded write.
		histStop()
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		a.hist.flush(fctx)
		cancel()
	}
	a.xmu.Lock()
	if a.xa != nil {
		_ = a.xa.Close()
	}
	if a.devStop != nil {
		a.devStop()
	}
	a.xmu.Unlock()
	a.dev.stop()
	a.devWG.Wait()
	a.q.close()
	err := a.st.Close()
	a.key.Zero()
	a.log().Info("closed")
	return err
}

// tlsConfig is the channel's TLS configuration.
func (a *App) tlsConfig() *tls.Config {
	if a.cfg.RootCAs == nil {
		return nil
	}
	return &tls.Config{RootCAs: a.cfg.RootCAs}
}

// loadCAFile reads a PEM file of root certificates (for Config.RootCAs).
func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("app: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("app: CA file %s: no PEM certificate", path)
	}
	return pool, nil
}
