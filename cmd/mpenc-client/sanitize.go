package main

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxDisplay bounds what one message shows (bytes of its text): a peer can
// send 256 KiB, which no terminal line needs.
const maxDisplay = 4096

// sanitize makes text received from the network safe to print on a
// terminal: invalid UTF-8 becomes U+FFFD; C0 and C1 control characters
// (escape sequences start with them), DEL, and the Unicode controls that
// reorder or hide text (bidirectional overrides and isolates, zero-width
// joiners, BOM, line and paragraph separators) are removed or replaced;
// a tab becomes a space. Newlines are kept only if keepNewlines is set.
// The result is at most maxDisplay bytes (then "…").
func sanitize(s string, keepNewlines bool) string {
	var b strings.Builder
	b.Grow(min(len(s), maxDisplay+4))
	for i, w := 0, 0; i < len(s); i += w {
		if b.Len() >= maxDisplay {
			b.WriteString("…")
			break
		}
		var r rune
		r, w = utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && w <= 1:
			b.WriteRune(utf8.RuneError)
		case r == '\n':
			if keepNewlines {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		case r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			// control characters: dropped (ESC, CR, BEL, CSI...)
		case hiddenFormat(r):
			// bidi controls and invisible formatting: dropped
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// hiddenFormat reports the format characters that can make displayed text
// differ from what was sent (reordering, invisible joins, line breaks).
func hiddenFormat(r rune) bool {
	switch {
	case r >= 0x202a && r <= 0x202e, // LRE, RLE, PDF, LRO, RLO
		r >= 0x2066 && r <= 0x2069,                // LRI, RLI, FSI, PDI
		r == 0x200e || r == 0x200f || r == 0x061c, // LRM, RLM, ALM
		r == 0x2028 || r == 0x2029,                // line and paragraph separators
		r == 0xfeff,                               // BOM / ZWNBSP
		r >= 0x200b && r <= 0x200d,                // zero-width space, ZWNJ, ZWJ
		r == 0x2060,                               // word joiner
		r >= 0xfff9 && r <= 0xfffb:                // interlinear annotations
		return true
	}
	return unicode.Is(unicode.Cc, r)
}

// oneLine sanitises a short field (a JID, an error message) to one line.
func oneLine(s string) string { return sanitize(s, false) }
