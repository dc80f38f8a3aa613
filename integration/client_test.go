//go:build integration

package integration

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/channel/xmpp"
	"github.com/mpenc/mpenc/crypto"
)

// waitBound bounds every wait so that a broken run fails instead of
// hanging; it is not a performance assertion.
const waitBound = 30 * time.Second

// client is one device: a Channel and the events it has delivered so far.
type client struct {
	t    testing.TB
	acct *xmpp.Account // the device's connection (its own)
	ch   *xmpp.Channel
	key  crypto.PublicKey

	mu     sync.Mutex
	evs    []channel.Event
	notify chan struct{}
	done   chan struct{}
	gate   chan struct{} // when set, events are not read until it is closed
}

func testKey(t testing.TB, i int) crypto.PublicKey {
	var seed [crypto.SeedSize]byte
	seed[0], seed[1] = byte(i), byte(i>>8)
	seed[31] = 0x5a
	return crypto.NewSigningKey(seed).Public()
}

// dial connects device i; the client is closed at the end of the test.
func (s *server) dial(t testing.TB, i int, room string, tweak ...func(*xmpp.Config)) *client {
	t.Helper()
	cfg := s.config(i, testKey(t, i))
	cfg.Logf = func(format string, args ...any) { t.Logf("device %d: "+format, append([]any{i}, args...)...) }
	for _, f := range tweak {
		f(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	acct, ch, err := openRoom(ctx, cfg, i, room)
	if err != nil {
		t.Fatalf("dial device %d: %v", i, err)
	}
	c := &client{t: t, acct: acct, ch: ch, key: cfg.Identity, notify: make(chan struct{}, 1), done: make(chan struct{}), gate: gates[cfg]}
	delete(gates, cfg)
	go func() {
		defer close(c.done)
		if c.gate != nil {
			<-c.gate
		}
		for ev := range ch.Events() {
			c.mu.Lock()
			c.evs = append(c.evs, ev)
			c.mu.Unlock()
			select {
			case c.notify <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		if c.gate != nil {
			select {
			case <-c.gate:
			default:
				close(c.gate)
			}
		}
		if err := ch.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		<-c.done
		if err := acct.Close(); err != nil {
			t.Errorf("close the account: %v", err)
		}
	})
	return c
}

func (c *client) events() []channel.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.evs)
}

// waitFor waits until pred holds for the events so far.
func (c *client) waitFor(what string, pred func([]channel.Event) bool) []channel.Event {
	c.t.Helper()
	deadline := time.After(waitBound)
	for {
		evs := c.events()
		if pred(evs) {
			return evs
		}
		select {
		case <-c.notify:
		case <-deadline:
			c.t.Fatalf("%s: waited %v for %s; events:\n%s", c.ch.Self(), waitBound, what, dump(evs))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *client) enter() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := c.ch.Enter(ctx); err != nil {
		c.t.Fatalf("%s: enter: %v", c.ch.Self(), err)
	}
}

func (c *client) send(body string) {
	c.t.Helper()
	if err := c.ch.Send(context.Background(), body); err != nil {
		c.t.Fatalf("%s: send: %v", c.ch.Self(), err)
	}
}

func count(kind channel.EventKind) func([]channel.Event) int {
	return func(evs []channel.Event) int {
		n := 0
		for _, e := range evs {
			if e.Kind == kind {
				n++
			}
		}
		return n
	}
}

func atLeast(n int, kind channel.EventKind) func([]channel.Event) bool {
	return func(evs []channel.Event) bool { return count(kind)(evs) >= n }
}

func dump(evs []channel.Event) string {
	var b strings.Builder
	for i, e := range evs {
		fmt.Fprintf(&b, "  %3d %s\n", i, fmtEvent(e))
	}
	return b.String()
}

func fmtEvent(e channel.Event) string {
	switch e.Kind {
	case channel.EventPacket, channel.EventPlain:
		body := e.Body
		if len(body) > 40 {
			body = body[:40] + "…"
		}
		return fmt.Sprintf("%v from %s %q members=%v", e.Kind, e.Sender, body, e.Members)
	case channel.EventOthers:
		return fmt.Sprintf("others enter=%v leave=%v members=%v", e.Enter, e.Leave, e.Members)
	case channel.EventIdentity:
		return fmt.Sprintf("identity %s %x members=%v", e.Sender, e.Key[:4], e.Members)
	}
	return fmt.Sprintf("%v members=%v", e.Kind, e.Members)
}

// after returns the events after the last EventOwnEnter.
func afterEnter(evs []channel.Event) []channel.Event {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == channel.EventOwnEnter {
			return evs[i+1:]
		}
	}
	return nil
}

// identityXML is the identity announcement of key, as docs/XMPP.md defines it.
func identityXML(key crypto.PublicKey) string {
	return fmt.Sprintf(`<identity xmlns='%s' alg='ed25519'>%s</identity>`, nsIdentity, base64.StdEncoding.EncodeToString(key[:]))
}

// tail returns the last event, or the zero Event when there is none.
func tail(evs []channel.Event) channel.Event {
	if len(evs) == 0 {
		return channel.Event{}
	}
	return evs[len(evs)-1]
}

// gates holds the gate a tweak asked for, by config (see gated).
var gates = map[*xmpp.Config]chan struct{}{}

// gated is a dial tweak: the client does not read its events until gate
// is closed.
func gated(gate chan struct{}) func(*xmpp.Config) {
	return func(cfg *xmpp.Config) { gates[cfg] = gate }
}
