package memchan

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel"
)

func TestRoomConn(t *testing.T) {
	r := NewRoom(time.Millisecond)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, b := r.Conn("a"), r.Conn("b")
	if err := a.Enter(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Enter(ctx); err != nil {
		t.Fatal(err)
	}
	a.Send(ctx, "hello")
	want := []channel.EventKind{channel.EventOwnEnter, channel.EventOthers, channel.EventPacket}
	for i, k := range want {
		select {
		case ev := <-a.Events():
			if ev.Kind != k {
				t.Fatalf("event %d: %v, want %v", i, ev.Kind, k)
			}
		case <-ctx.Done():
			t.Fatal("timeout")
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-a.Events():
		if ev.Kind != channel.EventOthers || !slices.Equal(ev.Leave, []string{"b"}) {
			t.Fatalf("got %v", ev)
		}
	case <-ctx.Done():
		t.Fatal("timeout")
	}
}
