package conformance

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/internal/serverorder"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/transcript"
)

// traceUser is one user of a session trace as the checker replays it: a
// real ServerOrder, an observer Greeting of the running operation, and for
// every subsession the snapshots reveal, a receive-only MessageSecurity and
// a transcript.
type traceUser struct {
	id        string
	inChannel bool
	so        serverorder.Resolver
	op        *greeting.Greeting
	opPI      [32]byte
	opMembers []string
	members   []string // the membership the last completed operation left us in
	watcher   *greeting.Greeter
	subs      []*traceSub
	// messages accepted, per subsession, in the order this user accepted
	// them (own ones at their echo: the record does not say when they were
	// sent).
}

type traceSub struct {
	sid, gk []byte
	sec     *message.Security
	graph   *causal.Graph
	order   []transcript.ID
	authors map[transcript.ID]string
	waiting []pendingData // verified, parents missing
}

type pendingData struct {
	o      *message.Opened
	kind   causal.Kind
	author string
}

// CheckTrace replays a session trace for every user through the real
// components: ServerOrder (packet ids, accept and reject, chain hashes)
// with the greeter in observer mode deciding which packet is final, and
// MessageSecurity plus the transcript with the recorded subsession keys
// (message ids, authors, parents, and the order of what others sent). At
// every snapshot each user's chain and transcript must equal the recorded
// ones. Timers and random choices are not replayed: a founder's random
// first parent is taken from the snapshots.
func CheckTrace(t *Trace, r *Report) {
	_, dir := staticDirectory(t.StaticKeys, r)
	users := map[string]*traceUser{}
	var ids []string
	for id := range t.StaticKeys {
		ids = append(ids, id)
		users[id] = &traceUser{id: id, watcher: &greeting.Greeter{Self: id, Directory: dir}}
	}
	slices.Sort(ids)
	for _, u := range users {
		u.subs = traceSubs(t, u.id, r)
	}
	var members []string // the room
	snap := 0
	for _, ev := range t.Events {
		where := fmt.Sprintf("event %d", ev.I)
		switch ev.Kind {
		case "channel":
			before := members
			members = slices.Clone(ev.MembersAfter)
			var enter, leave []string
			for _, m := range members {
				if !slices.Contains(before, m) {
					enter = append(enter, m)
				}
			}
			for _, m := range before {
				if !slices.Contains(members, m) {
					leave = append(leave, m)
				}
			}
			for _, id := range ids {
				users[id].channelEvent(t, enter, leave, before, members, where, r)
			}
		case "packet":
			r.check(slices.Equal(ev.ChannelMembers, members), "%s: channel members %v, the replay has %v", where, ev.ChannelMembers, members)
			pid := wire.PacketID(ev.Wire, ev.Sender, ev.ChannelMembers)
			r.equal(where+" packet id", hex.EncodeToString(pid[:]), ev.PacketID)
			p, err := wire.DecodeWire(ev.Wire)
			if !r.check(err == nil, "%s: decode: %v", where, err) {
				continue
			}
			for _, id := range ev.ChannelMembers {
				if u := users[id]; u != nil {
					u.packet(p, ev, pid, where, r)
				}
			}
		default:
			r.fail("%s: unknown kind %q", where, ev.Kind)
		}
		for snap < len(t.Snapshots) && t.Snapshots[snap].AfterTraceIndex == ev.I {
			for _, id := range ids {
				users[id].checkSnapshot(&t.Snapshots[snap], r)
			}
			snap++
		}
	}
	r.check(snap == len(t.Snapshots), "%d snapshots never reached", len(t.Snapshots)-snap)
}

