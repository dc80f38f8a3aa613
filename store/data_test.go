package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/trusttest"
	"github.com/mpenc/mpenc/transcript"
	"github.com/mpenc/mpenc/trust"
)

func TestTrustBackend(t *testing.T) {
	trusttest.Run(t, func(t *testing.T) trust.Backend {
		st := openTemp(t)
		a := mustAccount(t, st, "me@example.org")
		return st.trustBackendOf(a.ID)
	})
}

func TestTrustSurvivesReopen(t *testing.T) {
	path := tempPath(t)
	st := openAt(t, path)
	a := mustAccount(t, st, "me@example.org")
	ts := st.Trust(a.ID, trust.Config{})
	if d, _ := trusttest.Observe(ts, "bob@example.org/phone", trusttest.Key(1)); d.Kind != trust.KeyNew {
		t.Fatalf("first: %v", d)
	}
	if _, err := ts.Verify("bob@example.org", trusttest.Key(1)); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = openAt(t, path)
	defer st.Close()
	ts = st.Trust(a.ID, trust.Config{})
	d, err := trusttest.Observe(ts, "bob@example.org/phone", trusttest.Key(2))
	if err != nil || d.Kind != trust.KeyChanged || d.Trusted || d.Previous[0].State != trust.Authenticated {
		t.Fatalf("after reopen: %v, %v", d, err)
	}
	// Accounts do not share trust.
	b := mustAccount(t, st, "other@example.org")
	if d, _ := trusttest.Observe(st.Trust(b.ID, trust.Config{}), "bob@example.org/phone", trusttest.Key(2)); d.Kind != trust.KeyNew {
		t.Fatalf("other account: %v", d)
	}
	// A missing account is an error, not a silent success.
	if _, err := trusttest.Observe(st.Trust(a.ID+100, trust.Config{}), "bob@example.org/phone", trusttest.Key(3)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing account: %v", err)
	}
}

