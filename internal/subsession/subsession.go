package subsession

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/message"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/wire"
	"github.com/mpenc/mpenc/transcript"
)

// Caps on the cache of wire strings kept for resends. Beyond them the
// oldest strings are forgotten (their messages can then no longer be
// resent by us); only a member frozen for a long time in a busy room gets
// there.
const (
	MaxCachedWires = 1 << 16
	MaxCachedBytes = 32 << 20
)

// maxAckChain bounds the explicit-ack chain re-sent before a message.
const maxAckChain = 64

// Config describes one subsession for [New].
type Config struct {
	// Self is our member id; Members the subsession's members, sorted
	// bytewise, Self included.
	Self    string
	Members []string
	// SID and GroupKey come from the greeting that created the subsession.
	SID, GroupKey []byte
	// SigningKey is our ephemeral key; PublicKeys the members' ephemeral
	// public keys, parallel to Members.
	SigningKey *crypto.SigningKey
	PublicKeys []crypto.PublicKey
	// Timing holds every timer (see [NewTiming] and the profiles).
	Timing Timing
	// Rand supplies IVs, resend jitter and the id-index key; nil means
	// crypto/rand.Reader. Inject a deterministic reader to replay a run.
	Rand io.Reader
}

// Output is what a subsession produced since the last [SessionBase.TakeOutput].
type Output struct {
	// Packets are wire strings to broadcast to the room, in order (new
	// messages and resends alike).
	Packets []string
	Notices []Notice
}

// SessionBase is one subsession: a fixed member set, one group key, a
// transcript, MessageSecurity and the liveness machinery (acks, full-ack
// warnings, resends, the try-accept buffer, heartbeats and presence, FIN).
// It is a deterministic state machine: it has no goroutines and no timers
// of its own and never reads the clock. Every method that can change state
// takes now; [SessionBase.Tick] fires what is due and
// [SessionBase.NextDeadline] says when to call it next; randomness comes
// from Config.Rand. Outputs accumulate until [SessionBase.TakeOutput].
//
// A SessionBase is not safe for concurrent use: its owner serialises every
// call, with a non-decreasing now (an earlier now is treated as the latest
// one seen).
type SessionBase struct {
	timing  Timing
	rand    io.Reader
	start   time.Time
	last    time.Duration
	self    int
	members []string
	sec     *message.Security
	g       *causal.Graph

	state  State
	failed bool
	zeroed bool
	hasFin bool
	finIdx causal.Index
	// finCompleteAt: our FIN became fully acked; complete at this time.
	finCompleteAt time.Duration

	timers   timerHeap
	timerSeq uint64
	// watch holds every monitored message in accept order with its
	// full-ack deadline (accept + FA, so the deadlines are sorted): one
	// heap entry serves the head, and a resend monitor is created only for
	// a message still not fully acked at its deadline.
	watch      []watchItem
	watchTimer time.Duration // the pending watch timer, -1 if none
	monitors   map[causal.Index]*monitor
	dupSeen    map[causal.Index]time.Duration // duplicates seen before a monitor exists

	ackPending    bool
	ackDue        time.Duration
	hbDue         time.Duration // when the next heartbeat is due, -1 if none
	hbTimer       time.Duration // the pending heartbeat timer, -1 if none
	bufTimer      time.Duration // the pending buffer timer, -1 if none
	lastMonitored time.Duration
	ownAt         []time.Duration // when we sent our message of seq k+1

	presence  []presence
	inChannel []bool

	wires     map[causal.Index]string
	wireBytes int
	wireOrder []causal.Index
	ackResent map[causal.Index]time.Duration

	buf             tryBuffer
	payloadsUnacked int

	out     []string
	notices []Notice
	stats   Stats
	scratch []int
	heads   []transcript.ID // reused for the parents of our sends

	// othersTried counts, per member index of a channel sender, the packets
	// of the current minute whose author we looked for among the other
	// members' keys (a third member's resend) after the sender's own key
	// failed: each costs n − 1 verifications, so a member flooding packets
	// with a junk signature gets a few (OthersPerMinute), then one
	// verification per packet.
	othersTried  []int
	othersMinute time.Duration
}

// OthersPerMinute is how many packets per channel sender and minute may
// be checked against every member's key when the sender's key fails.
const OthersPerMinute = 8

type watchItem struct {
	idx causal.Index
	due time.Duration
}

// monitor is the resend state of a monitored message not yet fully acked.
type monitor struct {
	due    time.Duration
	round  uint8
	dupAt  time.Duration
	hasDup bool
}

type presence struct {
	knownAt  time.Duration
	expireAt time.Duration
	timerAt  time.Duration // the pending expiry timer, -1 if none
	expired  bool
	parting  bool // its FIN is accepted
	absent   bool // its FIN is fully acked
}

