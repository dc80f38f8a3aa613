package keysync

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// What a device group shares (docs/PROTOCOL.md "KeySync", "What a group
// shares"): the payload of GroupKeys, OwnKeysOfferer and
// OwnKeysRequester. Trust does not travel here: the keys a group has
// verified reach a new device as trust messages, which the trust store
// judges by their sender; this is the group's own bookkeeping (which
// devices are in it, under which labels, since when and on whose word)
// and the rooms its devices join at start.

// Limits of a group state: a state over them is refused whole.
const (
	MaxGroupDevices = 64
	MaxGroupRooms   = 256
	maxLabel        = 64   // bytes, as a device's announced label
	maxResource     = 1023 // bytes, as XMPP's resourcepart
	maxRoomJID      = 3071 // bytes, as a bare JID
)

// DeviceStatus is a device's standing in the group.
type DeviceStatus uint8

// Device statuses; the numbers are on the wire: never renumber.
const (
	Member  DeviceStatus = 1 // in the group
	Removed DeviceStatus = 2 // removed by another device (/devices remove)
	Left    DeviceStatus = 3 // left by itself (/devices leave)
)

func (s DeviceStatus) String() string {
	switch s {
	case Member:
		return "in the group"
	case Removed:
		return "removed"
	case Left:
		return "left"
	}
	return fmt.Sprintf("DeviceStatus(%d)", uint8(s))
}

// GroupDevice is one device of the group, as the group last heard of it.
type GroupDevice struct {
	Key      [32]byte // its identity key
	Resource string   // its resource when last heard of
	Label    string   // the label it announced ("" if none)
	Status   DeviceStatus
	// At is when Status was recorded, and By the key of the device that
	// recorded it (the device itself when it joined first or left).
	At time.Time
	By [32]byte
}

// GroupState is what a device group shares.
type GroupState struct {
	Devices []GroupDevice
	// Rooms are bare room JIDs the group's devices join at start.
	Rooms []string
}

// ErrBadState is returned (wrapped) by DecodeState.
var ErrBadState = errors.New("keysync: malformed group state")

// wireState and wireDevice are the JSON of a group state:
//
//	{"v":1,"devices":[{"key":"B64","resource":"…","label":"…","status":1,"at":UNIXMS,"by":"B64"}],"rooms":["room@conference.example"]}
type wireState struct {
	V       int          `json:"v"`
	Devices []wireDevice `json:"devices"`
	Rooms   []string     `json:"rooms"`
}

type wireDevice struct {
	Key      []byte       `json:"key"`
	Resource string       `json:"resource"`
	Label    string       `json:"label"`
	Status   DeviceStatus `json:"status"`
	At       int64        `json:"at"`
	By       []byte       `json:"by"`
}

// EncodeState writes s for a KeySync payload.
func EncodeState(s GroupState) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	w := wireState{V: 1, Devices: make([]wireDevice, 0, len(s.Devices)), Rooms: s.Rooms}
	if w.Rooms == nil {
		w.Rooms = []string{}
	}
	for _, d := range s.Devices {
		w.Devices = append(w.Devices, wireDevice{Key: d.Key[:], Resource: d.Resource, Label: d.Label,
			Status: d.Status, At: d.At.UnixMilli(), By: d.By[:]})
	}
	p, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	if len(p) > maxPayload {
		return nil, fmt.Errorf("keysync: a group state of %d bytes, more than %d", len(p), maxPayload)
	}
	return p, nil
}

