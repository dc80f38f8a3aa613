package keysync

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sampleMessages() []Message {
	c := TID{1, 2, 3, 0xff}
	n := TID{9, 8, 7}
	return []Message{
		{Type: Beacon, Challenge: c},
		{Type: NegotiationRequest, Challenge: c, Negotiation: n, IsGroup: true},
		{Type: NegotiationRequest, Challenge: c, Negotiation: n},
		{Type: NegotiationOpen, Negotiation: n},
		{Type: Rollback, Negotiation: n},
		{Type: CommitReject, Negotiation: n},
		{Type: CommitAcceptOfferer, Negotiation: n},
		{Type: CommitAcceptRequester, Negotiation: n},
		{Type: CommitAccept, Negotiation: n},
		{Type: CommitAcceptForGroup, Negotiation: n},
		{Type: GroupTrustThisKey, Negotiation: n, Payload: []byte{1, 2, 3}},
		{Type: GroupKeys, Negotiation: n, Payload: []byte("shared")},
		{Type: OwnKeysOfferer, Negotiation: n, Payload: []byte("o")},
		{Type: OwnKeysRequester, Negotiation: n},
		{Type: LeaveGroup},
	}
}

// TestWire: every message reads back as written; malformed ones are
// refused with ErrMalformed.
func TestWire(t *testing.T) {
	for _, m := range sampleMessages() {
		p, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(p)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("%s read back as %+v, %v", p, got, err)
		}
	}
	if _, err := Encode(Message{Type: Accept}); err == nil {
		t.Fatal("an external event encoded")
	}
	ns := Namespace
	c32, n32 := strings.Repeat("a", 32), strings.Repeat("b", 32)
	for _, p := range []string{
		``, `<keysync/>`,
		`<keysync xmlns='x' type='Beacon' challenge='` + c32 + `'/>`,
		`<keysync xmlns='` + ns + `' type='Hello' challenge='` + c32 + `'/>`,
		`<keysync xmlns='` + ns + `' type='Beacon'/>`,
		`<keysync xmlns='` + ns + `' type='Beacon' challenge='` + c32 + `' negotiation='` + n32 + `'/>`,
		`<keysync xmlns='` + ns + `' type='Beacon' challenge='` + strings.ToUpper(c32) + `'/>`,
		`<keysync xmlns='` + ns + `' type='Beacon' challenge='` + c32[:30] + `'/>`,
		`<keysync xmlns='` + ns + `' type='Rollback' negotiation='` + n32 + `' group='1'/>`,
		`<keysync xmlns='` + ns + `' type='Rollback' negotiation='` + n32 + `' extra='1'/>`,
		`<keysync xmlns='` + ns + `' type='Rollback' negotiation='` + n32 + `'><x/></keysync>`,
		`<keysync xmlns='` + ns + `' type='Rollback' negotiation='` + n32 + `'>!!</keysync>`,
		`<keysync xmlns='` + ns + `' type='Rollback' negotiation='` + n32 + `'/><more/>`,
		`<keysync xmlns='` + ns + `' type='GroupKeys' negotiation='` + n32 + `'>` + strings.Repeat("QUFB", 6000) + `</keysync>`,
	} {
		if _, err := Decode([]byte(p)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%.80q: %v", p, err)
		}
	}
}

// FuzzDecode: the decoder never panics, and what it accepts encodes back
// to a message it reads the same.
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		p, _ := Encode(m)
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := Decode(p)
		if err != nil {
			return
		}
		q, err := Encode(m)
		if err != nil {
			t.Fatalf("accepted %q, cannot encode it: %v", p, err)
		}
		m2, err := Decode(q)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("%q → %+v → %q → %+v, %v", p, m, q, m2, err)
		}
	})
}
