package xmpp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/mpenc/mpenc/channel"
)

func stanzaErr(c stanza.Condition) error {
	return stanza.Error{Type: stanza.Cancel, Condition: c}
}

// TestSelfPingVerdict: what each answer to a self-ping (XEP-0410) means,
// and what a disco#info query to the room says after an item-not-found.
func TestSelfPingVerdict(t *testing.T) {
	for _, c := range []struct {
		err  error
		want pingVerdict
	}{
		{nil, pingIn},
		{stanzaErr(stanza.ServiceUnavailable), pingIn},
		{stanzaErr(stanza.FeatureNotImplemented), pingIn},
		// ejabberd: "Conference room does not exist"; Prosody: from the
		// service, for a room it no longer has. The XEP: our nick changing.
		{stanzaErr(stanza.ItemNotFound), pingAskRoom},
		{fmt.Errorf("wrapped: %w", stanzaErr(stanza.ItemNotFound)), pingAskRoom},
		{stanzaErr(stanza.NotAcceptable), pingForgot}, // Prosody: "You are not currently connected to this chat"
		{stanzaErr(stanza.NotAllowed), pingForgot},
		{stanzaErr(stanza.Forbidden), pingForgot},
		{stanzaErr(stanza.RemoteServerNotFound), pingUnsettled},
		{stanzaErr(stanza.RemoteServerTimeout), pingUnsettled},
		{context.DeadlineExceeded, pingUnsettled},
		{errors.New("connection reset"), pingUnsettled},
	} {
		if got := selfPingVerdict(c.err); got != c.want {
			t.Errorf("self-ping answered %v: verdict %d, want %d", c.err, got, c.want)
		}
	}
	for _, c := range []struct {
		err  error
		want roomState
	}{
		{nil, roomExists},
		{stanzaErr(stanza.ItemNotFound), roomGone},
		{stanzaErr(stanza.Gone), roomGone},
		{stanzaErr(stanza.Forbidden), roomExists},
		{stanzaErr(stanza.ServiceUnavailable), roomExists},
		{stanzaErr(stanza.RemoteServerTimeout), roomUnknown},
		{context.DeadlineExceeded, roomUnknown},
	} {
		if got := roomVerdict(c.err); got != c.want {
			t.Errorf("disco#info answered %v: verdict %d, want %d", c.err, got, c.want)
		}
	}
}

// TestDecodeRemovalReasons: the <reason/> of the item in our unavailable
// presence (a kick, a ban) and of a <destroy/> are read, cleaned of
// control and invisible characters and bounded; an overlong one is
// dropped.
func TestDecodeRemovalReasons(t *testing.T) {
	kick := func(reason string) string {
		return fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'>`+
			`<item jid='%s' role='none' affiliation='none'><actor nick='boss'/><reason>%s</reason><reason>second</reason></item>`+
			`<status code='110'/><status code='307'/></x></presence>`, tRoom, tNick, tSelf, reason)
	}
	for _, c := range []struct{ in, want string }{
		{"spamming &amp; more", "spamming & more"},
		{"", ""},
		{"line one\nline two\t end  ", "line one line two end"},
		{"\u009b31mred\u009b0m", "31mred0m"},                 // C1 CSI removed: no terminal escapes (XML cannot carry C0 ones)
		{"abc\u202edcba\u200b!", "abcdcba!"},                 // bidi override and zero-width space removed
		{"del\u007f and \u0085next", "del and next"},         // DEL, C1 NEL
		{strings.Repeat("é", 200), strings.Repeat("é", 128)}, // cut to 256 bytes at a rune boundary
		{strings.Repeat("x", maxReasonRead+1), ""},           // over what we read: dropped
	} {
		st := mustDecode(t, kick(c.in))
		if st.Item == nil || st.Item.Reason != c.want || st.Item.JID != tSelf || !st.hasStatus(307) {
			t.Errorf("kick reason %q: item %+v status %v, want reason %q", c.in, st.Item, st.Status, c.want)
		}
	}
	st := mustDecode(t, fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'>`+
		`<destroy jid='other@muc.example'><reason>closing &lt;down&gt;</reason></destroy><item role='none' affiliation='none'/></x></presence>`, tRoom, tNick))
	if !st.Destroyed || st.DestroyReason != "closing <down>" || st.Item == nil || st.Item.Reason != "" {
		t.Fatalf("destroy: %+v, item %+v", st, st.Item)
	}
	// A reason outside muc#user, or nested deeper, is not the room's.
	st = mustDecode(t, fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'>`+
		`<item role='none'><reason xmlns='urn:example'>no</reason><actor><reason>no</reason></actor></item><status code='307'/></x></presence>`, tRoom, tNick))
	if st.Item == nil || st.Item.Reason != "" || !st.hasStatus(307) {
		t.Fatalf("foreign reasons: item %+v status %v", st.Item, st.Status)
	}
}

// TestRoomRemovedWithReason: our removal carries the room's words into the
// EventOwnLeave error and Err; ejabberd's destroy presence (without status
// 110 and without our real JID) is ours.
func TestRoomRemovedWithReason(t *testing.T) {
	h := newHarness(t)
	h.join()
	evs := h.feed(fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s' type='unavailable'>%s</presence>`, tRoom, tNick,
		xUser(fmt.Sprintf(`<item jid='%s' role='none' affiliation='none'><reason>off-topic &amp; rude</reason><actor nick='boss'/></item>`, tSelf), 110, 307)))
	if len(evs) != 1 || evs[0].Kind != channel.EventOwnLeave || h.r.removed == nil {
		t.Fatalf("kick: events\n%s", fmtEvents(evs))
	}
	if want := `xmpp: removed from ` + tRoom + `: kicked ("off-topic & rude")`; evs[0].Err == nil || evs[0].Err.Error() != want || h.r.removed.Error() != want {
		t.Fatalf("kick error %v, want %s", evs[0].Err, want)
	}

	// ejabberd's presence to the occupants of a destroyed room.
	h = newHarness(t)
	h.join()
	evs = h.feed(fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'>`+
		`<destroy><reason>closing down</reason></destroy><item role='none' affiliation='none'/></x></presence>`, tRoom, tNick))
	if len(evs) != 1 || evs[0].Kind != channel.EventOwnLeave || h.r.removed == nil || h.r.removed.Reason != leftDestroyed {
		t.Fatalf("destroy: events\n%s removed %v", fmtEvents(evs), h.r.removed)
	}
	if want := `xmpp: removed from ` + tRoom + `: room destroyed ("closing down")`; evs[0].Err.Error() != want {
		t.Fatalf("destroy error %v, want %s", evs[0].Err, want)
	}
	// Another occupant's destroy presence is its leave, and a presence
	// from our nick without 110 and without <destroy/> is still ignored.
	h = newHarness(t)
	h.join()
	evs = h.feed(fmt.Sprintf(`<presence xmlns='jabber:client' from='%s/%s' type='unavailable'>%s</presence>`, tRoom, tNick, xUser(`<item role='none'/>`)))
	if len(evs) != 0 || h.r.phase != phaseIn {
		t.Fatalf("unavailable from our nick without 110: %s phase %v", fmtEvents(evs), h.r.phase)
	}
}
