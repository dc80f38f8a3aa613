package xmpp

import (
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
)

// enabledSession is a session as smEnable leaves it after <enabled/>.
func enabledSession() *smSession {
	m := newSMSession()
	m.id, m.outOn = "abc", true
	return m
}

func TestSMAcknowledgements(t *testing.T) {
	for _, start := range []uint32{0, math.MaxUint32 - 2} { // h wraps at 2^32
		m := enabledSession()
		m.out, m.acked = start, start
		for i := range 5 {
			m.sent("message", []byte(fmt.Sprintf("<message id='%d'/>", i)), false)
		}
		m.sent("r", []byte("<r/>"), false) // not a stanza
		if m.out != start+5 || len(m.queue) != 5 {
			t.Fatalf("start %d: out %d queue %d, want %d and 5", start, m.out, len(m.queue), start+5)
		}
		if err := m.ack(start + 3); err != nil {
			t.Fatal(err)
		}
		if len(m.queue) != 2 || string(m.queue[0]) != "<message id='3'/>" {
			t.Fatalf("start %d: after ack of 3, queue %q", start, m.queue)
		}
		for _, bad := range []uint32{start + 2, start + 6} { // back, or more than sent
			if err := m.ack(bad); err == nil {
				t.Errorf("start %d: ack %d accepted", start, bad-start)
			}
		}
		if len(m.queue) != 2 || m.acked != start+3 {
			t.Fatalf("start %d: a refused ack changed the state", start)
		}
		if err := m.ack(start + 5); err != nil || len(m.queue) != 0 || m.queueBytes != 0 {
			t.Fatalf("start %d: ack of everything: %v, queue %d (%d bytes)", start, err, len(m.queue), m.queueBytes)
		}
	}
}

func TestSMOverflow(t *testing.T) {
	m := enabledSession()
	for range smMaxQueue {
		m.sent("presence", []byte("<presence/>"), false)
	}
	if !m.resumable() {
		t.Fatal("not resumable at the limit")
	}
	m.sent("presence", []byte("<presence/>"), false)
	if m.resumable() || m.queue != nil {
		t.Fatal("still resumable past the limit")
	}
	// The count goes on (the server's acknowledgements still check).
	if err := m.ack(smMaxQueue + 1); err != nil {
		t.Fatal(err)
	}
	m = enabledSession()
	m.sent("message", nil, true) // too long to keep
	if m.resumable() {
		t.Fatal("resumable after a stanza too long to keep")
	}
}

// TestSMCountsReceived: stanzas count from <enabled/> on, including those
// read with it; stream management elements never count.
func TestSMCountsReceived(t *testing.T) {
	m := newSMSession()
	m.waiting = "enabled"
	w := newSMWire(nil)
	w.sm = m
	w.in.write([]byte(testStreamHeader + `<iq type='result' id='bind'/>`))
	w.in.write([]byte(`<enabled xmlns='urn:xmpp:sm:3' id='x' resume='true'/><presence/><r xmlns='urn:xmpp:sm:3'/><message><body>1</body></message>`))
	if got := m.handled(); got != 2 {
		t.Fatalf("handled %d, want 2", got)
	}
}

// deadConn fails every write.
type deadConn struct{ net.Conn }

func (deadConn) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }
func (deadConn) Close() error              { return nil }

// TestSMWireKeepsWhatFails: once the session is resumable, a failed write
// succeeds for mellium and its stanza waits in the queue for the
// resumption; a retired wire refuses writes; before stream management a
// failure is reported.
func TestSMWireKeepsWhatFails(t *testing.T) {
	w := newSMWire(deadConn{})
	if _, err := w.Write([]byte(testStreamHeader + "<message/>")); err == nil {
		t.Fatal("a failed write without stream management reported success")
	}
	m := enabledSession()
	w.sm = m
	for i := range 3 {
		n, err := w.Write([]byte(fmt.Sprintf("<message id='%d'><body>x</body></message>", i)))
		if err != nil || n == 0 {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	// mellium closes the stream after the connection died: what follows
	// is still kept.
	_, _ = w.Write([]byte("</stream:stream>"))
	_, _ = w.Write([]byte("<presence/>"))
	if len(m.queue) != 4 || !strings.Contains(string(m.queue[3]), "presence") {
		t.Fatalf("queue %q", m.queue)
	}
	w.retired = true
	if _, err := w.Write([]byte("<message/>")); !errors.Is(err, errRetired) {
		t.Fatalf("retired wire: %v", err)
	}
	if len(m.queue) != 4 {
		t.Fatal("a retired wire added to the queue")
	}
}

// TestEarlyStanzaBudget: a stanza kept before the stream is served spends
// the byte budget; one that does not fit in what is left is read through
// and dropped, and spends nothing.
func TestEarlyStanzaBudget(t *testing.T) {
	read := func(body string, budget *int) *earlyStanza {
		d := xml.NewDecoder(strings.NewReader("<s><message><body>" + body + "</body></message><next/></s>"))
		_, _ = d.Token() // <s>
		tok, _ := d.Token()
		e, err := readEarly(d, tok.(xml.StartElement), budget)
		if err != nil {
			t.Fatal(err)
		}
		if tok, _ := d.Token(); tok.(xml.StartElement).Name.Local != "next" {
			t.Fatalf("the stanza was not read through: next token %v", tok)
		}
		return e
	}
	budget := 100
	if e := read(strings.Repeat("a", 50), &budget); e == nil || budget >= 50 {
		t.Fatalf("kept %v, budget left %d", e != nil, budget)
	}
	left := budget
	if e := read(strings.Repeat("a", 60), &budget); e != nil || budget != left {
		t.Fatalf("a stanza over the budget: kept %v, budget %d (was %d)", e != nil, budget, left)
	}
}