// New starts a subsession at now, JOINED.
func New(cfg Config, now time.Time) (*SessionBase, error) {
	if err := cfg.Timing.Validate(); err != nil {
		return nil, err
	}
	self := slices.Index(cfg.Members, cfg.Self)
	if self < 0 {
		return nil, fmt.Errorf("subsession: %q is not a member", cfg.Self)
	}
	sec, err := message.New(message.Config{Members: cfg.Members, PublicKeys: cfg.PublicKeys, Self: self,
		SigningKey: cfg.SigningKey, SID: cfg.SID, GroupKey: cfg.GroupKey, Rand: cfg.Rand})
	if err != nil {
		return nil, fmt.Errorf("subsession: %w", err)
	}
	var k [8]byte
	if err := primitive.RandomBytes(cfg.Rand, k[:]); err != nil {
		return nil, fmt.Errorf("subsession: %w", err)
	}
	g, err := causal.New(cfg.Members, causal.Options{HashKey: binary.LittleEndian.Uint64(k[:])})
	if err != nil {
		return nil, fmt.Errorf("subsession: %w", err)
	}
	n := len(cfg.Members)
	s := &SessionBase{
		timing:     cfg.Timing,
		rand:       cfg.Rand,
		start:      now,
		self:       self,
		members:    slices.Clone(cfg.Members),
		sec:        sec,
		g:          g,
		state:      Joined,
		monitors:   make(map[causal.Index]*monitor),
		dupSeen:    make(map[causal.Index]time.Duration),
		watchTimer: -1,
		presence:   make([]presence, n),
		inChannel:  make([]bool, n),
		wires:      make(map[causal.Index]string),
		ackResent:  make(map[causal.Index]time.Duration),
		buf:        newTryBuffer(n),
		hbDue:      -1,
		hbTimer:    -1,
		bufTimer:   -1,
	}
	for i := range s.inChannel {
		s.inChannel[i] = true
	}
	for a := range s.presence {
		s.presence[a].timerAt = -1
		if a != self && s.timing.Heartbeats {
			s.presence[a].expireAt = s.timing.OthersExpiry
			s.armExpiry(a)
		}
	}
	s.rescheduleHeartbeat()
	return s, nil
}

// since converts now to the subsession's clock, never going backwards.
func (s *SessionBase) since(now time.Time) time.Duration {
	if d := now.Sub(s.start); d > s.last {
		s.last = d
	}
	return s.last
}

func (s *SessionBase) at(t time.Duration) time.Time { return s.start.Add(t) }

// enter advances the clock to now for an external event: timers strictly
// before now fire first.
func (s *SessionBase) enter(now time.Time) time.Duration {
	t := s.since(now)
	s.runTimers(t, false)
	return t
}

func (s *SessionBase) emit(n Notice) {
	if n.Warning() {
		s.stats.Warnings++
	}
	s.notices = append(s.notices, n)
}

// TakeOutput returns and clears the packets to broadcast and the notices
// produced since the last call. Drain it after every call that takes now.
func (s *SessionBase) TakeOutput() Output {
	o := Output{Packets: s.out, Notices: s.notices}
	s.out, s.notices = nil, nil
	return o
}

// --- Sending ---

// SendPayload sends a Payload (only while JOINED and not failed).
func (s *SessionBase) SendPayload(text string, now time.Time) (transcript.ID, error) {
	t := s.enter(now)
	switch {
	case s.state != Joined:
		return transcript.ID{}, ErrState
	case s.failed:
		return transcript.ID{}, ErrFailed
	case text == "":
		return transcript.ID{}, ErrEmpty
	}
	return s.sendAt(causal.KindPayload, text, t)
}

// SendAck sends an ExplicitAck: manual = true is the user's "read up to
// here" (`[true]`), false an automatic "delivered" (`[false]`). Allowed
// until the subsession completes.
func (s *SessionBase) SendAck(manual bool, now time.Time) (transcript.ID, error) {
	t := s.enter(now)
	if s.state.Done() {
		return transcript.ID{}, ErrState
	}
	k := causal.KindAutoAck
	if manual {
		k = causal.KindManualAck
	}
	return s.sendAt(k, "", t)
}

// AckNow sends at once the automatic ack that is pending, if any, and
// reports whether it did: the session calls it before kicking a member,
// whose messages we accepted must not be left unacked.
func (s *SessionBase) AckNow(now time.Time) bool {
	return s.ackNow(s.enter(now))
}

func (s *SessionBase) ackNow(t time.Duration) bool {
	if !s.ackPending || s.state.Done() {
		return false
	}
	s.ackPending = false
	_, err := s.sendAt(causal.KindAutoAck, "", t)
	return err == nil
}

// SendFlush sends a Consistency(false), "please ack now" (as the session
// does in the current subsession when a greeting is accepted). Allowed
// until the subsession completes, unless failed.
func (s *SessionBase) SendFlush(now time.Time) (transcript.ID, error) {
	t := s.enter(now)
	switch {
	case s.state.Done():
		return transcript.ID{}, ErrState
	case s.failed:
		return transcript.ID{}, ErrFailed
	}
	return s.sendAt(causal.KindFlush, "", t)
}

// Fin starts the shutdown (fin() of docs/MESSAGE-LAYER.md §4.8), only while
// JOINED: it sends a FIN citing all heads and moves to PARTING. The
// subsession completes BC after the FIN is fully acked, or FinTimeout after
// this call, PARTED if every Payload is fully acked, else PART_FAILED.
func (s *SessionBase) Fin(now time.Time) (transcript.ID, error) {
	return s.fin(s.enter(now))
}

func (s *SessionBase) fin(t time.Duration) (transcript.ID, error) {
	if s.state != Joined {
		return transcript.ID{}, ErrState
	}
	id, err := s.sendAt(causal.KindFin, "", t)
	if err != nil {
		return id, err
	}
	s.hasFin = true
	s.finIdx, _ = s.g.Lookup(id)
	s.setState(Parting, t)
	s.schedule(t+s.timing.FinTimeout, tFinTimeout, 0, transcript.ID{})
	if s.g.FullyAcked(s.finIdx) { // alone in the subsession
		s.finCompleteAt = t + s.timing.FinComplete
		s.schedule(s.finCompleteAt, tFinComplete, 0, transcript.ID{})
	}
	return id, nil
}

