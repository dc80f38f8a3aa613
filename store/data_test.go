package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/trusttest"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/transcript"
	"github.com/mpenc/mpenc/trust"
)

func TestTrustBackend(t *testing.T) {
	trusttest.Run(t, func(t *testing.T) trust.Backend {
		st := openTemp(t)
		a := mustAccount(t, st, "me@example.org")
		return st.TrustBackend(a.ID)
	})
}

func TestTrustSurvivesReopen(t *testing.T) {
	path := tempPath(t)
	st := openAt(t, path)
	a := mustAccount(t, st, "me@example.org")
	ts := st.Trust(a.ID, trust.Config{})
	if d, _ := ts.Observe("bob@example.org/phone", trusttest.Key(1)); d.Kind != trust.KeyNew {
		t.Fatalf("first: %v", d)
	}
	if _, err := ts.Verify("bob@example.org", trusttest.Key(1)); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = openAt(t, path)
	defer st.Close()
	ts = st.Trust(a.ID, trust.Config{})
	d, err := ts.Observe("bob@example.org/phone", trusttest.Key(2))
	if err != nil || d.Kind != trust.KeyChanged || d.Trusted || d.Previous[0].State != trust.Authenticated {
		t.Fatalf("after reopen: %v, %v", d, err)
	}
	// Accounts do not share trust.
	b := mustAccount(t, st, "other@example.org")
	if d, _ := st.Trust(b.ID, trust.Config{}).Observe("bob@example.org/phone", trusttest.Key(2)); d.Kind != trust.KeyNew {
		t.Fatalf("other account: %v", d)
	}
	// A missing account is an error, not a silent success.
	if _, err := st.Trust(a.ID+100, trust.Config{}).Observe("bob@example.org/phone", trusttest.Key(3)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing account: %v", err)
	}
}

func TestTrustCorruptRowRefused(t *testing.T) {
	st := openTemp(t)
	a := mustAccount(t, st, "me@example.org")
	ts := st.Trust(a.ID, trust.Config{})
	ts.Observe("bob@example.org/phone", trusttest.Key(1))
	if _, err := st.db.Exec(`UPDATE trust_keys SET state = 9`); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Keys("bob@example.org"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad state read back: %v", err)
	}
	if _, err := ts.IdentityKey("bob@example.org/phone"); err == nil {
		t.Fatal("a corrupt record answered as a key")
	}
}

