package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/trusttest"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/transcript"
	"github.com/mpenc/mpenc/trust"
)

const (
	alice = "alice@example.org/a"
	bob   = "bob@example.org/b"
	carol = "carol@example.org/c"
)

func id(n byte) transcript.ID { return transcript.ID{n} }

func notice(n session.Notice) app.Event {
	if n.At.IsZero() {
		n.At = time.Date(2026, 1, 2, 15, 4, 0, 0, time.Local)
	}
	return app.Event{Room: "r@muc", Kind: app.EventNotice, Notice: n}
}

var testTime = time.Date(2026, 1, 2, 15, 4, 0, 0, time.Local)

// entry is the event the App delivers for a line of the conversation.
func entry(e app.Entry) app.Event {
	if e.At.IsZero() {
		e.At = testTime
	}
	return app.Event{Room: "r@muc", Kind: app.EventEntry, Entry: e}
}

func msg(i byte, author, text string, own bool, parents []int, members ...string) app.Event {
	return entry(app.Entry{Seq: int64(i), Kind: session.Message, ID: id(i), Author: author, Text: text, Own: own,
		LogParents: parents, Members: members})
}

func membership(remain, include, exclude []string) app.Event {
	return entry(app.Entry{Kind: session.Membership, Members: remain, Include: include, Exclude: exclude})
}

// acked is a message's event again, with the acknowledgement state a
// FullyAcked (no notAcked) or NotFullyAcked notice gave it.
func acked(ev app.Event, notAcked []string, final, absent bool) app.Event {
	ev.Entry.Ack = session.FullyAcked
	if notAcked != nil {
		ev.Entry.Ack, ev.Entry.NotAcked, ev.Entry.Final, ev.Entry.Absent = session.NotFullyAcked, notAcked, final, absent
	}
	return ev
}

// last renders the view's last line.
func last(v *roomView) string { return v.plainText(v.lines[len(v.lines)-1]) }

func TestViewMessagesAndAcks(t *testing.T) {
	v := newRoomView("r@muc")
	v.self = alice
	v.apply(membership([]string{alice}, []string{bob, carol}, nil))
	if got := last(v); !strings.Contains(got, "members: alice@example.org, bob@example.org, carol@example.org (+bob@example.org, +carol@example.org)") {
		t.Errorf("membership line: %q", got)
	}
	m1 := msg(1, bob, "hi", false, nil, alice, bob, carol)
	v.apply(m1)
	if got, want := last(v), "15:04 #1 bob@example.org: hi"; got != want {
		t.Errorf("first message: %q, want %q", got, want)
	}
	m2 := msg(2, alice, "hello", true, []int{1}, alice, bob, carol)
	l, _ := v.apply(m2)
	if got := last(v); !strings.HasSuffix(got, "#2 you: hello …unacked") {
		t.Errorf("own unacked message: %q", got)
	}
	if changed, _ := v.apply(acked(m2, nil, false, false)); changed != l || len(v.lines) != 3 {
		t.Fatal("the acknowledged message did not change its line")
	}
	if got := v.plainText(l); strings.Contains(got, "unacked") {
		t.Errorf("acked message still marked: %q", got)
	}
	m3 := msg(3, alice, "anyone?", true, []int{1}, alice, bob, carol)
	v.apply(m3)
	v.apply(acked(m3, []string{carol}, false, false))
	if got := v.plainText(v.message(3)); !strings.Contains(got, "⚠ NOT SEEN BY carol@example.org") {
		t.Errorf("not fully acked: %q", got)
	}
	// The others' messages are marked too when someone did not ack them.
	v.apply(acked(m1, []string{carol}, false, true))
	if got := v.plainText(v.message(1)); !strings.Contains(got, "(not seen by carol@example.org, who left)") {
		t.Errorf("absent: %q", got)
	}
	if v.unread != 1 {
		t.Errorf("%d unread, want 1 (bob's message, once)", v.unread)
	}
}

func TestViewLogParents(t *testing.T) {
	v := newRoomView("r@muc")
	v.self = alice
	all := []string{alice, bob}
	v.apply(membership([]string{alice}, []string{bob}, nil))
	v.apply(msg(1, alice, "question", true, nil, all...))
	v.apply(msg(2, alice, "other topic", true, []int{1}, all...))
	// bob answers #1, not the line above it: [re #1].
	v.apply(msg(3, bob, "answer", false, []int{2}, all...))
	if got := last(v); !strings.Contains(got, "#3 [re #1] bob@example.org: answer") {
		t.Errorf("reply hint: %q", got)
	}
	// Two parents.
	v.apply(msg(4, alice, "both", true, []int{1, 2}, all...))
	if got := last(v); !strings.Contains(got, "[re #2,#3]") {
		t.Errorf("two parents: %q", got)
	}
	// {1} and {} are not marked.
	for _, n := range []int{1, 2} {
		if highlight(v.message(n)) {
			t.Errorf("#%d highlighted", n)
		}
	}
	if !highlight(v.message(3)) || !highlight(v.message(4)) {
		t.Error("#3 or #4 not highlighted")
	}
	// A parent older than the view holds.
	v.apply(msg(5, bob, "old", false, []int{9}, all...))
	if got := last(v); !strings.Contains(got, "[re ↑9]") {
		t.Errorf("unknown parent: %q", got)
	}
	anc := v.ancestors(v.message(4))
	if !anc[1] || !anc[2] || !anc[3] || anc[4] || anc[5] {
		t.Errorf("ancestors of #4: %v", anc)
	}
	anc = v.ancestors(v.message(3))
	if !anc[1] || anc[2] {
		t.Errorf("ancestors of #3: %v", anc)
	}
	d := v.details(v.message(3), nil, false)
	for _, want := range []string{"#3 by bob@example.org/b", "sent to: you, bob@example.org", `answers: #1 you: "question"`} {
		if !strings.Contains(d, want) {
			t.Errorf("details lack %q:\n%s", want, d)
		}
	}
}

