package session

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/transcript"
)

// Session is an mpENC session in one room: a [Core] run by one goroutine
// over a [channel.GroupChannel], on the wall clock.
//
// Create it with [New], start it with [Session.Run] (which owns the event
// loop until its context ends or [Session.Close]), and drain
// [Session.Notices]: notices queue without bound until read. The methods
// are safe for concurrent use; each runs on the event loop.
type Session struct {
	ch   channel.GroupChannel
	core *Core
	now  func() time.Time

	reqs    chan func(*Core)
	notices chan Notice
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when Run returns

	actMu   sync.Mutex
	actions []Action
	actWake chan struct{}

	noteMu    sync.Mutex
	noteQueue []Notice
	noteWake  chan struct{}

	closeOnce sync.Once
	wg        sync.WaitGroup
	runErr    error
}

// New creates a session of cfg.Self over ch. It does not touch the channel
// until Run.
func New(cfg Config, ch channel.GroupChannel) (*Session, error) {
	if cfg.Self != ch.Self() {
		return nil, errors.New("session: Config.Self differs from the channel's Self")
	}
	core, err := NewCore(cfg, time.Now())
	if err != nil {
		return nil, err
	}
	return &Session{
		ch: ch, core: core, now: time.Now,
		reqs:     make(chan func(*Core)),
		notices:  make(chan Notice),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		actWake:  make(chan struct{}, 1),
		noteWake: make(chan struct{}, 1),
	}, nil
}

// Notices returns the stream of notices. It must be drained; it is closed
// when Run returns.
func (s *Session) Notices() <-chan Notice { return s.notices }

// Run runs the event loop until ctx ends or Close is called. It returns
// nil then, or the error that stopped it (the channel's events closed).
func (s *Session) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.wg.Add(2)
	go s.actLoop(ctx)
	go s.noteLoop()
	defer func() {
		close(s.done)
		cancel() // a slow Send or Enter in actLoop must not hold Close up
		s.wg.Wait()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	events := s.ch.Events()
	for {
		if d, ok := s.core.NextDeadline(); ok {
			timer.Reset(max(time.Until(d), 0))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.stop:
			return nil
		case ev, ok := <-events:
			if !ok {
				s.runErr = errors.New("session: channel closed")
				return s.runErr
			}
			s.core.HandleEvent(ev, s.now())
		case f := <-s.reqs:
			f(s.core)
		case <-timer.C:
			s.core.Tick(s.now())
		}
		s.flush()
	}
}

// flush hands the core's actions and notices to their goroutines.
func (s *Session) flush() {
	if a := s.core.TakeActions(); len(a) > 0 {
		s.actMu.Lock()
		s.actions = append(s.actions, a...)
		s.actMu.Unlock()
		select {
		case s.actWake <- struct{}{}:
		default:
		}
	}
	if n := s.core.TakeNotices(); len(n) > 0 {
		s.noteMu.Lock()
		s.noteQueue = append(s.noteQueue, n...)
		s.noteMu.Unlock()
		select {
		case s.noteWake <- struct{}{}:
		default:
		}
	}
}

// actLoop performs channel actions in order, off the event loop, so that a
// slow network never stalls the protocol.
func (s *Session) actLoop(ctx context.Context) {
	defer s.wg.Done()
	for {
		s.actMu.Lock()
		batch := s.actions
		s.actions = nil
		s.actMu.Unlock()
		for _, a := range batch {
			var err error
			switch a.Kind {
			case ActSend:
				err = s.ch.Send(ctx, a.Wire)
			case ActKick:
				err = s.ch.Kick(ctx, a.Members, a.Reason)
			case ActEnter:
				if err = s.ch.Enter(ctx); err != nil && ctx.Err() == nil {
					seq := a.Seq
					s.post(func(c *Core) { c.EnterFailed(seq, err, s.now()) })
				}
			case ActLeave:
				err = s.ch.Leave(ctx)
			}
			// Otherwise best effort: the protocol sees the outcome as
			// channel events (a send that fails is resent, a kick that
			// fails is retried by the rules that asked for it).
		}
		select {
		case <-s.actWake:
		case <-s.done:
			return
		}
	}
}