// SendLeaveIntent announces that we leave the whole session: a FIN by a
// plain send, then Fin, whose FIN has the first as its only parent (the
// double FIN others read as a leave intent). Only while JOINED. Wait for
// FinComplete, then leave the channel.
func (s *SessionBase) SendLeaveIntent(now time.Time) (first, second transcript.ID, err error) {
	t := s.enter(now)
	if s.state != Joined {
		return first, second, ErrState
	}
	if first, err = s.sendAt(causal.KindFin, "", t); err != nil {
		return first, second, err
	}
	second, err = s.fin(t)
	return first, second, err
}

// SendChainCheck states the ServerOrder position that created this
// subsession (our addition, docs/PROTOCOL.md §8): members compare it with
// theirs. Allowed while JOINED and not failed.
func (s *SessionBase) SendChainCheck(pos message.ChainPosition, now time.Time) (transcript.ID, error) {
	t := s.enter(now)
	switch {
	case s.state != Joined:
		return transcript.ID{}, ErrState
	case s.failed:
		return transcript.ID{}, ErrFailed
	}
	return s.sendBody(message.Body{Kind: causal.KindChainCheck, Chain: &pos}, t)
}

// sendAt makes, records and queues a new message of ours.
func (s *SessionBase) sendAt(kind causal.Kind, text string, t time.Duration) (transcript.ID, error) {
	return s.sendBody(message.Body{Kind: kind, Text: text}, t)
}

func (s *SessionBase) sendBody(b message.Body, t time.Duration) (transcript.ID, error) {
	kind, text := b.Kind, b.Text
	if s.zeroed {
		return transcript.ID{}, ErrState
	}
	body, err := message.EncodeBody(b)
	if err != nil {
		return transcript.ID{}, fmt.Errorf("subsession: %w", err)
	}
	s.heads = s.g.AppendHeads(s.heads[:0])
	parents := s.heads // Seal and Accept copy what they keep
	sealed, err := s.sec.Seal(parents, body)
	if err != nil {
		return transcript.ID{}, fmt.Errorf("subsession: %w", err)
	}
	res, err := s.g.Accept(causal.Message{ID: sealed.ID, Author: s.self, Parents: parents, Kind: kind})
	if err != nil {
		// Our own message citing our heads always passes; this is a bug.
		return transcript.ID{}, fmt.Errorf("subsession: internal error, own message rejected: %w", err)
	}
	s.out = append(s.out, sealed.Wire)
	s.stats.Sent++
	switch kind {
	case causal.KindPayload:
		s.stats.Payloads++
	case causal.KindAutoAck:
		s.stats.AutoAcks++
	case causal.KindManualAck:
		s.stats.ManualAcks++
	case causal.KindFlush:
		s.stats.Flushes++
	case causal.KindFin:
		s.stats.Fins++
	}
	s.accepted(res, t, text, b.Chain, sealed.Wire, false)
	return sealed.ID, nil
}

// --- Receiving ---

// Receive handles a decoded data packet p whose exact wire string is w,
// received from the channel sender (a member id, or anything if unknown). It
// first runs the timers due strictly before now. In order
// (docs/MESSAGE-LAYER.md §2, §3.2, §4.5, §4.6): SIDKEY_HINT and lengths;
// duplicates (accepted, buffered or rejected ids) without any cryptography;
// the signature with the sender's key, then the others' (the key names the
// author); decryption; the body; the transcript's checks. The Result says
// whether the packet belongs to this subsession (Outcome.Mine) and what
// happened.
func (s *SessionBase) Receive(p *wire.DataPacket, w string, sender string, now time.Time) Result {
	t := s.enter(now)
	s.stats.Received++
	if s.zeroed {
		return Result{Outcome: NotMine, Err: ErrState}
	}
	if err := s.sec.CheckPacket(p); err != nil {
		if errors.Is(err, message.ErrHint) {
			s.stats.NotMine++
			return Result{Outcome: NotMine, Err: err}
		}
		return Result{Outcome: Invalid, Err: err}
	}
	id := transcript.ID(p.ID())
	if idx, ok := s.g.Lookup(id); ok {
		s.stats.Duplicates++
		s.duplicate(idx, t)
		return Result{Outcome: Duplicate, ID: id, Author: s.members[s.g.Author(idx)]}
	}
	if e := s.buf.entries[id]; e != nil {
		s.stats.Duplicates++
		s.buf.touch(e, w)
		return Result{Outcome: Duplicate, ID: id, Author: s.members[e.author]}
	}
	if s.g.WasRejected(id) {
		s.stats.Duplicates++
		return Result{Outcome: Duplicate, ID: id}
	}
	o, err := s.sec.OpenFrom(p, sender, func() bool { return s.mayTryOthers(sender, t) })
	if err != nil {
		var ae *message.AuthorError
		if errors.As(err, &ae) {
			s.reject(id, ae.Author, err, t)
			s.wake(id, t)
			return Result{Outcome: Rejected, ID: id, Author: s.members[ae.Author], Err: err}
		}
		s.stats.NotMine++
		return Result{Outcome: NotMine, Err: err}
	}
	author := s.members[o.Author]
	if o.Author == s.self {
		s.reject(id, o.Author, ErrOwnKey, t)
		s.wake(id, t)
		return Result{Outcome: Rejected, ID: id, Author: author, Err: ErrOwnKey}
	}
	body, err := message.DecodeBody(o.Body)
	if err != nil {
		err = &message.AuthorError{Author: o.Author, ID: id, Err: err}
		s.reject(id, o.Author, err, t)
		s.wake(id, t)
		return Result{Outcome: Rejected, ID: id, Author: author, Err: err}
	}
	e := &bufEntry{id: id, author: o.Author, parents: o.Parents, kind: body.Kind, text: body.Text, chain: body.Chain, wire: w}
	out, err := s.offer(e, t, false)
	if out == Accepted || out == Rejected {
		s.wake(id, t)
	}
	return Result{Outcome: out, ID: id, Author: author, Err: err}
}