func TestAccountsAndSettings(t *testing.T) {
	st := openTemp(t)
	a := mustAccount(t, st, "Alice@Example.ORG")
	if a.JID != "alice@example.org" {
		t.Fatalf("JID not normalised: %q", a.JID)
	}
	if _, err := st.CreateAccount(ctx, "alice@example.org", "x"); !errors.Is(err, ErrExists) {
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
	all, err := st.Accounts(ctx)
	if err != nil || len(all) != 2 || all[0].ID != a.ID || all[1].ID != b.ID {
		t.Fatalf("Accounts = %+v, %v", all, err)
	}
	if got, err := st.AccountByID(ctx, b.ID); err != nil || got.JID != "bob@example.org" {
		t.Fatalf("AccountByID = %+v, %v", got, err)
	}
	if _, err := st.Account(ctx, "carol@example.org"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if err := st.SetNick(ctx, a.ID, "Alice"); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Account(ctx, "alice@example.org"); got.Nick != "Alice" {
		t.Fatalf("nick %q", got.Nick)
	}
	if err := st.SetNick(ctx, 999, "x"); !errors.Is(err, ErrNotFound) {
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
	if err := st.DeleteSetting(ctx, a.ID, "trust.policy"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.Setting(ctx, a.ID, "trust.policy"); ok {
		t.Fatal("deleted setting still there")
	}
	if err := st.SetSetting(ctx, 999, "x", "y"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing account: %v", err)
	}
	if err := st.SetSetting(ctx, a.ID, "x", strings.Repeat("y", MaxValueSize+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("oversize value: %v", err)
	}
}

func TestRooms(t *testing.T) {
	st := openTemp(t)
	a := mustAccount(t, st, "alice@example.org")
	r, err := st.SaveRoom(ctx, Room{Account: a.ID, JID: "Room@MUC.example.org", Nick: "alice", AutoJoin: true, Include: IncludeTrusted})
	if err != nil || r.JID != "room@muc.example.org" || !r.AutoJoin || r.Include != IncludeTrusted || r.Added.IsZero() {
		t.Fatalf("SaveRoom = %+v, %v", r, err)
	}
	added := r.Added
	r2, err := st.SaveRoom(ctx, Room{Account: a.ID, JID: "room@muc.example.org", Nick: "al", AutoJoin: false, Include: IncludeEveryone})
	if err != nil || r2.Nick != "al" || r2.AutoJoin || r2.Include != IncludeEveryone || !r2.Added.Equal(added) {
		t.Fatalf("update = %+v, %v", r2, err)
	}
	if _, err := st.SaveRoom(ctx, Room{Account: a.ID, JID: "other@muc.example.org", Nick: "alice"}); err != nil {
		t.Fatal(err)
	}
	rooms, err := st.Rooms(ctx, a.ID)
	if err != nil || len(rooms) != 2 || rooms[0].JID != "room@muc.example.org" || rooms[1].JID != "other@muc.example.org" {
		t.Fatalf("Rooms = %+v, %v", rooms, err)
	}
	for _, bad := range []Room{
		{Account: a.ID, JID: "room@muc.example.org/nick", Nick: "x"},
		{Account: a.ID, JID: "room@muc.example.org", Nick: ""},
		{Account: a.ID, JID: "room@muc.example.org", Nick: "x", Include: 7},
	} {
		if _, err := st.SaveRoom(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SaveRoom(%+v) = %v", bad, err)
		}
	}
	if _, err := st.SaveRoom(ctx, Room{Account: 999, JID: "r@m.org", Nick: "x"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing account: %v", err)
	}
	if err := st.DeleteRoom(ctx, a.ID, "room@muc.example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Room(ctx, a.ID, "room@muc.example.org"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted room: %v", err)
	}
	if err := st.DeleteRoom(ctx, a.ID, "room@muc.example.org"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	for _, p := range []IncludePolicy{IncludeManual, IncludeTrusted, IncludeEveryone} {
		if q, err := ParseIncludePolicy(p.String()); err != nil || q != p {
			t.Fatalf("ParseIncludePolicy(%v)", p)
		}
	}
}

func TestHistoryPagesAcrossReopen(t *testing.T) {
	path := tempPath(t)
	st := openAt(t, path)
	a := mustAccount(t, st, "alice@example.org")
	h := st.History(a.ID, "room@muc.example.org")
	other := st.History(a.ID, "other@muc.example.org")
	at := time.Date(2030, 5, 6, 7, 8, 9, 123456789, time.UTC)
	const n = 95
	for i := range n {
		e := Entry{Kind: EntryMessage, ID: msgID(i), Author: fmt.Sprintf("m%d@example.org/r", i%3), Text: fmt.Sprintf("message %d ✓", i),
			At: at.Add(time.Duration(i) * time.Second), Own: i%3 == 0, Members: []string{"a@x/1", "b@x/2"}, LogParents: []int{1}}
		if i%10 == 5 {
			e = Entry{Kind: EntryMembership, At: e.At, Members: []string{"a@x/1"}, Include: []string{"c@x/3"}, Exclude: []string{"b@x/2"}}
		}
		if _, err := h.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
		// Interleave another room: pages stay per room.
		if _, err := other.Append(ctx, Entry{Kind: EntryPlain, Author: "x@y/z", Text: "noise", At: e.At}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.SetAck(ctx, msgID(0), AckFull, nil, false, false); err != nil {
		t.Fatal(err)
	}
	if err := h.SetAck(ctx, msgID(1), AckMissing, []string{"b@x/2"}, true, false); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = openAt(t, path)
	defer st.Close()
	h = st.History(a.ID, "ROOM@muc.example.org")
	var all []Entry
	before := int64(0)
	for {
		page, err := h.Page(ctx, before, 20)
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
			if e.Kind != EntryMembership || e.Include[0] != "c@x/3" || e.Exclude[0] != "b@x/2" || e.ID != (transcript.ID{}) {
				t.Fatalf("entry %d: %+v", i, e)
			}
			continue
		}
		if e.Kind != EntryMessage || e.ID != msgID(i) || e.Text != fmt.Sprintf("message %d ✓", i) || e.Own != (i%3 == 0) ||
			len(e.Members) != 2 || len(e.LogParents) != 1 {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
	if all[0].Ack != AckFull || all[1].Ack != AckMissing || all[1].NotAcked[0] != "b@x/2" || !all[1].Final || all[2].Ack != AckPending {
		t.Fatalf("ack states %v %v %v", all[0].Ack, all[1], all[2].Ack)
	}
	// The same page twice is the same page.
	p1, _ := h.Page(ctx, 0, 7)
	p2, _ := h.Page(ctx, 0, 7)
	if len(p1) != 7 || p1[0].Seq != p2[0].Seq || p1[6].ID != msgID(n-1) {
		t.Fatalf("latest page %+v", p1)
	}
	if e, err := h.Message(ctx, msgID(3)); err != nil || e.Text != "message 3 ✓" {
		t.Fatalf("Message = %+v, %v", e, err)
	}
	if _, err := h.Message(ctx, msgID(1000)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing message: %v", err)
	}
}

func TestHistoryRecordNotices(t *testing.T) {
	st := openTemp(t)
	a := mustAccount(t, st, "alice@example.org")
	h := st.History(a.ID, "room@muc.example.org")
	at := time.Unix(1900000000, 0)
	notices := []session.Notice{
		{Kind: session.Membership, At: at, Remain: []string{"alice@example.org/r"}, Include: []string{"bob@example.org/r"}},
		{Kind: session.Message, At: at, ID: msgID(1), Author: "bob@example.org/r", Text: "hi", Members: []string{"alice@example.org/r", "bob@example.org/r"}, LogParents: []int{1}},
		{Kind: session.Message, At: at, ID: msgID(1), Author: "bob@example.org/r", Text: "hi"}, // again: no duplicate
		{Kind: session.Message, At: at, ID: msgID(2), Author: "alice@example.org/r", Text: "hello", Own: true},
		{Kind: session.FullyAcked, At: at, ID: msgID(1)},
		{Kind: session.NotFullyAcked, At: at, ID: msgID(2), Members: []string{"bob@example.org/r"}, Absent: true},
		{Kind: session.Plain, At: at, Author: "eve@example.org/r", Text: "unencrypted"},
		{Kind: session.ChannelEnter, At: at, Author: "eve@example.org/r"}, // not history
		{Kind: session.SecurityWarning, At: at, Err: errors.New("x")},
	}
	for _, n := range notices {
		if err := h.Record(ctx, n); err != nil {
			t.Fatalf("Record(%v): %v", n, err)
		}
	}
	if err := h.Record(ctx, session.Notice{Kind: session.FullyAcked, ID: msgID(77)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ack of an unknown message: %v", err)
	}
	page, err := h.Page(ctx, 0, 100)
	if err != nil || len(page) != 4 {
		t.Fatalf("Page = %d entries, %v", len(page), err)
	}
	if page[0].Kind != EntryMembership || page[1].Ack != AckFull || page[2].Ack != AckMissing || !page[2].Absent || !page[2].Own ||
		page[3].Kind != EntryPlain || page[3].Text != "unencrypted" {
		t.Fatalf("entries %+v", page)
	}
	if _, err := h.Append(ctx, Entry{Kind: EntryMessage, ID: msgID(1), Author: "x@y/z"}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate Append: %v", err)
	}
}

func TestHistoryBounds(t *testing.T) {
	st := openTemp(t)
	a := mustAccount(t, st, "alice@example.org")
	h := st.History(a.ID, "room@muc.example.org")
	many := make([]string, MaxListMembers+1)
	for i := range many {
		many[i] = fmt.Sprintf("m%d@x/r", i)
	}
	for name, e := range map[string]Entry{
		"text":    {Kind: EntryMessage, Author: "a@b/c", Text: strings.Repeat("x", MaxTextSize+1)},
		"utf8":    {Kind: EntryMessage, Author: "a@b/c", Text: "\xff"},
		"members": {Kind: EntryMessage, Author: "a@b/c", Members: many},
		"parents": {Kind: EntryMessage, Author: "a@b/c", LogParents: make([]int, MaxLogParents+1)},
		"kind":    {Kind: 9, Author: "a@b/c"},
		"ack":     {Kind: EntryMessage, Author: "a@b/c", Ack: 9},
		"author":  {Kind: EntryMessage},
		"empty":   {Kind: EntryMessage, Author: "a@b/c", Members: []string{""}},
	} {
		if _, err := h.Append(ctx, e); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := h.Append(ctx, Entry{Kind: EntryMessage, Author: "a@b/c", Text: strings.Repeat("x", MaxTextSize)}); err != nil {
		t.Fatalf("largest text: %v", err)
	}
	if _, err := st.History(a.ID, "not a/jid@").Page(ctx, 0, 1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad room: %v", err)
	}
	if _, err := st.History(999, "room@muc.example.org").Append(ctx, Entry{Kind: EntryPlain, Author: "a@b/c"}); !errors.Is(err, ErrNotFound) {
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
		if _, err := h.Page(ctx, 0, 10); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Page = %v", upd, err)
		}
	}
	if err := h.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if p, _ := h.Page(ctx, 0, 10); len(p) != 0 {
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
			h := st.History(a.ID, fmt.Sprintf("room%d@muc.example.org", g%2))
			for i := range 40 {
				if _, err := h.Append(ctx, Entry{Kind: EntryMessage, ID: msgID(g*1000 + i), Author: "a@b/c", Text: "x"}); err != nil {
					errs <- err
					return
				}
				if _, err := ts.Observe(fmt.Sprintf("m%d@example.org/r", i%5), trusttest.Key(byte(i%5+1))); err != nil {
					errs <- err
					return
				}
				if _, err := h.Page(ctx, 0, 5); err != nil {
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
		p, _ := st.History(a.ID, fmt.Sprintf("room%d@muc.example.org", r)).Page(ctx, 0, MaxPage)
		total += len(p)
	}
	if total != 6*40 {
		t.Fatalf("%d entries", total)
	}
}
