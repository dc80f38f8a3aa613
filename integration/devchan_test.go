//go:build integration

package integration

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/channel/xmpp"
)

// received returns the device channel payloads p got from device from
// since mark, in order.
func (p *appPeer) received(since int, from string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, ev := range p.evs[since:] {
		if ev.Kind == app.EventDevice && ev.Device == from {
			out = append(out, string(ev.Payload))
		}
	}
	return out
}

// waitReceived waits until p got want (exactly, in order) from device from
// since mark.
func (p *appPeer) waitReceived(since int, from string, want []string) {
	p.t.Helper()
	deadline := time.Now().Add(cmdBound)
	for {
		got := p.received(since, from)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if len(got) > len(want) || time.Now().After(deadline) {
			var missing []string
			for _, w := range want {
				if !slices.Contains(got, w) {
					missing = append(missing, w)
				}
			}
			p.t.Fatalf("from %s: got %d payloads %.200q, want %d; missing %d: %.300q", from, len(got), got, len(want), len(missing), missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sendDevice sends each text to device to over the device channel, in
// order; the receiver's device list may not be published yet right after
// it connected, so a refused send is tried again for a while.
func sendDevice(t *testing.T, from *appPeer, to string, texts []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	for _, x := range texts {
		deadline := time.Now().Add(cmdBound)
		for {
			err := from.a.SendToDevice(ctx, to, []byte(x))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("send to %s: %v", to, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// numbered is "prefix from" .. "prefix to-1".
func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

// TestIntegrationDeviceChannel: devices of two accounts and a second
// device of the first talk over the device channel (a handshake over a
// published one-time key, then data): every payload arrives once, in
// order per direction, both ways; after a restart of one device its saved
// sessions go on without a new handshake's loss.
func TestIntegrationDeviceChannel(t *testing.T) {
	s := serverFromEnv(t)
	aliceAcct, bobAcct := s.cmdAccount(t, 3), s.cmdAccount(t, 4)
	room := s.newRoom(t)
	bobDir := t.TempDir()
	alice := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("laptop"))
	phone := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("phone"))
	bob := s.newAppPeer(t, bobAcct, bobDir, withLabel("desk"))
	ids := make([]string, 3)
	for i, p := range []*appPeer{alice, phone, bob} {
		ids[i] = p.join(room, "everyone").Self()
	}
	send := func(from *appPeer, to string, texts ...string) {
		t.Helper()
		sendDevice(t, from, to, texts)
	}
	seq := func(prefix string, n int) []string { return numbered(prefix, 0, n) }
	mb, mp, ma := bob.mark(), phone.mark(), alice.mark()
	send(alice, ids[2], seq("to bob", 3)...)
	send(alice, ids[1], seq("to phone", 3)...)
	bob.waitReceived(mb, ids[0], seq("to bob", 3))
	phone.waitReceived(mp, ids[0], seq("to phone", 3))
	send(bob, ids[0], seq("from bob", 3)...)
	alice.waitReceived(ma, ids[2], seq("from bob", 3))

	// Many, both ways at once.
	mb, ma = bob.mark(), alice.mark()
	done := make(chan struct{})
	go func() {
		defer close(done)
		send(bob, ids[0], seq("burst from bob", 200)...)
	}()
	send(alice, ids[2], seq("burst to bob", 200)...)
	<-done
	bob.waitReceived(mb, ids[0], seq("burst to bob", 200))
	alice.waitReceived(ma, ids[2], seq("burst from bob", 200))

	// Bob's device restarts: its sessions were saved; alice goes on.
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	if err := bob.a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	bob2 := s.newAppPeer(t, bobAcct, bobDir, withLabel("desk"))
	if got := bob2.join(room, "everyone").Self(); got != ids[2] {
		t.Fatalf("bob's device came back as %s, not %s", got, ids[2])
	}
	mb = bob2.mark()
	send(alice, ids[2], seq("after the restart", 3)...)
	bob2.waitReceived(mb, ids[0], seq("after the restart", 3))
	ma = alice.mark()
	send(bob2, ids[0], "back")
	alice.waitReceived(ma, ids[2], []string{"back"})

	// Both sides begin at once (the phone and bob never talked): both
	// handshakes complete, and every payload arrives, both ways.
	mb, mp = bob2.mark(), phone.mark()
	done = make(chan struct{})
	go func() {
		defer close(done)
		send(phone, ids[2], seq("phone first", 5)...)
	}()
	send(bob2, ids[1], seq("bob first", 5)...)
	<-done
	bob2.waitReceived(mb, ids[1], seq("phone first", 5))
	phone.waitReceived(mp, ids[2], seq("bob first", 5))

	// Bob's device loses its sessions (a store restored from an old
	// copy): alice's next payload is for a session it does not have; it
	// starts a new handshake, alice moves to the new session, and what
	// she sends from then on arrives.
	if err := bob2.a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(bobDir, "peer.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM devchan_sessions`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	bob3 := s.newAppPeer(t, bobAcct, bobDir, withLabel("desk"))
	bob3.join(room, "everyone")
	mb = bob3.mark()
	deadline := time.Now().Add(cmdBound)
	for i := 0; len(bob3.received(mb, ids[0])) == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("the channel did not recover after bob lost his sessions")
		}
		send(alice, ids[2], fmt.Sprintf("probe %d", i))
		time.Sleep(300 * time.Millisecond)
	}
	mb = bob3.mark()
	send(alice, ids[2], seq("recovered", 5)...)
	bob3.waitReceived(mb, ids[0], seq("recovered", 5))
}

// TestIntegrationDeviceChannelOffline: two devices of one account and one
// of another; the second device of the first account is offline for half
// of the 1,000 payloads each of the others sends it: on its return it
// reads them from its account's archive, and has every payload once, in
// order per sender.
func TestIntegrationDeviceChannelOffline(t *testing.T) {
	s := serverFromEnv(t)
	aliceAcct, bobAcct := s.cmdAccount(t, 3), s.cmdAccount(t, 4)
	room := s.newRoom(t)
	phoneDir := t.TempDir()
	laptop := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("laptop"))
	phone := s.newAppPeer(t, aliceAcct, phoneDir, withLabel("phone"))
	bob := s.newAppPeer(t, bobAcct, t.TempDir(), withLabel("desk"))
	ids := make([]string, 3)
	for i, p := range []*appPeer{laptop, phone, bob} {
		ids[i] = p.join(room, "everyone").Self()
	}
	n := 1000
	if testing.Short() {
		n = 100
	}
	send := func(from *appPeer, to string, texts []string) {
		t.Helper()
		sendDevice(t, from, to, texts)
	}
	seq := numbered
	mp := phone.mark()
	send(laptop, ids[1], seq("laptop", 0, n/2))
	send(bob, ids[1], seq("bob", 0, n/2))
	phone.waitReceived(mp, ids[0], seq("laptop", 0, n/2))
	phone.waitReceived(mp, ids[2], seq("bob", 0, n/2))

	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	closing := phone.mark()
	if err := phone.a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-phone.done
	// The phone is offline while the others send: everything waits in
	// the archive. (Were it still closing, what reached it then would be
	// handled and saved then: counted below all the same.)
	send(laptop, ids[1], seq("laptop", n/2, n))
	send(bob, ids[1], seq("bob", n/2, n))
	early := map[string]int{ids[0]: len(phone.received(closing, ids[0])), ids[2]: len(phone.received(closing, ids[2]))}
	t.Logf("received while closing: %v", early)

	phone2 := s.newAppPeer(t, aliceAcct, phoneDir, withLabel("phone"))
	mp = phone2.mark()
	if got := phone2.join(room, "everyone").Self(); got != ids[1] {
		t.Fatalf("the phone came back as %s, not %s", got, ids[1])
	}
	for i, prefix := range map[int]string{0: "laptop", 2: "bob"} {
		if early[ids[i]] > 0 && fmt.Sprint(phone.received(closing, ids[i])) != fmt.Sprint(seq(prefix, n/2, n/2+early[ids[i]])) {
			t.Fatalf("while closing, from %s: %.200q", prefix, phone.received(closing, ids[i]))
		}
		phone2.waitReceived(mp, ids[i], seq(prefix, n/2+early[ids[i]], n))
	}
	// And live again afterwards.
	mp = phone2.mark()
	send(bob, ids[1], []string{"live"})
	phone2.waitReceived(mp, ids[2], []string{"live"})
}

// TestIntegrationDeviceChannelOutboxRestart: payloads for a device that
// has no session yet wait in the sender's outbox, which is kept in its
// store: the sender restarts before the handshake completes (the
// receiver is offline), and once both are back every payload arrives,
// once and in order.
func TestIntegrationDeviceChannelOutboxRestart(t *testing.T) {
	s := serverFromEnv(t)
	aliceAcct, bobAcct := s.cmdAccount(t, 3), s.cmdAccount(t, 4)
	room := s.newRoom(t)
	aliceDir, bobDir := t.TempDir(), t.TempDir()
	alice := s.newAppPeer(t, aliceAcct, aliceDir, withLabel("laptop"))
	bob := s.newAppPeer(t, bobAcct, bobDir, withLabel("desk"))
	aliceID := alice.join(room, "everyone").Self()
	bobID := bob.join(room, "everyone").Self()
	// Bob's device is in its account's published list (it publishes it
	// after connecting); then it goes.
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	for {
		ds, err := alice.a.PublishedDevices(ctx, bobAcct.jid)
		if err == nil && slices.ContainsFunc(ds, func(d xmpp.Device) bool { return strings.HasSuffix(bobID, "/"+d.Resource) }) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("bob's device never published: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := bob.a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-bob.done
	texts := numbered("waited across a restart", 0, 3)
	sendDevice(t, alice, bobID, texts)
	if err := alice.a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-alice.done

	alice2 := s.newAppPeer(t, aliceAcct, aliceDir, withLabel("laptop"))
	if got := alice2.join(room, "everyone").Self(); got != aliceID {
		t.Fatalf("alice came back as %s, not %s", got, aliceID)
	}
	bob2 := s.newAppPeer(t, bobAcct, bobDir, withLabel("desk"))
	mb := bob2.mark()
	bob2.join(room, "everyone")
	bob2.waitReceived(mb, aliceID, texts)
}