// traceSubs builds the subsessions a user's snapshots reveal, with
// receive-only MessageSecurity (no secret of the user is needed).
func traceSubs(t *Trace, id string, r *Report) []*traceSub {
	var out []*traceSub
	for _, s := range t.Snapshots {
		st, ok := s.Members[id]
		if !ok || st.Subsession == nil {
			continue
		}
		sid, err1 := unhex(st.Subsession.SID)
		gk, err2 := unhex(st.Subsession.GroupKey)
		if !r.check(err1 == nil && err2 == nil, "snapshot %q: %s: bad keys", s.Label, id) {
			continue
		}
		if slices.ContainsFunc(out, func(x *traceSub) bool { return string(x.sid) == string(sid) && string(x.gk) == string(gk) }) {
			continue
		}
		var names []string
		pubOf := map[string]crypto.PublicKey{}
		for _, kv := range st.Subsession.EphemeralPubKeys {
			b, err := unhex(kv[1])
			if !r.check(err == nil && len(b) == 32, "snapshot %q: %s: bad key of %s", s.Label, id, kv[0]) {
				continue
			}
			names = append(names, kv[0])
			pubOf[kv[0]] = crypto.PublicKey(b)
		}
		slices.Sort(names)
		pubs := make([]crypto.PublicKey, len(names))
		for i, n := range names {
			pubs[i] = pubOf[n]
		}
		sec, err := message.New(message.Config{Members: names, PublicKeys: pubs, Self: -1, SID: sid, GroupKey: gk})
		if !r.check(err == nil, "snapshot %q: %s: %v", s.Label, id, err) {
			continue
		}
		g, err := causal.New(names, causal.Options{})
		if !r.check(err == nil, "snapshot %q: %s: %v", s.Label, id, err) {
			continue
		}
		out = append(out, &traceSub{sid: sid, gk: gk, sec: sec, graph: g, authors: map[transcript.ID]string{}})
	}
	return out
}

// channelEvent applies a membership change as this user sees it.
func (u *traceUser) channelEvent(t *Trace, enter, leave, before, after []string, where string, r *Report) {
	was, is := slices.Contains(before, u.id), slices.Contains(after, u.id)
	switch {
	case !was && is: // our enter
		u.inChannel = true
		if len(after) == 1 {
			// Alone: we found the chain from a random parent (SyncNew); the
			// snapshots tell which.
			for _, s := range t.Snapshots {
				if st, ok := s.Members[u.id]; ok && st.ServerOrder != nil && len(st.ServerOrder.PacketIDs) > 0 {
					pf, err1 := unhex32(st.ServerOrder.PacketIDs[0])
					ch, err2 := unhex32(st.ServerOrder.ChainHashes[0])
					if r.check(err1 == nil && err2 == nil, "%s: bad snapshot chain", where) {
						u.members = []string{u.id}
						sync := wire.SyncChainHash(pf)
						r.equal(where+" "+u.id+" founding chain hash", hex.EncodeToString(sync[:]), hex.EncodeToString(ch[:]))
						u.so.SyncWith(pf, ch)
					}
					break
				}
			}
		}
	case was && !is: // our leave (rule LI, docs/SESSION.md): everything is reset
		u.inChannel = false
		u.so.Clear()
		u.op, u.members = nil, nil
	case was && is && len(leave) > 0:
		// Rule LOI (docs/SESSION.md, "Channel rules"): a member of the
		// running operation left.
		if u.op != nil && u.so.Ongoing() && slices.ContainsFunc(leave, func(m string) bool { return slices.Contains(u.opMembers, m) }) {
			if _, err := u.so.AcceptLeave(leave, after); r.check(err == nil, "%s: %s: leave pseudo-packet: %v", where, u.id, err) {
				u.op = nil
			}
		}
	}
}

// packet applies a packet as this user sees it.
func (u *traceUser) packet(p wire.Packet, ev TraceEvent, pid [32]byte, where string, r *Report) {
	switch p := p.(type) {
	case *wire.GreetPacket:
		u.greeting(p, ev, pid, where, r)
	case *wire.DataPacket:
		u.data(p, ev, where, r)
	}
}