func TestViewOldMembers(t *testing.T) {
	v := newRoomView("r@muc")
	v.self = alice
	v.apply(membership([]string{alice}, []string{bob, carol}, nil))
	v.apply(msg(1, bob, "to three", false, nil, alice, bob, carol))
	if v.oldMembers(v.message(1)) {
		t.Fatal("marked before any change")
	}
	v.apply(membership([]string{alice, bob}, nil, []string{carol}))
	// Messages from before a change are not marked: the membership line
	// below them says the membership changed (a trial found every earlier
	// message marked after each change).
	if got := v.plainText(v.message(1)); strings.Contains(got, "earlier members") {
		t.Errorf("a message from before the change is marked: %q", got)
	}
	// A message sent before the change completes but received after it.
	v.apply(msg(2, bob, "late", false, []int{1}, alice, bob, carol))
	if got := v.plainText(v.message(2)); !v.oldMembers(v.message(2)) || !strings.Contains(got, "(sent to the earlier members: you, bob@example.org, carol@example.org)") {
		t.Errorf("late message to the old members: %q", got)
	}
	d := v.details(v.message(2), nil, false)
	if !strings.Contains(d, "the session's members are now: you, bob@example.org") {
		t.Errorf("details: %s", d)
	}
}

func TestViewDetailsAck(t *testing.T) {
	v := newRoomView("r@muc")
	v.self = alice
	m1 := msg(1, alice, "x", true, nil, alice, bob)
	v.apply(m1)
	if d := v.details(v.message(1), []string{bob}, true); !strings.Contains(d, "waiting for acknowledgement from: bob@example.org") {
		t.Errorf("live unacked: %s", d)
	}
	if d := v.details(v.message(1), nil, true); !strings.Contains(d, "acknowledged by everyone") {
		t.Errorf("live acked: %s", d)
	}
	v.apply(acked(m1, []string{bob}, true, false))
	if d := v.details(v.message(1), nil, false); !strings.Contains(d, "NOT acknowledged in time by: bob@example.org (final") {
		t.Errorf("missing: %s", d)
	}
}

