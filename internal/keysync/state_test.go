package keysync

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleState() GroupState {
	at := time.UnixMilli(1_765_000_000_000).UTC()
	return GroupState{
		Devices: []GroupDevice{
			{Key: [32]byte{1}, Resource: "laptop-1a2b", Label: "laptop", Status: Member, At: at, By: [32]byte{1}},
			{Key: [32]byte{2}, Resource: "phone-3c4d", Label: "phone ☎", Status: Member, At: at.Add(time.Minute), By: [32]byte{1}},
			{Key: [32]byte{3}, Resource: "tablet-5e6f", Status: Removed, At: at.Add(time.Hour), By: [32]byte{2}},
		},
		Rooms: []string{"team@conference.example.org", "family@muc.example.net"},
	}
}

func TestStateRoundTrip(t *testing.T) {
	for _, s := range []GroupState{sampleState(), {}} {
		p, err := EncodeState(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeState(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Fatalf("%s\ndecoded %+v\nwant    %+v", p, got, s)
		}
	}
}

// Every rule of DecodeState refuses a state that breaks it, whole.
func TestStateRefused(t *testing.T) {
	good, _ := EncodeState(sampleState())
	key := `"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`
	dev := func(mod string) string {
		f := map[string]string{"key": key, "resource": `"r"`, "label": `""`, "status": "1", "at": "1", "by": key}
		for kv := range strings.SplitSeq(mod, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				f[k] = v
			}
		}
		var b strings.Builder
		b.WriteString("{")
		for _, k := range []string{"key", "resource", "label", "status", "at", "by"} {
			if b.Len() > 1 {
				b.WriteString(",")
			}
			b.WriteString(`"` + k + `":` + f[k])
		}
		return b.String() + "}"
	}
	state := func(devs ...string) string {
		return `{"v":1,"devices":[` + strings.Join(devs, ",") + `],"rooms":[]}`
	}
	many := make([]string, MaxGroupDevices+1)
	for i := range many {
		many[i] = dev("key=" + `"` + string(rune('A'+i%26)) + string(rune('A'+i/26)) + strings.Repeat("A", 41) + `="`)
	}
	if _, err := DecodeState([]byte(state(many[:MaxGroupDevices]...))); err != nil {
		t.Fatalf("%d devices refused: %v", MaxGroupDevices, err)
	}
	rooms := `{"v":1,"devices":[],"rooms":[` + strings.Repeat(`"r@c",`, MaxGroupRooms) + `"x@c"]}`
	cases := map[string]string{
		"not JSON":         "<keysync/>",
		"trailing":         string(good) + "{}",
		"version 2":        `{"v":2,"devices":[],"rooms":[]}`,
		"no version":       `{"devices":[],"rooms":[]}`,
		"short key":        state(dev(`key="AQID"`)),
		"short by":         state(dev(`by="AQID"`)),
		"status 0":         state(dev("status=0")),
		"status 4":         state(dev("status=4")),
		"no resource":      state(dev(`resource=""`)),
		"long label":       state(dev(`label="` + strings.Repeat("x", maxLabel+1) + `"`)),
		"no time":          state(dev("at=0")),
		"twice":            state(dev(""), dev("")),
		"too many devices": state(many...),
		"too many rooms":   rooms,
		"room twice":       `{"v":1,"devices":[],"rooms":["r@c","r@c"]}`,
		"empty room":       `{"v":1,"devices":[],"rooms":[""]}`,
		"too long":         `{"v":1,"devices":[],"rooms":["` + strings.Repeat("r", maxPayload) + `"]}`,
	}
	for name, p := range cases {
		if _, err := DecodeState([]byte(p)); !errors.Is(err, ErrBadState) {
			t.Errorf("%s: %v, want ErrBadState", name, err)
		}
	}
	// The device helper makes a good state when nothing is broken.
	if _, err := DecodeState([]byte(state(dev("")))); err != nil {
		t.Fatal(err)
	}
	// Unknown fields are a later version's additions: ignored.
	if _, err := DecodeState([]byte(`{"v":1,"devices":[],"rooms":[],"later":true}`)); err != nil {
		t.Fatal(err)
	}
}

func TestStateMerge(t *testing.T) {
	s := sampleState()
	at := s.Devices[0].At
	other := GroupState{
		Devices: []GroupDevice{
			// Newer: the label changed.
			{Key: [32]byte{1}, Resource: "laptop-1a2b", Label: "work laptop", Status: Member, At: at.Add(time.Second), By: [32]byte{1}},
			// Older: ignored.
			{Key: [32]byte{2}, Resource: "phone-old", Status: Member, At: at, By: [32]byte{2}},
			// Newer, but the tablet was removed: it stays removed.
			{Key: [32]byte{3}, Resource: "tablet-5e6f", Status: Member, At: at.Add(2 * time.Hour), By: [32]byte{3}},
			// New.
			{Key: [32]byte{4}, Resource: "desk-7a8b", Label: "desk", Status: Member, At: at, By: [32]byte{2}},
		},
		Rooms: []string{"family@muc.example.net", "new@conference.example.org"},
	}
	changed := s.Merge(other)
	if len(changed) != 2 || changed[0].Key != [32]byte{1} || changed[1].Key != [32]byte{4} {
		t.Fatalf("changed %+v", changed)
	}
	if s.Devices[0].Label != "work laptop" || s.Devices[1].Resource != "phone-3c4d" || s.Devices[2].Status != Removed || len(s.Devices) != 4 {
		t.Fatalf("merged %+v", s.Devices)
	}
	if want := []string{"team@conference.example.org", "family@muc.example.net", "new@conference.example.org"}; !reflect.DeepEqual(s.Rooms, want) {
		t.Fatalf("rooms %q", s.Rooms)
	}
	// A removal wins even when older than the last record of the device.
	s.Merge(GroupState{Devices: []GroupDevice{{Key: [32]byte{4}, Resource: "desk-7a8b", Status: Removed, At: at.Add(-time.Hour), By: [32]byte{1}}}})
	if s.Devices[3].Status != Removed {
		t.Fatalf("removal lost: %+v", s.Devices[3])
	}
	// Merging the same again changes nothing.
	if c := s.Merge(other); len(c) != 0 {
		t.Fatalf("merging again changed %+v", c)
	}
	// Set replaces, and keeps the order by key.
	s.Set(GroupDevice{Key: [32]byte{0}, Resource: "new", Status: Member, At: time.Now(), By: [32]byte{0}})
	if s.Devices[0].Key != ([32]byte{0}) {
		t.Fatalf("set: %+v", s.Devices)
	}
}

func FuzzDecodeState(f *testing.F) {
	good, _ := EncodeState(sampleState())
	f.Add(good)
	f.Add([]byte(`{"v":1,"devices":[],"rooms":[]}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		s, err := DecodeState(p)
		if err != nil {
			return
		}
		q, err := EncodeState(s)
		if err != nil {
			t.Fatalf("accepted %q, cannot encode it: %v", p, err)
		}
		s2, err := DecodeState(q)
		if err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("%q → %+v → %q → %+v, %v", p, s, q, s2, err)
		}
		// Merging a decoded state keeps it within the limits.
		var m GroupState
		m.Merge(s)
		m.Merge(s)
		if _, err := EncodeState(m); err != nil {
			t.Fatalf("merged state refused: %v", err)
		}
	})
}
