//go:build integration

package integration

import (
	"errors"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/internal/wire"

	"github.com/mpenc/mpenc/session"
)

// Known session bugs found over XMPP, reproduced. They fail until fixed,
// so they only run with MPENC_XMPP_BUGS=1:
//
//	MPENC_XMPP_BUGS=1 ./integration/run.sh go test -tags integration -run TestIntegrationSessionBug -count=1 -v ./integration/
//
// Each one passes once its bug is fixed; then drop the knownBug call.

func knownBug(t *testing.T) {
	if os.Getenv("MPENC_XMPP_BUGS") != "1" {
		t.Skip("a known session bug (see the test's comment): set MPENC_XMPP_BUGS=1 to reproduce it")
	}
}

// TestIntegrationSessionBugPlainClientAutoInclude: with AutoInclude, a
// client that does not speak mpENC (it announced no identity key) entering
// the room is proposed for inclusion. The operation stalls on it until the
// abort (D5) after (2+n)·(BC+1 s); the abort then excludes the honest
// members that had no chance to take their turn (see
// TestIntegrationSessionBugStalledJoinerExcludesMembers), and the session
// collapses; a device that enters meanwhile is kicked (rule EO) and its
// join fails. Expected: the plain client disturbs nothing.
func TestIntegrationSessionBugPlainClientAutoInclude(t *testing.T) {
	knownBug(t)
	s := serverFromEnv(t)
	room := s.newRoom(t)
	ps := s.formAuto(t, room, 3, loopback(peerOpts{}))
	r := s.rawDial(t, 5)
	r.join(room, "plain-client", "")
	plainAndLateJoin(t, s, room, ps, r, func(late *peer) { late.join() })
}

// TestIntegrationSessionBugStalledJoinerExcludesMembers: three devices in
// a session (no auto-inclusion); a fourth client enters, announcing an
// identity key, and device 0 includes it, but it never answers (a hung
// client, played by a raw client that stays in the room). After the
// operation timeout, (2+n)·(BC+1 s), device 0 aborts the operation (D5,
// ABORT_DOWN), and the abort puts into taskExclude every previous member
// whose confirmation is missing (Greeting.Unconfirmed): devices 1 and 2,
// who never got the upflow they needed from the silent newcomer. They are
// excluded, one after the other. Expected: only the silent newcomer is at
// fault; devices 0, 1 and 2 stay in one session.
func TestIntegrationSessionBugStalledJoinerExcludesMembers(t *testing.T) {
	knownBug(t)
	s := serverFromEnv(t)
	room := s.newRoom(t)
	ps := s.formByHand(t, room, 3, loopback(peerOpts{}))
	r := s.rawDial(t, 5)
	r.join(room, "hung", identityXML(testKey(t, 77)))
	ps[0].waitNotes("the join request", func(ns []session.Notice) bool {
		return slices.ContainsFunc(ns, func(n session.Notice) bool { return n.Kind == session.JoinRequest && n.Author == r.jid.String() })
	})
	err := ps[0].sess.Include(ctxBound(t), []string{r.jid.String()})
	t.Logf("include of the silent client: %v", err)
	for _, p := range ps {
		p.waitNotes("the operation ending", func(ns []session.Notice) bool {
			return len(ofKind(ns, session.OpFailed)) > 0
		})
	}
	// After the abort, the three must still be in one session, and talk.
	exchange(t, ps, ps, "after the abort")
	waitSession(t, ps)
	for _, p := range ps {
		for _, m := range ofKind(p.notices(), session.Membership) {
			if len(m.Exclude) > 0 {
				t.Errorf("%v: %v\n%s", p, m, dumpNotes(p.notices()))
			}
		}
	}
}

// TestIntegrationSessionBugLateGreetingPacket: an operation fails (a
// member dies during an include, rule LOI) while the newcomer's answer to
// it is still on its way; the members exclude the dead one and include the
// newcomer again. The newcomer's answer to the failed operation reaches
// the room after the new operation's initial packet. The other members
// ignore it and complete the new operation (they count the newcomer as a
// member), but the newcomer's own Greeting takes its stale packet as
// "altered or forged packet from <itself>: packet is not part of this
// operation: other member list" and fails: SecurityWarning, no session;
// the others later report it MemberExpired, and its join times out. Seen
// by chance under load in TestIntegrationSessionDisconnectDuringOperation
// with AutoInclude; made deterministic here by holding the newcomer's
// first greeting packet until it has seen the second operation's initial
// packet. Expected: a packet of another operation is ignored (the
// Greeting "ignores what is not for it", SESSION-RULES §3.2) and the
// newcomer joins.
func TestIntegrationSessionBugLateGreetingPacket(t *testing.T) {
	knownBug(t)
	s := serverFromEnv(t)
	room := s.newRoom(t)
	var armed atomic.Bool
	var victimProxy atomic.Pointer[proxy]
	var ps []*peer
	for i := range 4 {
		o := loopback(peerOpts{})
		if i == 2 {
			o.proxied = true
			o.intercept = func(ev channel.Event) bool {
				if !armed.Load() || !isProposal(ev) {
					return false
				}
				victimProxy.Load().cut()
				return true
			}
		}
		p := s.newPeer(t, i, room, o)
		if i == 2 {
			victimProxy.Store(p.via)
		}
		ps = append(ps, p)
	}
	ps[0].join()
	include(t, ps[0], ps[1:]...)
	waitSession(t, ps)
	victim := ps[2]
	rest := []*peer{ps[0], ps[1], ps[3]}
	armed.Store(true)

	// The newcomer holds its first greeting packet until it has seen a
	// second proposal that includes it.
	release := make(chan struct{})
	var proposals atomic.Int32
	var self atomic.Value
	var held atomic.Bool
	o := loopback(peerOpts{
		watch: func(ev channel.Event) {
			if id, _ := self.Load().(string); isProposal(ev) && id != "" && proposalIncludes(ev, id) && proposals.Add(1) == 2 {
				close(release)
			}
		},
		send: func(w string) {
			p, err := wire.DecodeWire(w)
			if _, ok := p.(*wire.GreetPacket); err == nil && ok && held.CompareAndSwap(false, true) {
				select {
				case <-release:
				case <-time.After(waitBound):
				}
			}
		},
	})
	newcomer := s.newPeer(t, 4, room, o)
	self.Store(newcomer.id)
	joined := make(chan error, 1)
	go func() { joined <- newcomer.sess.Join(ctxBound(t)) }()
	waitJoinRequest(t, ps[0], newcomer)
	if err := ps[0].sess.Include(ctxBound(t), []string{newcomer.id}); !errors.Is(err, session.ErrAborted) {
		t.Fatalf("first include: %v, want ErrAborted", err)
	}
	for _, p := range rest {
		p.waitNotes("the exclusion", func(ns []session.Notice) bool {
			return slices.ContainsFunc(ns, func(n session.Notice) bool {
				return n.Kind == session.Membership && slices.Equal(n.Exclude, []string{victim.id})
			})
		})
	}
	include2(t, ps[0], newcomer, joined)
	waitSession(t, append(slices.Clone(rest), newcomer))
	for _, n := range ofKind(newcomer.notices(), session.SecurityWarning) {
		t.Errorf("%v: %v", newcomer, n)
	}
}

// proposalIncludes reports whether the proposal ev names member.
func proposalIncludes(ev channel.Event, member string) bool {
	p, err := wire.DecodeWire(ev.Body)
	if err != nil {
		return false
	}
	g, ok := p.(*wire.GreetPacket)
	return ok && slices.Contains(g.Members, member)
}
