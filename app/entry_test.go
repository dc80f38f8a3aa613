package app

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

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
	r := &Room{app: a, jid: room, self: alice, expired: map[string]bool{}, absent: map[string]bool{}, invited: map[string]bool{},
		waiting: map[transcript.ID]Entry{}}
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
	evs := feed(r, conversation(time.Date(2026, 1, 2, 15, 4, 5, 6, time.Local)))

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
