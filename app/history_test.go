package app

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/archive"
	"github.com/mpenc/mpenc/internal/keysync"
	"github.com/mpenc/mpenc/store"
	"github.com/mpenc/mpenc/transcript"
	"github.com/mpenc/mpenc/trust"
)

// archiveWorld is one account's devices and a history service, wired
// without a network: requests go straight to archive.Service.Handle as
// from the device's full JID, keys straight to the other device's
// archiver. Each loop iteration is run by hand (tick).
type archiveWorld struct {
	t       *testing.T
	svc     *archive.Service
	devices map[string]*App // by full JID
	mu      sync.Mutex
	events  map[*App][]Event
	lose    bool // the next put's answer is lost (the put itself is stored)
}

const testService = "bot@example.org/history"

func newArchiveWorld(t *testing.T) *archiveWorld {
	svc, err := archive.Open(filepath.Join(t.TempDir(), "history.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return &archiveWorld{t: t, svc: svc, devices: map[string]*App{}, events: map[*App][]Event{}}
}

func (w *archiveWorld) full(a *App) string { return a.acct.JID + "/" + a.res }

// device opens a device of alice@example.org labelled label.
func (w *archiveWorld) device(label string) *App {
	var creates []bool
	cfg := testConfig(w.t, w.t.TempDir(), "correct horse", &creates)
	cfg.Label = label
	a, err := Open(context.Background(), cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { a.Close(context.Background()) })
	self := w.full(a)
	a.hist.connect = func(context.Context) error { return nil }
	a.hist.send = func(ctx context.Context, service string, req []byte) ([]byte, error) {
		if service != testService {
			return nil, errors.New("no such service")
		}
		ans := w.svc.Handle(ctx, self, req)
		if w.lose && req[1] == 4 { // a put
			w.lose = false
			return nil, errors.New("the answer was lost")
		}
		return ans, nil
	}
	a.hist.deliver = func(ctx context.Context, device string, payload []byte) error {
		to := w.devices[device]
		if to == nil {
			return errors.New("no such device")
		}
		to.hist.op.Lock()
		defer to.hist.op.Unlock()
		to.hist.takeKeys(ctx, directKeys{from: self, key: a.key.Public(), p: payload})
		return nil
	}
	w.devices[self] = a
	go func() {
		for ev := range a.Events() {
			w.mu.Lock()
			w.events[a] = append(w.events[a], ev)
			w.mu.Unlock()
		}
	}()
	return a
}

// group makes the devices one device group, each verifying the others.
func (w *archiveWorld) group(devs ...*App) {
	ctx := context.Background()
	var s keysync.GroupState
	for _, d := range devs {
		s.Set(keysync.GroupDevice{Key: d.key.Public(), Resource: d.res, Label: d.cfg.Label, Status: keysync.Member, At: time.Now(), By: d.key.Public()})
	}
	for _, d := range devs {
		if err := d.dev.saveGroup(ctx, s); err != nil {
			w.t.Fatal(err)
		}
		for _, o := range devs {
			if o != d {
				if _, err := d.trust.Verify(d.acct.JID, o.key.Public()); err != nil {
					w.t.Fatal(err)
				}
			}
		}
	}
}

// tick runs one iteration of a device's archive loop (without reads).
func (w *archiveWorld) tick(a *App) {
	w.t.Helper()
	ctx := context.Background()
	h := a.hist
	h.op.Lock()
	defer h.op.Unlock()
	s, err := h.load(ctx)
	if err != nil || s == nil {
		w.t.Fatalf("no archive state: %v", err)
	}
	h.addMembers(ctx, s)
	if s.Writing && !s.Revoked {
		if err := h.write(ctx, s); err != nil {
			w.t.Logf("write: %v", err)
		}
	}
	if err := h.save(ctx, s); err != nil {
		w.t.Fatal(err)
	}
}

// say records a message in a device's history, as a session would.
func (w *archiveWorld) say(a *App, n byte, author, text string) transcript.ID {
	id := transcript.ID{n, 0xa5}
	if _, err := a.st.Append(context.Background(), a.acct.ID, "team@muc.example.org",
		store.Entry{Kind: "message", ID: id, Author: author, Text: text, At: time.Now(), Own: author == w.full(a)}); err != nil {
		w.t.Fatal(err)
	}
	return id
}

// archived is what a device shows as read from the archive.
func (w *archiveWorld) archived(a *App) []string {
	es, err := a.History(context.Background(), "team@muc.example.org", 0, 100)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if e.Archived {
			out = append(out, e.Text)
		}
	}
	return out
}

// historyLines are a device's EventHistory texts after its first from
// events, once its queue has delivered what was pushed (no new event for
// 200 ms).
func (w *archiveWorld) historyLines(a *App, from int) []string {
	last, since := -1, time.Now()
	for time.Since(since) < 200*time.Millisecond {
		w.mu.Lock()
		n := len(w.events[a])
		w.mu.Unlock()
		if n != last {
			last, since = n, time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, ev := range w.events[a][min(from, len(w.events[a])):] {
		if ev.Kind == EventHistory {
			out = append(out, ev.Text)
		}
	}
	return out
}

// mark is how many events a device delivered so far.
func (w *archiveWorld) mark(a *App) int {
	w.historyLines(a, 0) // what was pushed is delivered
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events[a])
}

// TestArchiveDevices: the own archive between a laptop and a phone over a
// real history service, without a network: the phone gets its entry and
// the keys, reads the laptop's messages once (a message both devices
// wrote counts once), a page whose answer was lost is written again as
// the same page and stored once, and removing the phone revokes it and
// starts a new epoch it has no keys for.
func TestArchiveDevices(t *testing.T) {
	w := newArchiveWorld(t)
	ctx := context.Background()
	laptop, phone := w.device("laptop"), w.device("phone")
	w.group(laptop, phone)
	if err := laptop.EnableHistory(ctx, testService); err != nil {
		t.Fatal(err)
	}
	bob := "bob@example.org/desk"
	w.say(laptop, 1, w.full(laptop), "laptop one")
	w.say(laptop, 2, bob, "bob two")
	w.say(phone, 2, bob, "bob two") // the phone saw this one live
	w.tick(laptop)                  // adds the phone, hands it the keys (it reads), writes a page
	w.tick(laptop)
	if err := phone.FetchHistory(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.archived(phone); len(got) != 1 || got[0] != "laptop one" {
		t.Fatalf("the phone shows %q from the archive, want the one message it did not have", got)
	}
	info, _ := phone.HistoryStatus(ctx)
	if !info.On || info.Admin || !info.Writing || trust.Bare(info.Service) != "bot@example.org" {
		t.Fatalf("the phone's history: %+v", info)
	}

	// Both devices write "bob three" (both saw it): not shown again.
	w.say(laptop, 3, bob, "bob three")
	w.say(phone, 3, bob, "bob three")
	w.tick(laptop)
	w.tick(phone)
	if err := phone.FetchHistory(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.archived(phone); len(got) != 1 {
		t.Fatalf("a message the phone had was shown again: %q", got)
	}

	// A put whose answer is lost: the page is sent again, the same bytes,
	// stored once.
	w.say(laptop, 4, w.full(laptop), "laptop four")
	w.lose = true
	w.tick(laptop)
	w.tick(laptop)
	laptop.hist.op.Lock()
	s, _ := laptop.hist.load(ctx)
	laptop.hist.op.Unlock()
	if s.PendingTo != 0 || s.Epochs[0].Index != 3 {
		t.Fatalf("after a lost answer: pending to %d, next index %d", s.PendingTo, s.Epochs[0].Index)
	}
	m := w.mark(phone)
	if err := phone.FetchHistory(ctx); err != nil {
		t.Fatal(err)
	}
	lines := w.historyLines(phone, m)
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "history from bot@example.org: ") {
		t.Fatalf("the read after a retried page says %q", lines)
	}
	if got := w.archived(phone); len(got) != 2 || got[1] != "laptop four" {
		t.Fatalf("the phone shows %q from the archive", got)
	}

	// The laptop removes the phone: revoked, and a new epoch.
	g, _ := laptop.dev.loadGroup(ctx)
	g.Set(keysync.GroupDevice{Key: phone.key.Public(), Resource: phone.res, Label: "phone", Status: keysync.Removed, At: time.Now(), By: laptop.key.Public()})
	if err := laptop.dev.saveGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := laptop.trust.Distrust(laptop.acct.JID, phone.key.Public()); err != nil {
		t.Fatal(err)
	}
	w.tick(laptop)
	laptop.hist.op.Lock()
	s, _ = laptop.hist.load(ctx)
	laptop.hist.op.Unlock()
	if len(s.Epochs) != 2 || len(s.Epochs[1].Members) != 1 {
		t.Fatalf("after the removal: %d epochs, the new one with %d member(s)", len(s.Epochs), len(s.Epochs[len(s.Epochs)-1].Members))
	}
	if err := phone.FetchHistory(ctx); err != nil {
		t.Fatal(err)
	}
	if info, _ := phone.HistoryStatus(ctx); !info.Revoked || info.Writing {
		t.Fatalf("the removed phone's history: %+v", info)
	}
	if err := phone.FetchHistory(ctx); err == nil {
		t.Fatal("a removed device read again")
	}

	// Keys that overtake the pairing: a tablet gets the laptop's keys
	// before it has verified the laptop; they wait, and are taken once it
	// has.
	tablet := w.device("tablet")
	var g2 keysync.GroupState
	for _, d := range []*App{laptop, tablet} {
		g2.Set(keysync.GroupDevice{Key: d.key.Public(), Resource: d.res, Label: d.cfg.Label, Status: keysync.Member, At: time.Now(), By: d.key.Public()})
	}
	if err := tablet.dev.saveGroup(ctx, g2); err != nil {
		t.Fatal(err)
	}
	laptop.hist.op.Lock()
	s, _ = laptop.hist.load(ctx)
	if err := laptop.hist.sendKeys(ctx, s, w.full(tablet)); err != nil {
		t.Fatal(err)
	}
	laptop.hist.op.Unlock()
	if info, _ := tablet.HistoryStatus(ctx); info.On {
		t.Fatal("keys taken from a device not verified")
	}
	if _, err := tablet.trust.Verify(tablet.acct.JID, laptop.key.Public()); err != nil {
		t.Fatal(err)
	}
	tablet.hist.op.Lock()
	tablet.hist.retryParked(ctx)
	tablet.hist.op.Unlock()
	if info, _ := tablet.HistoryStatus(ctx); !info.On {
		t.Fatal("parked keys not taken once their sender was verified")
	}
	// The laptop adds the tablet; the tablet reads everything, cleanly.
	g, _ = laptop.dev.loadGroup(ctx)
	g.Set(keysync.GroupDevice{Key: tablet.key.Public(), Resource: tablet.res, Label: "tablet", Status: keysync.Member, At: time.Now(), By: laptop.key.Public()})
	if err := laptop.dev.saveGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := laptop.trust.Verify(laptop.acct.JID, tablet.key.Public()); err != nil {
		t.Fatal(err)
	}
	w.tick(laptop)
	m = w.mark(tablet)
	if err := tablet.FetchHistory(ctx); err != nil {
		t.Fatal(err)
	}
	if lines := w.historyLines(tablet, m); len(lines) != 1 || !strings.HasSuffix(lines[0], ", 4 new here") {
		t.Fatalf("the tablet's read: %q", lines)
	}

	// 90 days later the laptop starts a new epoch by itself, once, and
	// hands the keys again (with its heads of the old epochs, which the
	// tablet has read past: not a withholding).
	laptop.hist.clock = func() time.Time { return time.Now().Add(epochLifetime + time.Hour) }
	w.tick(laptop)
	w.tick(laptop)
	laptop.hist.op.Lock()
	s, _ = laptop.hist.load(ctx)
	laptop.hist.op.Unlock()
	if len(s.Epochs) != 3 {
		t.Fatalf("90 days on: %d epochs, want 3", len(s.Epochs))
	}
	w.say(laptop, 5, w.full(laptop), "laptop five")
	w.tick(laptop)
	m = w.mark(tablet)
	if err := tablet.FetchHistory(ctx); err != nil {
		t.Fatal(err)
	}
	if lines := w.historyLines(tablet, m); len(lines) != 1 || !strings.Contains(lines[0], "1 message(s) read, 1 new here") {
		t.Fatalf("the tablet's read after the new epoch: %q", lines)
	}
}
