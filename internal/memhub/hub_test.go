package memhub

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mpenc/mpenc/channel"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// run steps the hub until it is quiet and returns each member's events.
func run(h *Hub) map[string][]channel.Event {
	out := map[string][]channel.Event{}
	for {
		d, ok := h.Step()
		if !ok {
			if _, more := h.NextTime(); !more {
				return out
			}
			continue
		}
		out[d.To] = append(out[d.To], d.Event)
	}
}

func describe(evs []channel.Event) []string {
	var s []string
	for _, e := range evs {
		switch e.Kind {
		case channel.EventPacket:
			s = append(s, fmt.Sprintf("pkt %s %s %v", e.Sender, e.Body, e.Members))
		case channel.EventOthers:
			s = append(s, fmt.Sprintf("others +%v -%v %v", e.Enter, e.Leave, e.Members))
		default:
			s = append(s, fmt.Sprintf("%v %v", e.Kind, e.Members))
		}
	}
	return s
}

func TestHubOrderEchoAndStamps(t *testing.T) {
	h := NewHub(t0, 1, Faults{Uplink: 3 * time.Millisecond, Downlink: 2 * time.Millisecond, Jitter: 5 * time.Millisecond})
	for _, m := range []string{"a", "b", "c"} {
		h.Enter(m)
		run(h)
	}
	h.Send("a", "1")
	h.Send("b", "2")
	h.Send("c", "3")
	h.Leave("c")
	h.Send("a", "4")
	evs := run(h)
	// a and b see the same packet sequence, echoes included; c sees its
	// packets, then its own leave.
	if !slices.Equal(describe(evs["a"]), describe(evs["b"])) {
		t.Fatalf("a and b disagree:\n%v\n%v", describe(evs["a"]), describe(evs["b"]))
	}
	last := evs["c"][len(evs["c"])-1]
	if last.Kind != channel.EventOwnLeave || !slices.Contains(last.Members, "c") {
		t.Errorf("c's last event %v", describe([]channel.Event{last}))
	}
	// Per-sender order holds (a's 1 before a's 4); senders interleave as
	// their links allow.
	got := describe(evs["a"])
	i1 := slices.IndexFunc(got, func(s string) bool { return len(s) > 7 && s[:7] == "pkt a 1" })
	i4 := slices.IndexFunc(got, func(s string) bool { return len(s) > 7 && s[:7] == "pkt a 4" })
	if len(got) != 5 || i1 < 0 || i4 < 0 || i1 > i4 {
		t.Errorf("a saw %v", got)
	}
}

func TestHubDeterministic(t *testing.T) {
	trace := func() []string {
		h := NewHub(t0, 7, Faults{Jitter: 10 * time.Millisecond, Drop: 0.2, Duplicate: 0.2, Reorder: 0.2})
		for _, m := range []string{"a", "b", "c"} {
			h.Enter(m)
		}
		run(h)
		for i := range 30 {
			h.Send([]string{"a", "b", "c"}[i%3], fmt.Sprint(i))
		}
		evs := run(h)
		return append(append(describe(evs["a"]), describe(evs["b"])...), describe(evs["c"])...)
	}
	if !slices.Equal(trace(), trace()) {
		t.Fatal("same seed, different runs")
	}
}

func TestHubHostile(t *testing.T) {
	h := NewHub(t0, 3, Faults{Jitter: time.Millisecond, Drop: 0.3, Duplicate: 0.3, Reorder: 0.3,
		Inject: func(sender, wire string) (string, []string) { return "mallory", []string{"fake-" + wire} }})
	for _, m := range []string{"a", "b"} {
		h.Enter(m)
	}
	run(h)
	for i := range 50 {
		h.Send("a", fmt.Sprint(i))
	}
	run(h)
	s := h.Stats()
	if s.Dropped == 0 || s.Duplicated == 0 || s.Reordered == 0 || s.Injected != 50 {
		t.Errorf("faults not applied: %+v", s)
	}
}

func TestHubKick(t *testing.T) {
	h := NewHub(t0, 1, Faults{})
	for _, m := range []string{"a", "b", "c"} {
		h.Enter(m)
	}
	run(h)
	h.Kick("a", []string{"c", "zz"}, "test")
	h.Kick("zz", []string{"a"}, "test") // not in the room: ignored
	evs := run(h)
	if len(evs["c"]) != 1 || evs["c"][0].Kind != channel.EventOwnLeave {
		t.Errorf("c: %v", describe(evs["c"]))
	}
	if got := h.Members(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("members %v", got)
	}
}