func (u *traceUser) greeting(p *wire.GreetPacket, ev TraceEvent, pid [32]byte, where string, r *Report) {
	c := greeting.Classify(p, u.op)
	switch c {
	case greeting.ClassInitial, greeting.ClassBoth:
		if p.Metadata == nil {
			r.fail("%s: initial packet without metadata", where)
			return
		}
		cand := &serverorder.Candidate{PacketID: pid, Initial: true, Final: c == greeting.ClassBoth,
			PrevPF: p.Metadata.PrevPF, ChainHash: p.Metadata.ChainHash, ForUs: slices.Contains(p.Members, u.id),
			Members: p.Members, EchoMembers: ev.ChannelMembers, PrevPI: pid}
		if u.so.Synced() && !slices.Contains(u.members, p.Source) {
			return // group filter
		}
		wasSynced := u.so.Synced()
		if err := u.so.Commit(cand); err != nil {
			return
		}
		g, err := u.watcher.Observe(p)
		if err != nil && !errors.Is(err, greeting.ErrNotForThisOperation) {
			r.fail("%s: %s's observer refuses the initial packet: %v", where, u.id, err)
		}
		u.op, u.opPI, u.opMembers = g, pid, slices.Clone(p.Members)
		if wasSynced {
			u.checkLatestPM(p, where, r)
		}
		if c == greeting.ClassBoth {
			u.completed()
		}
	case greeting.ClassFinal:
		cand := &serverorder.Candidate{PacketID: pid, Final: true, PrevPI: u.opPI}
		if u.so.Check(cand) != nil {
			return
		}
		if _, err := u.op.Receive(p); err != nil {
			r.fail("%s: %s: final packet refused: %v", where, u.id, err)
			return
		}
		r.check(u.op.State() == greeting.StateReady, "%s: %s: the final packet did not complete the operation", where, u.id)
		u.so.Commit(cand)
		u.completed()
	default:
		if u.op != nil && u.so.Synced() {
			if _, err := u.op.Receive(p); err != nil && !errors.Is(err, greeting.ErrNotForThisOperation) && !errors.Is(err, greeting.ErrDuplicate) {
				r.fail("%s: %s: %v", where, u.id, err)
			}
		}
	}
}

// completed ends the running operation at its final packet.
func (u *traceUser) completed() {
	if slices.Contains(u.opMembers, u.id) {
		u.members = u.opMembers
	}
	u.op = nil
}

// checkLatestPM: every LATEST_PM of an initial packet accepted by a member
// that was synced (not a newcomer) is a message it accepted: with a
// server-ordered room the initiator's heads reached everyone before its
// proposal (docs/SESSION.md, "Rotation", step 7).
func (u *traceUser) checkLatestPM(p *wire.GreetPacket, where string, r *Report) {
	for _, id := range p.Metadata.LatestPM {
		found := slices.ContainsFunc(u.subs, func(s *traceSub) bool { return s.graph.Has(transcript.ID(id)) })
		r.check(found, "%s: %s: LATEST_PM %x is not in its transcript", where, u.id, id[:4])
	}
}

// data opens a data packet with the subsession its hint and keys name, and
// accepts it into that subsession's transcript (or lets it wait for its
// parents).
func (u *traceUser) data(p *wire.DataPacket, ev TraceEvent, where string, r *Report) {
	var secs []*message.Security
	for _, s := range u.subs {
		secs = append(secs, s.sec)
	}
	k, o, err := message.Trial(secs, p, ev.Sender)
	if err != nil {
		return // a subsession this user is not part of
	}
	s := u.subs[k]
	body, err := message.DecodeBody(o.Body)
	if !r.check(err == nil, "%s: %s: body: %v", where, u.id, err) {
		return
	}
	s.waiting = append(s.waiting, pendingData{o: o, kind: body.Kind, author: s.sec.Members()[o.Author]})
	for progress := true; progress; {
		progress = false
		keep := s.waiting[:0]
		for _, pd := range s.waiting {
			if s.graph.Has(pd.o.ID) {
				progress = true
				continue
			}
			_, err := s.graph.Accept(causal.Message{ID: pd.o.ID, Author: pd.o.Author, Parents: pd.o.Parents, Kind: pd.kind})
			var mp *causal.MissingParentError
			switch {
			case err == nil:
				s.order = append(s.order, pd.o.ID)
				s.authors[pd.o.ID] = pd.author
				progress = true
			case errors.As(err, &mp):
				keep = append(keep, pd)
			default:
				r.fail("%s: %s: message %x refused: %v", where, u.id, pd.o.ID[:4], err)
			}
		}
		s.waiting = keep
	}
}

