package xmpp

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/channel"
)

// Seeds: every kind of stanza the room state machine handles.
func stanzaSeeds() []string {
	return []string{
		pres("alice", alice, identityEl(testKeyA)),
		pres("bob", bob, ""),
		selfPres("participant", identityEl(testKey(7)), 100),
		selfPres("moderator", "", 201),
		subjectMsg,
		msg("alice", "?mpENC:AAAA."),
		msg(tNick, "hello"),
		unavail("alice", alice),
		unavail("bob", bob, 307),
		roomStatus(172),
		roomStatus(173),
		fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s' type='unavailable'>%s</presence>`, tRoom, tNick, xUser("", 110, 307)),
		fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/carol' type='unavailable'>%s</presence>`, tRoom, xUser(`<item jid='c@d/e' nick='caroline'/>`, 303)),
		fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s' type='error'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`, tRoom, tNick),
		`<message xmlns='jabber:client' from='` + tRoom + `/alice' type='groupchat'><body>x</body><delay xmlns='urn:xmpp:delay'/></message>`,
		`<message xmlns='jabber:client' from='other@muc.example' id='i'><x xmlns='http://jabber.org/protocol/muc#user'><invite from='alice@example.org/x'><reason>come</reason></invite></x></message>`,
		`<message xmlns='jabber:client' from='alice@example.org/x'><x xmlns='jabber:x:conference' jid='` + tRoom + `' reason='hi'/></message>`,
		pres("alice", alice, labelSeed(1, "phone")),
		pres("bob", bob, strings.Replace(labelSeed(2, "laptop"), "label='laptop'", "label='lapt0p'", 1)), // a signature that does not match
		selfPres("participant", labelSeed(7, "desk"), 100),
		`<message xmlns='jabber:client' from='alice@example.org/mpenc-1' type='chat'><p2p xmlns='` + nsP2P + `'>AQID</p2p></message>`,
		`<message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' queryid='q' id='i'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='a@b/c' to='d@e/f' type='chat'><p2p xmlns='` + nsP2P + `'>AQID</p2p></message></forwarded></result></message>`,
	}
}

// labelSeed is testKey(n)'s identity element with a signed label.
func labelSeed(n byte, label string) string {
	a := signedLabel(n, label)
	return fmt.Sprintf(`<identity xmlns='%s' alg='ed25519' label='%s' labelsig='%s'>%s</identity>`, nsIdentity, label,
		base64.StdEncoding.EncodeToString(a.sig[:]), base64.StdEncoding.EncodeToString(a.key[:]))
}

