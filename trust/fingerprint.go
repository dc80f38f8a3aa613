package trust

import (
	_ "embed"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/mpenc/mpenc/crypto"
)

// fingerprintLabel separates fingerprints from every other hash of a key.
const fingerprintLabel = "mpenc/v1/fingerprint"

// fingerprintSize is the size of a fingerprint: 128 bits.
const fingerprintSize = 16

// Fingerprint identifies an identity key for comparison by people:
// SHA-256("mpenc/v1/fingerprint" ‖ key)[0:16]. Matching a given fingerprint
// with another key takes about 2^128 key generations (a second preimage of
// truncated SHA-256); that is the security a user gets from comparing it in
// full. The same 16 bytes are shown as hex groups (String) or as words
// (Words). The QR code carries the full key instead (URI).
type Fingerprint [fingerprintSize]byte

// FingerprintOf returns key's fingerprint.
func FingerprintOf(key crypto.PublicKey) Fingerprint {
	h := crypto.Hash([]byte(fingerprintLabel), key[:])
	var f Fingerprint
	copy(f[:], h[:fingerprintSize])
	return f
}

// String returns the fingerprint as 8 groups of 4 lowercase hex digits,
// "1a2b 3c4d 5e6f 7a8b 9c0d 1e2f 3a4b 5c6d".
func (f Fingerprint) String() string {
	h := hex.EncodeToString(f[:])
	var b strings.Builder
	for i := 0; i < len(h); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(h[i : i+4])
	}
	return b.String()
}

// Short returns the first group, for lists: it identifies, it does not
// authenticate.
func (f Fingerprint) Short() string { return hex.EncodeToString(f[:2]) }

// maxFingerprintInput bounds what the parsers read: a fingerprint typed
// with generous separators is far shorter.
const maxFingerprintInput = 1024

// parseFingerprint parses a fingerprint typed or pasted by a user: 32 hex
// digits in either case, optionally separated by spaces, tabs, ':' or '-'.
func parseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	if len(s) > maxFingerprintInput {
		return f, fmt.Errorf("%w: fingerprint too long", errInvalid)
	}
	digits := make([]byte, 0, 2*fingerprintSize)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == ':' || c == '-':
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
			digits = append(digits, c)
		case 'A' <= c && c <= 'F':
			digits = append(digits, c+('a'-'A'))
		default:
			return f, fmt.Errorf("%w: fingerprint has a character that is not a hex digit", errInvalid)
		}
		if len(digits) > 2*fingerprintSize {
			return f, fmt.Errorf("%w: fingerprint has more than %d hex digits", errInvalid, 2*fingerprintSize)
		}
	}
	if len(digits) != 2*fingerprintSize {
		return f, fmt.Errorf("%w: fingerprint has %d hex digits, want %d", errInvalid, len(digits), 2*fingerprintSize)
	}
	if _, err := hex.Decode(f[:], digits); err != nil {
		return Fingerprint{}, fmt.Errorf("%w: fingerprint: %v", errInvalid, err)
	}
	return f, nil
}

// wordsFile is the word list: 256 lowercase English words, one per line,
// sorted, unique in their first four letters, written for this project
// (no third-party licence). Word i encodes byte value i. It must never
// change: a change would make fingerprints read by two versions differ.
// TestWordList pins its SHA-256.
//
//go:embed words.txt
var wordsFile string

var (
	wordList  [256]string
	wordIndex = map[string]byte{}
)

func init() {
	lines := strings.Split(strings.TrimSuffix(wordsFile, "\n"), "\n")
	if len(lines) != len(wordList) {
		panic("trust: words.txt must hold 256 words")
	}
	for i, w := range lines {
		if _, dup := wordIndex[w]; dup || w == "" {
			panic("trust: words.txt has an empty or repeated word")
		}
		wordList[i] = w
		wordIndex[w] = byte(i)
	}
}

// Words returns the fingerprint as 16 words, one per byte, separated by
// spaces, for comparison out loud ("acorn zebra ...").
func (f Fingerprint) Words() string {
	ws := make([]string, len(f))
	for i, b := range f {
		ws[i] = wordList[b]
	}
	return strings.Join(ws, " ")
}

// parseWords parses the 16 words of a fingerprint, in any case, separated
// by any run of spaces, tabs, newlines, ',' or '-'.
func parseWords(s string) (Fingerprint, error) {
	var f Fingerprint
	if len(s) > maxFingerprintInput {
		return f, fmt.Errorf("%w: fingerprint words too long", errInvalid)
	}
	fields := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ',' || r == '-'
	})
	if len(fields) != fingerprintSize {
		return f, fmt.Errorf("%w: fingerprint has %d words, want %d", errInvalid, len(fields), fingerprintSize)
	}
	for i, w := range fields {
		b, ok := wordIndex[w]
		if !ok {
			return Fingerprint{}, fmt.Errorf("%w: word %d (%.20q) is not in the word list", errInvalid, i+1, w)
		}
		f[i] = b
	}
	return f, nil
}

// Matches reports whether s, hex groups or words as a user typed them, is
// key's fingerprint, or s is a trust message URI for key as [URI] writes
// it (pasted from a scanned QR code; the URI's account is not checked
// here: the caller matched the member). Hex is 32 digits in either case,
// optionally separated by spaces, tabs, ':' or '-'; words are the 16 of
// [Fingerprint.Words] in any case, separated by any run of spaces, tabs,
// newlines, ',' or '-'. Fingerprints are public; the comparison is
// constant time anyway, as all key comparisons here are.
func Matches(key crypto.PublicKey, s string) bool {
	if _, k, err := parseURI(strings.TrimSpace(s)); err == nil {
		return crypto.Equal(k[:], key[:])
	}
	f, err := parseFingerprint(s)
	if err != nil {
		if f, err = parseWords(s); err != nil {
			return false
		}
	}
	want := FingerprintOf(key)
	return crypto.Equal(f[:], want[:])
}