// mayTryOthers spends one of sender's trials of the other members' keys for
// this minute, if any is left.
func (s *SessionBase) mayTryOthers(sender string, t time.Duration) bool {
	i, ok := slices.BinarySearch(s.members, sender)
	if !ok {
		return false
	}
	if s.othersTried == nil || t-s.othersMinute >= time.Minute {
		s.othersTried = make([]int, len(s.members))
		s.othersMinute = t
	}
	if s.othersTried[i] >= OthersPerMinute {
		return false
	}
	s.othersTried[i]++
	return true
}

// ReceiveWire decodes a wire string and calls Receive. A string that is not
// a data packet is Invalid.
func (s *SessionBase) ReceiveWire(w string, sender string, now time.Time) Result {
	d, err := decodeWire(w)
	if err != nil {
		return Result{Outcome: Invalid, Err: err}
	}
	return s.Receive(d, w, sender, now)
}

// offer runs the transcript's checks on a verified message: accept,
// buffer or reject. It does not wake waiters.
func (s *SessionBase) offer(e *bufEntry, t time.Duration, fromBuffer bool) (Outcome, error) {
	res, err := s.g.Accept(causal.Message{ID: e.id, Author: e.author, Parents: e.parents, Kind: e.kind})
	var mp *causal.MissingParentError
	switch {
	case err == nil:
		s.stats.Accepted++
		s.accepted(res, t, e.text, e.chain, e.wire, e.reported)
		return Accepted, nil
	case errors.As(err, &mp):
		e.missing = mp.Missing
		if !fromBuffer {
			e.firstAt = t
			s.stats.Buffered++
		}
		s.makeRoom(e, t)
		s.buf.add(e)
		s.armBuffer(e.firstAt + s.timing.NotAccepted)
		return Buffered, err
	case err == causal.ErrDuplicate:
		return Duplicate, err
	default:
		s.reject(e.id, e.author, err, t)
		return Rejected, err
	}
}

// wake offers again the buffered messages waiting for id, which was just
// accepted or rejected, and so on down the cascade, breadth first: a chain
// that arrived in reverse is accepted in causal order in one step.
func (s *SessionBase) wake(id transcript.ID, t time.Duration) {
	queue := []transcript.ID{id}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		rejected := s.g.WasRejected(p)
		for _, w := range s.buf.takeWaiters(p) {
			e := s.buf.entries[w]
			if e == nil {
				continue
			}
			if k := slices.Index(e.missing, p); k >= 0 {
				e.missing = slices.Delete(e.missing, k, k+1)
			}
			if len(e.missing) > 0 && !rejected {
				continue
			}
			s.buf.remove(e)
			if out, _ := s.offer(e, t, true); out == Accepted || out == Rejected {
				queue = append(queue, e.id)
			}
		}
	}
}

// makeRoom drops buffered entries so that e fits: first the author's
// oldest while the author holds half the cap, then the oldest overall.
func (s *SessionBase) makeRoom(e *bufEntry, t time.Duration) {
	authorCap := max(1, s.buf.cap/2)
	for s.buf.perAuthor[e.author] >= authorCap {
		s.overflow(s.buf.oldest(e.author), t)
	}
	size := len(e.wire) + len(e.text) + 20*len(e.parents)
	for s.buf.len() > 0 && (s.buf.len() >= s.buf.cap || s.buf.bytes+size > MaxBufferBytes) {
		s.overflow(s.buf.oldest(-1), t)
	}
}

func (s *SessionBase) overflow(e *bufEntry, t time.Duration) {
	s.buf.remove(e)
	s.emit(Notice{Kind: BufferOverflow, At: s.at(t), ID: e.id, Author: s.members[e.author]})
}

// armBuffer makes sure the buffer timer fires by at.
func (s *SessionBase) armBuffer(at time.Duration) {
	if s.state.Done() || (s.bufTimer >= 0 && s.bufTimer <= at) {
		return
	}
	s.bufTimer = at
	s.schedule(at, tBuffer, 0, transcript.ID{})
}

// bufferDeadlines reports the buffered messages that waited NotAccepted
// (BC) and drops those that waited BufferDrop (FA), oldest first, then
// re-arms the timer for the next deadline. The buffer holds at most a few
// hundred entries, so a scan is cheap.
func (s *SessionBase) bufferDeadlines(t time.Duration) {
	next := time.Duration(-1)
	for _, it := range slices.Clone(s.buf.age) {
		e := s.buf.entries[it.id]
		if e == nil || e.seq != it.seq {
			continue
		}
		if !e.reported && e.firstAt+s.timing.NotAccepted <= t {
			e.reported = true
			s.emit(Notice{Kind: MsgNotAccepted, At: s.at(t), ID: e.id, Author: s.members[e.author], Missing: slices.Clone(e.missing)})
		}
		if e.firstAt+s.timing.BufferDrop <= t {
			s.buf.remove(e)
			s.emit(Notice{Kind: MsgDropped, At: s.at(t), ID: e.id, Author: s.members[e.author], Missing: slices.Clone(e.missing)})
			continue
		}
		d := e.firstAt + s.timing.BufferDrop
		if !e.reported {
			d = e.firstAt + s.timing.NotAccepted
		}
		if next < 0 || d < next {
			next = d
		}
	}
	if next >= 0 {
		s.armBuffer(next)
	}
}