// DecodeState reads a group state as EncodeState writes it: the size
// first, version 1 (unknown fields are ignored, for later versions that
// add some), every limit, every key 32 bytes, every status known, no key
// twice. A state that breaks one is refused whole.
func DecodeState(p []byte) (GroupState, error) {
	bad := func(why string) (GroupState, error) { return GroupState{}, fmt.Errorf("%w: %s", ErrBadState, why) }
	if len(p) > maxPayload {
		return bad("too long")
	}
	var w wireState
	d := json.NewDecoder(bytes.NewReader(p))
	if err := d.Decode(&w); err != nil {
		return bad("not the JSON of a group state")
	}
	if d.More() {
		return bad("something after the state")
	}
	if w.V != 1 {
		return bad(fmt.Sprintf("version %d", w.V))
	}
	var s GroupState
	if len(w.Rooms) > 0 {
		s.Rooms = w.Rooms
	}
	if len(w.Devices) > MaxGroupDevices || len(w.Rooms) > MaxGroupRooms {
		return bad("too many devices or rooms")
	}
	for _, x := range w.Devices {
		if len(x.Key) != 32 || len(x.By) != 32 {
			return bad("a key that is not 32 bytes")
		}
		gd := GroupDevice{Key: [32]byte(x.Key), Resource: x.Resource, Label: x.Label, Status: x.Status,
			At: time.UnixMilli(x.At).UTC(), By: [32]byte(x.By)}
		s.Devices = append(s.Devices, gd)
	}
	if err := s.check(); err != nil {
		return GroupState{}, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	return s, nil
}

// check applies DecodeState's rules to s.
func (s GroupState) check() error {
	if len(s.Devices) > MaxGroupDevices || len(s.Rooms) > MaxGroupRooms {
		return errors.New("keysync: too many devices or rooms")
	}
	seen := make(map[[32]byte]bool, len(s.Devices))
	for _, d := range s.Devices {
		switch {
		case seen[d.Key]:
			return errors.New("keysync: a device twice in a group state")
		case d.Status < Member || d.Status > Left:
			return fmt.Errorf("keysync: device status %d", d.Status)
		case len(d.Label) > maxLabel || !utf8.ValidString(d.Label):
			return errors.New("keysync: a device label too long or not UTF-8")
		case d.Resource == "" || len(d.Resource) > maxResource || !utf8.ValidString(d.Resource):
			return errors.New("keysync: a device resource empty, too long or not UTF-8")
		case d.At.UnixMilli() <= 0:
			return errors.New("keysync: a device change without its time")
		}
		seen[d.Key] = true
	}
	rooms := make(map[string]bool, len(s.Rooms))
	for _, r := range s.Rooms {
		if r == "" || len(r) > maxRoomJID || !utf8.ValidString(r) || rooms[r] {
			return errors.New("keysync: a room empty, too long, not UTF-8 or listed twice")
		}
		rooms[r] = true
	}
	return nil
}

// Merge brings what other says into s and returns the devices whose entry
// changed. Per device, the newer record wins, except that a device
// removed or left stays so (a stolen device must not talk its way back
// in: to rejoin, it pairs again under a new key); rooms are added, never
// removed (a pairing brings the rooms of the group, it does not make a
// device part its own). The result is sorted by key.
func (s *GroupState) Merge(other GroupState) (changed []GroupDevice) {
	byKey := make(map[[32]byte]int, len(s.Devices))
	for i, d := range s.Devices {
		byKey[d.Key] = i
	}
	for _, o := range other.Devices {
		o.At = ms(o.At)
		i, ok := byKey[o.Key]
		if !ok {
			if len(s.Devices) >= MaxGroupDevices {
				continue
			}
			byKey[o.Key] = len(s.Devices)
			s.Devices = append(s.Devices, o)
			changed = append(changed, o)
			continue
		}
		cur := &s.Devices[i]
		if cur.Status != Member && o.Status == Member {
			continue
		}
		if o.At.After(cur.At) || (cur.Status == Member && o.Status != Member) {
			if !sameDevice(*cur, o) {
				*cur = o
				changed = append(changed, o)
			}
		}
	}
	for _, r := range other.Rooms {
		if len(s.Rooms) < MaxGroupRooms && !slices.Contains(s.Rooms, r) {
			s.Rooms = append(s.Rooms, r)
		}
	}
	slices.SortFunc(s.Devices, func(a, b GroupDevice) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	slices.SortFunc(changed, func(a, b GroupDevice) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	return changed
}

// Set records d in s (replacing the entry of its key), for changes this
// device makes itself.
func (s *GroupState) Set(d GroupDevice) {
	d.At = ms(d.At)
	for i := range s.Devices {
		if s.Devices[i].Key == d.Key {
			s.Devices[i] = d
			return
		}
	}
	if len(s.Devices) < MaxGroupDevices {
		s.Devices = append(s.Devices, d)
	}
	slices.SortFunc(s.Devices, func(a, b GroupDevice) int { return bytes.Compare(a.Key[:], b.Key[:]) })
}

// ms is t to the millisecond, in UTC: what the wire keeps of a time.
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

func sameDevice(a, b GroupDevice) bool {
	return a.Key == b.Key && a.Resource == b.Resource && a.Label == b.Label && a.Status == b.Status &&
		a.At.Equal(b.At) && a.By == b.By
}
