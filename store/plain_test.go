package store

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestPlainCut: a plain entry says how much of its text was not kept, and
// reads back so after a restart; encrypted messages cannot be cut.
func TestPlainCut(t *testing.T) {
	path := tempPath(t)
	st := openAt(t, path)
	a := mustAccount(t, st, "alice@example.org")
	const room = "room@muc.example.org"
	text := strings.Repeat("x", 4095) + "€€" // the cut falls inside a character
	e, err := st.Append(ctx, a.ID, room, Entry{Kind: "plain", Author: "eve@example.org/r", Text: text})
	if err != nil {
		t.Fatal(err)
	}
	if e.Text != text[:4095] || e.Cut != 6 {
		t.Fatalf("cut %d bytes, kept %d", e.Cut, len(e.Text))
	}
	if e, _ := st.Append(ctx, a.ID, room, Entry{Kind: "plain", Author: "eve@example.org/r", Text: "short"}); e.Cut != 0 {
		t.Fatalf("short text cut: %+v", e)
	}
	if _, err := st.Append(ctx, a.ID, room, Entry{Kind: "message", ID: msgID(1), Author: "b@x/r", Cut: 3}); err == nil {
		t.Fatal("a message entry marked cut was accepted")
	}
	st.Close()
	st = openAt(t, path)
	defer st.Close()
	page, err := st.History(ctx, a.ID, room, 0, 10)
	if err != nil || len(page) != 2 || page[0].Cut != 6 || page[0].Text != text[:4095] {
		t.Fatalf("read back: %+v, %v", page, err)
	}
	id := msgID(9)
	if _, err := st.db.Exec(`UPDATE messages SET cut = 5, kind = 1, msg_id = ? WHERE seq = ?`, id[:], page[1].Seq); err != nil {
		t.Fatal(err)
	}
	if _, err := st.History(ctx, a.ID, room, 0, 10); err == nil {
		t.Fatal("a message entry marked cut was read back")
	}
}

// TestPlainRetentionAtOpen: bounds apply when the store opens, too, so a
// room that no longer receives unencrypted messages loses its old ones.
func TestPlainRetentionAtOpen(t *testing.T) {
	path := tempPath(t)
	st := openAt(t, path)
	a := mustAccount(t, st, "alice@example.org")
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 12 {
		room := fmt.Sprintf("r%d@muc.example.org", i%2)
		if _, err := st.Append(ctx, a.ID, room, Entry{Kind: "plain", Author: "eve@example.org/r", Text: fmt.Sprint(i), At: at.Add(time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	st, err := Open(path, &Options{Now: func() time.Time { return at.Add(7 * time.Hour) }, PlainAge: 3 * time.Hour, PlainRows: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Older than 3 h: 0 to 3; then the newest 3 of each room.
	for room, want := range map[string]string{"r0@muc.example.org": "6 8 10", "r1@muc.example.org": "7 9 11"} {
		page, _ := st.History(ctx, a.ID, room, 0, 100)
		var got []string
		for _, e := range page {
			got = append(got, e.Text)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s keeps %q, want %q", room, got, want)
		}
	}
}

// TestMigrationV3: a version 2 database keeps its bindings as accepted,
// and its plain entries are cut.
func TestMigrationV3(t *testing.T) {
	path := tempPath(t)
	st, err := Open(path, &Options{migrations: migrations[:2]})
	if err != nil {
		t.Fatal(err)
	}
	a := mustAccount(t, st, "alice@example.org")
	key := make([]byte, 32)
	key[0] = 7
	if _, err := st.db.Exec(`INSERT INTO trust_bindings (account_id, member, key, since) VALUES (?, 'bob@example.org/r', ?, 1)`, a.ID, key); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("ü", 3000) // 6000 bytes
	if _, err := st.db.Exec(`INSERT INTO messages (account_id, room, kind, msg_id, author, body, at, own, members, include, exclude, log_parents, ack, not_acked, final, absent)
		VALUES (?, 'room@muc.example.org', 3, NULL, 'eve@example.org/r', ?, 0, 0, '[]', '[]', '[]', '[]', 0, '[]', 0, 0)`, a.ID, long); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = openAt(t, path)
	defer st.Close()
	var accepted []byte
	if err := st.db.QueryRow(`SELECT accepted FROM trust_bindings`).Scan(&accepted); err != nil || string(accepted) != string(key) {
		t.Fatalf("accepted %x, %v", accepted, err)
	}
	page, err := st.History(ctx, a.ID, "room@muc.example.org", 0, 10)
	if err != nil || len(page) != 1 || page[0].Text != long[:4096] || page[0].Cut != 6000-4096 {
		t.Fatalf("migrated plain entry: %d bytes, cut %d, %v", len(page[0].Text), page[0].Cut, err)
	}
}
