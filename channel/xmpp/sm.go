package xmpp

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
)

// Stream management (XEP-0198), docs/XMPP.md "Stream management": both
// sides count the stanzas they handle and acknowledge them; a connection
// that drops is resumed on a new one, where each side resends what the
// other had not acknowledged, and the rooms never notice (the server kept
// our occupants while the session waited).
//
// mellium v0.23 has none of it, and consumes the answers to its own
// requests before our handler sees them, so the counts come from the
// bytes under mellium (smWire, smscan.go), which also keeps a copy of each
// stanza we send until the server acknowledges it.

const nsSM = "urn:xmpp:sm:3"

const (
	// smMaxQueue and smMaxQueueBytes bound the stanzas kept for resending.
	// A server that acknowledges nothing for that long makes the session
	// unresumable (the next loss leaves the rooms) rather than let it grow.
	smMaxQueue      = 4096
	smMaxQueueBytes = 16 << 20
	// smAckDelay is how long after a stanza is sent we ask for an
	// acknowledgement (<r/>), so that a burst costs one request.
	smAckDelay = 500 * time.Millisecond
)

// smSession is one stream management session: the counts and the
// unacknowledged stanzas, carried from a lost connection to the one that
// resumes it. Its mutex guards everything.
type smSession struct {
	mu     sync.Mutex
	id     string        // the server's resumption id; "" when not resumable
	window time.Duration // how long after a loss we may resume
	wire   *smWire       // the connection it runs on now

	in      uint32 // stanzas received since it was enabled (the h we send)
	inOn    bool   // counting received stanzas
	waiting string // "enabled" or "resumed": the answer the reader waits for

	out        uint32   // stanzas sent since it was enabled
	outOn      bool     // counting (and keeping) sent stanzas
	acked      uint32   // the server's last h
	queue      [][]byte // sent, not acknowledged: queue[i] is number acked+1+i
	queueBytes int
	overflow   bool      // stopped keeping stanzas: cannot resume
	requested  time.Time // when the unanswered <r/> was sent; zero: none
	wake       chan struct{}
}

func newSMSession() *smSession {
	return &smSession{wake: make(chan struct{}, 1)}
}

// resumable reports whether a lost connection may be resumed.
func (m *smSession) resumable() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id != "" && !m.overflow
}

// received is the reader's report of a top-level element.
func (m *smSession) received(local string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case isStanzaName(local):
		if m.inOn {
			m.in++
		}
	case local == m.waiting:
		// Counting starts after <enabled/> (from zero) or <resumed/> (from
		// where the lost connection stopped): the stanzas read with it in
		// one read count already.
		m.inOn, m.waiting = true, ""
	case local == "failed" && m.waiting != "":
		m.waiting = ""
	}
}

// sent is the writer's report of a top-level element; raw is its bytes
// (nil if it was too long to keep).
func (m *smSession) sent(local string, raw []byte, tooLong bool) {
	if !isStanzaName(local) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.outOn {
		return
	}
	m.out++
	if m.overflow {
		return
	}
	if tooLong || len(m.queue) >= smMaxQueue || m.queueBytes+len(raw) > smMaxQueueBytes {
		m.overflow, m.queue, m.queueBytes = true, nil, 0
		return
	}
	m.queue = append(m.queue, bytes.Clone(raw))
	m.queueBytes += len(raw)
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// ack applies the server's h. It fails for an h that acknowledges
// stanzas we never sent (or goes back).
func (m *smSession) ack(h uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requested = time.Time{}
	n := h - m.acked // modulo 2^32, as XEP-0198 counts
	if n > m.out-m.acked {
		return fmt.Errorf("xmpp: stream management: the server acknowledged %d stanzas, we sent %d", h, m.out)
	}
	m.acked = h
	if m.overflow {
		return nil
	}
	for i := range n {
		m.queueBytes -= len(m.queue[i])
		m.queue[i] = nil
	}
	m.queue = m.queue[n:]
	return nil
}

// handled is the h we acknowledge.
func (m *smSession) handled() uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.in
}

func isStanzaName(local string) bool {
	return local == "message" || local == "presence" || local == "iq"
}

