package xmpp

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

// BenchmarkRatioStreamManagement measures what stream management adds to
// one groupchat stanza with a 1 KiB body (about an mpENC data packet): the
// sending side's scan, copy and acknowledgement, and the receiving side's
// scan and count, against decoding the same bytes with encoding/xml (what
// mellium does with every stanza anyway), timed in the same loop.
func BenchmarkRatioStreamManagement(b *testing.B) {
	stanza := []byte(`<message xmlns="jabber:client" to="room@conference.example.org" type="groupchat" id="0123456789abcdef"><body>?mpENC:` +
		strings.Repeat("QUJDRA", 1024/6) + `.</body><store xmlns="urn:xmpp:hints"/></message>`)
	out := &smWire{}
	out.out.capture, out.out.elemCap, out.out.outlive = true, smMaxQueueBytes, true
	in := &smWire{}
	sm := enabledSession()
	sm.inOn = true
	out.out.onElement = func(local string, raw []byte, tooLong bool) { sm.sent(local, raw, tooLong) }
	in.in.onElement = func(local string, _ []byte, _ bool) { sm.received(local) }
	head := []byte(testStreamHeader)
	out.out.write(head)
	in.in.write(head)
	var smT, xmlT time.Duration
	for b.Loop() {
		t0 := time.Now()
		out.out.write(stanza)
		if err := sm.ack(sm.out); err != nil {
			b.Fatal(err)
		}
		in.in.write(stanza)
		t1 := time.Now()
		d := xml.NewDecoder(bytes.NewReader(stanza))
		for {
			if _, err := d.Token(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		t2 := time.Now()
		smT += t1.Sub(t0)
		xmlT += t2.Sub(t1)
	}
	b.ReportMetric(float64(smT)/float64(xmlT), "sm/xml-decode")
	b.ReportMetric(float64(smT.Nanoseconds())/float64(b.N), "ns/sm")
	b.ReportMetric(float64(xmlT.Nanoseconds())/float64(b.N), "ns/xml-decode")
	b.SetBytes(int64(len(stanza)))
}