func TestTrustCorruptRowRefused(t *testing.T) {
	st := openTemp(t)
	a := mustAccount(t, st, "me@example.org")
	ts := st.Trust(a.ID, trust.Config{})
	if _, err := trusttest.Observe(ts, "bob@example.org/phone", trusttest.Key(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.db.Exec(`UPDATE trust_keys SET state = 9`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ts.Current("bob@example.org/phone"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad state read back: %v", err)
	}
	if _, err := (&trust.Directory{Store: ts}).IdentityKey("bob@example.org/phone"); err == nil {
		t.Fatal("a corrupt record answered as a key")
	}
	// A history entry of a kind trust never records (3 is KeyKnown, 19
	// nothing) is refused too.
	for _, kind := range []int{3, 19} {
		if _, err := st.db.Exec(`UPDATE trust_events SET kind = ?`, kind); err != nil {
			t.Fatal(err)
		}
		err := st.trustBackendOf(a.ID).View(func(tx trust.Tx) error {
			_, err := tx.Events("", 0)
			return err
		})
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("event kind %d read back: %v", kind, err)
		}
	}
}

func TestAccountsAndSettings(t *testing.T) {
	st := openTemp(t)
	a := mustAccount(t, st, "Alice@Example.ORG")
	if a.JID != "alice@example.org" {
		t.Fatalf("JID not normalised: %q", a.JID)
	}
	if _, err := st.CreateAccount(ctx, "alice@example.org", "x"); !errors.Is(err, errExists) {
		t.Fatalf("duplicate: %v", err)
	}
	for _, bad := range []string{"", "alice@example.org/res", "@example.org", "a@b@c", strings.Repeat("a", 4000) + "@x"} {
		if _, err := st.CreateAccount(ctx, bad, "x"); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateAccount(%.20q) = %v", bad, err)
		}
	}
	if _, err := st.CreateAccount(ctx, "bob@example.org", ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty nick: %v", err)
	}
	b := mustAccount(t, st, "bob@example.org")
	all, err := st.accounts(ctx)
	if err != nil || len(all) != 2 || all[0].ID != a.ID || all[1].ID != b.ID {
		t.Fatalf("Accounts = %+v, %v", all, err)
	}
	if got, err := st.accountByID(ctx, b.ID); err != nil || got.JID != "bob@example.org" {
		t.Fatalf("AccountByID = %+v, %v", got, err)
	}
	if _, err := st.account(ctx, "carol@example.org"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if err := st.setNick(ctx, a.ID, "Alice"); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.account(ctx, "alice@example.org"); got.Nick != "Alice" {
		t.Fatalf("nick %q", got.Nick)
	}
	if err := st.setNick(ctx, 999, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetNick missing: %v", err)
	}

	if err := st.SetSetting(ctx, a.ID, "trust.policy", "authenticated-only"); err != nil {
		t.Fatal(err)
	}
	if err := st.SetSetting(ctx, a.ID, "trust.policy", "blind-trust-before-verification"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := st.Setting(ctx, a.ID, "trust.policy"); err != nil || !ok || v != "blind-trust-before-verification" {
		t.Fatalf("Setting = %q %v %v", v, ok, err)
	}
	if _, ok, err := st.Setting(ctx, b.ID, "trust.policy"); err != nil || ok {
		t.Fatalf("settings leak between accounts: %v %v", ok, err)
	}
	if err := st.deleteSetting(ctx, a.ID, "trust.policy"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.Setting(ctx, a.ID, "trust.policy"); ok {
		t.Fatal("deleted setting still there")
	}
	if err := st.SetSetting(ctx, 999, "x", "y"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing account: %v", err)
	}
	if err := st.SetSetting(ctx, a.ID, "x", strings.Repeat("y", maxValueSize+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("oversize value: %v", err)
	}
}

func TestRooms(t *testing.T) {
	st := openTemp(t)
	a := mustAccount(t, st, "alice@example.org")
	r, err := st.SaveRoom(ctx, Room{Account: a.ID, JID: "Room@MUC.example.org", Nick: "alice", AutoJoin: true, Include: "trusted"})
	if err != nil || r.JID != "room@muc.example.org" || !r.AutoJoin || r.Include != "trusted" || r.Added.IsZero() {
		t.Fatalf("SaveRoom = %+v, %v", r, err)
	}
	added := r.Added
	r2, err := st.SaveRoom(ctx, Room{Account: a.ID, JID: "room@muc.example.org", Nick: "al", AutoJoin: false, Include: "everyone"})
	if err != nil || r2.Nick != "al" || r2.AutoJoin || r2.Include != "everyone" || !r2.Added.Equal(added) {
		t.Fatalf("update = %+v, %v", r2, err)
	}
	if r3, err := st.SaveRoom(ctx, Room{Account: a.ID, JID: "other@muc.example.org", Nick: "alice"}); err != nil || r3.Include != "manual" {
		t.Fatalf("default policy = %+v, %v", r3, err)
	}
	rooms, err := st.Rooms(ctx, a.ID)
	if err != nil || len(rooms) != 2 || rooms[0].JID != "room@muc.example.org" || rooms[1].JID != "other@muc.example.org" {
		t.Fatalf("Rooms = %+v, %v", rooms, err)
	}
	for _, bad := range []Room{
		{Account: a.ID, JID: "room@muc.example.org/nick", Nick: "x"},
		{Account: a.ID, JID: "room@muc.example.org", Nick: ""},
		{Account: a.ID, JID: "room@muc.example.org", Nick: "x", Include: "Everyone"},
	} {
		if _, err := st.SaveRoom(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SaveRoom(%+v) = %v", bad, err)
		}
	}
	if _, err := st.SaveRoom(ctx, Room{Account: 999, JID: "r@m.org", Nick: "x"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing account: %v", err)
	}
	if err := st.deleteRoom(ctx, a.ID, "room@muc.example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.room(ctx, a.ID, "room@muc.example.org"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted room: %v", err)
	}
	if err := st.deleteRoom(ctx, a.ID, "room@muc.example.org"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	for _, p := range []includePolicy{includeManual, includeTrusted, includeEveryone} {
		if q, err := parseIncludePolicy(p.String()); err != nil || q != p {
			t.Fatalf("ParseIncludePolicy(%v)", p)
		}
	}
}

func TestHistoryPagesAcrossReopen(t *testing.T) {
	path := tempPath(t)
	st := openAt(t, path)
	a := mustAccount(t, st, "alice@example.org")
	at := time.Date(2030, 5, 6, 7, 8, 9, 123456789, time.UTC)
	const n = 95
	for i := range n {
		e := Entry{Kind: "message", ID: msgID(i), Author: fmt.Sprintf("m%d@example.org/r", i%3), Text: fmt.Sprintf("message %d ✓", i),
			At: at.Add(time.Duration(i) * time.Second), Own: i%3 == 0, Members: []string{"a@x/1", "b@x/2"}, LogParents: []int{1}}
		if i%10 == 5 {
			e = Entry{Kind: "membership", At: e.At, Members: []string{"a@x/1"}, Include: []string{"c@x/3"}, Exclude: []string{"b@x/2"}}
		}
		if _, err := st.Append(ctx, a.ID, "room@muc.example.org", e); err != nil {
			t.Fatal(err)
		}
		// Interleave another room: pages stay per room.
		if _, err := st.Append(ctx, a.ID, "other@muc.example.org", Entry{Kind: "plain", Author: "x@y/z", Text: "noise", At: e.At}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Append(ctx, a.ID, "room@muc.example.org", Entry{Kind: "message", ID: msgID(0), Author: "x@y/z", Ack: "acked"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, a.ID, "room@muc.example.org", Entry{Kind: "message", ID: msgID(1), Author: "x@y/z", Ack: "not-acked", NotAcked: []string{"b@x/2"}, Final: true}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = openAt(t, path)
	defer st.Close()
	h := st.roomHistory(a.ID, "ROOM@muc.example.org")
	var all []Entry
	before := int64(0)
	for {
		page, err := st.History(ctx, a.ID, "ROOM@muc.example.org", before, 20)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 20 {
			t.Fatalf("page of %d", len(page))
		}
		all = append(page, all...)
		before = page[0].Seq
	}
	if len(all) != n {
		t.Fatalf("%d entries back", len(all))
	}
	for i, e := range all {
		if i > 0 && e.Seq <= all[i-1].Seq {
			t.Fatal("order not stable")
		}
		if !e.At.Equal(at.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("entry %d time %v", i, e.At)
		}
		if i%10 == 5 {
			if e.Kind != "membership" || e.Include[0] != "c@x/3" || e.Exclude[0] != "b@x/2" || e.ID != (transcript.ID{}) {
				t.Fatalf("entry %d: %+v", i, e)
			}
			continue
		}
		if e.Kind != "message" || e.ID != msgID(i) || e.Text != fmt.Sprintf("message %d ✓", i) || e.Own != (i%3 == 0) ||
			len(e.Members) != 2 || len(e.LogParents) != 1 {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
	if all[0].Ack != "acked" || all[1].Ack != "not-acked" || all[1].NotAcked[0] != "b@x/2" || !all[1].Final || all[2].Ack != "pending" {
		t.Fatalf("ack states %v %v %v", all[0].Ack, all[1], all[2].Ack)
	}
	// The same page twice is the same page.
	p1, _ := h.page(ctx, 0, 7)
	p2, _ := h.page(ctx, 0, 7)
	if len(p1) != 7 || p1[0].Seq != p2[0].Seq || p1[6].ID != msgID(n-1) {
		t.Fatalf("latest page %+v", p1)
	}
	if e, err := h.message(ctx, msgID(3)); err != nil || e.Text != "message 3 ✓" {
		t.Fatalf("message = %+v, %v", e, err)
	}
	if _, err := h.message(ctx, msgID(1000)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing message: %v", err)
	}
}

// TestHistoryAppendReturnsStored: Append returns the entry as it reads
// back; a message appended again keeps its place and content and takes a
// new acknowledgement state, but never goes back to pending.
func TestHistoryAppendReturnsStored(t *testing.T) {
	st := openTemp(t)
	a := mustAccount(t, st, "alice@example.org")
	const room = "room@muc.example.org"
	at := time.Unix(1900000000, 5).In(time.UTC)
	add := func(e Entry) Entry {
		t.Helper()
		got, err := st.Append(ctx, a.ID, room, e)
		if err != nil {
			t.Fatalf("Append(%+v): %v", e, err)
		}
		return got
	}
	m := add(Entry{Kind: "membership", At: at, Members: []string{"alice@example.org/r"}, Include: []string{"bob@example.org/r"}, Exclude: []string{}})
	hi := add(Entry{Kind: "message", At: at, ID: msgID(1), Author: "bob@example.org/r", Text: "hi", Members: []string{"alice@example.org/r", "bob@example.org/r"}, LogParents: []int{1}})
	again := add(Entry{Kind: "message", At: at.Add(time.Hour), ID: msgID(1), Author: "bob@example.org/r", Text: "changed"})
	acked := add(Entry{Kind: "message", ID: msgID(1), Author: "bob@example.org/r", Ack: "acked"})
	pendingAgain := add(Entry{Kind: "message", ID: msgID(1), Author: "bob@example.org/r", Text: "hi"})
	own := add(Entry{Kind: "message", At: at, ID: msgID(2), Author: "alice@example.org/r", Text: "hello", Own: true})
	missing := add(Entry{Kind: "message", ID: msgID(2), Author: "alice@example.org/r", Ack: "not-acked", NotAcked: []string{"bob@example.org/r"}, Absent: true})
	plain := add(Entry{Kind: "plain", At: at, Author: "eve@example.org/r", Text: "unencrypted"})

	if m.Seq == 0 || m.Exclude != nil || m.Ack != "pending" || !m.At.Equal(at) {
		t.Errorf("membership as stored: %+v", m)
	}
	if hi.Ack != "pending" || hi.Text != "hi" || again.Seq != hi.Seq || again.Text != "hi" || !again.At.Equal(at) {
		t.Errorf("a message appended again changed: %+v, then %+v", hi, again)
	}
	if acked.Seq != hi.Seq || acked.Ack != "acked" || acked.Text != "hi" || pendingAgain.Ack != "acked" {
		t.Errorf("acknowledgement: %+v, then %+v", acked, pendingAgain)
	}
	if missing.Seq != own.Seq || missing.Ack != "not-acked" || !missing.Absent || !missing.Own || missing.NotAcked[0] != "bob@example.org/r" {
		t.Errorf("not acked: %+v", missing)
	}
	page, err := st.History(ctx, a.ID, room, 0, 100)
	if err != nil || len(page) != 4 {
		t.Fatalf("History = %d entries, %v", len(page), err)
	}
	// What Append returned is what a restart reads.
	for i, want := range []Entry{m, pendingAgain, missing, plain} {
		if fmt.Sprintf("%+v", page[i]) != fmt.Sprintf("%+v", want) {
			t.Errorf("entry %d reads back as\n%+v\nAppend returned\n%+v", i, page[i], want)
		}
	}
	if plain.Kind != "plain" || plain.Text != "unencrypted" {
		t.Errorf("plain: %+v", plain)
	}
}

func TestHistoryBounds(t *testing.T) {
	st := openTemp(t)
	a := mustAccount(t, st, "alice@example.org")
	h := st.roomHistory(a.ID, "room@muc.example.org")
	many := make([]string, maxListMembers+1)
	for i := range many {
		many[i] = fmt.Sprintf("m%d@x/r", i)
	}
	for name, e := range map[string]Entry{
		"text":    {Kind: "message", Author: "a@b/c", Text: strings.Repeat("x", maxTextSize+1)},
		"utf8":    {Kind: "message", Author: "a@b/c", Text: "\xff"},
		"members": {Kind: "message", Author: "a@b/c", Members: many},
		"parents": {Kind: "message", Author: "a@b/c", LogParents: make([]int, maxLogParents+1)},
		"kind":    {Kind: "Message", Author: "a@b/c"},
		"no kind": {Author: "a@b/c"},
		"ack":     {Kind: "message", Author: "a@b/c", Ack: "ACKED"},
		"author":  {Kind: "message"},
		"empty":   {Kind: "message", Author: "a@b/c", Members: []string{""}},
	} {
		if _, err := st.Append(ctx, a.ID, "room@muc.example.org", e); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := h.append(ctx, Entry{Kind: "message", Author: "a@b/c", Text: strings.Repeat("x", maxTextSize)}); err != nil {
		t.Fatalf("largest text: %v", err)
	}
	if _, err := st.History(ctx, a.ID, "not a/jid@", 0, 1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad room: %v", err)
	}
	if _, err := st.Append(ctx, 999, "room@muc.example.org", Entry{Kind: "plain", Author: "a@b/c"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing account: %v", err)
	}
	// Damaged rows read back are refused, not trusted.
	for _, upd := range []string{
		`UPDATE messages SET members = '{"not": "a list"}'`,
		`UPDATE messages SET members = '["", "x"]'`,
		`UPDATE messages SET log_parents = '[1, "x"]'`,
		`UPDATE messages SET kind = 42`,
		`UPDATE messages SET ack = -1`,
		`UPDATE messages SET msg_id = NULL, kind = 1`,
		`UPDATE messages SET body = CAST(x'ff' AS TEXT)`,
	} {
		st.db.Exec(`UPDATE messages SET members = '[]', log_parents = '[]', kind = 1, ack = 0, body = 'ok', msg_id = x'0000000000000000000000000000000000000000'`)
		if _, err := st.db.Exec(upd); err != nil {
			t.Fatalf("%s: %v", upd, err)
		}
		if _, err := h.page(ctx, 0, 10); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Page = %v", upd, err)
		}
	}
	if err := h.delete(ctx); err != nil {
		t.Fatal(err)
	}
	if p, _ := h.page(ctx, 0, 10); len(p) != 0 {
		t.Fatal("Delete left entries")
	}
}

// TestConcurrentUse: the UI goroutine and session goroutines share one
// Store (run with -race).
func TestConcurrentUse(t *testing.T) {
	st := openTemp(t)
	a := mustAccount(t, st, "alice@example.org")
	ts := st.Trust(a.ID, trust.Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			room := fmt.Sprintf("room%d@muc.example.org", g%2)
			for i := range 40 {
				if _, err := st.Append(ctx, a.ID, room, Entry{Kind: "message", ID: msgID(g*1000 + i), Author: "a@b/c", Text: "x"}); err != nil {
					errs <- err
					return
				}
				if _, err := trusttest.Observe(ts, fmt.Sprintf("m%d@example.org/r", i%5), trusttest.Key(byte(i%5+1))); err != nil {
					errs <- err
					return
				}
				if _, err := st.History(ctx, a.ID, room, 0, 5); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for r := range 2 {
		p, _ := st.History(ctx, a.ID, fmt.Sprintf("room%d@muc.example.org", r), 0, maxPage)
		total += len(p)
	}
	if total != 6*40 {
		t.Fatalf("%d entries", total)
	}
}

// TestHistoryQueuedMessages: a message typed while out of the session is
// recorded as queued; sent, it replaces the queued entry (which leaves its
// place: the message is where it was sent) and may record whom it did not
// reach; never sent, the queued entry records everyone it was meant for.
// All of it reads back as Append returned it, after a re-open too, and a
// database of version 1 gains the columns with their defaults.
func TestHistoryQueuedMessages(t *testing.T) {
	path := tempPath(t)
	st, err := Open(path, &Options{Now: newClock().now, migrations: migrations[:1]})
	if err != nil {
		t.Fatal(err)
	}
	a := mustAccount(t, st, "alice@example.org")
	const room = "room@muc.example.org"
	// A message as version 1 wrote it.
	if _, err := st.db.Exec(`INSERT INTO messages (account_id, room, kind, msg_id, author, body, at, own,
		members, include, exclude, log_parents, ack, not_acked, final, absent)
		VALUES (?, ?, 1, ?, 'bob@example.org/r', 'from version 1', 0, 0, '[]', '[]', '[]', '[]', 0, '[]', 0, 0)`,
		a.ID, room, func() []byte { id := msgID(1); return id[:] }()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = openAt(t, path) // migrates to the latest version
	defer st.Close()
	old, err := st.roomHistory(a.ID, room).message(ctx, msgID(1))
	if err != nil || old.Text != "from version 1" || old.NotDelivered != nil || !old.Until.IsZero() {
		t.Fatalf("a version 1 entry: %+v, %v", old, err)
	}
	add := func(e Entry) Entry {
		t.Helper()
		got, err := st.Append(ctx, a.ID, room, e)
		if err != nil {
			t.Fatalf("Append(%+v): %v", e, err)
		}
		return got
	}
	at := time.Unix(1900000000, 0)
	until := at.Add(5 * time.Minute)
	readers := []string{"bob@example.org/r", "carol@example.org/r"}
	me := "alice@example.org/r"
	q1 := add(Entry{Kind: "queued", ID: msgID(101), Author: me, Own: true, Text: "typed during the restart", At: at, Members: readers, Until: until})
	q2 := add(Entry{Kind: "queued", ID: msgID(102), Author: me, Own: true, Text: "never sent", At: at, Members: readers, Until: until})
	members := add(Entry{Kind: "membership", At: at.Add(time.Minute), Members: []string{me}, Include: []string{"bob@example.org/r"}})
	sent := add(Entry{Kind: "message", ID: msgID(2), Replaces: msgID(101), Author: me, Own: true, Text: "typed during the restart",
		At: at.Add(time.Minute), Members: []string{me, "bob@example.org/r"}, LogParents: []int{1}})
	notDelivered := add(Entry{Kind: "message", ID: msgID(2), Author: me, NotDelivered: []string{"carol@example.org/r"}})
	acked := add(Entry{Kind: "message", ID: msgID(2), Author: me, Ack: "acked"})
	notSent := add(Entry{Kind: "queued", ID: msgID(102), Author: me, NotDelivered: readers})

	if q1.Kind != "queued" || !q1.Until.Equal(until) || q1.NotDelivered != nil || q1.ID != msgID(101) {
		t.Errorf("queued: %+v", q1)
	}
	if sent.Seq <= members.Seq || sent.Kind != "message" || sent.Replaces != (transcript.ID{}) {
		t.Errorf("sent: %+v (after %d)", sent, members.Seq)
	}
	if notDelivered.Seq != sent.Seq || len(notDelivered.NotDelivered) != 1 || notDelivered.Text != "typed during the restart" {
		t.Errorf("not delivered: %+v", notDelivered)
	}
	if acked.Ack != "acked" || len(acked.NotDelivered) != 1 {
		t.Errorf("acknowledged: the not delivered stays: %+v", acked)
	}
	if notSent.Seq != q2.Seq || notSent.Kind != "queued" || len(notSent.NotDelivered) != 2 || notSent.Text != "never sent" {
		t.Errorf("never sent: %+v", notSent)
	}
	page, err := st.History(ctx, a.ID, room, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{old, notSent, members, acked}
	if len(page) != len(want) {
		t.Fatalf("history: %+v", page)
	}
	for i := range want {
		if fmt.Sprintf("%+v", page[i]) != fmt.Sprintf("%+v", want[i]) {
			t.Errorf("entry %d reads back as\n%+v\nAppend returned\n%+v", i, page[i], want[i])
		}
	}
	// Only a message replaces, and only a queued entry is replaced.
	if _, err := st.Append(ctx, a.ID, room, Entry{Kind: "queued", ID: msgID(103), Replaces: msgID(102), Author: me}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a queued entry replacing: %v", err)
	}
	add(Entry{Kind: "message", ID: msgID(3), Replaces: msgID(1), Author: me, Text: "replaces a message?"})
	if page, _ := st.History(ctx, a.ID, room, 0, 100); page[0].ID != msgID(1) {
		t.Errorf("a message was replaced: %+v", page)
	}
}
