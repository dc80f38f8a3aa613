//go:build integration

package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/trust"
)

// trustState returns p's trust state of key as account's, 0 if unknown.
func trustState(t *testing.T, p *appPeer, account string, key crypto.PublicKey) (trust.State, trust.Kind) {
	t.Helper()
	recs, err := p.a.Trust().Keys(account)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Key == key {
			return r.State, r.Cause
		}
	}
	return 0, 0
}

// waitTrust waits until p holds key as account's in state st.
func waitTrust(t *testing.T, p *appPeer, account string, key crypto.PublicKey, st trust.State) {
	t.Helper()
	deadline := time.Now().Add(cmdBound)
	for {
		got, _ := trustState(t, p, account, key)
		if got == st {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %s's key %s as %v, want %v", p.a.Account(), account, trust.FingerprintOf(key), got, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIntegrationATM: XEP-0450 trust messages over the device channel on
// a real server. Alice has a laptop and a phone, Bob a desk; they share
// a room (each has seen the others' keys). The user verifies the phone
// on the laptop and the laptop on the phone, then Bob's desk on the
// laptop, and the laptop on the desk: the phone authenticates the desk,
// and the desk the phone, without anyone verifying them (the desk had
// parked the laptop's word until its user verified the laptop). Then
// the laptop distrusts the phone: the desk distrusts it too.
func TestIntegrationATM(t *testing.T) {
	s := serverFromEnv(t)
	aliceAcct, bobAcct := s.cmdAccount(t, 3), s.cmdAccount(t, 4)
	room := s.newRoom(t)
	laptop := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("laptop"))
	phone := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("phone"))
	desk := s.newAppPeer(t, bobAcct, t.TempDir(), withLabel("desk"))
	laptopID := laptop.join(room, "everyone").Self()
	phone.join(room, "everyone")
	desk.join(room, "everyone")
	alice, bob := laptop.a.Account(), desk.a.Account()
	kl, kp, kd := laptop.a.PublicKey(), phone.a.PublicKey(), desk.a.PublicKey()
	// Each has seen the others' keys in the room.
	waitTrust(t, phone, bob, kd, trust.BlindlyTrusted)
	waitTrust(t, desk, alice, kp, trust.BlindlyTrusted)
	waitTrust(t, laptop, bob, kd, trust.BlindlyTrusted)

	verify := func(by *appPeer, account string, key crypto.PublicKey) {
		t.Helper()
		if _, err := by.a.Trust().Verify(account, key); err != nil {
			t.Fatal(err)
		}
	}
	verify(laptop, alice, kp)
	verify(phone, alice, kl)
	mp := phone.mark()
	verify(laptop, bob, kd)
	waitTrust(t, phone, bob, kd, trust.Authenticated)
	if st, cause := trustState(t, phone, bob, kd); cause.String() != "vouched" {
		t.Fatalf("the phone holds the desk's key %v for %v", st, cause)
	}
	// The phone's user is told, naming the laptop.
	phone.waitEvent(mp, "the desk vouched for by the laptop", func(ev app.Event) bool {
		return ev.Kind == app.EventTrust && ev.Trust.Key == kd && ev.Trust.By == kl && ev.Trust.Member == laptopID
	})
	// The desk parked the laptop's word: the phone is not authenticated
	// there until the desk's user verifies the laptop.
	time.Sleep(time.Second)
	if st, _ := trustState(t, desk, alice, kp); st == trust.Authenticated {
		t.Fatal("the desk applied a trust message from a device it has not authenticated")
	}
	verify(desk, alice, kl)
	waitTrust(t, desk, alice, kp, trust.Authenticated)

	// Distrust travels too: the laptop's user distrusts the phone (an
	// own device: every authenticated device is told).
	if _, err := laptop.a.Trust().Distrust(alice, kp); err != nil {
		t.Fatal(err)
	}
	waitTrust(t, desk, alice, kp, trust.Distrusted)
	if st, _ := trustState(t, phone, bob, kd); st != trust.Authenticated {
		t.Fatalf("the phone's own view changed: %v", st)
	}
}

// TestIntegrationVerifyWords: live verification over the device channel.
// The laptop asks to verify Bob's desk: both get the same five words;
// both users say they match; each side authenticates the other's key
// only once both proofs are in, and the laptop's verification sends
// its trust messages (the phone, verified before, learns the desk).
// Then a second verification where the desk's user says the words
// differ: both sides distrust the other's key, loudly.
func TestIntegrationVerifyWords(t *testing.T) {
	s := serverFromEnv(t)
	aliceAcct, bobAcct := s.cmdAccount(t, 3), s.cmdAccount(t, 4)
	room := s.newRoom(t)
	laptop := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("laptop"))
	phone := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("phone"))
	desk := s.newAppPeer(t, bobAcct, t.TempDir(), withLabel("desk"))
	laptopID := laptop.join(room, "everyone").Self()
	phone.join(room, "everyone")
	deskID := desk.join(room, "everyone").Self()
	alice, bob := laptop.a.Account(), desk.a.Account()
	kl, kp, kd := laptop.a.PublicKey(), phone.a.PublicKey(), desk.a.PublicKey()
	waitTrust(t, desk, alice, kl, trust.BlindlyTrusted)
	waitTrust(t, phone, bob, kd, trust.BlindlyTrusted)
	for _, v := range []struct {
		by  *appPeer
		acc string
		key crypto.PublicKey
	}{{laptop, alice, kp}, {phone, alice, kl}} {
		if _, err := v.by.a.Trust().Verify(v.acc, v.key); err != nil {
			t.Fatal(err)
		}
	}

	words := func(p *appPeer, from int, device string) []string {
		t.Helper()
		ev := p.waitEvent(from, "the words for "+device, func(ev app.Event) bool {
			return ev.Kind == app.EventVerify && ev.Device == device && (len(ev.Words) > 0 || ev.Err != nil)
		})
		if ev.Err != nil {
			t.Fatalf("verification with %s failed: %v", device, ev.Err)
		}
		return ev.Words
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()
	ml, md := laptop.mark(), desk.mark()
	deadline := time.Now().Add(cmdBound)
	for {
		// Right after connecting, a device's list or bundle may not be
		// published yet.
		err := laptop.a.VerifyDevice(ctx, deskID)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	wl, wd := words(laptop, ml, deskID), words(desk, md, laptopID)
	if len(wl) != 5 || strings.Join(wl, " ") != strings.Join(wd, " ") {
		t.Fatalf("the screens show %q and %q", wl, wd)
	}
	// One side's confirmation authenticates nothing.
	if err := laptop.a.ConfirmWords(ctx, deskID, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if st, _ := trustState(t, laptop, bob, kd); st == trust.Authenticated {
		t.Fatal("authenticated before the other user confirmed")
	}
	if st, _ := trustState(t, desk, alice, kl); st == trust.Authenticated {
		t.Fatal("the desk authenticated the laptop before its user confirmed")
	}
	if err := desk.a.ConfirmWords(ctx, laptopID, true); err != nil {
		t.Fatal(err)
	}
	waitTrust(t, laptop, bob, kd, trust.Authenticated)
	waitTrust(t, desk, alice, kl, trust.Authenticated)
	for _, p := range []*appPeer{laptop, desk} {
		p.waitEvent(0, "the end of the verification", func(ev app.Event) bool {
			return ev.Kind == app.EventVerify && strings.HasPrefix(ev.Text, "verified:")
		})
	}
	// The laptop's verification told the phone; the desk's told the
	// laptop nothing new (Bob has one device), and the phone's word
	// about itself reached the desk through the laptop.
	waitTrust(t, phone, bob, kd, trust.Authenticated)
	waitTrust(t, desk, alice, kp, trust.Authenticated)

	// A mismatch: the desk's user says the words differ.
	ml, md = laptop.mark(), desk.mark()
	if err := laptop.a.VerifyDevice(ctx, deskID); err != nil {
		t.Fatal(err)
	}
	words(laptop, ml, deskID)
	words(desk, md, laptopID)
	if err := desk.a.ConfirmWords(ctx, laptopID, false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		p      *appPeer
		from   int
		device string
	}{{laptop, ml, deskID}, {desk, md, laptopID}} {
		ev := p.p.waitEvent(p.from, "the mismatch", func(ev app.Event) bool {
			return ev.Kind == app.EventVerify && ev.Device == p.device && ev.Err != nil
		})
		if !ev.Warning {
			t.Fatalf("a mismatch without a warning: %v", ev.Err)
		}
	}
	waitTrust(t, laptop, bob, kd, trust.Distrusted)
	waitTrust(t, desk, alice, kl, trust.Distrusted)
	// A failed verification is not told to other devices: the phone,
	// which verified nothing itself, keeps the desk as the laptop's
	// earlier trust message left it.
	time.Sleep(time.Second)
	if st, _ := trustState(t, phone, bob, kd); st != trust.Authenticated {
		t.Fatalf("the phone holds the desk's key %v after the laptop's failed verification", st)
	}

	// A device that quits during a verification tells the other side.
	ml, md = laptop.mark(), desk.mark()
	if err := laptop.a.VerifyDevice(ctx, deskID); err != nil {
		t.Fatal(err)
	}
	words(laptop, ml, deskID)
	words(desk, md, laptopID)
	if err := desk.a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ev := laptop.waitEvent(ml, "the end of the verification the desk left", func(ev app.Event) bool {
		return ev.Kind == app.EventVerify && ev.Device == deskID && ev.Err != nil
	})
	if ev.Warning || !strings.Contains(ev.Err.Error(), "declined") {
		t.Fatalf("the desk's leaving: %v (warning %v)", ev.Err, ev.Warning)
	}
}

// TestIntegrationHeldInclusion: an inclusion that fails because a
// member's directory finds the newcomer's key undecided waits for that
// member's decision. Bob verified Carol's first device, so her second is
// undecided at his desk (only verified keys count for her there), while
// Alice, who verified nothing, includes it: Bob's desk refuses, says why
// and what to do; once Bob verifies the second device, his desk proposes
// the inclusion itself, and it succeeds.
func TestIntegrationHeldInclusion(t *testing.T) {
	s := serverFromEnv(t)
	aliceAcct, bobAcct, carolAcct := s.cmdAccount(t, 3), s.cmdAccount(t, 4), s.cmdAccount(t, 5)
	room := s.newRoom(t)
	laptop := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("laptop"))
	desk := s.newAppPeer(t, bobAcct, t.TempDir(), withLabel("desk"))
	c1 := s.newAppPeer(t, carolAcct, t.TempDir(), withLabel("c1"))
	laptop.join(room, "everyone")
	deskRoom := desk.join(room, "everyone")
	c1.join(room, "everyone")
	carol := c1.a.Account()
	inSession := func(p *appPeer, r *app.Room, member string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ms, err := r.Members(ctx)
		if err != nil {
			return false
		}
		for _, m := range ms {
			if m.ID == member && m.InSession {
				return true
			}
		}
		return false
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(cmdBound)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("waited %v for %s", cmdBound, what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	c1ID := c1.a.Account() + "/" // the device's full JID is found in the roster
	waitFor("carol's first device in the session", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ms, _ := deskRoom.Members(ctx)
		for _, m := range ms {
			if strings.HasPrefix(m.ID, c1ID) && m.InSession {
				c1ID = m.ID
				return true
			}
		}
		return false
	})
	if _, err := desk.a.Trust().Verify(carol, c1.a.PublicKey()); err != nil {
		t.Fatal(err)
	}
	md := desk.mark()
	c2 := s.newAppPeer(t, carolAcct, t.TempDir(), withLabel("c2"))
	c2ID := c2.join(room, "everyone").Self()
	desk.waitEvent(md, "the refusal and what to do", func(ev app.Event) bool {
		return ev.Kind == app.EventInfo && strings.Contains(ev.Text, c2ID+"'s key") && strings.Contains(ev.Text, "is not decided here") &&
			strings.Contains(ev.Text, "/verify "+c2ID)
	})
	if inSession(desk, deskRoom, c2ID) {
		t.Fatal("the second device is in the session before Bob decided")
	}
	if _, err := desk.a.Trust().Verify(carol, c2.a.PublicKey()); err != nil {
		t.Fatal(err)
	}
	desk.waitEvent(md, "the inclusion proposed again", func(ev app.Event) bool {
		return ev.Kind == app.EventInfo && strings.HasPrefix(ev.Text, "including "+c2ID+" again")
	})
	waitFor("the second device in the session", func() bool { return inSession(desk, deskRoom, c2ID) })
}
