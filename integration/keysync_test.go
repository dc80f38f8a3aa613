//go:build integration

package integration

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/keysync"
	"github.com/mpenc/mpenc/trust"
)

// TestIntegrationKeySync: pEp KeySync over the device channel. Alice's
// laptop has verified Bob's desk (and the desk the laptop). The laptop
// and the phone pair: both show the same five words, both users accept,
// and each authenticates the other; the phone then trusts Bob's desk
// without anyone verifying it there (the laptop's trust messages), and
// the desk the phone. A third device, the tablet, joins the group of
// two through whichever grouped device answers first; the other is
// passive and trusts the tablet on the active device's word, and the
// tablet trusts Bob's desk, all without further action.
func TestIntegrationKeySync(t *testing.T) {
	s := serverFromEnv(t)
	aliceAcct, bobAcct := s.cmdAccount(t, 3), s.cmdAccount(t, 4)
	room := s.newRoom(t)
	laptop := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("laptop"))
	phone := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("phone"))
	tablet := s.newAppPeer(t, aliceAcct, t.TempDir(), withLabel("tablet"))
	desk := s.newAppPeer(t, bobAcct, t.TempDir(), withLabel("desk"))
	ids := map[*appPeer]string{}
	for _, p := range []*appPeer{laptop, phone, tablet, desk} {
		ids[p] = p.join(room, "everyone").Self()
	}
	tabletUp := time.Now()
	// A room the laptop joins at every start: the phone joins it when it
	// pairs.
	saved := s.newRoom(t)
	{
		ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
		if _, err := laptop.a.Join(ctx, saved, app.RoomOptions{Include: "trusted", Remember: true, StayIfLastMember: true}); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	alice, bob := laptop.a.Account(), desk.a.Account()
	waitTrust(t, laptop, bob, desk.a.PublicKey(), trust.BlindlyTrusted)
	waitTrust(t, desk, alice, laptop.a.PublicKey(), trust.BlindlyTrusted)
	if _, err := laptop.a.Trust().Verify(bob, desk.a.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if _, err := desk.a.Trust().Verify(alice, laptop.a.PublicKey()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
	defer cancel()

	words := func(p *appPeer, from int) (string, string) {
		t.Helper()
		ev := p.waitEvent(from, "the pairing words", func(ev app.Event) bool {
			return ev.Kind == app.EventPairing && len(ev.Words) > 0
		})
		return ev.Device, strings.Join(ev.Words, " ")
	}
	grouped := func(p *appPeer, from int, with string) app.Event {
		t.Helper()
		return p.waitEvent(from, "the group formed with "+with, func(ev app.Event) bool {
			return ev.Kind == app.EventPairing && ev.Device == with && strings.HasPrefix(ev.Text, "in a device group")
		})
	}
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

	// A first pairing the phone's user rejects: the laptop is warned, and
	// a new pairing shows other words (a new session).
	ml, mp := laptop.mark(), phone.mark()
	pair(laptop)
	pair(phone)
	_, rejected := words(laptop, ml)
	words(phone, mp)
	if err := phone.a.AnswerPairing(ctx, app.PairReject); err != nil {
		t.Fatal(err)
	}
	laptop.waitEvent(ml, "the warning that the phone rejected", func(ev app.Event) bool {
		return ev.Kind == app.EventPairing && ev.Warning && strings.Contains(ev.Text, "rejected the pairing")
	})
	phone.waitEvent(mp, "the note of the rejection", func(ev app.Event) bool {
		return ev.Kind == app.EventPairing && !ev.Warning && strings.HasPrefix(ev.Text, "you rejected the pairing")
	})

	ml, mp = laptop.mark(), phone.mark()
	pair(laptop)
	pair(phone)
	dl, wl := words(laptop, ml)
	dp, wp := words(phone, mp)
	if wl == rejected {
		t.Fatalf("the new pairing shows the rejected words again: %q", wl)
	}
	if dl != ids[phone] || dp != ids[laptop] || wl != wp || len(strings.Fields(wl)) != 5 {
		t.Fatalf("laptop shows %q for %s, phone %q for %s", wl, dl, wp, dp)
	}
	for _, p := range []*appPeer{laptop, phone} {
		if err := p.a.AnswerPairing(ctx, app.PairAccept); err != nil {
			t.Fatal(err)
		}
	}
	grouped(laptop, ml, ids[phone])
	ev := grouped(phone, mp, ids[laptop])
	if !slices.Equal(ev.Rooms, []string{saved}) {
		t.Fatalf("the phone was given the rooms %q, want the laptop's saved room %s", ev.Rooms, saved)
	}
	waitGroup(t, phone, laptop.a.PublicKey(), "in the group", "laptop")
	waitGroup(t, laptop, phone.a.PublicKey(), "in the group", "phone")
	waitTrust(t, laptop, alice, phone.a.PublicKey(), trust.Authenticated)
	waitTrust(t, phone, alice, laptop.a.PublicKey(), trust.Authenticated)
	waitTrust(t, phone, bob, desk.a.PublicKey(), trust.Authenticated)
	waitTrust(t, desk, alice, phone.a.PublicKey(), trust.Authenticated)

	// The tablet joins the group of two.
	mt, ml, mp := tablet.mark(), laptop.mark(), phone.mark()
	pair(tablet)
	active, wt := words(tablet, mt)
	activePeer, passive := laptop, phone
	if active == ids[phone] {
		activePeer, passive = phone, laptop
	}
	_, wa := words(activePeer, map[*appPeer]int{laptop: ml, phone: mp}[activePeer])
	if wa != wt {
		t.Fatalf("the tablet shows %q, %s %q", wt, active, wa)
	}
	for _, p := range []*appPeer{tablet, activePeer} {
		if err := p.a.AnswerPairing(ctx, app.PairAccept); err != nil {
			t.Fatal(err)
		}
	}
	grouped(tablet, mt, active)
	waitTrust(t, activePeer, alice, tablet.a.PublicKey(), trust.Authenticated)
	waitTrust(t, passive, alice, tablet.a.PublicKey(), trust.Authenticated)
	waitTrust(t, tablet, alice, passive.a.PublicKey(), trust.Authenticated)
	waitTrust(t, tablet, bob, desk.a.PublicKey(), trust.Authenticated)
	waitTrust(t, desk, alice, tablet.a.PublicKey(), trust.Authenticated)
	// One line sums up what the group's trust brought the tablet (the
	// passive device's key and the desk's).
	tablet.waitEvent(mt, "the summary of the group's trust", func(ev app.Event) bool {
		return ev.Kind == app.EventPairing && strings.Contains(ev.Text, "trust reached this device: 2 key(s) verified")
	})
	// The group's state: the tablet knows all three, the passive device
	// the tablet (from the active device's GroupKeys).
	for _, p := range []*appPeer{laptop, phone} {
		waitGroup(t, tablet, p.a.PublicKey(), "in the group", map[*appPeer]string{laptop: "laptop", phone: "phone"}[p])
	}
	waitGroup(t, passive, tablet.a.PublicKey(), "in the group", "tablet")

	// The laptop removes the tablet: distrusted at the phone and at Bob's
	// desk through the laptop's trust messages, off the device list, and
	// its own trust messages count for nothing any more.
	// A device lists itself again 2–6 s after it connects (and every 15
	// minutes): the running tablet would put itself back if removed
	// before that re-check (docs/PROTOCOL.md "KeySync", removing a
	// device; its distrust makes that harmless). The removal is checked
	// after it.
	time.Sleep(time.Until(tabletUp.Add(8 * time.Second)))
	if err := laptop.a.RemoveDevice(ctx, ids[tablet]); err != nil {
		t.Fatal(err)
	}
	waitTrust(t, phone, alice, tablet.a.PublicKey(), trust.Distrusted)
	waitTrust(t, desk, alice, tablet.a.PublicKey(), trust.Distrusted)
	devs, err := laptop.a.PublishedDevices(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.Key == tablet.a.PublicKey() {
			t.Fatal("the removed tablet is still in the device list")
		}
	}
	waitGroup(t, laptop, tablet.a.PublicKey(), "removed", "tablet")
	// The phone's record says so too, on the laptop's trust message.
	waitGroup(t, phone, tablet.a.PublicKey(), "removed", "tablet")
	// The removed tablet claims the laptop was removed: the phone ignores
	// it (its log says so), and its record keeps the laptop.
	forged, err := keysync.EncodeState(keysync.GroupState{Devices: []keysync.GroupDevice{{
		Key: laptop.a.PublicKey(), Resource: strings.TrimPrefix(ids[laptop], alice+"/"), Label: "laptop",
		Status: keysync.Removed, At: time.Now(), By: tablet.a.PublicKey()}}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := keysync.Encode(keysync.Message{Type: keysync.GroupKeys, Payload: forged})
	if err != nil {
		t.Fatal(err)
	}
	if err := tablet.a.SendToDevice(ctx, ids[phone], msg); err != nil {
		t.Fatal(err)
	}
	phone.waitLog("the tablet's forged group state ignored", "a KeySync message from a device distrusted here: ignored", ids[tablet])
	waitGroup(t, phone, laptop.a.PublicKey(), "in the group", "laptop")
	if _, err := tablet.a.Trust().Distrust(bob, desk.a.PublicKey()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	for _, p := range []*appPeer{laptop, phone} {
		if st, _ := trustState(t, p, bob, desk.a.PublicKey()); st != trust.Authenticated {
			t.Fatalf("the removed tablet's word changed %s's trust in the desk: %v", p.a.Account(), st)
		}
	}

	// The phone leaves the group: the laptop distrusts it (and says
	// why), and so does Bob's desk on the laptop's word; the phone
	// forgets the group.
	ml = laptop.mark()
	if err := phone.a.LeaveDeviceGroup(ctx); err != nil {
		t.Fatal(err)
	}
	laptop.waitEvent(ml, "the warning that the phone left", func(ev app.Event) bool {
		return ev.Kind == app.EventPairing && ev.Warning && strings.Contains(ev.Text, "left your device group")
	})
	waitTrust(t, laptop, alice, phone.a.PublicKey(), trust.Distrusted)
	waitTrust(t, desk, alice, phone.a.PublicKey(), trust.Distrusted)
	why, err := laptop.a.Trust().Why(alice, phone.a.PublicKey())
	if err != nil || !strings.Contains(why[len(why)-1].String(), "left your device group") {
		t.Fatalf("why: %v, %v", why, err)
	}
	waitGroup(t, laptop, phone.a.PublicKey(), "left", "phone")
	if g, err := phone.a.DeviceGroup(ctx); err != nil || len(g) != 0 {
		t.Fatalf("the phone still keeps a group after leaving: %+v, %v", g, err)
	}
	// It does not pair again under its key.
	if err := phone.a.PairDevices(ctx); err == nil || !strings.Contains(err.Error(), "left its device group for good") {
		t.Fatalf("the phone that left pairs again: %v", err)
	}
}

// waitGroup waits until p's device group has the device of key with
// status and label.
func waitGroup(t *testing.T, p *appPeer, key crypto.PublicKey, status, label string) {
	t.Helper()
	deadline := time.Now().Add(cmdBound)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), cmdBound)
		g, err := p.a.DeviceGroup(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range g {
			if d.Key == key && d.Status == status && d.Label == label {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q device %q in the device group: %+v", p.a.Account(), status, label, g)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
