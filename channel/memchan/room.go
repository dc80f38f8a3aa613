// Package memchan is an in-memory server-ordered room with the
// channel.GroupChannel contract: members on one machine, in one process,
// talking through a server that orders everything the way an XMPP room
// does (every packet echoed to its sender, membership stamped on each).
// Use it to try the session API, or to test code that talks mpENC, without
// an XMPP server:
//
//	room := memchan.NewRoom(5 * time.Millisecond)
//	defer room.Close()
//	alice := room.Conn("alice@example.org/laptop") // a channel.GroupChannel
//
// The room runs in real time on the wall clock. The simulator drives the
// same server deterministically, on a virtual clock and with a hostile
// mode (internal/memhub).
package memchan

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/internal/memhub"
)

// Room is an in-memory room served in real time: a delivery due in 5 ms
// happens 5 ms later. Safe for concurrent use.
type Room struct {
	mu     sync.Mutex
	hub    *memhub.Hub
	conns  map[string]*conn
	wake   chan struct{}
	done   chan struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewRoom starts a room whose server delivers every packet, enter and
// leave latency after it was sent (half of it on the way to the server,
// half on the way back), in one order for everyone.
func NewRoom(latency time.Duration) *Room {
	faults := memhub.Faults{Uplink: latency / 2, Downlink: latency - latency/2}
	r := &Room{
		hub:   memhub.NewHub(time.Now(), 1, faults),
		conns: map[string]*conn{},
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	r.wg.Add(1)
	go r.pump()
	return r
}

// Close stops the room and closes every connection's events.
func (r *Room) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	conns := make([]*conn, 0, len(r.conns))
	for _, c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	close(r.done)
	r.wg.Wait()
	for _, c := range conns {
		c.shutdown()
	}
}

// Conn returns the connection of member self, creating it on first use.
// Closing it leaves the room.
func (r *Room) Conn(self string) channel.GroupChannel { return r.conn(self) }

func (r *Room) conn(self string) *conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.conns[self]; ok {
		return c
	}
	c := &conn{room: r, self: self, events: make(chan channel.Event), notify: make(chan struct{}, 1), stop: make(chan struct{})}
	r.conns[self] = c
	c.wg.Add(1)
	go c.forward()
	return c
}

// Crash drops a member's connection at once, as a dying client or a cut
// network would: the others see it leave, it gets no word of it.
func (r *Room) Crash(self string) {
	r.do(func(h *memhub.Hub) { h.Crash(self) })
}

func (r *Room) do(f func(h *memhub.Hub)) {
	r.mu.Lock()
	f(r.hub)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// pump performs every step whose time has come, then sleeps until the next.
func (r *Room) pump() {
	defer r.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.mu.Lock()
		var wait time.Duration = time.Hour
		for {
			next, ok := r.hub.NextTime()
			if !ok {
				break
			}
			now := time.Now()
			if next.After(now) {
				wait = next.Sub(now)
				break
			}
			if d, ok := r.hub.Step(); ok {
				if c := r.conns[d.To]; c != nil {
					c.enqueue(d.Event)
				}
			}
		}
		r.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-r.done:
			return
		case <-r.wake:
		case <-timer.C:
		}
	}
}

// conn is one member's connection to a Room.
type conn struct {
	room *Room
	self string

	mu      sync.Mutex
	queue   []channel.Event // events not yet taken by the consumer (unbounded: the contract forbids dropping)
	inRoom  bool
	waiters []chan struct{} // woken on every own enter/leave
	notify  chan struct{}
	events  chan channel.Event
	stop    chan struct{}
	stopped bool
	wg      sync.WaitGroup
}

var _ channel.GroupChannel = (*conn)(nil)

// errClosed is returned by a conn after Close.
var errClosed = errors.New("memchan: connection closed")

// Self returns the member id.
func (c *conn) Self() string { return c.self }

// Events returns the stream of events; it is closed by Close.
func (c *conn) Events() <-chan channel.Event { return c.events }

func (c *conn) enqueue(ev channel.Event) {
	c.mu.Lock()
	c.queue = append(c.queue, ev)
	switch ev.Kind {
	case channel.EventOwnEnter:
		c.inRoom = true
	case channel.EventOwnLeave:
		c.inRoom = false
	}
	if ev.Kind == channel.EventOwnEnter || ev.Kind == channel.EventOwnLeave {
		for _, w := range c.waiters {
			close(w)
		}
		c.waiters = nil
	}
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *conn) forward() {
	defer c.wg.Done()
	defer close(c.events)
	for {
		c.mu.Lock()
		var ev channel.Event
		have := len(c.queue) > 0
		if have {
			ev = c.queue[0]
			c.queue = c.queue[1:]
		}
		c.mu.Unlock()
		if !have {
			select {
			case <-c.notify:
				continue
			case <-c.stop:
				return
			}
		}
		select {
		case c.events <- ev:
		case <-c.stop:
			return
		}
	}
}

// waitRoom waits until the own presence is want, or ctx ends.
func (c *conn) waitRoom(ctx context.Context, want bool) error {
	for {
		c.mu.Lock()
		if c.stopped {
			c.mu.Unlock()
			return errClosed
		}
		if c.inRoom == want {
			c.mu.Unlock()
			return nil
		}
		w := make(chan struct{})
		c.waiters = append(c.waiters, w)
		c.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Enter enters the room and waits for our own enter event.
func (c *conn) Enter(ctx context.Context) error {
	c.room.do(func(h *memhub.Hub) { h.Enter(c.self) })
	return c.waitRoom(ctx, true)
}

// Leave leaves the room and waits for our own leave event.
func (c *conn) Leave(ctx context.Context) error {
	c.room.do(func(h *memhub.Hub) { h.Leave(c.self) })
	return c.waitRoom(ctx, false)
}

// Send broadcasts a wire string, best effort.
func (c *conn) Send(ctx context.Context, wire string) error {
	c.room.do(func(h *memhub.Hub) { h.Send(c.self, wire) })
	return ctx.Err()
}

// Kick removes members (every member may kick in a memchan room).
func (c *conn) Kick(ctx context.Context, members []string, reason string) error {
	c.room.do(func(h *memhub.Hub) { h.Kick(c.self, members, reason) })
	return ctx.Err()
}

// Close leaves the room if needed and closes the events stream.
func (c *conn) Close() error {
	c.mu.Lock()
	in := c.inRoom
	c.mu.Unlock()
	if in {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.Leave(ctx)
		cancel()
	}
	c.shutdown()
	return nil
}

func (c *conn) shutdown() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	for _, w := range c.waiters {
		close(w)
	}
	c.waiters = nil
	c.mu.Unlock()
	close(c.stop)
	c.wg.Wait()
}
