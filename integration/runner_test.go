//go:build integration

package integration

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/transcript"
)

// coreRunner runs a session.Core over a channel the way session.Session
// does (one goroutine owns the core; channel actions are performed in
// order by a second one; notices queue until read), and also lets the
// tests read the core's state on its goroutine: the group key, the
// session id and ServerOrder's chain, which session.Session keeps to
// itself. Its methods are the subset of session.Session's the peers use.
type coreRunner struct {
	ch   channel.GroupChannel
	core *session.Core

	reqs    chan func(*session.Core)
	notices chan session.Notice
	stop    chan struct{}
	done    chan struct{}

	actMu   sync.Mutex
	actions []session.Action
	actWake chan struct{}

	noteMu    sync.Mutex
	noteQueue []session.Notice
	noteWake  chan struct{}

	closeOnce sync.Once
	wg        sync.WaitGroup
}

func newCoreRunner(cfg session.Config, ch channel.GroupChannel) (*coreRunner, error) {
	if cfg.Self != ch.Self() {
		return nil, errors.New("runner: Config.Self differs from the channel's Self")
	}
	core, err := session.NewCore(cfg, time.Now())
	if err != nil {
		return nil, err
	}
	return &coreRunner{ch: ch, core: core,
		reqs:     make(chan func(*session.Core)),
		notices:  make(chan session.Notice),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		actWake:  make(chan struct{}, 1),
		noteWake: make(chan struct{}, 1),
	}, nil
}

func (s *coreRunner) Notices() <-chan session.Notice { return s.notices }

func (s *coreRunner) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.wg.Add(2)
	go s.actLoop(ctx)
	go s.noteLoop()
	defer func() {
		close(s.done)
		cancel()
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
				return errors.New("runner: channel closed")
			}
			s.core.HandleEvent(ev, time.Now())
		case f := <-s.reqs:
			f(s.core)
		case <-timer.C:
			s.core.Tick(time.Now())
		}
		s.flush()
	}
}

func (s *coreRunner) flush() {
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

func (s *coreRunner) actLoop(ctx context.Context) {
	defer s.wg.Done()
	for {
		s.actMu.Lock()
		batch := s.actions
		s.actions = nil
		s.actMu.Unlock()
		for _, a := range batch {
			switch a.Kind {
			case session.ActSend:
				_ = s.ch.Send(ctx, a.Wire)
			case session.ActKick:
				_ = s.ch.Kick(ctx, a.Members)
			case session.ActEnter:
				if err := s.ch.Enter(ctx); err != nil && ctx.Err() == nil {
					seq := a.Seq
					select {
					case s.reqs <- func(c *session.Core) { c.EnterFailed(seq, err, time.Now()) }:
					case <-s.done:
					}
				}
			case session.ActLeave:
				_ = s.ch.Leave(ctx)
			}
		}
		select {
		case <-s.actWake:
		case <-s.done:
			return
		}
	}
}

func (s *coreRunner) noteLoop() {
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

// read runs f on the event loop and waits for it; f must not keep the
// core or change it.
func (s *coreRunner) read(ctx context.Context, f func(c *session.Core)) error {
	ran := make(chan struct{})
	select {
	case s.reqs <- func(c *session.Core) { f(c); close(ran) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return session.ErrClosed
	}
	select {
	case <-ran:
		return nil
	case <-s.done:
		return session.ErrClosed
	}
}

func (s *coreRunner) start(ctx context.Context, f func(c *session.Core, now time.Time) (*session.Op, error)) error {
	var op *session.Op
	var err error
	if e := s.read(ctx, func(c *session.Core) { op, err = f(c, time.Now()) }); e != nil {
		return e
	}
	if err != nil {
		return err
	}
	select {
	case <-op.Wait():
		return op.Err()
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return session.ErrClosed
	}
}

func (s *coreRunner) Join(ctx context.Context) error {
	return s.start(ctx, func(c *session.Core, now time.Time) (*session.Op, error) { return c.Join(now) })
}

func (s *coreRunner) Include(ctx context.Context, members []string) error {
	return s.start(ctx, func(c *session.Core, now time.Time) (*session.Op, error) { return c.Include(members, now) })
}

func (s *coreRunner) Exclude(ctx context.Context, members []string) error {
	return s.start(ctx, func(c *session.Core, now time.Time) (*session.Op, error) { return c.Exclude(members, now) })
}

func (s *coreRunner) Refresh(ctx context.Context) error {
	return s.start(ctx, func(c *session.Core, now time.Time) (*session.Op, error) { return c.Refresh(now) })
}

func (s *coreRunner) Send(ctx context.Context, text string) (transcript.ID, error) {
	var id transcript.ID
	var err error
	if e := s.read(ctx, func(c *session.Core) { id, err = c.Send(text, time.Now()) }); e != nil {
		return id, e
	}
	return id, err
}

func (s *coreRunner) Close() { s.closeOnce.Do(func() { close(s.stop) }) }