func FuzzDecodeStanza(f *testing.F) {
	for _, s := range stanzaSeeds() {
		f.Add([]byte(s))
	}
	f.Add([]byte(`<message xmlns='jabber:client'><body>` + strings.Repeat("<a>", 40) + `</body></message>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeString(string(data))
		if err != nil || st == nil {
			return
		}
		if len(st.Body) > maxBody || len(st.Status) > maxStatus || len(st.Type) > maxAttr || len(st.ID) > maxAttr ||
			len(st.ErrText) > maxErrText || len(st.ErrCondition) > maxAttr {
			t.Fatalf("a cap was exceeded: %+v", st)
		}
		if in := st.Invite; in != nil && (len(in.Room) > maxJID || len(in.From) > maxJID || len(in.Reason) > maxInviteReason) {
			t.Fatalf("invitation over the caps: %d %d %d bytes", len(in.Room), len(in.From), len(in.Reason))
		}
		if inv, ok := invitationOf(st); ok && (inv.Room == "" || strings.Contains(inv.Room, "/") || st.Type == "error") {
			t.Fatalf("accepted a malformed invitation: %+v", inv)
		}
		if len(st.P2P) > maxDirect || st.P2P != nil && (st.P2PBad || st.Kind != kindMessage || len(st.P2P) == 0) {
			t.Fatalf("a device channel payload of %d bytes kept (bad %v, kind %v)", len(st.P2P), st.P2PBad, st.Kind)
		}
		if m := st.MAM; m != nil && (len(m.P2P) > maxDirect || len(m.QueryID) > maxAttr || len(m.ID) > maxArchiveID || st.MAMBad) {
			t.Fatalf("an archive result over the caps: %d %d %d", len(m.P2P), len(m.QueryID), len(m.ID))
		}
		if st.BodyTooLong && st.Body != "" {
			t.Fatal("a body over the cap was kept")
		}
		if st.IdentityOK && !st.HasIdentity {
			t.Fatal("identity OK without an identity element")
		}
		if st.Label != "" && (!st.IdentityOK || !validLabel(st.Label)) {
			t.Fatalf("label %q kept (identity ok %v)", st.Label, st.IdentityOK)
		}
		if st.Item != nil && (len(st.Item.JID) > maxJID || len(st.Item.Nick) > maxJID || !utf8.ValidString(st.Item.JID)) {
			t.Fatalf("item over the caps: %+v", st.Item)
		}
		// Whatever it decoded, the room state machine takes it in every
		// phase without breaking the contract.
		for _, prefix := range [][]string{nil, {selfPres("participant", "", 100)}, {selfPres("participant", "", 100), subjectMsg}, {selfPres("moderator", "", 201), subjectMsg}} {
			h := newFuzzRoom()
			for _, p := range prefix {
				h.apply(t, mustDecode(t, p))
			}
			h.apply(t, st)
			h.checkInternal(t)
		}
	})
}

// FuzzRoom feeds a sequence of stanzas (separated by NUL bytes) and control
// words to the room state machine and checks the GroupChannel contract
// after every event and the room's own bookkeeping after every step.
func FuzzRoom(f *testing.F) {
	seeds := stanzaSeeds()
	f.Add([]byte(strings.Join(append([]string{seeds[0], seeds[1], seeds[2], seeds[4]}, seeds[5:]...), "\x00")))
	f.Add([]byte(strings.Join([]string{seeds[3], seeds[4], "CONF", seeds[0], seeds[5], "LOST", "JOIN", seeds[2], seeds[4], seeds[11]}, "\x00")))
	f.Add([]byte(strings.Join([]string{seeds[0], selfPres("participant", ""), seeds[4], seeds[5], seeds[9], seeds[10]}, "\x00")))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := newFuzzRoom()
		for i, part := range bytes.Split(data, []byte{0}) {
			if i > 200 {
				return
			}
			switch string(part) {
			case "JOIN":
				if h.r.phase == phaseOut {
					h.r.startJoin(tNick)
				}
				continue
			case "LOST":
				h.accept(t, h.r.lost(errors.New("fuzz: connection lost")))
				continue
			case "CONF":
				if h.r.phase == phaseSettling && h.r.created {
					h.accept(t, h.r.configured())
				}
				continue
			}
			st, err := decodeString(string(part))
			if err != nil || st == nil {
				continue
			}
			h.apply(t, st)
			h.checkInternal(t)
		}
	})
}

type fuzzRoom struct {
	r *room
	c contract
}

func newFuzzRoom() *fuzzRoom {
	h := &fuzzRoom{r: newRoom(jid.MustParse(tRoom), tSelf, 8), c: contract{self: tSelf}}
	h.r.startJoin(tNick)
	return h
}

func (h *fuzzRoom) apply(t *testing.T, st *inStanza) {
	t.Helper()
	h.accept(t, h.r.handle(st))
}

func (h *fuzzRoom) accept(t *testing.T, evs []channel.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := h.c.check(ev); err != nil {
			t.Fatalf("contract: %v", err)
		}
	}
}

// checkInternal checks the room's bookkeeping: the JID counts match the
// occupants, we are never among the others, the caps hold, and the
// contract checker agrees on whether we are in.
func (h *fuzzRoom) checkInternal(t *testing.T) {
	t.Helper()
	r := h.r
	if r.phase == phaseOut {
		if r.occ != nil || r.count != nil || r.pending != nil {
			t.Fatal("state left over while out")
		}
	} else {
		want := make(map[string]int)
		for _, o := range append(slices.Collect(maps.Values(r.occ)), &r.me) {
			if o.label != "" && (!o.hasKey || !checkLabel(o.key, o.label, &o.sig)) {
				t.Fatalf("occupant %s has label %q its key did not sign", o.jid, o.label)
			}
		}
		for _, o := range r.occ {
			want[o.jid]++
			if o.jid == r.self || o.jid == "" {
				t.Fatalf("occupant with JID %q", o.jid)
			}
		}
		if len(want) != len(r.count) {
			t.Fatalf("counts %v, occupants say %v", r.count, want)
		}
		for j, n := range want {
			if r.count[j] != n {
				t.Fatalf("count[%s] = %d, want %d", j, r.count[j], n)
			}
		}
		if len(r.occ) > r.maxOcc {
			t.Fatalf("%d occupants over the cap %d", len(r.occ), r.maxOcc)
		}
	}
	if r.inRoom() != h.c.in {
		t.Fatalf("room in=%v, events say in=%v", r.inRoom(), h.c.in)
	}
}
