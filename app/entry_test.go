package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/history"
	"github.com/mpenc/mpenc/internal/recrypt"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/transcript"
)

const (
	alice = "alice@example.org/a"
	bob   = "bob@example.org/b"
	carol = "carol@example.org/c"
	room  = "room@muc.example.org"
)

// conversation is a room's notices as a session delivers them: membership,
// messages (ours and others'), an unencrypted one, acknowledgements that
// come, one that never does, one that is missed and then comes, one that
// is missed by someone who left, and notices that are not history.
func conversation(at time.Time) []session.Notice {
	all := []string{alice, bob, carol}
	id := func(n byte) transcript.ID { return transcript.ID{n, 0xAA} }
	return []session.Notice{
		{Kind: session.StateChanged, State: session.StateJoined, At: at},
		{Kind: session.Membership, At: at, Remain: []string{alice}, Include: []string{bob, carol}},
		{Kind: session.Message, At: at, ID: id(1), Author: bob, Text: "hi", Members: all},
		{Kind: session.Message, At: at, ID: id(2), Author: alice, Text: "hello", Own: true, Members: all, LogParents: []int{1}},
		{Kind: session.FullyAcked, At: at, ID: id(1)},
		{Kind: session.Message, At: at, ID: id(2), Author: alice, Text: "hello", Own: true, Members: all}, // again: one line
		{Kind: session.FullyAcked, At: at, ID: id(2)},
		{Kind: session.Plain, At: at, Author: "eve@example.org/e", Text: "in the clear"},
		{Kind: session.Message, At: at, ID: id(3), Author: carol, Text: "answer to #1", Members: all, LogParents: []int{2}},
		{Kind: session.NotFullyAcked, At: at, ID: id(3), Members: []string{bob}},
		{Kind: session.MemberExpired, At: at, Author: bob},
		{Kind: session.FullyAcked, At: at, ID: id(3)}, // bob came back
		{Kind: session.Message, At: at, ID: id(4), Author: alice, Text: "still there?", Own: true, Members: all, LogParents: []int{1}},
		{Kind: session.NotFullyAcked, At: at, ID: id(4), Members: []string{carol}, Absent: true, Final: true},
		{Kind: session.Membership, At: at, Remain: []string{alice, bob}, Exclude: []string{carol}},
		{Kind: session.Message, At: at, ID: id(5), Author: alice, Text: "never confirmed", Own: true, Members: []string{alice, bob}, LogParents: []int{1}},
		{Kind: session.FullyAcked, At: at, ID: id(99)}, // of a message not shown
		{Kind: session.SecurityWarning, At: at, Author: bob, Err: fmt.Errorf("bad signature")},
	}
}

// testApp opens an App on a fresh store (no network is used) and a room
// of it that runs no session: enough to feed it notices.
func testApp(t *testing.T, path string) (*App, *Room) {
	t.Helper()
	var creates []bool
	cfg := testConfig(t, "", "correct horse", &creates)
	cfg.Store = path
	a, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := newRoom(a, room, RoomOptions{})
	r.self = alice
	return a, r
}

// feed turns notices into events as Room.pump does, and returns the
// events delivered.
func feed(r *Room, ns []session.Notice) []Event {
	var out []Event
	for _, n := range ns {
		r.observe(n)
		if !isHistory(n.Kind) {
			out = append(out, Event{Room: r.jid, Kind: EventNotice, Notice: n})
		} else if e, ok := r.entry(n); ok {
			out = append(out, Event{Room: r.jid, Kind: EventEntry, Entry: e})
		}
	}
	return out
}