// reject records a verified message as invalid and warns, naming its
// author. A fork fails the subsession.
//
// After a fork, members may hold different branches: one that saw a2 before
// a3 rejects a3, one that saw only a3 accepts it and rejects a2 later. A
// message citing the branch we rejected is then rejected with
// ErrRejectedParent, and its notice names that message's author, who may
// be honest: the error, not the name, says what is wrong.
func (s *SessionBase) reject(id transcript.ID, author int, err error, t time.Duration) {
	s.g.Reject(id)
	s.stats.Rejected++
	fork := errors.Is(err, causal.ErrFork)
	s.emit(Notice{Kind: SecurityWarning, At: s.at(t), ID: id, Author: s.members[author], Err: err, Terminal: fork})
	if fork {
		s.failed = true
	}
}

// duplicate handles a duplicate of accepted message idx
// (docs/MESSAGE-LAYER.md §4.5).
func (s *SessionBase) duplicate(idx causal.Index, t time.Duration) {
	if m := s.monitors[idx]; m != nil {
		m.dupAt, m.hasDup = t, true
	} else if !s.g.FullyAcked(idx) && s.g.Kind(idx).Monitored() {
		s.dupSeen[idx] = t
	}
	if s.state.Done() {
		return
	}
	author, kind := s.g.Author(idx), s.g.Kind(idx)
	if author == s.self || kind.IsExplicitAck() {
		return
	}
	am, acked := s.g.FirstAckBy(idx, s.self)
	if !acked {
		// The sender is visibly waiting for our ack.
		s.wantAck(t + s.timing.DuplicateAckDelay)
		return
	}
	if !s.g.Kind(am).IsExplicitAck() || s.g.FullyAcked(am) {
		return // a monitored ack has its own monitor; a fully acked one reached everyone
	}
	// Our ack was an ExplicitAck, which nothing else would resend.
	if last, ok := s.ackResent[am]; ok && t-last < s.timing.BC {
		return
	}
	if len(s.ackResent) > 1024 {
		for k, v := range s.ackResent {
			if t-v >= s.timing.BC {
				delete(s.ackResent, k)
			}
		}
	}
	s.ackResent[am] = t
	s.resend(am)
}

// --- Accepted messages and full acks ---

// accepted does the bookkeeping of a message that entered the transcript
// (ours at send time, others' when their parents were all there).
func (s *SessionBase) accepted(res causal.Accepted, t time.Duration, text string, chain *message.ChainPosition, w string, late bool) {
	idx := res.Index
	author, kind := s.g.Author(idx), s.g.Kind(idx)
	own := author == s.self
	id := s.g.ID(idx)
	s.emit(Notice{Kind: MsgAccepted, At: s.at(t), ID: id, Index: idx, Author: s.members[author], Own: own,
		Body: kind, Text: text, Chain: chain, Late: late, AfterOwnFin: !own && s.hasFin && kind == causal.KindPayload})
	if kind == causal.KindPayload {
		s.payloadsUnacked++
	}
	s.cacheWire(idx, w)
	if kind.Monitored() && !s.state.Done() {
		s.watch = append(s.watch, watchItem{idx, t + s.timing.FA})
		if s.watchTimer < 0 {
			s.watchTimer = t + s.timing.FA
			s.schedule(s.watchTimer, tWatch, 0, transcript.ID{})
		}
	}
	if own {
		s.ownAt = append(s.ownAt, t)
		s.ackPending = false // our message cites every head: it acks all we hold
		if kind.Monitored() {
			s.lastMonitored = t
			s.rescheduleHeartbeat()
		}
	} else {
		if kind.Monitored() && !s.state.Done() {
			d := s.timing.AckDelay
			if kind == causal.KindFin || s.hasFin {
				// Others' FINs are acked at once (docs/MESSAGE-LAYER.md §4.3); and
				// once our own FIN is out, so is everything: the subsession
				// completes about BC after its FIN is acked, long before the
				// normal delay, and a message that crossed our FIN (sent by
				// a member being excluded, say) would otherwise never be
				// acked, a false "not seen" warning at its author.
				d = s.timing.FinAckDelay
			}
			s.wantAck(t + d)
		}
		// Freshness: the author has seen our latest message among its
		// ancestors.
		if v := s.g.ClockAt(idx, s.self); v > 0 {
			s.renew(author, s.ownAt[v-1], t)
		}
		if kind == causal.KindFin {
			s.presence[author].parting = true
		}
		if s.g.LeaveIntent(idx) {
			s.emit(Notice{Kind: LeaveIntent, At: s.at(t), ID: id, Author: s.members[author]})
		}
	}
	for _, i := range res.FullyAcked {
		s.fullyAcked(i, t)
	}
}