// checkSnapshot compares the user's chain and transcript with a snapshot.
func (u *traceUser) checkSnapshot(s *TraceSnapshot, r *Report) {
	st, ok := s.Members[u.id]
	if !ok {
		return
	}
	where := fmt.Sprintf("snapshot %q: %s", s.Label, u.id)
	if st.ServerOrder == nil {
		r.check(!u.so.Synced(), "%s: synced, the record is not", where)
	} else if r.check(u.so.Synced(), "%s: not synced, the record is", where) {
		ids, hs := u.so.PacketIDs(), u.so.ChainHashes()
		r.equal(where+" packet ids", hexes(ids), st.ServerOrder.PacketIDs)
		r.equal(where+" chain hashes", hexes(hs), st.ServerOrder.ChainHashes)
		pf, ch := u.so.PrevPF(), u.so.PrevCH()
		r.equal(where+" prevPf", hex.EncodeToString(pf[:]), st.ServerOrder.PrevPF)
		r.equal(where+" prevCh", hex.EncodeToString(ch[:]), st.ServerOrder.PrevCH)
	}
	if st.Subsession == nil {
		return
	}
	sid, _ := unhex(st.Subsession.SID)
	gk, _ := unhex(st.Subsession.GroupKey)
	var sub *traceSub
	for _, x := range u.subs {
		if string(x.sid) == string(sid) && string(x.gk) == string(gk) {
			sub = x
		}
	}
	if !r.check(sub != nil, "%s: no subsession %s", where, st.Subsession.SID[:8]) {
		return
	}
	r.equal(where+" transcript size", len(sub.order), len(st.Subsession.Transcript))
	var othersWant, othersGot []string
	for _, m := range st.Subsession.Transcript {
		id, err := unhex(m.ID)
		if !r.check(err == nil && len(id) == 20, "%s: bad id %q", where, m.ID) {
			continue
		}
		tid := transcript.ID(id)
		i, ok := sub.graph.Lookup(tid)
		if !r.check(ok, "%s: message %s never accepted", where, m.ID[:8]) {
			continue
		}
		r.equal(where+" author of "+m.ID[:8], sub.authors[tid], m.Author)
		var ps []string
		for _, p := range sub.graph.Parents(i) {
			pid := sub.graph.ID(p)
			ps = append(ps, hex.EncodeToString(pid[:]))
		}
		want := slices.Clone(m.Parents)
		slices.Sort(ps)
		slices.Sort(want)
		r.equal(where+" parents of "+m.ID[:8], ps, want)
		k := sub.graph.Kind(i)
		r.check(bodyMatches(m.BodyFields, k), "%s: body of %s: %v, the record has %v", where, m.ID[:8], k, m.BodyFields)
		if m.Author != u.id {
			othersWant = append(othersWant, m.ID)
		}
	}
	for _, id := range sub.order {
		if sub.authors[id] != u.id {
			othersGot = append(othersGot, hex.EncodeToString(id[:]))
		}
	}
	r.equal(where+" order of others' messages", othersGot, othersWant)
}

// bodyMatches checks a recorded body's fields against a transcript kind:
// a Payload has a string; ExplicitAck [false] is automatic, [true] manual;
// Consistency [false] is a flush, [true] a FIN.
func bodyMatches(fields []any, k causal.Kind) bool {
	if len(fields) != 1 {
		return false
	}
	switch v := fields[0].(type) {
	case string:
		return k == causal.KindPayload
	case bool:
		switch k {
		case causal.KindAutoAck, causal.KindFlush:
			return !v
		case causal.KindManualAck, causal.KindFin:
			return v
		}
	}
	return false
}
