package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// applicationID marks an SQLite file as an mpenc store ("mpen"), so that
// Open refuses another program's database instead of adding tables to it.
const applicationID = 0x6d70656e

// migration is one forward-only schema step. Steps are applied in order,
// each in the transaction that records it, so a database is always at a
// version it records: never between two.
type migration struct {
	version int
	name    string
	sql     string
	// fn, if set, runs after sql in the same transaction: what SQL
	// alone cannot do.
	fn func(ctx context.Context, tx *sql.Tx) error
}

// migrations is the schema history. Append only: never edit a step that
// has shipped, add a new one.
var migrations = []migration{
	{1, "initial schema", schemaV1, nil},
	{2, "queued messages", schemaV2, nil},
	{3, "accepted keys, bounded unencrypted messages", schemaV3, cutPlainBodies},
	{4, "keys by key", schemaV4, nil},
	{5, "device labels of authors", schemaV5, nil},
	{6, "device labels of known keys", schemaV6, nil},
	{7, "device channel keys and sessions", schemaV7, nil},
	{8, "device channel outbox", schemaV8, nil},
	{9, "trust causes and parked trust messages", schemaV9, nil},
}

// schemaV1 is the first schema. Times are Unix nanoseconds (0: none);
// keys are fixed-size BLOBs checked on the way out too; lists are JSON
// arrays of strings. STRICT tables refuse values of the wrong type.
const schemaV1 = `
CREATE TABLE accounts (
	id      INTEGER PRIMARY KEY,
	jid     TEXT    NOT NULL UNIQUE, -- bare JID, as mellium's jid package normalises it
	nick    TEXT    NOT NULL,
	created INTEGER NOT NULL
) STRICT;

CREATE TABLE settings (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	name       TEXT    NOT NULL,
	value      TEXT    NOT NULL,
	PRIMARY KEY (account_id, name)
) STRICT;

-- Our own devices: one identity key each, its seed sealed under a
-- passphrase (see sealed.go for the blob layout, which carries the KDF
-- parameters).
CREATE TABLE devices (
	id         INTEGER PRIMARY KEY,
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	resource   TEXT    NOT NULL,
	public_key BLOB    NOT NULL CHECK (length(public_key) = 32),
	sealed     BLOB    NOT NULL,
	created    INTEGER NOT NULL,
	UNIQUE (account_id, resource)
) STRICT;

-- The trust store (package trust): one row per (bare JID, key).
CREATE TABLE trust_keys (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	jid        TEXT    NOT NULL,
	key        BLOB    NOT NULL CHECK (length(key) = 32),
	state      INTEGER NOT NULL,
	first_seen INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL,
	member     TEXT    NOT NULL,
	decided    INTEGER NOT NULL,
	PRIMARY KEY (account_id, jid, key)
) STRICT;

-- The key each member (full JID) announced last.
CREATE TABLE trust_bindings (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	member     TEXT    NOT NULL,
	key        BLOB    NOT NULL CHECK (length(key) = 32),
	since      INTEGER NOT NULL,
	PRIMARY KEY (account_id, member)
) STRICT;

-- The trust history: first keys, new devices, changes, decisions.
CREATE TABLE trust_events (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	at         INTEGER NOT NULL,
	kind       INTEGER NOT NULL,
	member     TEXT    NOT NULL,
	jid        TEXT    NOT NULL,
	key        BLOB    NOT NULL CHECK (length(key) = 32),
	previous   BLOB    CHECK (previous IS NULL OR length(previous) = 32)
) STRICT;
CREATE INDEX trust_events_jid ON trust_events (account_id, jid, id);

CREATE TABLE rooms (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	jid        TEXT    NOT NULL,
	nick       TEXT    NOT NULL,
	auto_join  INTEGER NOT NULL,
	include    INTEGER NOT NULL,
	added      INTEGER NOT NULL,
	PRIMARY KEY (account_id, jid)
) STRICT;

-- Message history: what the client showed, in the order it showed it
-- (seq), so the message log comes back after a restart.
CREATE TABLE messages (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	room        TEXT    NOT NULL,
	kind        INTEGER NOT NULL,
	msg_id      BLOB    CHECK (msg_id IS NULL OR length(msg_id) = 20),
	author      TEXT    NOT NULL,
	body        TEXT    NOT NULL,
	at          INTEGER NOT NULL,
	own         INTEGER NOT NULL,
	members     TEXT    NOT NULL,
	include     TEXT    NOT NULL,
	exclude     TEXT    NOT NULL,
	log_parents TEXT    NOT NULL,
	ack         INTEGER NOT NULL,
	not_acked   TEXT    NOT NULL,
	final       INTEGER NOT NULL,
	absent      INTEGER NOT NULL,
	UNIQUE (account_id, room, msg_id)
) STRICT;
CREATE INDEX messages_room ON messages (account_id, room, seq);
`