func (s *SessionBase) fullyAcked(i causal.Index, t time.Duration) {
	kind, author := s.g.Kind(i), s.g.Author(i)
	s.dropWire(i)
	if kind == causal.KindPayload {
		s.payloadsUnacked--
	}
	if !kind.Monitored() {
		return
	}
	delete(s.monitors, i)
	delete(s.dupSeen, i)
	s.emit(Notice{Kind: MsgFullyAcked, At: s.at(t), ID: s.g.ID(i), Index: i, Author: s.members[author], Body: kind})
	if kind != causal.KindFin {
		return
	}
	if author == s.self {
		if s.hasFin && i == s.finIdx && s.state == Parting {
			s.finCompleteAt = t + s.timing.FinComplete
			s.schedule(s.finCompleteAt, tFinComplete, 0, transcript.ID{})
		}
		return
	}
	if f, _ := s.g.Fin(author); f == i {
		s.presence[author].absent = true
		s.emit(Notice{Kind: MemberAbsent, At: s.at(t), Author: s.members[author]})
	}
}

// wantAck makes sure an automatic ack goes out by at. Acks are transitive,
// so one pending deadline serves every message waiting for our ack: that
// is the batching.
func (s *SessionBase) wantAck(at time.Duration) {
	if s.state.Done() || (s.ackPending && s.ackDue <= at) {
		return
	}
	s.ackPending, s.ackDue = true, at
	s.schedule(at, tAck, 0, transcript.ID{})
}

// watchDue handles the watched messages whose full-ack deadline (accept + FA)
// has come: a message not fully acked gets MsgNotFullyAcked and a resend
// monitor (docs/MESSAGE-LAYER.md §4.2, §4.4): the author resends at once (its
// first round is at FA), the others one round later (FA + BC ± jitter). Then
// the timer is re-armed for the next deadline.
func (s *SessionBase) watchDue(t time.Duration) {
	k := 0
	for ; k < len(s.watch) && s.watch[k].due <= t; k++ {
		idx, due := s.watch[k].idx, s.watch[k].due
		if s.g.FullyAcked(idx) {
			continue
		}
		s.emit(s.notFullyAcked(idx, due, false))
		m := &monitor{}
		if d, ok := s.dupSeen[idx]; ok {
			m.dupAt, m.hasDup = d, true
			delete(s.dupSeen, idx)
		}
		s.monitors[idx] = m
		if s.g.Author(idx) == s.self {
			s.resendRound(idx, due)
		} else {
			m.due = due + s.jitter(s.timing.ResendOthersExtra)
			s.schedule(m.due, tResend, uint32(idx), s.g.ID(idx))
		}
	}
	s.watch = s.watch[k:]
	if len(s.watch) == 0 {
		s.watch = nil // let the backing array go
	} else if cap(s.watch) > 64 && len(s.watch) < cap(s.watch)/4 {
		s.watch = append([]watchItem(nil), s.watch...)
	}
	if len(s.watch) > 0 && s.watchTimer < 0 && !s.state.Done() {
		s.watchTimer = s.watch[0].due
		s.schedule(s.watchTimer, tWatch, 0, transcript.ID{})
	}
}

func (s *SessionBase) notFullyAcked(idx causal.Index, t time.Duration, final bool) Notice {
	n := Notice{Kind: MsgNotFullyAcked, At: s.at(t), ID: s.g.ID(idx), Index: idx,
		Author: s.members[s.g.Author(idx)], Body: s.g.Kind(idx), Final: final, Absent: true}
	s.scratch = s.g.UnackedBy(idx, s.scratch[:0])
	for _, r := range s.scratch {
		n.Members = append(n.Members, s.members[r])
		if !s.presence[r].absent {
			n.Absent = false
		}
	}
	return n
}

// --- Resends ---

// resendRound is one round of a message's resend monitor
// (docs/MESSAGE-LAYER.md §4.4): stop when it is fully acked or nobody who
// lacks it is in the room; the author resends every round, others skip a
// round after seeing a duplicate within ResendThrottle; then back off.
func (s *SessionBase) resendRound(idx causal.Index, t time.Duration) {
	m := s.monitors[idx]
	if s.g.FullyAcked(idx) {
		delete(s.monitors, idx)
		return
	}
	s.scratch = s.g.UnackedBy(idx, s.scratch[:0])
	inRoom, allAbsent := false, true
	for _, r := range s.scratch {
		inRoom = inRoom || s.inChannel[r]
		allAbsent = allAbsent && s.presence[r].absent
	}
	if !inRoom {
		delete(s.monitors, idx)
		return
	}
	if s.g.Author(idx) == s.self || !m.hasDup || t-m.dupAt >= s.timing.ResendThrottle {
		if !s.resend(idx) {
			delete(s.monitors, idx) // its wire string was evicted
			return
		}
		s.stats.ResendRounds++
	}
	interval := s.timing.ResendMax
	if m.round < 16 && !allAbsent {
		interval = min(s.timing.ResendBase<<m.round, s.timing.ResendMax)
	}
	m.round++
	m.due = t + s.jitter(interval)
	s.schedule(m.due, tResend, uint32(idx), s.g.ID(idx))
}

// resend re-broadcasts the cached wire string of idx, preceded by its
// explicit-ack chain (the ExplicitAcks directly before it, oldest first:
// nothing else resends them). It reports false if idx's string is gone.
func (s *SessionBase) resend(idx causal.Index) bool {
	w, ok := s.wires[idx]
	if !ok {
		return false
	}
	for _, a := range s.ackChain(idx) {
		if aw, ok := s.wires[a]; ok {
			s.out = append(s.out, aw)
			s.stats.Resent++
		}
	}
	s.out = append(s.out, w)
	s.stats.Resent++
	return true
}