// smWire is the connection under mellium (inside TLS): it scans what goes
// through for stream management. Once its session counts sent stanzas, a
// write that fails closes the socket (the reader then ends the connection,
// and the account resumes it) but reports success: the stanza is kept,
// and resent after resumption. A wire replaced by the one that resumes its
// session refuses every write.
type smWire struct {
	net.Conn
	in, out xmlScanner

	mu      sync.Mutex
	sm      *smSession // nil until stream management is enabled
	dead    bool       // a write failed: further writes only feed the queue
	retired bool       // another connection resumed our session
}

func newSMWire(c net.Conn) *smWire {
	w := &smWire{Conn: c}
	w.in.onElement = func(local string, _ []byte, _ bool) {
		if sm := w.session(); sm != nil {
			sm.received(local)
		}
	}
	w.out.capture, w.out.elemCap, w.out.outlive = true, smMaxQueueBytes, true
	w.out.onElement = func(local string, raw []byte, tooLong bool) {
		if sm := w.session(); sm != nil {
			sm.sent(local, raw, tooLong)
		}
	}
	return w
}

func (w *smWire) session() *smSession {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sm
}

func (w *smWire) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	w.in.write(p[:n])
	return n, err
}

var errRetired = errors.New("xmpp: connection replaced by its resumption")

func (w *smWire) Write(p []byte) (int, error) {
	w.mu.Lock()
	retired, dead, sm := w.retired, w.dead, w.sm
	w.mu.Unlock()
	if retired {
		return 0, errRetired
	}
	keeping := false
	if sm != nil {
		sm.mu.Lock()
		keeping = sm.outOn && !sm.overflow && sm.id != ""
		sm.mu.Unlock()
	}
	w.out.write(p)
	if dead && keeping {
		return len(p), nil
	}
	n, err := w.Conn.Write(p)
	if err != nil && keeping {
		w.mu.Lock()
		w.dead = true
		w.mu.Unlock()
		_ = w.Conn.Close()
		return len(p), nil
	}
	return n, err
}

// ConnectionState is the TLS state under the wire, for mellium (channel
// binding) and for our own check that TLS was negotiated.
func (w *smWire) ConnectionState() tls.ConnectionState {
	if tc, ok := w.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}

// smNegotiation is stream management's part in negotiating one
// connection: what it starts from, and what it did.
type smNegotiation struct {
	window time.Duration // Config.ResumeWindow: negative disables it
	prev   *smSession    // a lost connection's session to resume, or nil
	wire   *smWire       // set once the stream runs over it

	session *smSession    // nil: not enabled
	resumed bool          // prev was resumed on this connection
	early   []earlyStanza // stanzas read while waiting for the server's answer
}

// smEnable asks the server to enable stream management with resumption
// after resource binding. A refusal is no error: the connection goes on
// without it.
func smEnable(ctx context.Context, session *mxmpp.Session, wire *smWire, window time.Duration, early *[]earlyStanza) (*smSession, error) {
	sm := newSMSession()
	sm.waiting = "enabled"
	wire.mu.Lock()
	wire.sm = sm
	wire.mu.Unlock()
	sm.wire = wire
	sm.mu.Lock()
	sm.outOn = true // our count starts with <enable/> (XEP-0198 §4)
	sm.mu.Unlock()
	attrs := []xml.Attr{{Name: xml.Name{Local: "resume"}, Value: "true"}}
	if window > 0 {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "max"}, Value: strconv.Itoa(max(1, int(window/time.Second)))})
	}
	if err := writeElement(session, xml.StartElement{Name: xml.Name{Space: nsSM, Local: "enable"}, Attr: attrs}); err != nil {
		return nil, err
	}
	start, attr, err := readSMAnswer(session, early)
	if err != nil {
		return nil, err
	}
	switch start.Name.Local {
	case "enabled":
		sm.mu.Lock()
		if attr["resume"] == "true" || attr["resume"] == "1" {
			sm.id = clip(attr["id"], 256)
		}
		sm.window = window
		if s, err := strconv.Atoi(attr["max"]); err == nil && s > 0 && time.Duration(s)*time.Second < sm.window {
			sm.window = time.Duration(s) * time.Second
		}
		sm.mu.Unlock()
		return sm, nil
	default: // <failed/>
		wire.mu.Lock()
		wire.sm = nil
		wire.mu.Unlock()
		return nil, nil
	}
}

