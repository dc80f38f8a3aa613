//go:build integration

package integration

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/internal/wire"

	"github.com/mpenc/mpenc/session"
)

// TestIntegrationSessionLateGreetingPacket: an operation fails (a member dies
// during an include, rule LOI of docs/SESSION.md) while the newcomer's answer
// to it is still on its way; the members exclude the dead one and include the
// newcomer again. The newcomer's answer to the failed operation reaches the
// room after the new operation's initial packet. Everyone, the newcomer
// included, must ignore it as a packet of another operation and complete the
// new one. (Found here: the newcomer's Greeting used to take its own stale
// packet, signed with its previous attempt's ephemeral key, as "altered or
// forged" and fail; internal/greeting's TestLatePacketsOfFailedInclude is the
// unit test.) Seen by chance under load in
// TestIntegrationSessionDisconnectDuringOperation with AutoInclude; made
// deterministic here by holding the newcomer's first greeting packet until it
// has seen the second operation's initial packet.
func TestIntegrationSessionLateGreetingPacket(t *testing.T) {
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
