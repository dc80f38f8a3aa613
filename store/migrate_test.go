package store

import (
	"database/sql"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/trusttest"
	"github.com/mpenc/mpenc/trust"
)

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrateFromEmpty(t *testing.T) {
	path := tempPath(t)
	st := openAt(t, path)
	v, err := schemaVersion(ctx, st.db)
	if err != nil || v != len(migrations) {
		t.Fatalf("version %d, %v", v, err)
	}
	var tables []string
	rows, err := st.db.Query(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	want := "accounts devchan_keys devchan_outbox devchan_sessions devchan_used devices messages rooms schema_migrations settings trust_bindings trust_events trust_keys trust_parked"
	if strings.Join(tables, " ") != want {
		t.Fatalf("tables %v", tables)
	}
	var app int64
	st.db.QueryRow(`PRAGMA application_id`).Scan(&app)
	if app != applicationID {
		t.Fatalf("application id %#x", app)
	}
	if err := st.integrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v", fi.Mode(), err)
	}
}

func TestReopenIsNoOp(t *testing.T) {
	path := tempPath(t)
	st := openAt(t, path)
	a := mustAccount(t, st, "alice@example.org")
	st.Close()
	for range 3 {
		st := openAt(t, path)
		var n int
		st.db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n)
		if n != len(migrations) {
			t.Fatalf("%d migration rows", n)
		}
		from, to, err := migrate(ctx, st.db, migrations, st.now)
		if err != nil || from != to || to != len(migrations) {
			t.Fatalf("migrate again: %d→%d, %v", from, to, err)
		}
		b, err := st.account(ctx, "alice@example.org")
		if err != nil || b.ID != a.ID {
			t.Fatalf("account after reopen: %+v, %v", b, err)
		}
		st.Close()
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := tempPath(t)
	st := openAt(t, path)
	if _, err := st.db.Exec(`INSERT INTO schema_migrations (version, name, applied) VALUES (?, 'from the future', 0)`, len(migrations)+5); err != nil {
		t.Fatal(err)
	}
	st.Close()
	_, err := Open(path, nil)
	var se *schemaError
	if !errors.Is(err, errSchemaTooNew) || !errors.As(err, &se) || se.Found != len(migrations)+5 || se.Supported != len(migrations) {
		t.Fatalf("Open = %v", err)
	}
	if !strings.Contains(err.Error(), "newer version") {
		t.Fatalf("unclear message: %v", err)
	}
}

func TestMigrationSteps(t *testing.T) {
	path := tempPath(t)
	v2 := migration{2, "add a column", `ALTER TABLE accounts ADD COLUMN colour TEXT NOT NULL DEFAULT 'blue'`, nil}
	v3bad := migration{3, "broken", `CREATE TABLE half (x INTEGER) STRICT; INSERT INTO nowhere VALUES (1)`, nil}

	st, err := Open(path, &Options{migrations: migrations[:1]})
	if err != nil {
		t.Fatal(err)
	}
	mustAccount(t, st, "alice@example.org")
	st.Close()

	st, err = Open(path, &Options{migrations: []migration{migrations[0], v2}})
	if err != nil {
		t.Fatal(err)
	}
	var colour string
	if err := st.db.QueryRow(`SELECT colour FROM accounts`).Scan(&colour); err != nil || colour != "blue" {
		t.Fatalf("v2 not applied: %q %v", colour, err)
	}
	st.Close()

	// A failing step is rolled back whole and the version stays.
	_, err = Open(path, &Options{migrations: []migration{migrations[0], v2, v3bad}})
	if err == nil || !strings.Contains(err.Error(), "migration 3") {
		t.Fatalf("broken migration: %v", err)
	}
	db := rawDB(t, path)
	var v, half int
	db.QueryRow(`SELECT max(version) FROM schema_migrations`).Scan(&v)
	db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'half'`).Scan(&half)
	if v != 2 || half != 0 {
		t.Fatalf("after a failed step: version %d, half table %d", v, half)
	}
}

func TestNotAStore(t *testing.T) {
	path := tempPath(t)
	db := rawDB(t, path)
	if _, err := db.Exec(`CREATE TABLE theirs (x)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, nil); !errors.Is(err, errNotStore) {
		t.Fatalf("another program's database: %v", err)
	}
	garbage := tempPath(t)
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(garbage, nil); err == nil {
		t.Fatal("opened a file that is not a database")
	}
	if _, err := Open("", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty path: %v", err)
	}
	if _, err := Open(t.TempDir()+"/no/such/dir/x.db", nil); err == nil {
		t.Fatal("opened in a missing directory")
	}
}

func TestPragmas(t *testing.T) {
	st := openTemp(t)
	var mode string
	var syncLevel, fk int
	st.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	st.db.QueryRow(`PRAGMA synchronous`).Scan(&syncLevel)
	st.db.QueryRow(`PRAGMA foreign_keys`).Scan(&fk)
	if mode != "wal" || syncLevel != 2 || fk != 1 {
		t.Fatalf("journal_mode=%s synchronous=%d foreign_keys=%d", mode, syncLevel, fk)
	}
}