func TestViewNoticesToLines(t *testing.T) {
	op := &session.Op{}
	for i, tt := range []struct {
		ev      app.Event
		want    string // substring of the rendered line; "" for no line
		warning bool
	}{
		0:  {notice(session.Notice{Kind: session.OpProposed, Author: alice, OpKind: session.OpInclude, Include: []string{carol}, Op: op}), "you proposed: including carol@example.org", false},
		1:  {notice(session.Notice{Kind: session.OpAccepted, OpKind: session.OpInclude, Include: []string{carol}}), "including carol@example.org: started (messages sent until it is done still go to the current members)", false},
		2:  {notice(session.Notice{Kind: session.OpSucceeded, OpKind: session.OpInclude, Include: []string{carol}}), "including carol@example.org: done", false},
		3:  {notice(session.Notice{Kind: session.OpFailed, OpKind: session.OpExclude, Exclude: []string{bob}, Err: errors.New("timeout")}), "excluding bob@example.org: failed (timeout)", true},
		4:  {notice(session.Notice{Kind: session.OpRejected, OpKind: session.OpRefresh, Err: errors.New("busy")}), "renewing the group key: rejected (busy)", true},
		5:  {notice(session.Notice{Kind: session.JoinRequest, Author: carol}), "carol@example.org/c waits to be included: /invite carol@example.org", false},
		6:  {notice(session.Notice{Kind: session.MemberExpired, Author: bob}), "bob@example.org/b is not responding", true},
		7:  {notice(session.Notice{Kind: session.SecurityWarning, Author: bob, Err: errors.New("bad \x1b[31msignature"), Terminal: true}), "SECURITY WARNING about bob@example.org/b (the session stopped): bad [31msignature", true},
		8:  {entry(app.Entry{Kind: session.Plain, Author: bob, Text: "in clear\x07"}), "[UNENCRYPTED] bob@example.org: in clear", false},
		9:  {notice(session.Notice{Kind: session.Gap, Err: errors.New("xmpp: connection lost")}), "we were out of the room (“xmpp: connection lost”): messages sent meanwhile may be lost; what you type now waits", true},
		11: {notice(session.Notice{Kind: session.StateChanged, State: session.StateJoinFailed}), "nobody included you in time: you are out of the session (/join to try again)", true},
		12: {notice(session.Notice{Kind: session.Waiting, Author: bob}), "waits for older messages", true},
		17: {notice(session.Notice{Kind: session.OpAccepted, Author: bob, OpKind: session.OpStart, Include: []string{alice, bob}}), "bob@example.org including you: started", false},
		18: {notice(session.Notice{Kind: session.OpSucceeded, Author: bob, OpKind: session.OpInclude, Include: []string{carol}}), "including carol@example.org (by bob@example.org): done", false},
		13: {app.Event{Kind: app.EventJoined, Err: errors.New("nick in use")}, "could not join: nick in use", true},
		19: {notice(session.Notice{Kind: session.StateChanged, State: session.StateJoining, Until: testTime.Add(4*time.Minute + 32*time.Second)}),
			"waiting to be included (4:32 left, until 15:08:32); a member can include you with /invite alice@example.org/a", false},
		20: {notice(session.Notice{Kind: session.StateChanged, State: session.StateJoining}), "", false},
		21: {notice(session.Notice{Kind: session.Kicked, Members: []string{alice}, Err: errors.New("xmpp: removed from r@muc: kicked"), Until: testTime.Add(7 * time.Second)}),
			"the room removed you: “xmpp: removed from r@muc: kicked”; entering again at 15:04:07", false},
		22: {notice(session.Notice{Kind: session.Kicked, Members: []string{alice}, Err: errors.New("go away")}),
			"the room removed you: “go away”; not entering again by ourselves (/join r@muc)", false},
		23: {notice(session.Notice{Kind: session.Kicked, Members: []string{bob, carol}, Text: "was excluded from the session"}),
			"removed bob@example.org, carol@example.org from the room (was excluded from the session)", false},
		24: {app.Event{Kind: app.EventOut, Room: "r@muc", Err: errors.New("xmpp: removed from r@muc: room destroyed")},
			"out of the room, and not entering again by ourselves (“xmpp: removed from r@muc: room destroyed”): /join r@muc to enter again", true},
		26: {notice(session.Notice{Kind: session.ErrorReport, Author: bob, Text: "bad \x1b[2Jpacket", Severity: "terminal"}),
			"bob@example.org/b reports an error (terminal, unsigned): “bad [2Jpacket”", false},
		25: {notice(session.Notice{Kind: session.OpFailed, OpKind: session.OpInclude, Include: []string{carol}, Err: errors.New("aborted"), Until: testTime.Add(30 * time.Second)}),
			"including carol@example.org: failed (aborted); not proposed again automatically before 15:04:30", true},
		14: {app.Event{Kind: app.EventDecision, Decision: trust.Decision{Kind: trust.KeyChanged, Member: bob, JID: "bob@example.org", Key: crypto.PublicKey{1}}}, "bob@example.org/b CHANGED its identity key", true},
		15: {app.Event{Kind: app.EventDecision, Decision: trust.Decision{Kind: trust.KeyNew, Member: bob, JID: "bob@example.org", Key: crypto.PublicKey{1}, Trusted: true}}, "bob@example.org/b announced key", false},
		16: {app.Event{Kind: app.EventDecision, Decision: trust.Decision{Kind: trust.KeyNewDevice, Member: bob, JID: "bob@example.org", Key: crypto.PublicKey{1}}}, "NOT trusted: /verify bob@example.org", false},
	} {
		v := newRoomView("r@muc")
		v.self = alice
		if tt.ev.Room == "" {
			tt.ev.Room = "r@muc"
		}
		l, _ := v.apply(tt.ev)
		if tt.want == "" {
			if l != nil {
				t.Errorf("%d: a line: %q", i, v.plainText(l))
			}
			continue
		}
		if l == nil {
			t.Errorf("%d: no line, want %q", i, tt.want)
			continue
		}
		got := v.plainText(l)
		if !strings.Contains(got, tt.want) {
			t.Errorf("%d: %q lacks %q", i, got, tt.want)
		}
		if (l.kind == lineWarning) != tt.warning {
			t.Errorf("%d: warning = %v, want %v", i, l.kind == lineWarning, tt.warning)
		}
		if strings.ContainsRune(got, 0x1b) || strings.ContainsRune(got, 0x07) {
			t.Errorf("%d: control character shown: %q", i, got)
		}
	}
}

