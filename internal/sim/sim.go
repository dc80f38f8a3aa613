// Package sim drives many session cores over an in-memory server-ordered
// room (internal/memhub) on one virtual clock with seeded randomness: the
// deterministic simulator of issue [D]. A World replays exactly from its
// seed; invariants are checked after every step by the caller (see
// Check*).
package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/memhub"
	"github.com/mpenc/mpenc/internal/subsession"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/transcript"
)

// Start is the virtual time every world starts at.
var Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Member is one simulated user.
type Member struct {
	ID      string
	Core    *session.Core
	Key     *crypto.SigningKey
	Notices []session.Notice
	// Sent are the ids of the Payloads this member sent, with the
	// subsession members they went to.
	Sent []SentMessage
	// Left are the times the member was out of the room: its own leave
	// events, and crashes (a crashed member's state is gone with it).
	Left    []time.Time
	checked int // notices already seen by CheckStep
	views   map[transcript.ID]msgView
}

// SentMessage is a Payload a member sent. A message typed while its
// author was out of the session waits in its outbox: Queued is set, ID is
// the handle the Queued notice named, and Readers are the members it was
// meant for (the author's Message notice that replaces the handle gives
// the id it was sent with, if it was).
type SentMessage struct {
	ID      transcript.ID
	Readers []string
	At      time.Time
	Queued  bool
}

// World is the simulation: a hub, members and a clock.
type World struct {
	Hub     *memhub.Hub
	Rand    *rand.Rand
	Timing  subsession.Timing
	Members map[string]*Member
	order   []string // member ids, sorted, for deterministic iteration
	keys    map[string]crypto.PublicKey
	seed    uint64
	// OnStep, when set, runs after every step (for invariant checks).
	OnStep func(w *World) error
	// Intercept, when set, sees every channel action before the hub does:
	// it may return a replacement list (empty drops it). Tests use it to
	// hold a packet back (see Later) or to observe what is sent.
	Intercept func(id string, a session.Action) []session.Action
	steps     int
	frozen    map[string]bool
	later     []laterFn
	laterSeq  int
}

type laterFn struct {
	at  time.Time
	seq int
	f   func()
}

// Freeze makes a member stop processing anything (it stays in the room:
// a hung client); Thaw resumes it, dropping what it missed meanwhile.
func (w *World) Freeze(id string) {
	if w.frozen == nil {
		w.frozen = map[string]bool{}
	}
	w.frozen[id] = true
}

// Thaw resumes a frozen member.
func (w *World) Thaw(id string) { delete(w.frozen, id) }

// Later runs f at virtual time at (in order with everything else).
func (w *World) Later(at time.Time, f func()) {
	w.laterSeq++
	w.later = append(w.later, laterFn{at: at, seq: w.laterSeq, f: f})
	slices.SortStableFunc(w.later, func(a, b laterFn) int { return a.at.Compare(b.at) })
}

// Act performs a channel action as if member id had asked for it.
func (w *World) Act(id string, a session.Action) {
	switch a.Kind {
	case session.ActSend:
		w.Hub.Send(id, a.Wire)
	case session.ActEnter:
		w.Hub.Enter(id)
	case session.ActLeave:
		w.Hub.Leave(id)
	case session.ActKick:
		w.Hub.Kick(id, a.Members, a.Reason)
	}
}

// NewWorld creates a world with the given seed, room faults and timing.
func NewWorld(seed uint64, faults memhub.Faults, timing subsession.Timing) *World {
	return &World{
		Hub:     memhub.NewHub(Start, seed, faults),
		Rand:    rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15+1)),
		Timing:  timing,
		Members: map[string]*Member{},
		keys:    map[string]crypto.PublicKey{},
		seed:    seed,
	}
}

// Now returns the virtual time.
func (w *World) Now() time.Time { return w.Hub.Now() }

// Steps returns the number of steps run.
func (w *World) Steps() int { return w.steps }

// randReader is a deterministic io.Reader for one member.
type randReader struct{ r *rand.ChaCha8 }

func (r randReader) Read(p []byte) (int, error) { return r.r.Read(p) }

// Add creates a member (out of the room) with its own seeded randomness.
func (w *World) Add(id string, configure func(*session.Config)) *Member {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(w.Rand.Uint32())
	}
	rr := randReader{rand.NewChaCha8(seed)}
	key, err := crypto.GenerateSigningKey(rr)
	if err != nil {
		panic(err)
	}
	w.keys[id] = key.Public()
	cfg := session.Config{
		Self:      id,
		Identity:  key,
		Directory: directory(w.keys),
		Timing:    w.Timing,
		Rand:      rr,
	}
	if configure != nil {
		configure(&cfg)
	}
	core, err := session.NewCore(cfg, w.Now())
	if err != nil {
		panic(err)
	}
	m := &Member{ID: id, Core: core, Key: key}
	w.Members[id] = m
	w.order = append(w.order, id)
	slices.Sort(w.order)
	return m
}

type directory map[string]crypto.PublicKey

func (d directory) IdentityKey(m string) (crypto.PublicKey, error) {
	k, ok := d[m]
	if !ok {
		return crypto.PublicKey{}, fmt.Errorf("sim: no identity key for %q", m)
	}
	return k, nil
}

// Order returns the member ids, sorted.
func (w *World) Order() []string { return slices.Clone(w.order) }

