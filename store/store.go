package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound: no such account, device, room or message.
	ErrNotFound = errors.New("store: not found")
	// errExists: the account, device or message already exists.
	errExists = errors.New("store: already exists")
	// ErrInvalid: an argument is malformed or over its size limit.
	ErrInvalid = errors.New("store: invalid input")
	// ErrCorrupt: a value read back from the database is malformed (a
	// damaged or tampered file). Never returned for a wrong passphrase.
	ErrCorrupt = errors.New("store: database holds a malformed value")
	// errNotStore: the file is an SQLite database of another program.
	errNotStore = errors.New("store: not an mpenc store")
	// errClosed: the store was closed.
	errClosed = errors.New("store: closed")
)

// Options tunes Open. The zero value is what programs want.
type Options struct {
	// Now gives the times recorded (account creation, trust events...);
	// nil means time.Now. It is called from every goroutine that uses the
	// store, so it must be safe for concurrent use.
	Now func() time.Time
	// BusyTimeout is how long a write waits for another process holding
	// the database; 0 means 10 s.
	BusyTimeout time.Duration
	// PlainRows and PlainAge bound the unencrypted messages (plain
	// entries) a room's history keeps: the newest PlainRows (0: 1000),
	// none older than PlainAge (0: 30 days).
	PlainRows int
	PlainAge  time.Duration

	// migrations replaces the schema history (tests only).
	migrations []migration
}

// Store is an open mpenc database. It is safe for concurrent use by any
// number of goroutines: all access goes through one SQLite connection,
// so operations are serialised and each logical write is one transaction.
// Close it when done.
type Store struct {
	db   *sql.DB
	path string
	now  func() time.Time

	plainRows int           // plain entries kept per room
	plainAge  time.Duration // and for how long

	mu        sync.Mutex
	agePruned time.Time // when the age bound was last applied
}

// Open opens the store at path, creating the file if needed, makes it and
// its -wal and -shm companions mode 0600 (at every open, not only at
// creation: a file made readable by others since is made private again),
// brings its schema up to date and removes the unencrypted messages
// beyond their bounds (Options.PlainRows, PlainAge). It refuses a file
// that is not an mpenc store and one whose schema is newer than this
// program's.
//
// The database runs in WAL mode with synchronous=FULL: when a write
// returns, it is on disk and survives a crash of the process or of the
// machine (docs/STORE.md gives the argument).
func Open(path string, opt *Options) (*Store, error) {
	if opt == nil {
		opt = &Options{}
	}
	if path == "" {
		return nil, fmt.Errorf("%w: empty path", ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// Create the file ourselves so it is private from its first byte;
	// SQLite gives the -wal and -shm files the database's permissions
	// when it creates them. Files that exist keep theirs: make them
	// private again (someone, or a copy, may have widened them).
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", abs, err)
	}
	err = f.Chmod(0o600)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("store: making %s private: %w", abs, err)
	}
	for _, companion := range []string{abs + "-wal", abs + "-shm"} {
		if err := os.Chmod(companion, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("store: making %s private: %w", companion, err)
		}
	}

	busy := opt.BusyTimeout
	if busy <= 0 {
		busy = 10 * time.Second
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	// A write transaction takes the write lock when it begins, so two
	// processes never deadlock upgrading read locks (SQLITE_BUSY mid-way).
	q.Add("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", abs, err)
	}
	// One connection: operations are serialised in Go, and no goroutine of
	// ours ever waits on another's SQLite lock.
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	s := &Store{db: db, path: abs, now: opt.Now, plainRows: opt.PlainRows, plainAge: opt.PlainAge}
	if s.now == nil {
		s.now = time.Now
	}
	if s.plainRows <= 0 {
		s.plainRows = defaultPlainRows
	}
	if s.plainAge <= 0 {
		s.plainAge = defaultPlainAge
	}
	ctx := context.Background()
	if err := s.checkMode(ctx); err != nil {
		db.Close()
		return nil, err
	}
	ms := migrations
	if opt.migrations != nil {
		ms = opt.migrations
	}
	if _, _, err := migrate(ctx, db, ms, s.now); err != nil {
		db.Close()
		return nil, err
	}
	if opt.migrations == nil {
		if err := inTx(ctx, db, func(tx *sql.Tx) error { return s.prunePlain(ctx, tx, 0, "", 0) }); err != nil {
			db.Close()
			return nil, s.wrap("removing old unencrypted messages", err)
		}
	}
	return s, nil
}

// checkMode makes sure the pragmas took: a filesystem without the shared
// memory WAL needs would silently leave us in another journal mode.
func (s *Store) checkMode(ctx context.Context) error {
	var mode string
	var syncLevel, fk int
	if err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fmt.Errorf("store: opening %s: %w", s.path, err)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&syncLevel); err != nil {
		return fmt.Errorf("store: opening %s: %w", s.path, err)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
		return fmt.Errorf("store: opening %s: %w", s.path, err)
	}
	if !strings.EqualFold(mode, "wal") || syncLevel != 2 || fk != 1 {
		return fmt.Errorf("store: %s: the database runs with journal_mode=%s synchronous=%d foreign_keys=%d; want wal, 2 (FULL), 1", s.path, mode, syncLevel, fk)
	}
	return nil
}

// Close checkpoints the WAL into the database file and closes it. Other
// methods return ErrClosed (wrapped) afterwards.
func (s *Store) Close() error {
	// A checkpoint is an optimisation, not a durability step: committed
	// transactions are already safe in the WAL.
	_, _ = s.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: closing: %w", err)
	}
	return nil
}

// integrityCheck runs SQLite's integrity_check and foreign_key_check and
// returns an error describing any problem found.
func (s *Store) integrityCheck(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return s.wrap("integrity check", err)
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return s.wrap("integrity check", err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s.wrap("integrity check", err)
	}
	frows, err := s.db.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return s.wrap("foreign key check", err)
	}
	for frows.Next() {
		problems = append(problems, "a row references a missing parent")
	}
	frows.Close()
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrCorrupt, strings.Join(problems, "; "))
	}
	return nil
}

// wrap adds context and turns database/sql's closed error into ErrClosed.
func (s *Store) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), "sql: database is closed") {
		return fmt.Errorf("store: %s: %w", what, errClosed)
	}
	if strings.HasPrefix(err.Error(), "store: ") {
		return err
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// inTx runs fn in one write transaction (BEGIN IMMEDIATE), committing if
// it returns nil and rolling back otherwise.
func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Times are stored as Unix nanoseconds; 0 is the zero time.
func encTime(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func decTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Extended SQLite result codes we branch on.
const (
	sqliteConstraintFK     = 787  // SQLITE_CONSTRAINT_FOREIGNKEY
	sqliteConstraintUnique = 2067 // SQLITE_CONSTRAINT_UNIQUE
)

func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// isFK reports a foreign key violation: the account does not exist.
func isFK(err error) bool { return sqliteCode(err) == sqliteConstraintFK }