// ackChain returns the ExplicitAcks reachable from idx's parents through
// ExplicitAcks only, in accept order.
func (s *SessionBase) ackChain(idx causal.Index) []causal.Index {
	var chain []causal.Index
	stack := slices.Clone(s.g.Parents(idx))
	for len(stack) > 0 && len(chain) < maxAckChain {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !s.g.Kind(p).IsExplicitAck() || slices.Contains(chain, p) {
			continue
		}
		chain = append(chain, p)
		stack = append(stack, s.g.Parents(p)...)
	}
	slices.Sort(chain)
	return chain
}

// jitter returns d ± ResendJitter·d, drawn from the injected reader.
func (s *SessionBase) jitter(d time.Duration) time.Duration {
	j := s.timing.ResendJitter
	if j == 0 {
		return d
	}
	var b [2]byte
	if err := primitive.RandomBytes(s.rand, b[:]); err != nil {
		return d
	}
	u := float64(binary.BigEndian.Uint16(b[:])) / 65535
	return time.Duration(float64(d) * (1 - j + 2*j*u))
}

// --- Wire cache ---

func (s *SessionBase) cacheWire(idx causal.Index, w string) {
	if w == "" {
		return
	}
	s.wires[idx] = w
	s.wireBytes += len(w)
	s.wireOrder = append(s.wireOrder, idx)
	for len(s.wires) > MaxCachedWires || s.wireBytes > MaxCachedBytes {
		old := s.wireOrder[0]
		s.wireOrder = s.wireOrder[1:]
		s.dropWire(old)
	}
	if len(s.wireOrder) > 2*len(s.wires)+64 {
		live := make([]causal.Index, 0, len(s.wires))
		for _, i := range s.wireOrder {
			if _, ok := s.wires[i]; ok {
				live = append(live, i)
			}
		}
		s.wireOrder = live
	}
}

func (s *SessionBase) dropWire(idx causal.Index) {
	if w, ok := s.wires[idx]; ok {
		s.wireBytes -= len(w)
		delete(s.wires, idx)
	}
}

// --- Heartbeats and presence ---

func (s *SessionBase) rescheduleHeartbeat() {
	if !s.timing.Heartbeats || s.state != Joined || len(s.members) < 2 {
		s.hbDue = -1
		return
	}
	s.hbDue = s.lastMonitored + s.timing.HeartbeatIdle
	if s.hbTimer < 0 || s.hbTimer > s.hbDue {
		s.hbTimer = s.hbDue
		s.schedule(s.hbDue, tHeartbeat, 0, transcript.ID{})
	}
}

// heartbeat sends a Consistency(false) when our newest monitored message is
// HeartbeatIdle old, so that the others' acks prove they are alive
// (docs/MESSAGE-LAYER.md §4.7). Never body type 2: the reference cannot
// decode it.
func (s *SessionBase) heartbeat(t time.Duration) {
	s.hbTimer = -1
	if s.state != Joined || s.failed {
		return
	}
	if t < s.hbDue { // a later send moved it: re-arm
		s.hbTimer = s.hbDue
		s.schedule(s.hbDue, tHeartbeat, 0, transcript.ID{})
		return
	}
	others := false
	for i, in := range s.inChannel {
		others = others || (in && i != s.self)
	}
	if !others {
		s.hbDue = t + s.timing.HeartbeatIdle
		s.hbTimer = s.hbDue
		s.schedule(s.hbDue, tHeartbeat, 0, transcript.ID{})
		return
	}
	if _, err := s.sendAt(causal.KindFlush, "", t); err == nil {
		s.stats.Flushes--
		s.stats.Heartbeats++
	}
}

// renew records that member a has seen our message sent at ts.
func (s *SessionBase) renew(a int, ts, t time.Duration) {
	p := &s.presence[a]
	if ts <= p.knownAt && (p.expireAt != 0 || !s.timing.Heartbeats) {
		return
	}
	p.knownAt = ts
	if !s.timing.Heartbeats || s.state.Done() {
		return
	}
	p.expireAt = ts + s.timing.OthersExpiry
	s.armExpiry(a)
	// An ack of an old message of ours does not bring an expired member
	// back: only one that keeps it fresh past now.
	if p.expired && p.expireAt > t {
		p.expired = false
		s.emit(Notice{Kind: MemberPresent, At: s.at(t), Author: s.members[a]})
	}
}

// armExpiry makes sure member a's expiry timer fires by its expireAt.
func (s *SessionBase) armExpiry(a int) {
	p := &s.presence[a]
	if p.timerAt >= 0 && p.timerAt <= p.expireAt {
		return
	}
	p.timerAt = p.expireAt
	s.schedule(p.expireAt, tExpire, uint32(a), transcript.ID{})
}

func (s *SessionBase) expire(a int, t time.Duration) {
	p := &s.presence[a]
	if t < p.expireAt { // renewed since: re-arm
		s.armExpiry(a)
		return
	}
	if p.expired || s.state.Done() || p.parting || p.absent || !s.inChannel[a] {
		return
	}
	p.expired = true
	s.emit(Notice{Kind: MemberExpired, At: s.at(t), Author: s.members[a]})
}

// --- Completion ---

func (s *SessionBase) setState(st State, t time.Duration) {
	s.state = st
	s.emit(Notice{Kind: StateChanged, At: s.at(t), State: st})
}