// smResume asks the server to resume prev on this connection, in place of
// resource binding. On success the stanzas the server had not received
// are sent again, and prev now runs on wire. It reports false when the
// server refused (the session expired): the caller binds as usual.
func smResume(ctx context.Context, session *mxmpp.Session, wire *smWire, prev *smSession, early *[]earlyStanza) (bool, error) {
	prev.mu.Lock()
	old := prev.wire
	id, h := prev.id, prev.in
	prev.mu.Unlock()
	if old != nil {
		// The lost connection's writers must not add to the queue any more:
		// what they would write now would be neither resent nor counted by
		// the server.
		old.mu.Lock()
		old.retired = true
		old.mu.Unlock()
	}
	prev.mu.Lock()
	prev.inOn, prev.outOn, prev.waiting = false, false, "resumed"
	prev.mu.Unlock()
	wire.mu.Lock()
	wire.sm = prev
	wire.mu.Unlock()
	err := writeElement(session, xml.StartElement{Name: xml.Name{Space: nsSM, Local: "resume"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "previd"}, Value: id},
		{Name: xml.Name{Local: "h"}, Value: strconv.FormatUint(uint64(h), 10)},
	}})
	if err != nil {
		return false, err
	}
	start, attr, err := readSMAnswer(session, early)
	if err != nil {
		return false, err
	}
	if start.Name.Local != "resumed" {
		wire.mu.Lock()
		wire.sm = nil
		wire.mu.Unlock()
		return false, nil
	}
	got, err := strconv.ParseUint(attr["h"], 10, 32)
	if err != nil {
		return false, fmt.Errorf("xmpp: stream management: bad h %q", clip(attr["h"], 16))
	}
	if err := prev.ack(uint32(got)); err != nil {
		return false, err
	}
	// Resend what the server did not get, through the wire so that each
	// is counted and kept again under its old number.
	prev.mu.Lock()
	resend := prev.queue
	prev.queue, prev.queueBytes = nil, 0
	prev.out = prev.acked
	prev.outOn = true
	prev.wire = wire
	prev.mu.Unlock()
	for _, raw := range resend {
		if _, err := wire.Write(raw); err != nil {
			return false, err
		}
	}
	return true, nil
}

// writeElement writes one empty element and flushes.
func writeElement(session *mxmpp.Session, start xml.StartElement) error {
	w := session.TokenWriter()
	defer w.Close()
	if _, err := xmlstream.Copy(w, xmlstream.Wrap(nil, start)); err != nil {
		return err
	}
	return w.Flush()
}

// earlyStanza is a stanza the server sent between binding and its answer
// to <enable/>: the server routes messages to our full JID from binding on
// (another device's device channel packets, for one). The account hands
// them to its handler before it serves the stream (installLocked).
type earlyStanza struct {
	start xml.StartElement
	inner []xml.Token // through the end element
}

const (
	maxEarlyStanzas = 256
	maxEarlyTokens  = 4096    // per stanza; a longer one is dropped
	maxEarlyBytes   = 4 << 20 // of text and attributes, all kept stanzas together
)

// reader replays the stanza to a handler, which must not answer it (ours
// only answers stream management elements, never early).
func (e *earlyStanza) reader() xmlstream.TokenReadEncoder {
	return &tokenReplay{toks: e.inner}
}

type tokenReplay struct {
	toks []xml.Token
}

func (r *tokenReplay) Token() (xml.Token, error) {
	if len(r.toks) == 0 {
		return nil, io.EOF
	}
	t := r.toks[0]
	r.toks = r.toks[1:]
	return t, nil
}

var errEarlyAnswer = errors.New("xmpp: no answer to a stanza received before the stream was served")

func (r *tokenReplay) EncodeToken(xml.Token) error               { return errEarlyAnswer }
func (r *tokenReplay) Flush() error                              { return nil }
func (r *tokenReplay) Encode(any) error                          { return errEarlyAnswer }
func (r *tokenReplay) EncodeElement(any, xml.StartElement) error { return errEarlyAnswer }