func TestViewHistory(t *testing.T) {
	v := newRoomView("r@muc")
	v.self = alice
	at := testTime
	v.loadHistory([]app.Entry{
		{Kind: session.Membership, At: at, Members: []string{alice}, Include: []string{bob}},
		{Kind: session.Message, ID: id(1), Author: alice, Text: "sent, never confirmed", Own: true, At: at, Members: []string{alice, bob}, Unconfirmed: true},
		{Kind: session.Message, ID: id(2), Author: bob, Text: "answer\x1b]0;x\x07", At: at, Members: []string{alice, bob}, LogParents: []int{1}, Ack: session.FullyAcked},
		{Kind: session.Message, ID: id(3), Author: alice, Text: "acked", Own: true, At: at, Members: []string{alice, bob}, LogParents: []int{1}, Ack: session.FullyAcked},
		{Kind: session.Plain, Author: carol, Text: "plain", At: at},
		{Kind: session.Message, ID: id(4), Author: bob, Text: "to the old members", At: at, Members: []string{alice, bob, carol}, LogParents: []int{1}},
	})
	got := []string{}
	for _, l := range v.lines {
		got = append(got, v.plainText(l))
	}
	want := []string{
		"15:04 -- members: alice@example.org, bob@example.org (+bob@example.org)",
		"15:04 #1 you: sent, never confirmed ?unconfirmed",
		"15:04 #2 bob@example.org: answer]0;x",
		"15:04 #3 you: acked",
		"15:04 [UNENCRYPTED] carol@example.org: plain",
		"15:04 #4 bob@example.org: to the old members (sent to the earlier members: you, bob@example.org, carol@example.org)",
		"15:04 -- end of history",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Loaded before the room's connection tells us our participant id,
	// our own messages are still ours.
	early := newRoomView("r@muc")
	early.loadHistory([]app.Entry{{Kind: session.Message, ID: id(1), Author: alice, Text: "mine", Own: true, At: at, Ack: session.FullyAcked}})
	if got := early.plainText(early.message(1)); got != "15:04 #1 you: mine" {
		t.Errorf("own message before self is known: %q", got)
	}
	// A message recorded again (same id) is not shown twice.
	v.apply(msg(3, alice, "acked", true, []int{1}))
	if len(v.msgs) != 4 {
		t.Errorf("%d messages after a duplicate", len(v.msgs))
	}
	if v.unread != 0 {
		t.Errorf("history counted as unread: %d", v.unread)
	}
}

// TestViewLiveEqualsHistory: a conversation drawn from the App's live
// events and the same conversation drawn from its history after a
// restart give the same lines: same authors, texts, numbers, reply marks,
// unencrypted marks and acknowledgement marks. The one difference is a
// message still waiting when the session ended, which the history marks
// unconfirmed.
func TestViewLiveEqualsHistory(t *testing.T) {
	all := []string{alice, bob, carol}
	m1 := msg(1, bob, "hi", false, nil, all...)
	m2 := msg(2, alice, "hello", true, []int{1}, all...)
	m3 := msg(3, carol, "answer to #1", false, []int{2}, all...)
	m4 := msg(4, alice, "still there?", true, []int{1}, all...)
	m6 := msg(6, alice, "never confirmed", true, []int{1}, alice, bob)
	plain := entry(app.Entry{Seq: 5, Kind: session.Plain, Author: "eve@example.org/e", Text: "in the \x1b[2Jclear"})
	live := []app.Event{
		membership([]string{alice}, []string{bob, carol}, nil),
		m1, m2, acked(m1, nil, false, false), acked(m2, nil, false, false),
		plain,
		m3, acked(m3, []string{bob}, false, false),
		notice(session.Notice{Kind: session.MemberExpired, Author: bob}),
		acked(m3, nil, false, false),
		m4, acked(m4, []string{carol}, true, true),
		membership([]string{alice, bob}, nil, []string{carol}),
		m6,
		notice(session.Notice{Kind: session.SecurityWarning, Author: bob, Err: errors.New("bad signature")}),
	}
	lv := newRoomView("r@muc")
	lv.self = alice
	for _, ev := range live {
		lv.apply(ev)
	}
	// The history holds each entry as it was last delivered, in order.
	var hist []app.Entry
	for _, ev := range live {
		if ev.Kind != app.EventEntry {
			continue
		}
		if i := slices.IndexFunc(hist, func(e app.Entry) bool { return e.Kind == session.Message && e.ID == ev.Entry.ID }); i >= 0 && ev.Entry.Kind == session.Message {
			hist[i] = ev.Entry
			continue
		}
		hist = append(hist, ev.Entry)
	}
	hist[len(hist)-1].Unconfirmed = true // m6: its session ended meanwhile
	hv := newRoomView("r@muc")
	hv.self = alice
	hv.loadHistory(hist)

	var liveLines, histLines []string
	for _, l := range lv.lines {
		if l.kind != lineInfo && l.kind != lineWarning {
			liveLines = append(liveLines, lv.plainText(l))
		}
	}
	for _, l := range hv.lines {
		if l.kind != lineInfo {
			histLines = append(histLines, hv.plainText(l))
		}
	}
	if len(liveLines) != 8 {
		t.Fatalf("%d conversation lines live:\n%s", len(liveLines), strings.Join(liveLines, "\n"))
	}
	last := len(liveLines) - 1
	if !strings.HasSuffix(liveLines[last], "never confirmed …unacked") || !strings.HasSuffix(histLines[last], "never confirmed ?unconfirmed") {
		t.Errorf("the waiting message: live %q, history %q", liveLines[last], histLines[last])
	}
	liveLines[last], histLines[last] = "", ""
	if strings.Join(liveLines, "\n") != strings.Join(histLines, "\n") {
		t.Errorf("live:\n%s\nafter a restart:\n%s", strings.Join(liveLines, "\n"), strings.Join(histLines, "\n"))
	}
	for _, want := range []string{"[UNENCRYPTED] eve@example.org: in the [2Jclear", "#3 [re #1] carol@example.org: answer to #1",
		"#4 you: still there? (not seen by carol@example.org, who left)"} {
		if !strings.Contains(strings.Join(histLines, "\n"), want) {
			t.Errorf("history lacks %q:\n%s", want, strings.Join(histLines, "\n"))
		}
	}
}

var nopLog = zerolog.Nop()

// TestViewQueuedLines: messages typed during a server restart. The first
// is a queued line, then the message it became, drawn where it was sent
// (after the new membership), never shown as seen by everyone while it
// did not reach carol; the second was never sent and says how to send it
// again. The history draws the same lines.
func TestViewQueuedLines(t *testing.T) {
	until := testTime.Add(5 * time.Minute)
	h1, h2 := transcript.ID{0xC1}, transcript.ID{0xC2}
	q1 := entry(app.Entry{Seq: 3, Kind: session.Queued, ID: h1, Author: alice, Own: true, Text: "typed while out", Members: []string{bob, carol}, Until: until})
	q2 := entry(app.Entry{Seq: 4, Kind: session.Queued, ID: h2, Author: alice, Own: true, Text: "never sent", Members: []string{bob, carol}, Until: until})
	sent := msg(6, alice, "typed while out", true, []int{1}, alice, bob)
	sent.Entry.Replaces = h1
	nd := sent
	nd.Entry.Replaces, nd.Entry.NotDelivered = transcript.ID{}, []string{carol}
	never := q2
	never.Entry.NotDelivered = []string{bob, carol}
	live := []app.Event{
		membership([]string{alice}, []string{bob, carol}, nil),
		msg(1, bob, "before", false, nil, alice, bob, carol),
		notice(session.Notice{Kind: session.Gap}),
		q1, q2,
		membership([]string{alice}, []string{bob}, nil),
		sent, nd, acked(nd, nil, false, false), never,
	}
	v := newRoomView("r@muc")
	v.self = alice
	var texts []string
	for i, ev := range live {
		l, _ := v.apply(ev)
		if i == 4 {
			texts = append(texts, v.plainText(v.lines[len(v.lines)-2]), v.plainText(l))
		}
	}
	if want := []string{
		"15:04 q1 you: typed while out [queued — waiting for bob@example.org, carol@example.org (until 15:09)]",
		"15:04 q2 you: never sent [queued — waiting for bob@example.org, carol@example.org (until 15:09)]",
	}; !slices.Equal(texts, want) {
		t.Errorf("queued lines:\n%q\nwant\n%q", texts, want)
	}
	var got []string
	for _, l := range v.lines {
		if l.kind != lineInfo && l.kind != lineWarning {
			got = append(got, v.plainText(l))
		}
	}
	want := []string{
		"15:04 -- members: alice@example.org, bob@example.org, carol@example.org (+bob@example.org, +carol@example.org)",
		"15:04 #1 bob@example.org: before",
		"15:04 q2 you: never sent [NOT SENT: bob@example.org, carol@example.org did not come back in time; /resend q2]",
		"15:04 -- members: alice@example.org, bob@example.org (+bob@example.org)",
		"15:04 #2 you: typed while out ⚠ NOT DELIVERED TO carol@example.org (/resend 2)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("live:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	d := v.details(v.message(2), nil, false)
	if !strings.Contains(d, "NOT delivered to: carol@example.org") || !strings.Contains(d, "acknowledged by everyone it reached") ||
		strings.Contains(d, "everyone it was sent to") {
		t.Errorf("details of a message that did not reach carol:\n%s", d)
	}
	// The history, as the App reads it back.
	hv := newRoomView("r@muc")
	hv.self = alice
	hv.loadHistory([]app.Entry{live[0].Entry, live[1].Entry, never.Entry, live[5].Entry, acked(nd, nil, false, false).Entry})
	var back []string
	for _, l := range hv.lines {
		if l.kind != lineInfo {
			back = append(back, hv.plainText(l))
		}
	}
	want[2] = strings.ReplaceAll(want[2], "q2", "q1") // queued lines are counted among those still shown
	if !slices.Equal(back, want) {
		t.Errorf("history:\n%s\nwant:\n%s", strings.Join(back, "\n"), strings.Join(want, "\n"))
	}
	// Still waiting when the client stopped: never sent.
	hv.loadHistory([]app.Entry{{Kind: session.Queued, ID: transcript.ID{0xC3}, Author: alice, Own: true, Text: "left behind", At: testTime, Unconfirmed: true}})
	if got := hv.plainText(hv.lines[len(hv.lines)-2]); got != "15:04 q2 you: left behind [NOT SENT: the client stopped while it waited; /resend q2]" {
		t.Errorf("a queued message of an earlier run: %q", got)
	}
}

// TestClientResend: /resend sends again a message that did not reach
// everyone (#N) or was never sent (qN), by default the latest; a message
// still waiting, or one that reached everyone, is refused.
func TestClientResend(t *testing.T) {
	c, f := newTestClient("r@muc")
	v := c.views["r@muc"]
	v.self = alice
	var sent []string
	c.sendHook = func(room, text string) error { sent = append(sent, text); return nil }
	until := testTime.Add(5 * time.Minute)
	c.handle(membership([]string{alice}, []string{bob, carol}, nil))
	c.handle(msg(1, alice, "delivered", true, nil, alice, bob, carol))
	c.handle(entry(app.Entry{Kind: session.Queued, ID: transcript.ID{0xC1}, Author: alice, Own: true, Text: "waiting", Members: []string{bob}, Until: until}))
	nd := msg(2, alice, "not to carol", true, nil, alice, bob)
	nd.Entry.NotDelivered = []string{carol}
	c.handle(nd)
	c.handle(entry(app.Entry{Kind: session.Queued, ID: transcript.ID{0xC2}, Author: alice, Own: true, Text: "never", Members: []string{bob},
		NotDelivered: []string{bob}, Until: until}))
	if c.idle() {
		t.Error("idle while a message waits to be sent")
	}
	for _, tt := range []struct{ in, warn string }{
		{"/resend q1", "q1 is still waiting to be sent (until 15:09:00)"},
		{"/resend 1", "#1 reached everyone it was meant for"},
		{"/resend q9", "no message q9 here"},
		{"/resend x", "usage: /resend"},
	} {
		f.warnings = nil
		c.input(tt.in)
		if len(f.warnings) != 1 || !strings.Contains(f.warnings[0], tt.warn) {
			t.Errorf("%s: %q, want %q", tt.in, f.warnings, tt.warn)
		}
	}
	if len(sent) != 0 {
		t.Fatalf("sent %q", sent)
	}
	f.warnings = nil
	c.input("/resend")
	c.input("/resend #2")
	c.input("/resend")
	if !slices.Equal(sent, []string{"never", "not to carol"}) {
		t.Errorf("sent again: %q", sent)
	}
	if len(f.warnings) != 1 || !strings.Contains(f.warnings[0], "no message to send again") {
		t.Errorf("nothing left to send again: %q", f.warnings)
	}
	if got := v.plainText(v.message(2)); !strings.Contains(got, "⚠ NOT DELIVERED TO carol@example.org (sent again) …unacked") {
		t.Errorf("resent: %q", got)
	}
}

// TestPlainChanges: line mode prints what changed about a line once per
// new state: a queued message never sent, a message sent without someone
// and then acknowledged by those it reached (never "by everyone").
func TestPlainChanges(t *testing.T) {
	c := newClient(nil, &Config{HistoryLines: 10}, nopLog)
	var out strings.Builder
	newPlainUI(c, strings.NewReader(""), &out)
	c.views["r@muc"] = newRoomView("r@muc")
	c.order, c.cur = []string{"r@muc"}, "r@muc"
	c.views["r@muc"].self = alice
	q := entry(app.Entry{Kind: session.Queued, ID: transcript.ID{0xC1}, Author: alice, Own: true, Text: "hello?", Members: []string{bob},
		Until: testTime.Add(5 * time.Minute)})
	never := q
	never.Entry.NotDelivered = []string{bob}
	m := msg(1, alice, "sent late", true, nil, alice, bob)
	nd := m
	nd.Entry.NotDelivered = []string{carol}
	for _, ev := range []app.Event{q, never, never, m, nd, nd, acked(nd, nil, false, false)} {
		c.handle(ev)
	}
	want := "15:04 q1 you: hello? [queued — waiting for bob@example.org (until 15:09)]\n" +
		"!! 15:04 q1 you: hello? [NOT SENT: bob@example.org did not come back in time; /resend q1]\n" +
		"15:04 #1 you: sent late …unacked\n" +
		"!! 15:04 #1 you: sent late ⚠ NOT DELIVERED TO carol@example.org (/resend 1) …unacked\n" +
		"-- #1 acknowledged by everyone it reached; NOT delivered to carol@example.org\n"
	if out.String() != want {
		t.Errorf("line mode printed\n%s\nwant\n%s", out.String(), want)
	}
}

// TestViewDeviceNames: a user with one device in the room is its bare
// JID; with several, each is named by its label, with the resource when
// the label is missing or shared; a device seen once keeps its name after
// it leaves the list, and a label announced later is kept when a refresh
// lacks it.
func TestViewDeviceNames(t *testing.T) {
	v := newRoomView("r@muc")
	v.self = "alice@example.org/mpenc-self"
	m := func(id, label string) app.Member { return app.Member{ID: id, Label: label} }
	v.noteDevices([]app.Member{m(v.self, "desk"), m("bob@example.org/mpenc-1", "laptop")})
	if got := v.name("bob@example.org/mpenc-1"); got != "bob@example.org" {
		t.Fatalf("one device: %q", got)
	}
	v.noteDevices([]app.Member{m("bob@example.org/mpenc-2", "phone"), m("carol@example.org/c1", "")})
	for id, want := range map[string]string{
		"bob@example.org/mpenc-1": "bob@example.org (laptop)",
		"bob@example.org/mpenc-2": "bob@example.org (phone)",
		"carol@example.org/c1":    "carol@example.org",
		v.self:                    "you",
	} {
		if got := v.name(id); got != want {
			t.Errorf("%s: %q, want %q", id, got, want)
		}
	}
	v.noteDevices([]app.Member{m("bob@example.org/mpenc-3", "laptop"), m("bob@example.org/mpenc-4", ""), m("bob@example.org/mpenc-2", "")})
	for id, want := range map[string]string{
		"bob@example.org/mpenc-1": "bob@example.org (laptop, mpenc-1)",
		"bob@example.org/mpenc-3": "bob@example.org (laptop, mpenc-3)",
		"bob@example.org/mpenc-4": "bob@example.org (mpenc-4)",
		"bob@example.org/mpenc-2": "bob@example.org (phone)",
	} {
		if got := v.name(id); got != want {
			t.Errorf("%s: %q, want %q", id, got, want)
		}
	}
}

// TestDeviceLine: /devices shows a device's label (its owner's words,
// sanitised), address, trust, last seen, device id and full fingerprint,
// and the rooms it is in.
func TestDeviceLine(t *testing.T) {
	key := trusttest.Key(3)
	fp := trust.FingerprintOf(key)
	seen := time.Date(2026, 12, 7, 10, 4, 0, 0, time.Local)
	m := app.Member{ID: "bob@example.org/mpenc-1", Label: "phone\n", HasKey: true,
		Trust: trust.Record{JID: "bob@example.org", Key: key, State: trust.Undecided, LastSeen: seen}}
	got := deviceLine(&deviceRow{m: m, rooms: []string{"b@muc", "a@muc"}, pubKnown: true, published: true})
	for _, want := range []string{"“phone” bob@example.org/mpenc-1: undecided, not trusted, last seen 2026-12-07 10:04",
		"device id " + strings.ReplaceAll(fp.String()[:19], " ", ""), "fingerprint " + fp.String(), "in a@muc, b@muc",
		"in its account's published device list"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	// How the key got its state: by you, or automatically.
	for cause, want := range map[trust.Kind]string{10: ": verified by you", 13: ": verified automatically"} {
		v := m
		v.Trust.State, v.Trust.Cause, v.Trust.Trusted = trust.Authenticated, cause, true
		if got := deviceLine(&deviceRow{m: v}); !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	got = deviceLine(&deviceRow{m: m, pubKnown: true})
	for _, want := range []string{"not in its account's published device list", "in none of your rooms now"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if got := deviceLine(&deviceRow{m: app.Member{ID: "c@example.org/x"}}); got != "(no label) c@example.org/x: no identity key (no mpENC)\n    in none of your rooms now" {
		t.Errorf("no key: %q", got)
	}
}

// TestViewMembershipNamesDevices: membership lines and operations name a
// user's devices apart once it has several, and never leave a blank
// where we are the one excluded.
func TestViewMembershipNamesDevices(t *testing.T) {
	v := newRoomView("r@muc")
	v.self = "me@example.org/d"
	a1, a2 := "alice@example.org/mpenc-1", "alice@example.org/mpenc-2"
	v.noteDevices([]app.Member{{ID: a1, Label: "laptop"}, {ID: a2, Label: "phone"}, {ID: v.self}})
	if got := v.membershipText([]string{a1, v.self}, []string{a2}, nil); got != "members: alice@example.org (laptop), alice@example.org (phone), me@example.org (+alice@example.org (phone))" {
		t.Errorf("membership %q", got)
	}
	if got := v.opText(session.Notice{Kind: session.OpAccepted, OpKind: session.OpExclude, Author: a1, Exclude: []string{v.self}}); got != "excluding you (by alice@example.org (laptop))" {
		t.Errorf("exclusion of us %q", got)
	}
	if l, _ := v.applyNotice(session.Notice{Kind: session.JoinRequest, Author: a2}); l == nil || !strings.Contains(l.text, "/invite "+a2) {
		t.Errorf("join request of one device of several: %v", l)
	}
}

// TestViewHistoryNamesDevices: a history read back after a restart names
// one user's devices apart by the labels stored with the messages, before
// any member list arrives (a trial found them all shown as the bare JID).
func TestViewHistoryNamesDevices(t *testing.T) {
	v := newRoomView("r@muc")
	v.loadHistory([]app.Entry{
		{Seq: 1, Kind: session.Membership, Members: []string{"bob@example.org/mpenc-1", "bob@example.org/mpenc-2"}, At: testTime},
		{Seq: 2, Kind: session.Message, ID: id(1), Author: "bob@example.org/mpenc-1", AuthorLabel: "laptop", Text: "one", At: testTime},
		{Seq: 3, Kind: session.Message, ID: id(2), Author: "bob@example.org/mpenc-2", AuthorLabel: "phone", Text: "two", At: testTime},
	})
	for n, want := range map[int]string{1: "bob@example.org (laptop): one", 2: "bob@example.org (phone): two"} {
		if got := v.plainText(v.message(n)); !strings.Contains(got, want) {
			t.Errorf("#%d: %q, want %q", n, got, want)
		}
	}
	// The membership line above them, drawn now, names them too.
	if got := v.plainText(v.lines[0]); !strings.Contains(got, "members: bob@example.org (laptop), bob@example.org (phone)") {
		t.Errorf("membership line %q", got)
	}
}

// TestViewOwnPartAndAlone: our own departure reads as such (not as the
// others leaving); the header's ALONE is for a session we hold by
// ourselves, not for a wait to be included or a session with others.
func TestViewOwnPartAndAlone(t *testing.T) {
	v := newRoomView("r@muc")
	v.self = "me@example.org/d"
	if got := v.membershipText([]string{"bob@example.org/b"}, nil, []string{v.self}); got != "you left the session; it goes on with bob@example.org" {
		t.Errorf("own part: %q", got)
	}
	if got := v.membershipText([]string{v.self}, nil, []string{"bob@example.org/b"}); got != "members: me@example.org (−bob@example.org)" {
		t.Errorf("the others left: %q", got)
	}
	me := app.Member{ID: v.self, Self: true, InSession: true}
	bob := app.Member{ID: "bob@example.org/b", InSession: true}
	v.state = session.StateJoining
	if !v.alone([]app.Member{me}) {
		t.Error("a founder alone is not ALONE")
	}
	if v.alone([]app.Member{me, bob}) || v.alone([]app.Member{{ID: v.self, Self: true}, bob}) {
		t.Error("ALONE with others, or while waiting to be included")
	}
	v.joinUntil = testTime
	if v.alone([]app.Member{me}) {
		t.Error("ALONE during a timed wait")
	}
	v.joinUntil, v.state = time.Time{}, session.StateJoined
	if v.alone([]app.Member{me}) {
		t.Error("ALONE when JOINED")
	}
}

// TestViewEnterLeaveNamesDevices: entering and leaving name the device by
// its address, and by its label too once its user has several devices.
func TestViewEnterLeaveNamesDevices(t *testing.T) {
	v := newRoomView("r@muc")
	a1, a2 := "alice@example.org/mpenc-1", "alice@example.org/mpenc-2"
	l, _ := v.applyNotice(session.Notice{Kind: session.ChannelEnter, Author: a1})
	if l == nil || l.text != a1+" entered the room" {
		t.Fatalf("one device: %v", l)
	}
	v.noteDevices([]app.Member{{ID: a1, Label: "laptop"}, {ID: a2, Label: "phone"}})
	l, _ = v.applyNotice(session.Notice{Kind: session.ChannelLeave, Author: a2})
	if l == nil || l.text != a2+" (phone) left the room" {
		t.Fatalf("two devices: %v", l)
	}
}

// TestViewDistrustedOccupant: a device whose key is distrusted (removed,
// left its group, or the user's decision) is shown as such, as
// information, and not offered for /invite when it asks to be included
// (a trial found "which you distrusted" in red, then "/invite" for it).
func TestViewDistrustedOccupant(t *testing.T) {
	v := newRoomView("r@muc")
	v.self = "me@example.org/d"
	tablet := "me@example.org/mpenc-3"
	l, _ := v.apply(app.Event{Kind: app.EventDecision, Decision: trust.Decision{Kind: trust.KeyDistrusted, Member: tablet,
		JID: "me@example.org", State: trust.Distrusted, Own: true}})
	if l == nil || l.kind == lineWarning || !strings.Contains(l.text, "your device "+tablet+" is here with key") ||
		!strings.Contains(l.text, "which is distrusted (/why "+tablet+")") || strings.Contains(l.text, "you distrusted") {
		t.Fatalf("decision line %+v", l)
	}
	if l, _ := v.applyNotice(session.Notice{Kind: session.JoinRequest, Author: tablet}); l != nil {
		t.Errorf("a distrusted device offered for /invite: %q", l.text)
	}
}

// TestViewArchived: a message read from the history service says so,
// carries no acknowledgement or membership mark, and is numbered as
// any message.
func TestViewArchived(t *testing.T) {
	v := newRoomView("r@muc")
	v.self = alice
	v.apply(membership([]string{alice}, []string{bob}, nil))
	ev := msg(1, bob, "said before this device came", false, nil, alice, bob)
	ev.Entry.Archived, ev.Entry.Members = true, nil
	v.apply(ev)
	if n := len(v.lines); n < 2 || !strings.Contains(v.plainText(v.lines[n-2]), "from your history") {
		t.Fatalf("no rule before the archived messages")
	}
	ev2 := msg(2, bob, "and another", false, nil, alice, bob)
	ev2.Entry.Archived = true
	v.apply(ev2)
	if n := len(v.lines); strings.Contains(v.plainText(v.lines[n-2]), "──") {
		t.Fatal("a second rule inside one run")
	}
	got := v.plainText(v.message(1))
	if !strings.Contains(got, "said before this device came (from your history: seen by another of your devices, not here)") ||
		strings.Contains(got, "earlier members") || strings.Contains(got, "unacked") {
		t.Fatalf("an archived message: %q", got)
	}
}