// schemaV2 keeps what happened to messages typed while out of the session
// (kind 4, "queued"): until when one waits (wait_until), and whom a
// message did not reach (not_delivered, a JSON list).
const schemaV2 = `
ALTER TABLE messages ADD COLUMN not_delivered TEXT NOT NULL DEFAULT '[]';
ALTER TABLE messages ADD COLUMN wait_until INTEGER NOT NULL DEFAULT 0;
`

// schemaV3: the key each member is known by (trust_bindings.accepted: a
// member announcing another key is a changed key until the user decides,
// even when the account has that key from another device; the keys bound
// so far are taken as accepted), and unencrypted messages kept as a
// prefix (messages.cut: the bytes left out) for a bounded time and number
// (the index finds a room's plain entries without reading the others).
// cutPlainBodies then cuts the plain entries recorded in full before.
const schemaV3 = `
ALTER TABLE trust_bindings ADD COLUMN accepted BLOB CHECK (accepted IS NULL OR length(accepted) = 32);
UPDATE trust_bindings SET accepted = key;
ALTER TABLE messages ADD COLUMN cut INTEGER NOT NULL DEFAULT 0 CHECK (cut >= 0);
CREATE INDEX messages_kind ON messages (account_id, room, kind, seq);
`

// schemaV4 indexes the trust records by key, so that the store finds
// every account that has a key (trust.Tx.KeyHolders: one key claimed by
// two accounts is a warning, KeyClaimed) without reading every record.
// Nothing else changes: records kept before are judged by the same rule
// when next observed or looked up.
const schemaV4 = `
CREATE INDEX trust_keys_key ON trust_keys (account_id, key);
`

// schemaV5: the label each message's author announced for its device
// (issue [J]), so that a history names one user's devices apart after a
// restart as it did live. Rows recorded before have none.
const schemaV5 = `
ALTER TABLE messages ADD COLUMN author_label TEXT NOT NULL DEFAULT '';
`

// schemaV6: the label each known device announced last (issue [J]), so
// that the device list names devices that are in none of our rooms now.
// Keys recorded before have none until their device is seen again.
const schemaV6 = `
ALTER TABLE trust_keys ADD COLUMN label TEXT NOT NULL DEFAULT '' CHECK (length(CAST(label AS BLOB)) <= 64);
`

// schemaV9 (issue [L]): the cause of each key's last decision
// (trust_keys.cause: trust's Kind of it), the key behind a decision the
// user did not make (trust_events.by_key), the automatically distrusted
// state, and trust messages parked until their sender is authenticated.
// Decisions recorded before were all the user's; blindly trusted keys of
// an account with an authenticated key become automatically distrusted,
// as they now would be (they were not used before either).
const schemaV9 = `
ALTER TABLE trust_keys ADD COLUMN cause INTEGER NOT NULL DEFAULT 0;
ALTER TABLE trust_events ADD COLUMN by_key BLOB CHECK (by_key IS NULL OR length(by_key) = 32);
UPDATE trust_keys SET cause = CASE state WHEN 3 THEN 10 WHEN 2 THEN 11 WHEN 4 THEN 12 ELSE 0 END WHERE decided != 0;
UPDATE trust_keys SET state = 5, cause = 15 WHERE state = 2 AND EXISTS (
	SELECT 1 FROM trust_keys AS a WHERE a.account_id = trust_keys.account_id AND a.jid = trust_keys.jid AND a.state = 3);
CREATE TABLE trust_parked (
	id         INTEGER PRIMARY KEY,
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	sender     TEXT    NOT NULL,
	sender_jid TEXT    NOT NULL,
	sender_key BLOB    NOT NULL CHECK (length(sender_key) = 32),
	owner      TEXT    NOT NULL,
	key        BLOB    NOT NULL CHECK (length(key) = 32),
	trust      INTEGER NOT NULL CHECK (trust IN (0, 1)),
	at         INTEGER NOT NULL,
	UNIQUE (account_id, sender_key, owner, key)
) STRICT;
CREATE INDEX trust_parked_sender ON trust_parked (account_id, sender_jid, id);
`