// apply performs a member's channel actions and keeps its notices.
func (w *World) apply(m *Member) {
	for _, a := range m.Core.TakeActions() {
		acts := []session.Action{a}
		if w.Intercept != nil {
			acts = w.Intercept(m.ID, a)
		}
		for _, a := range acts {
			w.Act(m.ID, a)
		}
	}
	ns := m.Core.TakeNotices()
	m.record(ns)
	m.Notices = append(m.Notices, ns...)
}

// Do runs a user action on a member now and applies its outputs.
func (w *World) Do(id string, f func(c *session.Core, now time.Time)) {
	m := w.Members[id]
	f(m.Core, w.Now())
	w.apply(m)
}

// Send makes a member send a message, recording it.
func (w *World) Send(id, text string) error {
	m := w.Members[id]
	readers := m.Core.Members()
	seen := len(m.Notices)
	tid, err := m.Core.Send(text, w.Now())
	w.apply(m)
	if err != nil {
		return err
	}
	for _, n := range m.Notices[seen:] {
		if n.Kind == session.Queued && n.ID == tid {
			m.Sent = append(m.Sent, SentMessage{ID: tid, Readers: slices.Clone(n.Members), At: w.Now(), Queued: true})
			return nil
		}
	}
	var rs []string
	for _, r := range readers {
		if r != id {
			rs = append(rs, r)
		}
	}
	m.Sent = append(m.Sent, SentMessage{ID: tid, Readers: rs, At: w.Now()})
	return nil
}

// next returns the time of the next thing to happen and who it is for
// ("" for the hub, "*" for a Later callback).
func (w *World) next() (time.Time, string, bool) {
	t, hubOK := w.Hub.NextTime()
	who := ""
	if len(w.later) > 0 && (!hubOK || w.later[0].at.Before(t)) {
		t, who, hubOK = w.later[0].at, "*", true
	}
	for _, id := range w.order {
		if w.frozen[id] {
			continue
		}
		d, ok := w.Members[id].Core.NextDeadline()
		if ok && (!hubOK && who == "" || d.Before(t)) {
			t, who, hubOK = d, id, true
		}
	}
	return t, who, hubOK
}

// Step performs the next thing to happen: a hub step, or a member's timer.
// It returns false when nothing is pending.
func (w *World) Step() (bool, error) {
	t, who, ok := w.next()
	if !ok {
		return false, nil
	}
	w.steps++
	if who == "*" {
		w.Hub.Advance(t)
		f := w.later[0].f
		w.later = w.later[1:]
		f()
	} else if who != "" {
		w.Hub.Advance(t)
		m := w.Members[who]
		m.Core.Tick(t)
		w.apply(m)
		if d, ok := m.Core.NextDeadline(); ok && !d.After(t) {
			// A deadline that Tick does not move would be fired for ever.
			return false, fmt.Errorf("%s: deadline %v still due after Tick (livelock)", who, d.Sub(Start))
		}
	} else if d, delivered := w.Hub.Step(); delivered {
		if m := w.Members[d.To]; m != nil && !w.frozen[d.To] {
			if d.Event.Kind == channel.EventOwnLeave {
				m.Left = append(m.Left, d.At)
			}
			m.Core.HandleEvent(d.Event, d.At)
			w.apply(m)
		}
	}
	if w.OnStep != nil {
		if err := w.OnStep(w); err != nil {
			return false, err
		}
	}
	return true, nil
}

// RunUntil steps until virtual time t (or until nothing is pending), then
// advances the clock to t.
func (w *World) RunUntil(t time.Time) error {
	for {
		nt, _, ok := w.next()
		if !ok || nt.After(t) {
			w.Hub.Advance(t)
			return nil
		}
		if _, err := w.Step(); err != nil {
			return err
		}
	}
}

// RunFor runs for a virtual duration.
func (w *World) RunFor(d time.Duration) error { return w.RunUntil(w.Now().Add(d)) }

// Warnings returns a member's warning notices.
func (m *Member) Warnings() []session.Notice {
	var out []session.Notice
	for _, n := range m.Notices {
		if n.IsWarning() {
			out = append(out, n)
		}
	}
	return out
}

// sentAs maps the handles of the member's queued messages to the ids they
// were sent with (from the Message notices that replaced them).
func (m *Member) sentAs() map[transcript.ID]transcript.ID {
	out := map[transcript.ID]transcript.ID{}
	for _, n := range m.Notices {
		if n.Kind == session.Message && n.Own && n.Replaces != (transcript.ID{}) {
			out[n.Replaces] = n.ID
		}
	}
	return out
}

// Count returns how many notices of kind the member got.
func (m *Member) Count(kind session.NoticeKind) int {
	n := 0
	for _, x := range m.Notices {
		if x.Kind == kind {
			n++
		}
	}
	return n
}

// Restart restarts the server: every member in the room loses it at once
// (each sees its own leave; nobody sees the others leave), and each
// member's transport, as channel/xmpp does, enters the room again by itself
// after back(id) (a negative duration: never).
func (w *World) Restart(back func(id string) time.Duration) {
	now := w.Now()
	for _, id := range w.Hub.Members() {
		w.Members[id].Left = append(w.Members[id].Left, now)
		if d := back(id); d >= 0 {
			w.Later(now.Add(d), func() { w.Hub.Enter(id) })
		}
	}
	w.Hub.Restart()
}

// Crash drops a member's connection (the server sees it leave; the member
// sees its own leave).
func (w *World) Crash(id string) {
	w.Members[id].Left = append(w.Members[id].Left, w.Now())
	w.Hub.Crash(id)
}
