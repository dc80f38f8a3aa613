package session_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel"
	"github.com/mpenc/mpenc/channel/memchan"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/session"
)

type keys map[string]crypto.PublicKey

func (k keys) IdentityKey(m string) (crypto.PublicKey, error) {
	p, ok := k[m]
	if !ok {
		return p, fmt.Errorf("no key for %q", m)
	}
	return p, nil
}

// TestSessionRealTime runs three sessions with goroutines over a real-time
// memchan room: join, auto-include, messages, part.
func TestSessionRealTime(t *testing.T) {
	room := memchan.NewRoom(time.Millisecond)
	defer room.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := keys{}
	ids := []string{"alice@x/1", "bob@x/1", "carol@x/1"}
	sessions := map[string]*session.Session{}
	var mu sync.Mutex
	got := map[string][]string{}
	var wg sync.WaitGroup
	for _, id := range ids {
		k, _ := crypto.GenerateSigningKey(nil)
		dir[id] = k.Public()
		s, err := session.New(session.Config{Self: id, Identity: k, Directory: dir,
			Timing: session.LoopbackTiming(), AutoInclude: true}, room.Conn(id))
		if err != nil {
			t.Fatal(err)
		}
		sessions[id] = s
		wg.Add(2)
		go func() { defer wg.Done(); s.Run(ctx) }()
		go func() {
			defer wg.Done()
			for n := range s.Notices() {
				if n.Kind == session.Message {
					mu.Lock()
					got[id] = append(got[id], n.Author+": "+n.Text)
					mu.Unlock()
				}
			}
		}()
	}
	for _, id := range ids {
		if err := sessions[id].Join(ctx); err != nil {
			t.Fatalf("%s join: %v", id, err)
		}
	}
	// Wait for everyone in one session, as each of them sees it (bob must
	// not send in the subsession he had with alice alone).
	for _, id := range ids {
		for {
			r, err := sessions[id].Roster(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Members) == 3 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, err := sessions["bob@x/1"].Send(ctx, "hello from bob"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		ok := slices.Contains(got["alice@x/1"], "bob@x/1: hello from bob") && slices.Contains(got["carol@x/1"], "bob@x/1: hello from bob")
		mu.Unlock()
		if ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if !slices.Contains(got["carol@x/1"], "bob@x/1: hello from bob") {
		t.Fatalf("carol got %v", got["carol@x/1"])
	}
	mu.Unlock()
	if err := sessions["carol@x/1"].Part(ctx); err != nil {
		t.Fatalf("carol's part: %v", err)
	}
	for _, s := range sessions {
		s.Close()
	}
	cancel()
	wg.Wait()
}

// refusingChannel is a room the server will not let us into.
type refusingChannel struct {
	channel.GroupChannel
	err error
}

func (r refusingChannel) Enter(context.Context) error { return r.err }

// TestSessionEnterFailed: when the channel cannot enter the room (the
// server refuses: banned, members-only, a wrong password), Join fails at
// once with ErrEnterFailed carrying the channel's reason, instead of
// waiting for an enter that never comes; the state is JOIN_FAILED.
func TestSessionEnterFailed(t *testing.T) {
	room := memchan.NewRoom(0)
	defer room.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, _ := crypto.GenerateSigningKey(nil)
	refusal := errors.New("forbidden: you are banned from this room")
	s, err := session.New(session.Config{Self: "dave@x/1", Identity: k, Directory: keys{"dave@x/1": k.Public()},
		Timing: session.LoopbackTiming()}, refusingChannel{room.Conn("dave@x/1"), refusal})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	states := make(chan session.State, 16)
	go func() {
		for n := range s.Notices() {
			if n.Kind == session.StateChanged {
				states <- n.State
			}
		}
		close(states)
	}()
	err = s.Join(ctx)
	if !errors.Is(err, session.ErrEnterFailed) || !errors.Is(err, refusal) {
		t.Fatalf("join: %v, want ErrEnterFailed wrapping the refusal", err)
	}
	select {
	case st := <-states:
		if st != session.StateJoinFailed {
			t.Errorf("state %v, want JOIN_FAILED", st)
		}
	case <-ctx.Done():
		t.Error("no state change announced")
	}
	s.Close()
	cancel()
	<-done
}

// A failure reported for an enter that a later join superseded does not
// fail the later join; the failure of the latest enter does.
func TestEnterFailedSuperseded(t *testing.T) {
	w := world(t, 61, hop, "A")
	var enters []session.Action
	w.Intercept = func(id string, a session.Action) []session.Action {
		if a.Kind == session.ActEnter {
			enters = append(enters, a) // the server never answers
			return nil
		}
		return []session.Action{a}
	}
	join(t, w, "A")
	opOf(t, w, "A", part)
	second := join(t, w, "A")
	if len(enters) != 2 || enters[0].Seq == enters[1].Seq {
		t.Fatalf("enters %v", enters)
	}
	refused := errors.New("refused")
	w.Do("A", func(c *session.Core, now time.Time) { c.EnterFailed(enters[0].Seq, refused, now) })
	if second.Done() {
		t.Fatalf("the second join failed on the first enter's error: %v", second.Err())
	}
	w.Do("A", func(c *session.Core, now time.Time) { c.EnterFailed(enters[1].Seq, refused, now) })
	if !second.Done() || !errors.Is(second.Err(), session.ErrEnterFailed) || !errors.Is(second.Err(), refused) {
		t.Fatalf("second join: done %v, %v", second.Done(), second.Err())
	}
	if s := w.Members["A"].Core.State(); s != session.StateJoinFailed {
		t.Errorf("state %v", s)
	}
}
