package store

import (
	"database/sql"
	"errors"
	"os"
	"strings"
	"testing"
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
	want := "accounts devices messages rooms schema_migrations settings trust_bindings trust_events trust_keys"
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
