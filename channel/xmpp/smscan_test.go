package xmpp

import (
	"bytes"
	"encoding/xml"
	"testing"
)

// scanned is one top-level element as the scanner or encoding/xml saw it.
type scanned struct {
	local string
	raw   string
}

// scanAll feeds stream to a capturing scanner in chunks of n bytes.
func scanAll(stream []byte, n int) []scanned {
	var out []scanned
	s := &xmlScanner{capture: true, elemCap: 1 << 20}
	s.onElement = func(local string, raw []byte, tooLong bool) {
		out = append(out, scanned{local, string(raw)})
	}
	for len(stream) > 0 {
		k := min(n, len(stream))
		s.write(stream[:k])
		stream = stream[k:]
	}
	return out
}

// decodeAll is the oracle: encoding/xml's view of the stream's top-level
// elements, up to the first thing it rejects (Token, not RawToken, so
// that a stray end tag stops it as it stops mellium's decoder).
func decodeAll(stream []byte) []scanned {
	d := xml.NewDecoder(bytes.NewReader(stream))
	var out []scanned
	depth := 0
	var start int64
	var name string
	for {
		before := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return out
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if isStreamElement(t.Name) {
				depth = 1
				continue
			}
			if depth == 1 {
				start, name = before, t.Name.Local
			}
			depth++
		case xml.EndElement:
			if isStreamElement(t.Name) {
				return out
			}
			depth--
			if depth == 1 {
				out = append(out, scanned{name, string(stream[start:d.InputOffset()])})
			}
		}
	}
}

// isStreamElement recognises <stream:stream> as Token names it.
func isStreamElement(n xml.Name) bool {
	return n.Local == "stream" && (n.Space == "http://etherx.jabber.org/streams" || n.Space == "stream")
}

const testStreamHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>`

func TestScannerElements(t *testing.T) {
	stream := testStreamHeader +
		`<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>` +
		`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>` +
		testStreamHeader + // the restart after SASL
		"\n<message to='a@b' type=\"chat\" x='>/&amp;'><body>a &lt; b <![CDATA[ </message> ]]] ]]></body><x/></message>" +
		`<r xmlns='urn:xmpp:sm:3'/> <presence/><iq id='1' type='result'></iq>` +
		`</stream:stream>`
	want := []string{"features", "success", "message", "r", "presence", "iq"}
	oracle := decodeAll([]byte(stream))
	if len(oracle) != len(want) {
		t.Fatalf("encoding/xml found %d elements, want %d", len(oracle), len(want))
	}
	for n := 1; n <= len(stream); n *= 2 {
		got := scanAll([]byte(stream), n)
		if len(got) != len(want) {
			t.Fatalf("chunks of %d: %d elements, want %d: %q", n, len(got), len(want), got)
		}
		for i := range got {
			if got[i].local != want[i] || got[i] != oracle[i] {
				t.Fatalf("chunks of %d: element %d = %q, want %q", n, i, got[i], oracle[i])
			}
		}
	}
}

func TestScannerTooLong(t *testing.T) {
	var got []bool
	s := &xmlScanner{capture: true, elemCap: 16}
	s.onElement = func(local string, raw []byte, tooLong bool) { got = append(got, tooLong) }
	s.write([]byte(testStreamHeader + `<message><body>0123456789abcdef</body></message><a/>`))
	if len(got) != 2 || !got[0] || got[1] {
		t.Fatalf("too long flags = %v, want [true false]", got)
	}
}

// FuzzScanner checks the scanner against encoding/xml: every top-level
// element the decoder reads before it fails, the scanner reports with the
// same name and bytes, whatever the chunking.
func FuzzScanner(f *testing.F) {
	f.Add([]byte(`<message to='a'><body>x</body></message><r xmlns='urn:xmpp:sm:3'/>`), uint8(3))
	f.Add([]byte(`<iq type='get' id="q>"><!-- c --><ping/></iq><a h='1'/>`), uint8(1))
	f.Add([]byte(`<m><![CDATA[<x>]]]]></m><?pi x?><n/>`), uint8(7))
	f.Fuzz(func(t *testing.T, body []byte, chunk uint8) {
		stream := append([]byte(testStreamHeader), body...)
		oracle := decodeAll(stream)
		got := scanAll(stream, int(chunk)+1)
		if len(got) < len(oracle) {
			t.Fatalf("scanner found %d elements, encoding/xml %d", len(got), len(oracle))
		}
		for i := range oracle {
			// Names are compared by TestScannerElements: encoding/xml splits
			// odd ones like ":" its own way.
			if got[i].raw != oracle[i].raw {
				t.Fatalf("element %d: scanner %q, encoding/xml %q", i, got[i], oracle[i])
			}
		}
	})
}