func TestClosed(t *testing.T) {
	st := openAt(t, tempPath(t))
	st.Close()
	if _, err := st.accounts(ctx); !errors.Is(err, errClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestMigrationV4: a version 3 database gains the index on trust_keys
// (account_id, key) that the lookup of a key's holders uses, and a key
// that version recorded silently for a second account (first seen after
// the first one's) is a claimed key when read now: not trusted for the
// second account, untouched for the first.
func TestMigrationV4(t *testing.T) {
	path := tempPath(t)
	st, err := Open(path, &Options{Now: newClock().now, migrations: migrations[:3]})
	if err != nil {
		t.Fatal(err)
	}
	a := mustAccount(t, st, "me@example.org")
	key := trusttest.Key(1)
	// What version 3 recorded: both blindly trusted, both bound.
	for i, member := range []string{"bob@example.org/phone", "ghost@evil.example/r"} {
		if _, err := st.db.Exec(`INSERT INTO trust_keys (account_id, jid, key, state, first_seen, last_seen, member, decided) VALUES (?, ?, ?, 2, ?, ?, ?, 0)`,
			a.ID, trust.Bare(member), key[:], i+1, i+1, member); err != nil {
			t.Fatal(err)
		}
		if _, err := st.db.Exec(`INSERT INTO trust_bindings (account_id, member, key, accepted, since) VALUES (?, ?, ?, ?, ?)`,
			a.ID, member, key[:], key[:], i+1); err != nil {
			t.Fatal(err)
		}
	}
	const holdersQuery = `EXPLAIN QUERY PLAN SELECT jid, key, state FROM trust_keys WHERE account_id = ? AND key = ? ORDER BY first_seen, jid`
	plan := func() string {
		t.Helper()
		rows, err := st.db.Query(holdersQuery, a.ID, key[:])
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			out = append(out, detail)
		}
		return strings.Join(out, "; ")
	}
	if p := plan(); strings.Contains(p, "trust_keys_key") {
		t.Fatalf("version 3 already has the index: %s", p)
	}
	st.Close()

	st = openAt(t, path)
	defer st.Close()
	if v, err := schemaVersion(ctx, st.db); err != nil || v != len(migrations) {
		t.Fatalf("version %d, %v", v, err)
	}
	if p := plan(); !strings.Contains(p, "USING INDEX trust_keys_key (account_id=? AND key=?)") {
		t.Fatalf("the holders of a key are not found through the index: %s", p)
	}
	ts := st.Trust(a.ID, trust.Config{})
	dir := &trust.Directory{Store: ts}
	if r, ok, err := ts.Current("ghost@evil.example/r"); err != nil || !ok || !r.Claimed || r.Trusted {
		t.Fatalf("Current(ghost) = %+v, %v, %v", r, ok, err)
	}
	if _, err := dir.IdentityKey("ghost@evil.example/r"); err == nil || !strings.Contains(err.Error(), "also the key of bob@example.org") {
		t.Fatalf("IdentityKey(ghost) = %v", err)
	}
	if k, err := dir.IdentityKey("bob@example.org/phone"); err != nil || k != key {
		t.Fatalf("IdentityKey(bob) = %v", err)
	}
}

// TestMigrationV5: a version 4 history reads back with no author labels;
// entries appended after the migration keep theirs, and a label over its
// cap is refused.
func TestMigrationV5(t *testing.T) {
	path := tempPath(t)
	st, err := Open(path, &Options{Now: newClock().now, migrations: migrations[:4]})
	if err != nil {
		t.Fatal(err)
	}
	a := mustAccount(t, st, "me@example.org")
	const room = "room@muc.example.org"
	id := msgID(1)
	if _, err := st.db.Exec(`INSERT INTO messages (account_id, room, kind, msg_id, author, body, at, own, members, include, exclude, log_parents, ack, not_acked, final, absent)
		VALUES (?, ?, 1, ?, 'bob@x/laptop', 'before', 1, 0, '[]', '[]', '[]', '[]', 0, '[]', 0, 0)`, a.ID, room, id[:]); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = openAt(t, path)
	defer st.Close()
	if _, err := st.Append(ctx, a.ID, room, Entry{Kind: "message", ID: msgID(2), Author: "bob@x/phone", AuthorLabel: "phone", Text: "after"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, a.ID, room, Entry{Kind: "message", ID: msgID(3), Author: "bob@x/phone", AuthorLabel: strings.Repeat("x", maxAuthorLabel+1)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a label over the cap: %v", err)
	}
	es, err := st.History(ctx, a.ID, room, 0, 10)
	if err != nil || len(es) != 2 || es[0].AuthorLabel != "" || es[1].AuthorLabel != "phone" {
		t.Fatalf("history %+v, %v", es, err)
	}
}

// TestMigrationV6: a version 5 trust record reads back with no label;
// a label set after the migration survives a reopen, and the column's
// cap holds even against a direct write.
func TestMigrationV6(t *testing.T) {
	path := tempPath(t)
	st, err := Open(path, &Options{Now: newClock().now, migrations: migrations[:5]})
	if err != nil {
		t.Fatal(err)
	}
	a := mustAccount(t, st, "me@example.org")
	key := trusttest.Key(2)
	if _, err := st.db.Exec(`INSERT INTO trust_keys (account_id, jid, key, state, first_seen, last_seen, member, decided) VALUES (?, 'bob@example.org', ?, 2, 1, 1, 'bob@example.org/phone', 0)`,
		a.ID, key[:]); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = openAt(t, path)
	ts := st.Trust(a.ID, trust.Config{})
	recs, err := ts.Keys("")
	if err != nil || len(recs) != 1 || recs[0].Label != "" || recs[0].Key != key {
		t.Fatalf("records %+v, %v", recs, err)
	}
	if err := ts.SetLabel("bob@example.org", key, "phone"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.db.Exec(`UPDATE trust_keys SET label = ?`, strings.Repeat("x", 65)); err == nil {
		t.Fatal("a 65-byte label written")
	}
	st.Close()
	st = openAt(t, path)
	defer st.Close()
	recs, err = st.Trust(a.ID, trust.Config{}).Keys("bob@example.org")
	if err != nil || len(recs) != 1 || recs[0].Label != "phone" {
		t.Fatalf("after reopening: %+v, %v", recs, err)
	}
}

// TestMigrationV9: decisions recorded before version 9 were the user's
// (their cause says so, and a manual distrust stays sticky against trust
// messages); a blindly trusted key of an account with an authenticated
// key becomes automatically distrusted (it was not used before either);
// parked trust statements round-trip.
func TestMigrationV9(t *testing.T) {
	path := tempPath(t)
	st, err := Open(path, &Options{Now: newClock().now, migrations: migrations[:8]})
	if err != nil {
		t.Fatal(err)
	}
	a := mustAccount(t, st, "me@example.org")
	rows := []struct {
		jid            string
		key            byte
		state, decided int
	}{
		{"bob@example.org", 1, 3, 5},   // verified
		{"bob@example.org", 2, 2, 0},   // blindly trusted, bob has a verified key
		{"bob@example.org", 3, 4, 6},   // distrusted by the user
		{"carol@example.org", 4, 2, 0}, // blindly trusted, carol has none verified
		{"carol@example.org", 5, 2, 7}, // trusted by the user
		{"dave@example.org", 6, 1, 0},  // undecided
	}
	for _, r := range rows {
		k := trusttest.Key(r.key)
		if _, err := st.db.Exec(`INSERT INTO trust_keys (account_id, jid, key, state, first_seen, last_seen, member, decided) VALUES (?, ?, ?, ?, 1, 1, '', ?)`,
			a.ID, r.jid, k[:], r.state, r.decided); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	st = openAt(t, path)
	defer st.Close()
	ts := st.Trust(a.ID, trust.Config{})
	recs, err := ts.Keys("")
	if err != nil || len(recs) != len(rows) {
		t.Fatalf("records %+v, %v", recs, err)
	}
	want := map[byte]string{1: "authenticated verified", 2: "automatically-distrusted auto-distrusted", 3: "distrusted distrusted",
		4: "blindly-trusted Kind(0)", 5: "blindly-trusted trusted", 6: "undecided Kind(0)"}
	for _, r := range recs {
		var n byte
		for i := range byte(7) {
			if trusttest.Key(i) == r.Key {
				n = i
			}
		}
		if got := r.State.String() + " " + r.Cause.String(); got != want[n] {
			t.Errorf("key %d: %s, want %s", n, got, want[n])
		}
	}
	// Parked statements: kept, listed per sender account, unparked per
	// sender key, inside transactions.
	b := st.trustBackendOf(a.ID)
	p := trust.Parked{Sender: "bob@example.org/phone", SenderKey: trusttest.Key(1), Owner: "bob@example.org", Key: trusttest.Key(9), Trust: true, At: time.Unix(5, 0)}
	q := p
	q.SenderKey, q.Trust = trusttest.Key(2), false
	if err := b.Update(func(tx trust.Tx) error {
		for _, x := range []trust.Parked{p, q, p} {
			if err := tx.Park(x); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var got []trust.Parked
	b.Update(func(tx trust.Tx) error {
		if err := tx.Unpark("bob@example.org", trusttest.Key(2)); err != nil {
			return err
		}
		got, err = tx.Parked("bob@example.org")
		return err
	})
	if len(got) != 1 || got[0] != p {
		t.Fatalf("parked %+v, want %+v", got, p)
	}
}