// readSMAnswer reads the server's answer to <enable/> or <resume/>: its
// start element and attributes. Stanzas before it go to early (at most
// maxEarlyStanzas; more are dropped, as are other elements).
func readSMAnswer(session *mxmpp.Session, early *[]earlyStanza) (xml.StartElement, map[string]string, error) {
	r := session.TokenReader()
	defer r.Close()
	d := xml.NewTokenDecoder(r)
	budget := maxEarlyBytes
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, nil, err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue // whitespace
		}
		if start.Name.Space != nsSM {
			if !isStanzaName(start.Name.Local) || len(*early) >= maxEarlyStanzas {
				if err := d.Skip(); err != nil {
					return start, nil, err
				}
				continue
			}
			e, err := readEarly(d, start, &budget)
			if err != nil {
				return start, nil, err
			}
			if e != nil {
				*early = append(*early, *e)
			}
			continue
		}
		attr := make(map[string]string, len(start.Attr))
		for _, a := range start.Attr {
			attr[a.Name.Local] = a.Value
		}
		if err := d.Skip(); err != nil {
			return start, nil, err
		}
		return start, attr, nil
	}
}

// readEarly reads the rest of a stanza that started with start; nil if it
// was too long to keep (more than maxEarlyTokens tokens, or more bytes
// than what is left of budget, which it spends).
func readEarly(d *xml.Decoder, start xml.StartElement, budget *int) (*earlyStanza, error) {
	e := &earlyStanza{start: start.Copy()}
	left := *budget - tokenBytes(start)
	depth := 1
	for depth > 0 {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
		if e != nil {
			left -= tokenBytes(tok)
			e.inner = append(e.inner, xml.CopyToken(tok))
			if len(e.inner) > maxEarlyTokens || left < 0 {
				e = nil
			}
		}
	}
	if e != nil {
		*budget = left
	}
	return e, nil
}

// tokenBytes is about what a token holds: its text, or its names and
// attribute values.
func tokenBytes(tok xml.Token) int {
	switch t := tok.(type) {
	case xml.CharData:
		return len(t)
	case xml.StartElement:
		n := len(t.Name.Space) + len(t.Name.Local)
		for _, a := range t.Attr {
			n += len(a.Name.Space) + len(a.Name.Local) + len(a.Value)
		}
		return n
	case xml.EndElement:
		return len(t.Name.Space) + len(t.Name.Local)
	}
	return 16
}

// smElement handles a stream management element from the server on the
// receive loop: answers a request (<r/>) with our count, applies an
// acknowledgement (<a/>). An acknowledgement of stanzas we never sent
// breaks the stream (and the session: it is not resumed).
func smElement(sm *smSession, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if sm == nil {
		return nil
	}
	switch start.Name.Local {
	case "r":
		a := xml.StartElement{Name: xml.Name{Space: nsSM, Local: "a"}, Attr: []xml.Attr{
			{Name: xml.Name{Local: "h"}, Value: strconv.FormatUint(uint64(sm.handled()), 10)},
		}}
		if err := t.EncodeToken(a); err != nil {
			return err
		}
		return t.EncodeToken(a.End())
	case "a":
		for _, at := range start.Attr {
			if at.Name.Local != "h" {
				continue
			}
			h, err := strconv.ParseUint(at.Value, 10, 32)
			if err == nil {
				err = sm.ack(uint32(h))
			}
			if err != nil {
				sm.mu.Lock()
				sm.overflow = true // not resumable: the counts disagree
				sm.mu.Unlock()
				return fmt.Errorf("xmpp: stream management: %w", err)
			}
		}
	}
	return nil
}

// smRequests asks the server to acknowledge what we sent, smAckDelay after
// a stanza, while cn lives; one request at a time.
func smRequests(cn *conn) {
	sm := cn.sm
	for {
		select {
		case <-cn.ctx.Done():
			return
		case <-sm.wake:
		}
		select {
		case <-cn.ctx.Done():
			return
		case <-time.After(smAckDelay):
		}
		sm.mu.Lock()
		// One request at a time; one unanswered for long is asked again
		// (a lost answer would otherwise stop the queue from shrinking).
		ask := sm.out != sm.acked && time.Since(sm.requested) > 10*time.Second
		if ask {
			sm.requested = time.Now()
		}
		sm.mu.Unlock()
		if ask {
			_ = cn.sess.Send(cn.ctx, xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: nsSM, Local: "r"}}))
		}
	}
}
