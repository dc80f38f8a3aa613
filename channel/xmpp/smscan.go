package xmpp

import "bytes"

// xmlScanner follows the bytes of one direction of an XML stream just far
// enough to see where each top-level element (a child of <stream:stream>)
// begins and ends, for stream management (sm.go): XEP-0198 counts the
// stanzas each side has handled and resends the ones the other side did not
// acknowledge, and mellium (v0.23) has no hook that sees every stanza (it
// consumes the answers to its own requests before our handler), so we count
// on the bytes under it. It is no validator: mellium's decoder still parses
// the same bytes, and a stream it rejects is dropped anyway. RFC 6120 §11.1
// rules out comments, processing instructions and DTDs in a stream; the
// scanner still skips them (and CDATA sections) so that it never loses its
// place on what a decoder would accept.
type xmlScanner struct {
	state   scanState
	depth   int  // 1 inside the stream header's element
	quote   byte // the quote that opened the attribute value we are in
	end     bool // the tag being read is an end tag
	slash   bool // the last byte of the tag so far was '/'
	name    []byte
	top     string // the name of the top-level element we are in
	match   int    // bytes matched of the terminator we look for
	inElem  bool   // inside a top-level element (from its '<')
	capture bool   // keep the top-level element's bytes (the sending side)
	elem    []byte
	// elemCap bounds what one element may hold while captured; a longer
	// element is reported with tooLong set and no bytes.
	elemCap int
	tooLong bool
	// onElement is called with the local name of each complete top-level
	// element and, when capturing, its bytes (valid until the next call).
	onElement func(local string, raw []byte, tooLong bool)
	// outlive keeps scanning top-level elements after the stream's end
	// tag: on the sending side, what mellium writes after the socket died
	// (and it closed the stream) is still kept for resending.
	outlive bool
}

type scanState uint8

const (
	scanText    scanState = iota // character data
	scanOpen                     // after '<'
	scanName                     // an element name
	scanTag                      // attributes, up to '>'
	scanQuoted                   // an attribute value
	scanBang                     // after "<!": a comment or CDATA
	scanComment                  // up to "-->"
	scanCDATA                    // up to "]]>"
	scanPI                       // up to "?>"
	scanDecl                     // "<!" something else (a DTD): up to '>'
	maxScanName = 64
)

// write scans p. It never fails: on bytes a decoder would reject it
// merely loses its place, and the connection ends there anyway.
func (s *xmlScanner) write(p []byte) {
	for i := 0; i < len(p); {
		// Character data and attribute values are most of a stanza (an
		// mpENC body is one long text): skip to the byte that ends them.
		if s.state == scanText || s.state == scanQuoted {
			stop := byte('<')
			if s.state == scanQuoted {
				stop = s.quote
			}
			j := bytes.IndexByte(p[i:], stop)
			if j < 0 {
				j = len(p) - i
			}
			if s.inElem {
				s.keepAll(p[i : i+j])
			}
			i += j
			if i == len(p) {
				return
			}
		}
		b := p[i]
		i++
		if s.inElem {
			s.keep(b)
		}
		switch s.state {
		case scanText:
			if b == '<' {
				s.state = scanOpen
				s.end, s.slash = false, false
				s.name = s.name[:0]
				if s.depth == 1 {
					s.inElem = true
					s.elem, s.tooLong = s.elem[:0], false
					s.keep(b)
				}
			}
		case scanOpen:
			switch b {
			case '/':
				s.end = true
				s.state = scanName
			case '?':
				s.state, s.match = scanPI, 0
			case '!':
				s.state, s.match = scanBang, 0
			default:
				s.state = scanName
				s.addName(b)
			}
			if b == '/' || b == '?' || b == '!' {
				if s.depth == 1 {
					s.inElem = false // the stream's end, or no element
				}
			}
		case scanName:
			switch {
			case b == '>':
				s.closeTag()
			case b == '/':
				s.slash = true
				s.state = scanTag
			case isXMLSpace(b):
				s.state = scanTag
			default:
				s.addName(b)
			}
		case scanTag:
			switch b {
			case '>':
				s.closeTag()
			case '"', '\'':
				s.quote, s.slash = b, false
				s.state = scanQuoted
			case '/':
				s.slash = true
			default:
				if !isXMLSpace(b) {
					s.slash = false
				}
			}
		case scanQuoted:
			if b == s.quote {
				s.state = scanTag
			}
		case scanBang:
			// "<!--" or "<![CDATA[", told apart by their first byte; a
			// decoder rejects anything else.
			switch b {
			case '-':
				s.state, s.match = scanComment, 0
			case '[':
				s.state, s.match = scanCDATA, 0
			default:
				s.state = scanDecl
			}
		case scanComment:
			s.match = terminator(s.match, b, "-->")
			if s.match == 3 {
				s.state = scanText
			}
		case scanCDATA:
			s.match = terminator(s.match, b, "]]>")
			if s.match == 3 {
				s.state = scanText
			}
		case scanPI:
			s.match = terminator(s.match, b, "?>")
			if s.match == 2 {
				s.state = scanText
			}
		case scanDecl:
			if b == '>' {
				s.state = scanText
			}
		}
	}
}

// terminator advances the count of bytes of t matched so far by b.
func terminator(matched int, b byte, t string) int {
	if b == t[matched] {
		return matched + 1
	}
	// Only repeated first bytes can restart a match in "-->", "]]>", "?>".
	if b == t[0] {
		if matched == 2 && t[1] == t[0] {
			return 2 // "--" + '-' or "]]" + ']' : still two matched
		}
		return 1
	}
	return 0
}

func (s *xmlScanner) addName(b byte) {
	if len(s.name) < maxScanName {
		s.name = append(s.name, b)
	}
}

// keepAll keeps a run of bytes of the captured element.
func (s *xmlScanner) keepAll(b []byte) {
	if !s.capture || s.tooLong || len(b) == 0 {
		return
	}
	if len(s.elem)+len(b) > s.elemCap {
		s.tooLong = true
		s.elem = s.elem[:0]
		return
	}
	s.elem = append(s.elem, b...)
}

func (s *xmlScanner) keep(b byte) {
	if !s.capture || s.tooLong {
		return
	}
	if len(s.elem) >= s.elemCap {
		s.tooLong = true
		s.elem = s.elem[:0]
		return
	}
	s.elem = append(s.elem, b)
}

// closeTag ends a start, end or empty-element tag at '>'.
func (s *xmlScanner) closeTag() {
	s.state = scanText
	name := string(s.name)
	switch {
	case s.end && isStreamName(name):
		s.inElem = false
		if !s.outlive {
			s.depth = 0
		}
	case s.end:
		if s.depth > 1 {
			s.depth--
		}
		if s.depth == 1 && s.inElem {
			s.element(s.top)
		}
	case isStreamName(name):
		// A stream header, the first or a restart after TLS or SASL: the
		// new stream's children are the top-level elements.
		s.depth, s.inElem = 1, false
	case s.slash:
		if s.depth == 1 && s.inElem {
			s.element(name)
		}
	default:
		if s.depth == 1 {
			s.top = name
		}
		s.depth++
	}
}

// element reports a complete top-level element.
func (s *xmlScanner) element(name string) {
	if s.onElement != nil {
		s.onElement(localName(name), s.elem, s.tooLong)
	}
	s.inElem, s.top = false, ""
	s.elem, s.tooLong = s.elem[:0], false
}

func isStreamName(name string) bool { return name == "stream:stream" }

func localName(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == ':' {
			return name[i+1:]
		}
	}
	return name
}

func isXMLSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }
