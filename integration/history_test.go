//go:build integration

package integration

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/session"
)

// historyMarker is in every message of the test: it must never reach
// the bot's database file.
const historyMarker = "HISTORY-PLAINTEXT-MARKER-5c1e"

// TestIntegrationHistory: the own archive end to end (issue [N]).
// mpenc-bot hosts the history service (no room). Alice's laptop turns
// history on and chats with Bob's desk; her phone, a new device, pairs
// with the laptop through KeySync and shows that conversation, fetched
// through the bot, marked as archived, with no warning. The bot's
// database never holds a message's text. The bot restarts and keeps
// everything; then it is made to misbehave (one page changed, one held
// back) and the phone's next read names both.
func TestIntegrationHistory(t *testing.T) {
	s := serverFromEnv(t)
	botAcct, aliceAcct, bobAcct := s.cmdAccount(t, 0), s.cmdAccount(t, 3), s.cmdAccount(t, 4)
	botName := bare(botAcct.jid)
	_, botBin := buildCommands(t)
	dir := t.TempDir()
	botLog, botDB := filepath.Join(dir, "bot.log"), filepath.Join(dir, "history.db")
	logOnFailure(t, botLog)
	var cfg strings.Builder
	cfg.WriteString(s.settingsTOML(botAcct, filepath.Join(dir, "bot.db")))
	fmt.Fprintf(&cfg, "nick = \"bot\"\nlog_file = %q\nlog_level = \"debug\"\nhistory_service = %q\n", botLog, botDB)
	cfgPath := filepath.Join(dir, "bot.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	env := secretEnv(botAcct, "the bot's passphrase")
	bot := startProc(t, "bot", env, false, botBin, "-config", cfgPath)
	waitFile(t, botLog, `"message":"connected"`, 1)

	room := s.newRoom(t)
	laptop := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("laptop"))
	phone := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("phone"))
	desk := s.newAppPeer(t, bobAcct, t.TempDir(), withLabel("desk"))
	ctx, cancel := context.WithTimeout(context.Background(), 4*cmdBound)
	defer cancel()
	lr, err := laptop.a.Join(ctx, room, app.RoomOptions{Include: "everyone", Remember: true, StayIfLastMember: true})
	if err != nil {
		t.Fatal(err)
	}
	dr := desk.join(room, "everyone")
	if err := laptop.a.EnableHistory(ctx, botName); err != nil {
		t.Fatal(err)
	}
	if info, err := laptop.a.HistoryStatus(ctx); err != nil || !info.On || !info.Admin || !info.Writing || bare(info.Service) != botName {
		t.Fatalf("the laptop's history: %+v, %v", info, err)
	}

	// The conversation: each message waits for the other side, so that
	// the laptop's history has them all.
	var said []string
	say := func(r *app.Room, to *appPeer, text string) {
		t.Helper()
		m := to.mark()
		deadline := time.Now().Add(cmdBound)
		for {
			_, err := r.Send(ctx, text)
			if err == nil {
				break
			}
			if !errors.Is(err, session.ErrNotJoined) || time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond) // the session is still forming
		}
		to.waitEvent(m, "the message "+text, func(ev app.Event) bool {
			return ev.Kind == app.EventEntry && ev.Entry.Kind == session.Message && ev.Entry.Text == text
		})
		said = append(said, text)
	}
	for i := range 3 {
		say(lr, desk, fmt.Sprintf("%s laptop %d", historyMarker, i))
		say(dr, laptop, fmt.Sprintf("%s desk %d", historyMarker, i))
	}
	laptop.waitLog("the conversation written to the archive", "history: page written")
	waitPages := func(n int) {
		t.Helper()
		deadline := time.Now().Add(cmdBound)
		for pagesIn(t, botDB) < n {
			if time.Now().After(deadline) {
				t.Fatalf("the bot's database holds %d page(s), want %d; the laptop's log:\n%s", pagesIn(t, botDB), n, laptop.recent)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitPages(1)
	// Everything said is in some page: wait until the laptop's log says
	// the last message's page went (pages are written every 5 s).
	time.Sleep(6 * time.Second)

	// The phone pairs with the laptop.
	mp := phone.mark()
	phoneJID := pairDevices(t, ctx, laptop, phone)
	fetched := phone.waitEvent(mp, "the history read", func(ev app.Event) bool {
		return ev.Kind == app.EventHistory && strings.HasPrefix(ev.Text, "history from "+botName)
	})
	if fetched.Warning {
		t.Fatalf("the phone's read warns: %q\n%s", fetched.Text, phone.dump())
	}
	var shown []string
	for _, ev := range phone.events(mp) {
		if ev.Kind == app.EventEntry && ev.Entry.Archived && ev.Room == room {
			shown = append(shown, ev.Entry.Text)
		}
		if ev.Kind == app.EventHistory && ev.Warning {
			t.Errorf("a history warning: %q", ev.Text)
		}
	}
	for _, want := range said {
		if !slices.Contains(shown, want) {
			t.Errorf("the phone does not show %q from the archive; it shows %q", want, shown)
		}
	}
	// And after a restart, from its history (archived, by Bob's desk too).
	entries, err := phone.a.History(ctx, room, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	fromDesk := 0
	for _, e := range entries {
		if e.Archived && strings.Contains(e.Text, "desk") && bare(e.Author) == bare(bobAcct.jid) {
			fromDesk++
		}
	}
	if fromDesk != 3 {
		t.Errorf("the phone's history has %d archived message(s) of Bob's desk, want 3", fromDesk)
	}
	noMarker(t, botDB)

	// The bot restarts: everything kept, and the laptop writes on.
	before := pagesIn(t, botDB)
	if err := bot.stop(); err != nil {
		t.Fatalf("the bot's exit: %v", err)
	}
	bot = startProc(t, "bot", env, false, botBin, "-config", cfgPath)
	waitFile(t, botLog, `"message":"connected"`, 2)
	if got := pagesIn(t, botDB); got != before {
		t.Fatalf("after a restart the bot holds %d page(s), before %d", got, before)
	}
	// Three more pages, one message each.
	for i := range 3 {
		m := desk.mark()
		text := fmt.Sprintf("%s after the restart %d", historyMarker, i)
		if _, err := lr.Send(ctx, text); err != nil {
			t.Fatal(err)
		}
		desk.waitEvent(m, "the live message "+text, func(ev app.Event) bool {
			return ev.Kind == app.EventEntry && ev.Entry.Text == text
		})
		waitPages(before + i + 1)
	}
	noMarker(t, botDB)

	// The bot misbehaves: the first new page changed, the second held
	// back (its number missing), the third as written.
	if err := bot.stop(); err != nil {
		t.Fatalf("the bot's exit: %v", err)
	}
	db, err := sql.Open("sqlite", botDB)
	if err != nil {
		t.Fatal(err)
	}
	var c []byte
	if err := db.QueryRow(`SELECT c FROM pages WHERE seq = ?`, before+1).Scan(&c); err != nil {
		t.Fatal(err)
	}
	c[40] ^= 1
	if _, err := db.Exec(`UPDATE pages SET c = ? WHERE seq = ?`, c, before+1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM pages WHERE seq = ?`, before+2); err != nil {
		t.Fatal(err)
	}
	db.Close()
	bot = startProc(t, "bot", env, false, botBin, "-config", cfgPath)
	waitFile(t, botLog, `"message":"connected"`, 3)
	mp = phone.mark()
	for tries := 0; ; tries++ { // the bot may not answer yet when we ask
		m := phone.mark()
		if err := phone.a.FetchHistory(ctx); err != nil {
			t.Fatal(err)
		}
		ev := phone.waitEvent(m, "a read's summary", func(ev app.Event) bool {
			return ev.Kind == app.EventHistory && strings.HasPrefix(ev.Text, "history from ")
		})
		if !strings.Contains(ev.Text, "the read stopped") {
			break
		}
		if tries == 20 {
			t.Fatalf("the read after the bot's restart: %q", ev.Text)
		}
		time.Sleep(500 * time.Millisecond)
	}
	laptopJID := bare(aliceAcct.jid) + "/"
	wantWarn := []string{
		fmt.Sprintf("page %d failed verification", before+1),
		"2 page(s) of " + laptopJID,
		"the history service withheld 1 page(s) it says it holds",
	}
	for _, w := range wantWarn {
		phone.waitEvent(mp, "the warning "+w, func(ev app.Event) bool {
			return ev.Kind == app.EventHistory && ev.Warning && strings.Contains(ev.Text, w)
		})
	}
	// The third page, as written, is read (its message was already
	// here: nothing new is shown).
	phone.waitEvent(mp, "the read's summary", func(ev app.Event) bool {
		return ev.Kind == app.EventHistory && strings.HasPrefix(ev.Text, "history from "+botName+": 1 message(s) read")
	})

	// The laptop removes the phone: the service refuses it from then on,
	// and what the laptop writes next goes to a new epoch.
	ml := laptop.mark()
	if err := laptop.a.RemoveDevice(ctx, phoneJID); err != nil {
		t.Fatal(err)
	}
	laptop.waitEvent(ml, "the phone revoked", func(ev app.Event) bool {
		return ev.Kind == app.EventHistory && strings.Contains(ev.Text, "can no longer fetch history from "+botName)
	})
	laptop.waitEvent(ml, "a new epoch", func(ev app.Event) bool {
		return ev.Kind == app.EventHistory && strings.HasPrefix(ev.Text, "history: what your devices write from now on is kept under new keys")
	})
	mp = phone.mark()
	if err := phone.a.FetchHistory(ctx); err != nil {
		t.Fatalf("the removed phone's first read after the removal: %v", err)
	}
	phone.waitEvent(mp, "the phone told it was revoked", func(ev app.Event) bool {
		return ev.Kind == app.EventHistory && ev.Warning && strings.HasPrefix(ev.Text, "this device can no longer read or write your history at "+botName)
	})
	if err := phone.a.FetchHistory(ctx); err == nil || !strings.Contains(err.Error(), "can no longer read your history") {
		t.Fatalf("the removed phone's next read: %v", err)
	}
	if info, err := phone.a.HistoryStatus(ctx); err != nil || !info.Revoked || info.Writing {
		t.Fatalf("the removed phone's history: %+v, %v", info, err)
	}
	pages := pagesIn(t, botDB)
	m := desk.mark()
	if _, err := lr.Send(ctx, historyMarker+" after the removal"); err != nil {
		t.Fatal(err)
	}
	desk.waitEvent(m, "the message after the removal", func(ev app.Event) bool {
		return ev.Kind == app.EventEntry && strings.HasSuffix(ev.Entry.Text, "after the removal")
	})
	waitPages(pages + 1)
	if n := groupsIn(t, botDB); n != 2 {
		t.Fatalf("the bot holds %d group(s), want 2 (two epochs)", n)
	}
	noMarker(t, botDB)
}

// groupsIn counts the groups of the bot's database.
func groupsIn(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM groups`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// pairDevices pairs a (in a group or alone) and b (alone) through
// KeySync: both accept the words, which must match. It returns b's full
// JID, as a names it.
func pairDevices(t *testing.T, ctx context.Context, a, b *appPeer) string {
	t.Helper()
	pair := func(p *appPeer) {
		t.Helper()
		deadline := time.Now().Add(cmdBound)
		for {
			err := p.a.PairDevices(ctx)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	words := func(p *appPeer, from int) string {
		t.Helper()
		ev := p.waitEvent(from, "the pairing words", func(ev app.Event) bool {
			return ev.Kind == app.EventPairing && len(ev.Words) > 0
		})
		return strings.Join(ev.Words, " ")
	}
	ma, mb := a.mark(), b.mark()
	pair(a)
	pair(b)
	if wa, wb := words(a, ma), words(b, mb); wa != wb {
		t.Fatalf("the words differ: %q and %q", wa, wb)
	}
	for _, p := range []*appPeer{a, b} {
		if err := p.a.AnswerPairing(ctx, app.PairAccept); err != nil {
			t.Fatal(err)
		}
	}
	ev := a.waitEvent(ma, "the group formed", func(ev app.Event) bool {
		return ev.Kind == app.EventPairing && strings.HasPrefix(ev.Text, "in a device group")
	})
	b.waitEvent(mb, "the group formed", func(ev app.Event) bool {
		return ev.Kind == app.EventPairing && strings.HasPrefix(ev.Text, "in a device group")
	})
	return ev.Device
}

// events are the peer's events after position from.
func (p *appPeer) events(from int) []app.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.evs[min(from, len(p.evs)):])
}

// pagesIn counts the pages of the bot's database (0 before it exists).
func pagesIn(t *testing.T, path string) int {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		return 0
	}
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM pages`).Scan(&n); err != nil {
		return 0
	}
	return n
}

// noMarker fails if the bot's database files hold a message's text.
func noMarker(t *testing.T, path string) {
	t.Helper()
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte(historyMarker)) {
			t.Fatalf("%s holds a message's text", p)
		}
	}
}