// complete ends the subsession: a final MsgNotFullyAcked for every
// monitored message still not fully acked ("can no longer be verified"),
// then PARTED or PART_FAILED and FinComplete, once.
func (s *SessionBase) complete(t time.Duration) {
	if s.state.Done() {
		return
	}
	for _, i := range s.g.NotFullyAcked(nil) {
		if s.g.Kind(i).Monitored() {
			s.emit(s.notFullyAcked(i, t, true))
		}
	}
	clear(s.monitors)
	clear(s.dupSeen)
	s.watch = nil
	s.ackPending = false
	s.hbDue = -1
	st := Parted
	if s.payloadsUnacked > 0 {
		st = PartFailed
	}
	s.setState(st, t)
	var fin transcript.ID
	if s.hasFin {
		fin = s.g.ID(s.finIdx)
	}
	s.emit(Notice{Kind: FinComplete, At: s.at(t), ID: fin, State: st})
}

// Stop ends the subsession at once (a further rotation force-stops a
// previous subsession still shutting down): it completes as a FIN timeout
// would, whatever the state. Its inconsistency, if any, shows in the final
// notices and in PART_FAILED.
func (s *SessionBase) Stop(now time.Time) {
	s.complete(s.enter(now))
}

// Zero completes the subsession if needed (as Stop does) and wipes its
// group key; afterwards it sends nothing and takes no packet (NotMine).
// Call it when the session drops the subsession. The ephemeral signing
// key belongs to the caller, who may still use it in other subsessions.
func (s *SessionBase) Zero(now time.Time) {
	s.Stop(now)
	s.zeroed = true
	s.sec.Zero()
}

// String describes the subsession without revealing key material.
func (s *SessionBase) String() string {
	return fmt.Sprintf("subsession(%s of %d, %v, %d messages)", s.members[s.self], len(s.members), s.state, s.g.Len())
}

// --- Queries and channel ---

// SetChannelMembers tells the subsession who is in the room now. Members
// not listed have left the channel: resends stop for messages that only
// they lack, and they are shown as LeftChannel rather than expired.
func (s *SessionBase) SetChannelMembers(members []string) {
	for i, m := range s.members {
		s.inChannel[i] = slices.Contains(members, m)
	}
}

// Heads returns the transcript heads, sorted bytewise: our next message's
// parents, and the LATEST_PM of a greeting we initiate.
func (s *SessionBase) Heads() []transcript.ID { return s.g.Heads() }

// Has reports whether a message is accepted.
func (s *SessionBase) Has(id transcript.ID) bool { return s.g.Has(id) }

// IsConsistent reports whether every Payload is fully acked.
func (s *SessionBase) IsConsistent() bool { return s.payloadsUnacked == 0 }

// State returns the lifecycle state.
func (s *SessionBase) State() State { return s.state }

// Failed reports whether a fork was seen: no more Payloads or flushes.
func (s *SessionBase) Failed() bool { return s.failed }

// Graph returns the transcript, for causal.MessageLog.AddTranscript and
// queries. Do not call Accept or Reject on it.
func (s *SessionBase) Graph() *causal.Graph { return s.g }

// Members returns the members, sorted; Self our id.
func (s *SessionBase) Members() []string { return slices.Clone(s.members) }

// Self returns our member id.
func (s *SessionBase) Self() string { return s.members[s.self] }

// Hint returns the subsession's SIDKEY_HINT.
func (s *SessionBase) Hint() byte { return s.sec.Hint() }

// Verifier returns what recognises this subsession's packets once it is
// gone (public keys and SHA256(sid ‖ gk), no secret); take it before Zero.
func (s *SessionBase) Verifier() *message.Verifier { return s.sec.Verifier() }

// Presence returns what we know of member's liveness.
func (s *SessionBase) Presence(member string) Presence {
	i, ok := s.g.MemberIndex(member)
	switch {
	case !ok:
		return 0
	case i == s.self:
		return PresenceSelf
	case !s.inChannel[i]:
		return LeftChannel
	case s.presence[i].absent:
		return IntentAbsent
	case s.presence[i].parting:
		return MemberParting
	case s.presence[i].expired:
		return NotResponding
	}
	return Present
}

// LastSeen returns when the member was last known alive: the send time of
// our latest message it has acked (the subsession's start if none).
func (s *SessionBase) LastSeen(member string) (time.Time, bool) {
	i, ok := s.g.MemberIndex(member)
	if !ok || i == s.self {
		return time.Time{}, false
	}
	return s.at(s.presence[i].knownAt), true
}

// OwnFresh reports whether we still count as fresh ourselves: our last
// monitored message is younger than OwnExpiry (the reference's ownExpiry).
func (s *SessionBase) OwnFresh(now time.Time) bool {
	return now.Sub(s.at(s.lastMonitored)) < s.timing.OwnExpiry
}

// Buffered returns how many verified messages wait for parents; the UI may
// show "N messages waiting for older ones", never their content.
func (s *SessionBase) Buffered() int { return s.buf.len() }

// Stats returns the counters.
func (s *SessionBase) Stats() Stats {
	st := s.stats
	st.BufferLen, st.BufferBytes = s.buf.len(), s.buf.bytes
	st.CachedWires, st.CachedBytes = len(s.wires), s.wireBytes
	return st
}

func decodeWire(w string) (*wire.DataPacket, error) {
	p, err := wire.DecodeWire(w)
	if err != nil {
		return nil, err
	}
	d, ok := p.(*wire.DataPacket)
	if !ok {
		return nil, message.ErrPacket
	}
	return d, nil
}