// TestHistoryMatchesLive: the entries delivered live, each as it was last
// delivered, are exactly what App.History reads back after a restart;
// the one difference is that a message still waiting when its session
// ended reads back as Unconfirmed.
func TestHistoryMatchesLive(t *testing.T) {
	path := t.TempDir() + "/a.db"
	a, r := testApp(t, path)
	// Recent: the store keeps unencrypted messages for 30 days.
	evs := feed(r, conversation(time.Now().Add(-time.Hour).Round(0)))

	var live []Entry // one per Seq, as last delivered, in Seq order
	for _, ev := range evs {
		switch ev.Kind {
		case EventEntry:
			if i := slices.IndexFunc(live, func(e Entry) bool { return e.Seq == ev.Entry.Seq }); i >= 0 {
				live[i] = ev.Entry
			} else {
				live = append(live, ev.Entry)
			}
		case EventNotice:
			if k := ev.Notice.Kind; k != session.StateChanged && k != session.MemberExpired && k != session.SecurityWarning {
				t.Errorf("%v delivered as a notice", k)
			}
		}
	}
	if len(live) != 8 {
		t.Fatalf("%d lines live, want 8: %+v", len(live), live)
	}
	for _, e := range live {
		if e.Seq == 0 || e.Unconfirmed {
			t.Errorf("live entry %+v", e)
		}
	}
	// While the session runs, its waiting message reads back as waiting.
	a.mu.Lock()
	a.rooms[room] = r
	a.mu.Unlock()
	running, err := a.History(context.Background(), room, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprintf("%+v", running), fmt.Sprintf("%+v", live); got != want {
		t.Errorf("history while running:\n%s\nlive:\n%s", got, want)
	}
	a.mu.Lock()
	delete(a.rooms, room)
	a.mu.Unlock()
	a.Close(context.Background())

	a, _ = testApp(t, path)
	defer a.Close(context.Background())
	back, err := a.History(context.Background(), room, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(live)
	last := &want[len(want)-1]
	if last.Text != "never confirmed" || last.Ack != 0 {
		t.Fatalf("the last line is %+v", *last)
	}
	last.Unconfirmed = true
	if got, want := fmt.Sprintf("%+v", back), fmt.Sprintf("%+v", want); got != want {
		t.Errorf("history after a restart:\n%s\nlive:\n%s", got, want)
	}
	// Paging: the page before the last three.
	page, err := a.History(context.Background(), room, back[len(back)-3].Seq, 2)
	if err != nil || len(page) != 2 || page[1].Seq != back[len(back)-4].Seq {
		t.Fatalf("page: %+v, %v", page, err)
	}
}

// TestEntryMarks: what the entries say that a client must show: the
// unencrypted message is Plain, acknowledgement states follow the
// notices, a member who left is Absent, not a warning.
func TestEntryMarks(t *testing.T) {
	_, r := testApp(t, t.TempDir()+"/a.db")
	defer r.app.Close(context.Background())
	byText := map[string]Entry{}
	for _, ev := range feed(r, conversation(time.Now())) {
		if ev.Kind == EventEntry && ev.Entry.Text != "" {
			byText[ev.Entry.Text] = ev.Entry
		}
	}
	for text, want := range map[string]struct {
		kind, ack  session.NoticeKind
		notAcked   int
		absent     bool
		own, final bool
	}{
		"hi":              {kind: session.Message, ack: session.FullyAcked},
		"hello":           {kind: session.Message, ack: session.FullyAcked, own: true},
		"in the clear":    {kind: session.Plain},
		"answer to #1":    {kind: session.Message, ack: session.FullyAcked},
		"still there?":    {kind: session.Message, ack: session.NotFullyAcked, notAcked: 1, absent: true, own: true, final: true},
		"never confirmed": {kind: session.Message, own: true},
	} {
		e, ok := byText[text]
		if !ok {
			t.Errorf("%q not delivered", text)
			continue
		}
		if e.Kind != want.kind || e.Ack != want.ack || len(e.NotAcked) != want.notAcked || e.Absent != want.absent || e.Own != want.own || e.Final != want.final {
			t.Errorf("%q: %+v", text, e)
		}
	}
}

// restartConversation: alice's session is cut by a server restart; she
// types two messages while out; bob comes back and is included, carol
// never does; the first message is sent at the end of its wait without
// carol, the second was never sent.
func restartConversation(at time.Time) []session.Notice {
	id := func(n byte) transcript.ID { return transcript.ID{n, 0xBB} }
	h1, h2 := transcript.ID{1, 0xCC}, transcript.ID{2, 0xCC}
	until := at.Add(5 * time.Minute)
	return []session.Notice{
		{Kind: session.StateChanged, State: session.StateJoined, At: at},
		{Kind: session.Membership, At: at, Remain: []string{alice}, Include: []string{bob, carol}},
		{Kind: session.Gap, At: at, Err: fmt.Errorf("xmpp: connection lost")},
		{Kind: session.Membership, At: at, Remain: []string{alice}, Exclude: []string{bob, carol}},
		{Kind: session.StateChanged, State: session.StateParted, At: at},
		{Kind: session.Queued, At: at, ID: h1, Author: alice, Own: true, Text: "typed while out", Members: []string{bob, carol}, Until: until},
		{Kind: session.Queued, At: at, ID: h2, Author: alice, Own: true, Text: "never sent", Members: []string{bob, carol}, Until: until},
		{Kind: session.StateChanged, State: session.StateJoining, At: at, Until: until},
		{Kind: session.Membership, At: until, Remain: []string{alice}, Include: []string{bob}},
		{Kind: session.StateChanged, State: session.StateJoined, At: until},
		{Kind: session.Message, At: until, ID: id(1), Author: alice, Own: true, Text: "typed while out", Members: []string{alice, bob}, Replaces: h1},
		{Kind: session.NotDelivered, At: until, ID: id(1), Members: []string{carol}},
		{Kind: session.NotDelivered, At: until, ID: h2, Text: "never sent", Members: []string{bob, carol}},
		{Kind: session.FullyAcked, At: until, ID: id(1)},
	}
}

// TestQueuedMessages: a message typed while out of the session is a
// Queued line; sent, it becomes a Message that replaces that line, is
// recorded where it was sent, and keeps whom it did not reach even once
// acknowledged by everyone it was sent to; one never sent comes again with
// everyone in NotDelivered. The history reads back what was delivered
// last, and a message still queued when the program stopped reads back
// Unconfirmed (never sent).
func TestQueuedMessages(t *testing.T) {
	path := t.TempDir() + "/a.db"
	a, r := testApp(t, path)
	evs := feed(r, restartConversation(time.Date(2026, 1, 2, 15, 4, 5, 0, time.Local)))
	var entries []Entry
	for _, ev := range evs {
		if ev.Kind == EventEntry {
			entries = append(entries, ev.Entry)
		}
	}
	// membership, membership, queued, queued, membership, message, not delivered, never sent, acked
	if len(entries) != 9 {
		t.Fatalf("%d entries: %+v", len(entries), entries)
	}
	q1, q2, sent, nd, never, acked := entries[2], entries[3], entries[5], entries[6], entries[7], entries[8]
	if q1.Kind != session.Queued || !q1.Own || q1.Until.IsZero() || len(q1.Members) != 2 || q1.Seq == 0 {
		t.Errorf("queued: %+v", q1)
	}
	if sent.Kind != session.Message || sent.Replaces != q1.ID || sent.Seq <= entries[4].Seq {
		t.Errorf("sent: %+v", sent)
	}
	if nd.Seq != sent.Seq || !slices.Equal(nd.NotDelivered, []string{carol}) || nd.Ack != 0 {
		t.Errorf("not delivered: %+v", nd)
	}
	if never.Seq != q2.Seq || never.Kind != session.Queued || len(never.NotDelivered) != 2 {
		t.Errorf("never sent: %+v", never)
	}
	if acked.Seq != sent.Seq || acked.Ack != session.FullyAcked || !slices.Equal(acked.NotDelivered, []string{carol}) {
		t.Errorf("acknowledged by those it reached, still not delivered to carol: %+v", acked)
	}
	a.Close(context.Background())

	a, r = testApp(t, path)
	back, err := a.History(context.Background(), room, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, e := range back {
		texts = append(texts, fmt.Sprintf("%s %q %v", storeKinds[e.Kind], e.Text, e.NotDelivered))
	}
	want := []string{`membership "" []`, `membership "" []`, `queued "never sent" [` + bob + " " + carol + "]",
		`membership "" []`, `message "typed while out" [` + carol + "]"}
	if !slices.Equal(texts, want) {
		t.Errorf("history:\n%q\nwant\n%q", texts, want)
	}
	if fmt.Sprintf("%+v", back[4]) != fmt.Sprintf("%+v", acked) {
		t.Errorf("read back:\n%+v\ndelivered:\n%+v", back[4], acked)
	}
	// Typed while out, and the program stopped before it was sent.
	feed(r, []session.Notice{{Kind: session.Queued, ID: transcript.ID{3, 0xCC}, Author: alice, Own: true, Text: "left behind",
		Members: []string{bob}, Until: time.Now().Add(time.Minute)}})
	a.Close(context.Background())
	a, _ = testApp(t, path)
	defer a.Close(context.Background())
	back, _ = a.History(context.Background(), room, 0, 100)
	if l := back[len(back)-1]; l.Kind != session.Queued || l.Text != "left behind" || !l.Unconfirmed {
		t.Errorf("a queued message of an earlier run: %+v", l)
	}
	if l := back[2]; l.Unconfirmed {
		t.Errorf("a message reported never sent reads back unconfirmed: %+v", l)
	}
}

// TestOutForGood: EventOut comes once per stay, when nothing brings us
// back by ourselves: kicked, the room destroyed, a failed join, a fatal
// error, the session leaving by itself; never for a lost connection or
// a removal while joining after which the session enters again, nor when
// we part on request.
func TestOutForGood(t *testing.T) {
	kicked := errors.New("xmpp: removed from room@muc.example.org: kicked")
	state := func(s session.State) session.Notice { return session.Notice{Kind: session.StateChanged, State: s} }
	for i, tt := range []struct {
		chErr error
		leave bool // the session asked to leave
		part  bool
		ns    []session.Notice
		want  string // "" for no EventOut
	}{
		0: {ns: []session.Notice{{Kind: session.Gap, Err: errors.New("connection lost")}, state(session.StateParted)}},
		1: {chErr: kicked, ns: []session.Notice{{Kind: session.Gap, Err: kicked}, state(session.StateParted)}, want: kicked.Error()},
		2: {chErr: kicked, ns: []session.Notice{{Kind: session.Kicked, Members: []string{alice}, Err: kicked, Until: time.Now()}, state(session.StateParted),
			state(session.StateJoining)}},
		3: {chErr: kicked, ns: []session.Notice{{Kind: session.Kicked, Members: []string{alice}, Err: kicked},
			{Kind: session.OpFailed, OpKind: session.OpJoin, Err: session.ErrJoinTimeout}, state(session.StateJoinFailed)}, want: session.ErrJoinTimeout.Error()},
		4: {leave: true, ns: []session.Notice{{Kind: session.OpFailed, OpKind: session.OpJoin, Err: session.ErrJoinTimeout}, state(session.StateJoinFailed)},
			want: session.ErrJoinTimeout.Error()},
		5: {ns: []session.Notice{{Kind: session.SecurityWarning, Terminal: true, Err: session.ErrServerSplit}, state(session.StateError)},
			want: "app: the session stopped: " + session.ErrServerSplit.Error()},
		6: {leave: true, ns: []session.Notice{state(session.StateParting), state(session.StateParted)}, want: errLeftByItself.Error()},
		7: {chErr: kicked, part: true, ns: []session.Notice{state(session.StateParted)}},
		8: {chErr: kicked, ns: []session.Notice{state(session.StateParted), state(session.StatePartFailed)}, want: kicked.Error()},
	} {
		a, r := testApp(t, t.TempDir()+"/a.db")
		r.channelErr = func() error { return tt.chErr }
		r.out.leaveAsked, r.out.parting = tt.leave, tt.part
		var outs []string
		for _, ev := range feedOut(r, tt.ns) {
			if ev.Kind == EventOut {
				outs = append(outs, ev.Err.Error())
			}
		}
		switch {
		case tt.want == "" && len(outs) > 0, tt.want != "" && !slices.Equal(outs, []string{tt.want}):
			t.Errorf("%d: EventOut %q, want %q", i, outs, tt.want)
		}
		a.Close(context.Background())
	}
}

// feedOut is feed with the EventOut that Room.pump adds.
func feedOut(r *Room, ns []session.Notice) []Event {
	var out []Event
	for _, n := range ns {
		out = append(out, feed(r, []session.Notice{n})...)
		if err := r.outForGood(n); err != nil {
			out = append(out, Event{Room: r.jid, Kind: EventOut, Err: err})
		}
	}
	return out
}

// TestPlainBodiesBounded: a flood of large unencrypted messages (the
// review's 61 bodies of 250 KB) is delivered and recorded as the first
// 4 KiB of each, the same live and after a restart, and the store grows
// by a bounded amount.
func TestPlainBodiesBounded(t *testing.T) {
	path := t.TempDir() + "/a.db"
	a, r := testApp(t, path)
	size := func() int64 {
		var n int64
		for _, p := range []string{path, path + "-wal"} {
			if fi, err := os.Stat(p); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	before := size()
	big := strings.Repeat("x", 250_000)
	var ns []session.Notice
	for range 61 {
		ns = append(ns, session.Notice{Kind: session.Plain, At: time.Now(), Author: "eve@example.org/e", Text: big})
	}
	var live []Entry
	for _, ev := range feed(r, ns) {
		if ev.Kind == EventEntry {
			live = append(live, ev.Entry)
		}
	}
	if len(live) != 61 {
		t.Fatalf("%d entries delivered", len(live))
	}
	for _, e := range live {
		if len(e.Text) != 4096 {
			t.Fatalf("a plain entry delivered with %d bytes", len(e.Text))
		}
	}
	if grew := size() - before; grew > 2<<20 {
		t.Fatalf("the store grew by %d bytes", grew)
	}
	a.Close(context.Background())
	a, _ = testApp(t, path)
	defer a.Close(context.Background())
	back, err := a.History(context.Background(), room, 0, 100)
	if err != nil || len(back) != 61 || fmt.Sprintf("%+v", back[60]) != fmt.Sprintf("%+v", live[60]) {
		t.Fatalf("history after a restart differs from what was shown: %v", err)
	}
}

// TestOwnPartRecorded: the session reports our own part from our last
// subsession (we alone remain, the others "excluded"); the entry records
// that we left and the others go on, live and after a restart, while the
// same shape when we did not part (the others left) stays as it is.
func TestOwnPartRecorded(t *testing.T) {
	path := t.TempDir() + "/a.db"
	a, r := testApp(t, path)
	at := time.Now().Round(0)
	evs := feed(r, []session.Notice{
		{Kind: session.StateChanged, State: session.StateJoined, At: at},
		{Kind: session.Membership, At: at, Remain: []string{alice}, Include: []string{bob}},
		{Kind: session.Membership, At: at, Remain: []string{alice}, Exclude: []string{bob}}, // bob left
		{Kind: session.Membership, At: at, Remain: []string{alice}, Include: []string{carol}},
		{Kind: session.StateChanged, State: session.StateParting, At: at}, // our /part
		{Kind: session.Membership, At: at, Remain: []string{alice}, Exclude: []string{carol}},
		{Kind: session.StateChanged, State: session.StateParted, At: at},
	})
	var got []string
	for _, ev := range evs {
		if ev.Kind == EventEntry {
			got = append(got, fmt.Sprint(ev.Entry.Members, ev.Entry.Exclude))
		}
	}
	want := []string{"[alice@example.org/a] []", "[alice@example.org/a] [bob@example.org/b]", "[alice@example.org/a] []", "[carol@example.org/c] [alice@example.org/a]"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	a.Close(context.Background())
	a, _ = testApp(t, path)
	defer a.Close(context.Background())
	back, err := a.History(context.Background(), room, 0, 10)
	if err != nil || len(back) != 4 || fmt.Sprint(back[3].Members, back[3].Exclude) != want[3] {
		t.Fatalf("history %+v, %v", back, err)
	}
}

// FuzzDecodeArchiveKeys: whatever the keys reader accepts is within its
// bounds and carries no admin secret, member list or chain ends.
func FuzzDecodeArchiveKeys(f *testing.F) {
	f.Add([]byte(`<archive xmlns='https://github.com/mpenc/mpenc/ns/archive/1'>eyJWIjoxfQ==</archive>`))
	f.Add([]byte(`<archive xmlns='https://github.com/mpenc/mpenc/ns/archive/1'></archive>`))
	var B recrypt.Point // the base point: a valid A
	B[0] = 0x58
	for i := 1; i < 32; i++ {
		B[i] = 0x66
	}
	good, _ := json.Marshal(archiveKeys{V: 1, Service: "bot@example.org/x", Epochs: []epochState{{Epoch: 2, A: B,
		Heads: map[string]history.Hash{"alice@example.org/laptop": {1}}}}})
	f.Add([]byte("<archive xmlns='" + nsArchiveKeys + "'>" + base64.StdEncoding.EncodeToString(good) + "</archive>"))
	if _, err := decodeArchiveKeys([]byte("<archive xmlns='" + nsArchiveKeys + "'>" + base64.StdEncoding.EncodeToString(good) + "</archive>")); err != nil {
		f.Fatalf("valid keys refused: %v", err)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		k, err := decodeArchiveKeys(p)
		if err != nil {
			return
		}
		if len(k.Epochs) == 0 || len(k.Epochs) > maxArchiveEpochs {
			t.Fatalf("%d epochs", len(k.Epochs))
		}
		for _, e := range k.Epochs {
			if e.Admin != nil || len(e.Members) > 0 || len(e.Ends) > 0 || len(e.Heads) > maxArchiveWriters {
				t.Fatalf("an epoch with what keys never carry: %+v", e)
			}
		}
	})
}

// TestPageSealingDeterministic: a page is sealed the same way each time
// (after a crash, the same page reaches the service as the same bytes,
// stored once), another page of the same index never with the same t.
func TestPageSealingDeterministic(t *testing.T) {
	var B recrypt.Point
	B[0] = 0x58
	for i := 1; i < 32; i++ {
		B[i] = 0x66
	}
	h := &archiver{}
	s := &ownArchive{Seed: [32]byte{7}}
	e := &epochState{Epoch: 3, Index: 5, A: B}
	seal := func(page string) (recrypt.Point, []byte, [16]byte) {
		id, r := h.pageSecrets(s, e, []byte(page))
		T, c, err := recrypt.Seal(e.A, e.context(), []byte(page), id[:], r)
		if err != nil {
			t.Fatal(err)
		}
		return T, c, id
	}
	T1, c1, id1 := seal("page one")
	T2, c2, id2 := seal("page one")
	if T1 != T2 || string(c1) != string(c2) || id1 != id2 {
		t.Fatal("the same page sealed twice differs")
	}
	T3, _, id3 := seal("page one, changed")
	if T3 == T1 || id3 == id1 {
		t.Fatal("another page at the same index got the same t or id")
	}
	s.Seed[0] = 8
	if T4, _, _ := seal("page one"); T4 == T1 {
		t.Fatal("another device's seed gave the same t")
	}
}
