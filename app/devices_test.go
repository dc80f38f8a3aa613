package app

import (
	"testing"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/devchan"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/trust"
)

type testDevice struct {
	key   *crypto.SigningKey
	party devchan.Party
}

func newTestDevice(account string, n byte) testDevice {
	var seed [32]byte
	seed[0], seed[31] = n, 0xa1
	k := crypto.NewSigningKey(seed)
	fp := trust.FingerprintOf(k.Public())
	return testDevice{k, devchan.Party{Account: account, Device: devchan.DeviceID(fp[:8]), Identity: k.Public()}}
}

// established returns the two sides of a new session, a initiating.
func established(t *testing.T, a, b testDevice) (*devchan.Session, *devchan.Session) {
	t.Helper()
	be, err := primitive.GenerateX25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	sa, req, err := devchan.Initiate(a.party, a.key, b.party, devchan.Digest(be.Public()), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := devchan.ParseRequest(req, b.party.Device)
	if err != nil {
		t.Fatal(err)
	}
	sb, resp, err := devchan.Accept(b.party, b.key, a.party, r, be)
	if err != nil {
		t.Fatal(err)
	}
	if err := sa.HandleResponse(resp, a.key); err != nil {
		t.Fatal(err)
	}
	// The initiator's confirmation (an empty packet, as app sends).
	p, err := sa.Seal(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Open(p); err != nil || sb.State() != devchan.Confirmed {
		t.Fatalf("confirmation: %v, %v", err, sb.State())
	}
	return sa, sb
}

// TestDeviceSessionChoice: the newest session is used, except that of two
// begun at about the same time (both sides started one), each side uses
// the one the smaller device id began, so both pick the same; a retired
// session is never used, nor one the other side began until it is
// confirmed (a request nobody follows up never takes our traffic).
func TestDeviceSessionChoice(t *testing.T) {
	x, y := newTestDevice("x@example.org", 1), newTestDevice("y@example.org", 2)
	// Each side's view: x's sessions with y, and y's with x.
	xy1, yx1 := established(t, x, y) // x began it
	yx2, xy2 := established(t, y, x) // y began it
	t0 := time.Unix(1_800_000_000, 0)
	smaller := x
	if string(y.party.Device[:]) < string(x.party.Device[:]) {
		smaller = y
	}
	pick := func(local devchan.Party, sessions ...*devSession) *devSession {
		d := &devices{local: local, sessions: map[peerID][]*devSession{}}
		for _, s := range sessions {
			d.sessions[s.peer()] = append(d.sessions[s.peer()], s)
		}
		return d.usable(sessions[0].peer())
	}
	// At the same time (created 20 s apart, in either order on either
	// side): both pick the session the smaller device began.
	ax := pick(x.party, &devSession{s: xy1, created: t0}, &devSession{s: xy2, created: t0.Add(20 * time.Second)})
	ay := pick(y.party, &devSession{s: yx1, created: t0.Add(20 * time.Second)}, &devSession{s: yx2, created: t0})
	beganByX := func(s *devchan.Session, local testDevice) bool {
		return (s.Role() == devchan.Initiator) == (local.party == x.party)
	}
	if beganByX(ax.s, x) != (smaller.party == x.party) || beganByX(ay.s, y) != (smaller.party == x.party) {
		t.Fatalf("x picked the session begun by x: %v; y: %v; the smaller is x: %v", beganByX(ax.s, x), beganByX(ay.s, y), smaller.party == x.party)
	}
	// Minutes apart: the newer, whoever began it.
	if got := pick(x.party, &devSession{s: xy1, created: t0.Add(5 * time.Minute)}, &devSession{s: xy2, created: t0}); got.s != xy1 {
		t.Fatal("the newer session (x's) was not chosen")
	}
	if got := pick(x.party, &devSession{s: xy1, created: t0}, &devSession{s: xy2, created: t0.Add(5 * time.Minute)}); got.s != xy2 {
		t.Fatal("the newer session (y's) was not chosen")
	}
	// Begun by the other side and not confirmed: not yet.
	yd, xd := newTestDevice("y@example.org", 3), newTestDevice("x@example.org", 1)
	be, _ := primitive.GenerateX25519Key(nil)
	_, req, _ := devchan.Initiate(yd.party, yd.key, xd.party, devchan.Digest(be.Public()), nil)
	r, _ := devchan.ParseRequest(req, xd.party.Device)
	unconfirmed, _, err := devchan.Accept(xd.party, xd.key, yd.party, r, be)
	if err != nil {
		t.Fatal(err)
	}
	if got := pick(x.party, &devSession{s: unconfirmed, created: t0}); got != nil {
		t.Fatal("an unconfirmed session begun by the other side was chosen")
	}
	// Retired: never.
	if got := pick(x.party, &devSession{s: xy1, created: t0}, &devSession{s: xy2, created: t0.Add(5 * time.Minute), retired: t0.Add(6 * time.Minute)}); got.s != xy1 {
		t.Fatal("a retired session was chosen")
	}
}
