package app

import (
	"context"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/trusttest"
	"github.com/mpenc/mpenc/trust"
)

// TestMemberTrustClaimedKeys: the member list marks a member whose key
// another account had first, as the store judges it, and a member of
// another account that announces our own key, which the store does not
// know: claimed and not trusted, whatever the user decides, as the
// room's key directory answers.
func TestMemberTrustClaimedKeys(t *testing.T) {
	a, r := testApp(t, t.TempDir()+"/a.db")
	defer a.Close(context.Background())
	r.trust = a.Trust()
	ours := a.PublicKey()
	dir := &trust.Directory{Store: r.trust, Self: r.self, SelfKey: ours}
	const ghost, mallory = "ghost@evil.example/r", "mallory@evil.example/r"
	for _, o := range []struct {
		member string
		key    crypto.PublicKey
	}{{bob, trusttest.Key(1)}, {ghost, trusttest.Key(1)}, {mallory, ours}, {carol, trusttest.Key(2)}} {
		dir.ObserveKey(o.member, o.key) // the warnings are the directory's tests'
	}
	if _, err := r.trust.Trust(mallory, ours); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		member           string
		claimed, trusted bool
	}{{bob, false, true}, {ghost, true, false}, {mallory, true, false}, {carol, false, true}} {
		rec, ok := r.memberTrust(c.member)
		if !ok || rec.Claimed != c.claimed || rec.Trusted != c.trusted {
			t.Errorf("memberTrust(%s) = %+v, %v; want claimed %v, trusted %v", c.member, rec, ok, c.claimed, c.trusted)
		}
		if _, err := dir.IdentityKey(c.member); (err == nil) != c.trusted {
			t.Errorf("the list and the directory disagree about %s: IdentityKey = %v", c.member, err)
		}
	}
	if _, ok := r.memberTrust("nobody@example.org/x"); ok {
		t.Error("a member that announced no key has a record")
	}
}