// cutPlainBodies keeps the first maxPlainText bytes (at a character
// boundary) of every plain entry recorded before version 3.
func cutPlainBodies(ctx context.Context, tx *sql.Tx) error {
	plain, _ := code(kindCodes, kindPlain)
	rows, err := tx.QueryContext(ctx, `SELECT seq, body FROM messages WHERE kind = ? AND length(CAST(body AS BLOB)) > ?`, plain, maxPlainText)
	if err != nil {
		return err
	}
	type cut struct {
		seq  int64
		body string
		n    int
	}
	var cuts []cut
	for rows.Next() {
		var c cut
		if err := rows.Scan(&c.seq, &c.body); err != nil {
			rows.Close()
			return err
		}
		c.body, c.n = cutText(c.body)
		cuts = append(cuts, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, c := range cuts {
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET body = ?, cut = ? WHERE seq = ?`, c.body, c.n, c.seq); err != nil {
			return err
		}
	}
	return nil
}

// migrate brings db to the last version of ms, in one transaction per
// step. It refuses a database whose recorded version is newer than ms
// knows (a newer program wrote it) and a database that is not ours.
func migrate(ctx context.Context, db *sql.DB, ms []migration, now func() time.Time) (from, to int, err error) {
	for i, m := range ms {
		if m.version != i+1 {
			panic("store: migrations must be numbered 1, 2, 3...")
		}
	}
	if err := checkOurs(ctx, db); err != nil {
		return 0, 0, err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name    TEXT    NOT NULL,
		applied INTEGER NOT NULL
	) STRICT`); err != nil {
		return 0, 0, fmt.Errorf("store: creating the schema table: %w", err)
	}
	from, err = schemaVersion(ctx, db)
	if err != nil {
		return 0, 0, err
	}
	if from > len(ms) {
		return from, from, &schemaError{Found: from, Supported: len(ms)}
	}
	for _, m := range ms[from:] {
		err := inTx(ctx, db, func(tx *sql.Tx) error {
			// Re-read inside the write transaction: another process may
			// have migrated since we looked.
			var v int
			if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
				return err
			}
			if v >= m.version {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			if m.fn != nil {
				if err := m.fn(ctx, tx); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)`,
				m.version, m.name, now().UnixNano()); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID))
			return err
		})
		if err != nil {
			return from, 0, fmt.Errorf("store: migration %d (%s): %w", m.version, m.name, err)
		}
	}
	to, err = schemaVersion(ctx, db)
	return from, to, err
}

func schemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var v int
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: reading the schema version: %w", err)
	}
	return v, nil
}

// checkOurs refuses a database that carries another application id, or
// none and tables of its own.
func checkOurs(ctx context.Context, db *sql.DB) error {
	var id int64
	if err := db.QueryRowContext(ctx, `PRAGMA application_id`).Scan(&id); err != nil {
		return fmt.Errorf("store: reading the database header: %w", err)
	}
	if id == applicationID {
		return nil
	}
	if id != 0 {
		return fmt.Errorf("%w (application id %#x)", errNotStore, id)
	}
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name NOT IN ('schema_migrations') AND name NOT LIKE 'sqlite_%'`).Scan(&n)
	if err != nil {
		return fmt.Errorf("store: reading the schema: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("%w (it has %d tables of its own)", errNotStore, n)
	}
	return nil
}

// schemaError reports a database written by a newer version of this
// package: opening it could misread or damage what that version wrote.
type schemaError struct {
	Found, Supported int
}

func (e *schemaError) Error() string {
	return fmt.Sprintf("store: the database has schema version %d; this program knows versions up to %d: use a newer version", e.Found, e.Supported)
}

// Is makes errors.Is(err, ErrSchemaTooNew) true.
func (e *schemaError) Is(target error) bool { return target == errSchemaTooNew }

// errSchemaTooNew matches a *SchemaError.
var errSchemaTooNew = errors.New("store: database schema is newer than this program")