// noteLoop forwards notices to Notices().
func (s *Session) noteLoop() {
	defer s.wg.Done()
	defer close(s.notices)
	for {
		s.noteMu.Lock()
		batch := s.noteQueue
		s.noteQueue = nil
		s.noteMu.Unlock()
		for _, n := range batch {
			select {
			case s.notices <- n:
			case <-s.done:
				return
			}
		}
		select {
		case <-s.noteWake:
		case <-s.done:
			return
		}
	}
}

// post queues f for the event loop without waiting for it to run.
func (s *Session) post(f func(c *Core)) {
	select {
	case s.reqs <- f:
	case <-s.done:
	}
}

// do runs f on the event loop and waits for it.
func (s *Session) do(ctx context.Context, f func(c *Core)) error {
	ran := make(chan struct{})
	select {
	case s.reqs <- func(c *Core) { f(c); close(ran) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrClosed
	}
	select {
	case <-ran:
		return nil
	case <-s.done:
		return ErrClosed
	}
}

// wait waits for an operation to settle.
func (s *Session) wait(ctx context.Context, op *Op, err error) error {
	if err != nil {
		return err
	}
	select {
	case <-op.wait():
		return op.Err()
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrClosed
	}
}

func (s *Session) start(ctx context.Context, f func(c *Core, now time.Time) (*Op, error)) error {
	var op *Op
	var err error
	if e := s.do(ctx, func(c *Core) { op, err = f(c, s.now()) }); e != nil {
		return e
	}
	return s.wait(ctx, op, err)
}

// Join enters the room and waits until we are in a session (included by
// the others, or founding it alone), or ctx ends.
func (s *Session) Join(ctx context.Context) error {
	return s.start(ctx, func(c *Core, now time.Time) (*Op, error) { return c.Join(now) })
}

// Part leaves the session properly (announced, acknowledged) and the room.
func (s *Session) Part(ctx context.Context) error {
	return s.start(ctx, func(c *Core, now time.Time) (*Op, error) { return c.Part(now) })
}

// Include brings members (who must be in the room) into the session.
func (s *Session) Include(ctx context.Context, members []string) error {
	return s.start(ctx, func(c *Core, now time.Time) (*Op, error) { return c.Include(members, now) })
}

// Exclude removes members from the session.
func (s *Session) Exclude(ctx context.Context, members []string) error {
	return s.start(ctx, func(c *Core, now time.Time) (*Op, error) { return c.Exclude(members, now) })
}

// Refresh renews the group key.
func (s *Session) Refresh(ctx context.Context) error {
	return s.start(ctx, func(c *Core, now time.Time) (*Op, error) { return c.Refresh(now) })
}

// Send sends a message and returns its id at once; its acceptance by the
// others comes as FullyAcked or NotFullyAcked notices.
func (s *Session) Send(ctx context.Context, text string) (transcript.ID, error) {
	var id transcript.ID
	var err error
	if e := s.do(ctx, func(c *Core) { id, err = c.Send(text, s.now()) }); e != nil {
		return id, e
	}
	return id, err
}

// Roster is a snapshot of who is in a room and in its session, taken at
// one point of the event loop: the lists agree with each other.
type Roster struct {
	// Occupants are the room's members as the channel last reported them
	// (sorted), whether or not they are in the session.
	Occupants []string
	// Members are the session's members (sorted): the current
	// subsession's, or just us while alone, or nil outside a session.
	Members []string
	// LastSeen is when each member of the current subsession was last
	// known alive: the send time of our latest message it acknowledged.
	// Members with no such message are absent.
	LastSeen map[string]time.Time
}

// Roster returns the room's occupants and the session's members, as one
// consistent snapshot.
func (s *Session) Roster(ctx context.Context) (Roster, error) {
	var r Roster
	err := s.do(ctx, func(c *Core) { r = c.roster() })
	return r, err
}

// Unacked returns the members that have not acknowledged message id yet.
// ok is false if the message is not in this session's message log (a
// message of an earlier run, say).
func (s *Session) Unacked(ctx context.Context, id transcript.ID) (members []string, ok bool, err error) {
	err = s.do(ctx, func(c *Core) { members, ok = c.unacked(id) })
	return members, ok, err
}

// Close stops the event loop without parting (use Part first to leave
// properly). It does not close the channel, which belongs to the caller.
func (s *Session) Close() {
	s.closeOnce.Do(func() { close(s.stop) })
}
