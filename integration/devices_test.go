//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/trust"
)

// withLabel is an app tweak: the device's label.
func withLabel(l string) func(*app.Config) { return func(c *app.Config) { c.Label = l } }

// warnings returns the security warnings and alarming trust decisions p
// delivered so far.
func (p *appPeer) warnings() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, ev := range p.evs {
		switch {
		case ev.Kind == app.EventNotice && ev.Notice.Kind == session.SecurityWarning:
			out = append(out, ev.Room+": "+ev.Notice.String())
		case ev.Kind == app.EventDecision && ev.Decision.Warning():
			out = append(out, ev.Room+": "+ev.Decision.String())
		}
	}
	return out
}

// waitJoinEvent waits for the outcome of a join of room after position
// from, and fails the test if it failed.
func (p *appPeer) waitJoinEvent(from int, room string) {
	p.t.Helper()
	if ev := p.waitEvent(from, "the join of "+room, func(ev app.Event) bool { return ev.Kind == app.EventJoined && ev.Room == room }); ev.Err != nil {
		p.t.Fatalf("the join of %s: %v", room, ev.Err)
	}
}

// waitInSession waits until r's session has exactly the members ids (the
// includer learns an inclusion is over after the newcomer may).
func waitInSession(t *testing.T, r *app.Room, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(cmdBound)
	for {
		var in []string
		for _, m := range members(t, r) {
			if m.InSession {
				in = append(in, m.ID)
			}
		}
		slices.Sort(in)
		want := slices.Sorted(slices.Values(ids))
		if slices.Equal(in, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's session: %v, want %v", r.Self(), in, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// members returns r's members, failing the test on error.
func members(t *testing.T, r *app.Room) []app.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	ms, err := r.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestIntegrationTwoDevicesOneAccount: two devices of one account (one
// labelled, one with the default label, the host's name) and a device of
// another account in one room, every nick the default: each is its own
// member, every message reaches every device, no warning fires, both
// devices are listed with their labels, and one device leaving and coming
// back leaves the other in the session.
func TestIntegrationTwoDevicesOneAccount(t *testing.T) { twoDevices(t, "") }

// TestIntegrationTwoDevicesOneLabel: the same with both devices of the
// account labelled alike: their default nicks still differ (a server
// would merge one account's devices under one nick into one occupant).
func TestIntegrationTwoDevicesOneLabel(t *testing.T) { twoDevices(t, "laptop") }

// twoDevices runs the two-device scenario, the second device labelled
// label2 ("" for the default, the host's name).
func twoDevices(t *testing.T, label2 string) {
	s := serverFromEnv(t)
	aliceAcct, bobAcct := s.cmdAccount(t, 3), s.cmdAccount(t, 4)
	room := s.newRoom(t)
	bob := s.newAppPeer(t, bobAcct, t.TempDir(), withLabel("desk"))
	laptop := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("laptop"))
	other := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel(label2))
	peers := []*appPeer{bob, laptop, other}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range peers[:2] {
				t.Logf("device %d's events:\n%s", i, p.dump())
			}
		}
	})

	rooms := make([]*app.Room, len(peers))
	for i, p := range peers {
		from := p.mark()
		rooms[i] = p.join(room, "everyone")
		p.waitJoinEvent(from, room)
	}
	if rooms[1].Self() == rooms[2].Self() || trust.Bare(rooms[1].Self()) != trust.Bare(rooms[2].Self()) {
		t.Fatalf("the two devices' ids: %s and %s", rooms[1].Self(), rooms[2].Self())
	}

	// inSession waits until every device has every device in its session:
	// a message sent before its author knows of a newcomer is, by design,
	// not for the newcomer.
	inSession := func() {
		t.Helper()
		deadline := time.Now().Add(cmdBound)
		for _, r := range rooms {
			for {
				ok := true
				for _, m := range members(t, r) {
					ok = ok && m.InSession
				}
				if n := len(members(t, r)); ok && n == len(rooms) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s does not have every device in its session: %+v", r.Self(), members(t, r))
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	exchange := func(round string) {
		t.Helper()
		inSession()
		ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
		defer cancel()
		marks := make([]int, len(peers))
		for i, p := range peers {
			marks[i] = p.mark()
		}
		for i, r := range rooms {
			if _, err := r.Send(ctx, fmt.Sprintf("%s from %d", round, i)); err != nil {
				t.Fatalf("%s: send from %d: %v", round, i, err)
			}
		}
		for i, p := range peers {
			for j, r := range rooms {
				if i == j {
					continue
				}
				text := fmt.Sprintf("%s from %d", round, j)
				p.waitEvent(marks[i], fmt.Sprintf("%q at %d", text, i), func(ev app.Event) bool {
					e := ev.Entry
					return ev.Room == room && ev.Kind == app.EventEntry && e.Kind == session.Message && !e.Own &&
						e.Author == r.Self() && e.Text == text
				})
			}
		}
	}
	exchange("first")

	// Bob lists both of Alice's devices, each with its label.
	host := map[string]string{rooms[0].Self(): "desk", rooms[1].Self(): "laptop", rooms[2].Self(): label2}
	ms := members(t, rooms[0])
	for _, m := range ms {
		want, ok := host[m.ID]
		if !ok {
			t.Fatalf("unexpected member %s", m.ID)
		}
		if !m.InSession || (want != "" && m.Label != want) || m.Label == "" {
			t.Errorf("bob lists %s: in session %v, label %q (want %q)", m.ID, m.InSession, m.Label, want)
		}
		delete(host, m.ID)
	}
	if len(host) > 0 {
		t.Fatalf("bob does not list %v", host)
	}

	// Alice's account publishes both devices, each with its room key and
	// label, and Bob's store keeps the labels with the keys (what /devices
	// shows of devices in none of his rooms).
	keys := map[string]app.Member{}
	for _, m := range ms {
		keys[m.ID] = m
	}
	published := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
		defer cancel()
		ds, err := bob.a.PublishedDevices(ctx, aliceAcct.jid)
		if err != nil {
			return err
		}
		for _, r := range rooms[1:] {
			m := keys[r.Self()]
			if !slices.ContainsFunc(ds, func(d xmpp.Device) bool {
				return d.Key == m.Trust.Key && d.Label == m.Label && strings.HasSuffix(r.Self(), "/"+d.Resource)
			}) {
				return fmt.Errorf("%s (%q) not in %+v", r.Self(), m.Label, ds)
			}
		}
		return nil
	}
	deadline := time.Now().Add(cmdBound)
	for err := published(); err != nil; err = published() {
		if time.Now().After(deadline) {
			t.Fatalf("alice's published device list: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	recs, err := bob.a.Trust().Keys(aliceAcct.jid)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rooms[1:] {
		m := keys[r.Self()]
		if !slices.ContainsFunc(recs, func(rec trust.Record) bool { return rec.Key == m.Trust.Key && rec.Label == m.Label }) {
			t.Errorf("bob's store lacks %s labelled %q: %+v", r.Self(), m.Label, recs)
		}
	}

	// The second device leaves and comes back; the first stays in the
	// session throughout.
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	from := bob.mark()
	if err := other.a.Leave(ctx, room, false); err != nil {
		t.Fatal(err)
	}
	bob.waitEvent(from, "the second device out of the session", func(ev app.Event) bool {
		return ev.Room == room && ev.Kind == app.EventEntry && ev.Entry.Kind == session.Membership && slices.Contains(ev.Entry.Exclude, rooms[2].Self())
	})
	lfrom := laptop.mark()
	ofrom := other.mark()
	rooms[2] = other.join(room, "everyone")
	other.waitJoinEvent(ofrom, room)
	exchange("second")
	laptop.mu.Lock()
	for _, ev := range laptop.evs[lfrom:] {
		if ev.Room == room && ev.Kind == app.EventNotice && ev.Notice.Kind == session.StateChanged && ev.Notice.State != session.StateJoined {
			t.Errorf("the first device left the session: %v", ev.Notice)
		}
	}
	laptop.mu.Unlock()

	for i, p := range peers {
		if w := p.warnings(); len(w) > 0 {
			t.Errorf("device %d: warnings:\n%s", i, strings.Join(w, "\n"))
		}
	}
}

// TestIntegrationOneConnectionPerDevice: a device in three rooms holds one
// connection to the server (counted from this process's sockets), and its
// participant id is the same in each.
func TestIntegrationOneConnectionPerDevice(t *testing.T) {
	s := serverFromEnv(t)
	acct := s.cmdAccount(t, 3)
	addr := s.clientAddr()
	_, portText, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portText)
	before := connectionsTo(t, port)
	p := s.newAppPeer(t, acct, t.TempDir())
	var selves []string
	for range 3 {
		room := s.newRoom(t)
		from := p.mark()
		r := p.join(room, "everyone")
		p.waitJoinEvent(from, room)
		selves = append(selves, r.Self())
	}
	if n := connectionsTo(t, port) - before; n != 1 {
		t.Fatalf("%d new connections to the server for one device in three rooms, want 1", n)
	}
	if selves[0] != selves[1] || selves[1] != selves[2] {
		t.Fatalf("participant ids %v", selves)
	}
	t.Logf("one connection for three rooms, participant id %s", selves[0])
}

// connectionsTo counts this process's established TCP connections to
// port: the sockets among its file descriptors (/proc/self/fd) that
// /proc/net/tcp and tcp6 list as established with that remote port.
func connectionsTo(t *testing.T, port int) int {
	t.Helper()
	mine := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list file descriptors: %v", err)
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	n := 0
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "01" { // 01: ESTABLISHED
				continue
			}
			_, rport, ok := strings.Cut(fields[2], ":")
			p, err := strconv.ParseInt(rport, 16, 32)
			if ok && err == nil && int(p) == port && mine[fields[9]] {
				n++
			}
		}
		f.Close()
	}
	return n
}

// TestIntegrationGhostDevice: once alice has verified bob's device, a
// device of bob's account she does not know (a ghost a server could add,
// or bob's new phone: she cannot tell yet) is shown as new and named by
// its label, and neither /invite bob nor a remembered invitation of bob
// includes it until she decides; the verified device is included by both.
func TestIntegrationGhostDevice(t *testing.T) {
	s := serverFromEnv(t)
	aliceAcct, bobAcct := s.cmdAccount(t, 3), s.cmdAccount(t, 4)
	room, room2 := s.newRoom(t), s.newRoom(t)
	alice := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("desk"))
	bob := s.newAppPeer(t, bobAcct, t.TempDir(), withLabel("laptop"))
	ghost := s.newAppPeer(t, bobAcct, t.TempDir(), withLabel("ghost"))
	bobJID := trust.Bare(bobAcct.jid)
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()

	// Alice and bob's laptop form a session; alice verifies the laptop.
	rs := formApps(t, room, []*appPeer{alice, bob})
	ra := rs[0]
	for _, m := range members(t, ra) {
		if m.ID == rs[1].Self() {
			if _, err := alice.a.Trust().Verify(m.ID, m.Trust.Key); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The ghost enters: a new device of bob, named, not trusted.
	from := alice.mark()
	rg := ghost.join(room, "manual")
	ev := alice.waitEvent(from, "the ghost's key", func(ev app.Event) bool {
		return ev.Kind == app.EventDecision && ev.Decision.Member == rg.Self()
	})
	if d := ev.Decision; d.Kind != trust.KeyNewDevice || d.Trusted || ev.Label != "ghost" {
		t.Fatalf("the ghost's decision: %v, label %q", d, ev.Label)
	}
	alice.waitEvent(from, "the ghost's join request", func(ev app.Event) bool {
		return ev.Kind == app.EventNotice && ev.Notice.Kind == session.JoinRequest && ev.Notice.Author == rg.Self()
	})
	text, err := ra.Invite(ctx, bobJID)
	if err != nil || !strings.Contains(text, "not included "+rg.Self()+": its key") || strings.HasPrefix(text, "included") {
		t.Fatalf("/invite %s with the ghost waiting: %q, %v", bobJID, text, err)
	}

	// A remembered invitation of bob in another room: the ghost entering
	// is named and left out; the laptop entering is included.
	from = alice.mark()
	ra2 := alice.join(room2, "manual")
	alice.waitJoinEvent(from, room2)
	if text, err := ra2.Invite(ctx, bobJID); err != nil || !strings.Contains(text, "will be included when they enter") {
		t.Fatalf("invite %s before they enter: %q, %v", bobJID, text, err)
	}
	from = alice.mark()
	ghost.join(room2, "manual")
	alice.waitEvent(from, "the ghost named, not included", func(ev app.Event) bool {
		return ev.Room == room2 && ev.Kind == app.EventInfo && strings.Contains(ev.Text, rg.Self()+" entered (you invited "+bobJID+"), but its key")
	})
	bfrom := bob.mark()
	rb2 := bob.join(room2, "manual")
	bob.waitJoinEvent(bfrom, room2)
	waitInSession(t, ra2, ra2.Self(), rb2.Self())
	for _, m := range members(t, ra2) {
		if m.InSession != (m.ID == ra2.Self() || m.ID == rb2.Self()) {
			t.Errorf("room2: %s in session %v", m.ID, m.InSession)
		}
	}
	for _, m := range members(t, ra) {
		if m.ID == rg.Self() && m.InSession {
			t.Error("the ghost is in the first room's session")
		}
	}
	if w := alice.warnings(); len(w) > 0 {
		t.Errorf("alice's warnings:\n%s", strings.Join(w, "\n"))
	}
}

// TestIntegrationOwnDeviceAsked: a room that includes everyone by itself
// still asks about a device of our own account we have not verified (it
// may be someone holding our password), and includes it when told to.
func TestIntegrationOwnDeviceAsked(t *testing.T) {
	s := serverFromEnv(t)
	acct := s.cmdAccount(t, 3)
	room := s.newRoom(t)
	first := s.newAppPeer(t, acct, t.TempDir(), withLabel("laptop"))
	second := s.newAppPeer(t, acct, t.TempDir(), withLabel("phone"))
	from := first.mark()
	r1 := first.join(room, "everyone")
	first.waitJoinEvent(from, room)
	from = first.mark()
	r2 := second.join(room, "everyone")
	first.waitEvent(from, "the join request of our other device", func(ev app.Event) bool {
		return ev.Room == room && ev.Kind == app.EventNotice && ev.Notice.Kind == session.JoinRequest && ev.Notice.Author == r2.Self()
	})
	time.Sleep(2 * time.Second) // an automatic inclusion would have happened by now (loopback timing)
	for _, m := range members(t, r1) {
		if m.ID == r2.Self() && m.InSession {
			t.Fatal("our other device was included without asking")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	if text, err := r1.Invite(ctx, r2.Self()); err != nil || !strings.HasPrefix(text, "included") {
		t.Fatalf("invite our other device: %q, %v", text, err)
	}
	waitInSession(t, r1, r1.Self(), r2.Self())
}

// TestIntegrationVerifyExcludesSibling: when the user verifies one of
// alice's devices, her other device in the session is no longer trusted
// (only verified keys count for her account then), so the client says so
// and excludes it at once, rather than leaving it in to make the next key
// agreement fail at this member only (a split, and false alarms at the
// others). The refresh that follows succeeds for everyone still in.
func TestIntegrationVerifyExcludesSibling(t *testing.T) {
	s := serverFromEnv(t)
	aliceAcct, bAcct := s.cmdAccount(t, 3), s.cmdAccount(t, 4)
	room := s.newRoom(t)
	clientBin, _ := buildCommands(t)
	dir := t.TempDir()
	laptop := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("laptop"))
	phone := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("phone"))
	aliceJID := bare(aliceAcct.jid)

	rs := formApps(t, room, []*appPeer{laptop, phone})
	from := laptop.mark()
	cfgB := s.clientConfig(t, dir, "b", bAcct, "manual", room)
	b := startProc(t, "client b", secretEnv(bAcct, "passphrase of b"), true, clientBin, "-plain", "-config", cfgB)
	logOnFailure(t, filepath.Join(dir, "b.db.log"))
	ev := laptop.waitEvent(from, "b's join request", func(ev app.Event) bool {
		return ev.Kind == app.EventNotice && ev.Notice.Kind == session.JoinRequest && trust.Bare(ev.Notice.Author) == bare(bAcct.jid)
	})
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	if _, err := rs[0].Invite(ctx, ev.Notice.Author); err != nil {
		t.Fatal(err)
	}
	b.waitFor("joined the session")
	waitInSession(t, rs[0], rs[0].Self(), rs[1].Self(), ev.Notice.Author)

	// b verifies the laptop with the line /verify shows.
	b.writeLine("/verify " + aliceJID)
	var confirm []string
	b.waitOutput("the laptop's confirm line", func(out string) bool {
		confirm = regexp.MustCompile(`/verify (` + regexp.QuoteMeta(rs[0].Self()) + `) confirm ([0-9a-f]{4} [0-9a-f]{4})`).FindStringSubmatch(out)
		return confirm != nil
	})
	b.writeLine("/verify " + confirm[1] + " confirm " + confirm[2])
	b.waitFor("is now verified")
	// The phone, only automatically distrusted, stays a minute (a trust
	// message from the laptop could vouch for it: none comes here, the
	// laptop has not verified b), then is excluded.
	want := "no longer trusted: " + rs[1].Self() + " “phone” (not verified, and only verified keys count for " + aliceJID + " now). Excluding from the session"
	for deadline := time.Now().Add(60*time.Second + cmdBound); !strings.Contains(b.output(), want); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("client b never excluded the phone; output:\n%s", b.output())
		}
	}
	waitInSession(t, rs[0], rs[0].Self(), ev.Notice.Author)

	// A fresh key agreement now succeeds for the two left.
	rctx, rcancel := context.WithTimeout(context.Background(), cmdBound)
	defer rcancel()
	if err := rs[0].Refresh(rctx); err != nil {
		t.Fatalf("refresh after the exclusion: %v", err)
	}
	if w := laptop.warnings(); len(w) > 0 {
		t.Errorf("the laptop's warnings:\n%s", strings.Join(w, "\n"))
	}
	if out := b.output(); strings.Contains(out, "SECURITY WARNING") || strings.Contains(out, "could not be decrypted") {
		t.Errorf("b shows warnings:\n%s", out)
	}
	b.writeLine("/quit")
	if err := b.wait(); err != nil {
		t.Errorf("client b: %v", err)
	}
}
