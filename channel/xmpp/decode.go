package xmpp

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/crypto"
)

// Namespaces we read.
const (
	nsClient    = "jabber:client"
	nsMUC       = "http://jabber.org/protocol/muc"
	nsMUCUser   = "http://jabber.org/protocol/muc#user"
	nsMUCAdmin  = "http://jabber.org/protocol/muc#admin"
	nsMUCOwner  = "http://jabber.org/protocol/muc#owner"
	nsDelay     = "urn:xmpp:delay"
	nsDelayOld  = "jabber:x:delay"
	nsStanzas   = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsDataForms = "jabber:x:data"
	nsPing      = "urn:xmpp:ping"
	nsDirectInv = "jabber:x:conference" // XEP-0249 direct invitations
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsMAM       = "urn:xmpp:mam:2"
	nsForward   = "urn:xmpp:forward:0"
	nsRSM       = "http://jabber.org/protocol/rsm"
)

// Caps on what one stanza may make us keep. The stream parser below us
// (encoding/xml through mellium) reads whole tokens; these bound what we
// store and how long we look.
const (
	// maxBody is the longest body we deliver: honest servers refuse client
	// stanzas over 256 KiB, so no honest body is longer.
	maxBody = 256 << 10
	// maxTokens bounds the tokens we inspect in one stanza; the rest is
	// discarded unread by the session.
	maxTokens = 4096
	// maxDepth bounds element nesting we follow.
	maxDepth = 16
	// maxStatus bounds the status codes kept.
	maxStatus = 16
	// maxJID is the longest JID (RFC 7622: three parts of 1023 bytes).
	maxJID = 3071 + 2
	// maxAttr bounds other attribute values we keep (roles, codes).
	maxAttr = 64
	// maxErrText bounds a stanza error's text.
	maxErrText = 256
	// maxReasonRead bounds the <reason/> of a removal (a kick, a ban, a
	// destroyed room) that we read; a longer one is dropped. What we keep
	// of it is at most maxReason bytes.
	maxReasonRead = 1024
	maxReason     = 256
	// maxArchiveID bounds an archive id we keep (servers use short ones).
	maxArchiveID = 256
)

type stanzaKind uint8

const (
	kindOther stanzaKind = iota
	kindPresence
	kindMessage
	kindIQ
)

// mucItem is the <item/> of a muc#user payload.
type mucItem struct {
	JID         string // real JID, as sent (parsed later)
	Nick        string // new nick (status 303)
	Role        string
	Affiliation string
	// Reason is the text of the item's <reason/> (why a moderator kicked
	// or banned the occupant), cleaned by cleanReason; "" when absent.
	Reason string
}

// inStanza is what the receive loop keeps of one stanza: only the parts the
// channel acts on, each bounded.
type inStanza struct {
	Kind stanzaKind
	From jid.JID // zero when absent or malformed
	// FromOK reports that the from attribute was present and well-formed.
	FromOK bool
	Type   string
	ID     string

	HasBody     bool
	Body        string
	BodyTooLong bool
	HasSubject  bool
	Delayed     bool

	HasMUCUser bool
	Item       *mucItem // the first item only
	Status     []int
	Destroyed  bool
	// DestroyReason is the text of the <destroy/> element's <reason/>,
	// cleaned by cleanReason.
	DestroyReason string

	HasIdentity bool // an identity element was present, valid or not
	IdentityOK  bool
	Identity    crypto.PublicKey
	// Label and LabelSig are the announced device label and its
	// signature, well formed but not verified; empty without IdentityOK.
	Label    string
	LabelSig crypto.Signature

	ErrCondition string
	ErrText      string

	// P2P is the decoded payload of a device channel element (<p2p/>,
	// docs/XMPP.md "Device channel messages"), nil when none or
	// malformed; P2PBad reports a malformed or oversized one.
	P2P    []byte
	P2PBad bool

	// MAM is the archive result the message carries (XEP-0313), nil
	// when none; MAMBad reports two of them (neither is taken).
	MAM    *mamResult
	MAMBad bool

	// Invite is the first invitation the message carries: a mediated one
	// (XEP-0045 §7.8.2, inside the muc#user <x/>) or a direct one
	// (XEP-0249), nil when none.
	Invite *inInvite

	// HistoryRequest is the decoded payload of a history service request
	// (an IQ set, docs/XMPP.md "History service requests"), nil when none
	// or malformed (HistoryBad).
	HistoryRequest []byte
	HistoryBad     bool
	IDTooLong      bool // an IQ's id over maxIQID (not kept: not answered)

	Truncated bool // hit maxTokens or maxDepth
}

// inInvite is an invitation as received, each field bounded and unchecked.
type inInvite struct {
	Direct bool   // XEP-0249: the sender invites; Room names the room
	Room   string // direct only: the room's JID as sent
	From   string // mediated only: the inviter's JID as the room states it
	Reason string
}

func (s *inStanza) hasStatus(code int) bool {
	for _, c := range s.Status {
		if c == code {
			return true
		}
	}
	return false
}

var errNotStanza = errors.New("xmpp: not a stanza")

// decodeStanza reads one stanza from r, whose next tokens are the children
// of start, up to (and possibly including) start's end element. It never
// fails on content it does not like: it records what it understood and
// marks the rest. It returns an error only when r does (a broken stream) or
// for an element that is not a stanza.
func decodeStanza(start xml.StartElement, r xml.TokenReader) (*inStanza, error) {
	st := &inStanza{}
	switch {
	case start.Name.Local == "presence" && (start.Name.Space == nsClient || start.Name.Space == ""):
		st.Kind = kindPresence
	case start.Name.Local == "message" && (start.Name.Space == nsClient || start.Name.Space == ""):
		st.Kind = kindMessage
	case start.Name.Local == "iq" && (start.Name.Space == nsClient || start.Name.Space == ""):
		st.Kind = kindIQ
	default:
		return nil, errNotStanza
	}
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "from":
			if len(a.Value) <= maxJID {
				if j, err := jid.Parse(a.Value); err == nil {
					st.From, st.FromOK = j, true
				}
			}
		case "type":
			st.Type = clip(a.Value, maxAttr)
		case "id":
			st.ID = clip(a.Value, maxAttr)
			if st.Kind == kindIQ {
				// An IQ's answer must carry its id whole.
				st.ID, st.IDTooLong = a.Value, len(a.Value) > maxIQID
				if st.IDTooLong {
					st.ID = ""
				}
			}
		}
	}
	if st.Kind == kindIQ && st.Type != "set" {
		return st, nil // gets and results are not ours to read here
	}

	st, err := walkStanza(st, &walker{r: r})
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		// The stanza ended (possibly inside an element we were reading,
		// which a well-formed stream cannot do; keep what we have).
		err = nil
	}
	return st, err
}

func walkStanza(st *inStanza, d *walker) (*inStanza, error) {
	for {
		tok, err := d.next()
		if err != nil {
			return st, err
		}
		if d.stopped {
			st.Truncated = true
			return st, nil
		}
		t, ok := tok.(xml.StartElement)
		if !ok || d.depth != 1 {
			continue
		}
		// A direct child of the stanza.
		switch {
		case t.Name.Local == "body" && (t.Name.Space == nsClient || t.Name.Space == ""):
			if st.HasBody {
				// Only the first body counts (all readers pick the same).
				continue
			}
			st.HasBody = true
			text, tooLong, err := d.text(maxBody)
			if err != nil {
				return st, err
			}
			st.Body, st.BodyTooLong = text, tooLong
		case t.Name.Local == "subject" && (t.Name.Space == nsClient || t.Name.Space == ""):
			st.HasSubject = true
		case t.Name.Local == "delay" && t.Name.Space == nsDelay,
			t.Name.Local == "x" && t.Name.Space == nsDelayOld:
			st.Delayed = st.Delayed || delayedBySender(t.Attr, st.From)
		case t.Name.Local == "x" && t.Name.Space == nsMUCUser:
			if st.HasMUCUser {
				continue
			}
			st.HasMUCUser = true
			if err := d.mucUser(st); err != nil {
				return st, err
			}
		case t.Name.Local == "x" && t.Name.Space == nsDirectInv:
			if st.Invite != nil {
				continue
			}
			inv := &inInvite{Direct: true}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space != "":
				case a.Name.Local == "jid":
					inv.Room = clip(a.Value, maxJID)
				case a.Name.Local == "reason":
					inv.Reason = clip(a.Value, maxInviteReason)
				}
			}
			st.Invite = inv
		case t.Name.Local == "request" && t.Name.Space == nsHistory && st.Kind == kindIQ:
			if st.HistoryRequest != nil || st.HistoryBad {
				st.HistoryRequest, st.HistoryBad = nil, true
				continue
			}
			text, tooLong, err := d.text(maxHistoryRequestText)
			if err != nil {
				return st, err
			}
			var b []byte
			if !tooLong {
				b, _ = base64.StdEncoding.Strict().DecodeString(text)
			}
			st.HistoryRequest, st.HistoryBad = b, len(b) == 0
			if st.HistoryBad {
				st.HistoryRequest = nil
			}
		case t.Name.Local == "p2p" && t.Name.Space == nsP2P && st.Kind == kindMessage:
			if st.P2P != nil || st.P2PBad {
				st.P2P, st.P2PBad = nil, true // two payloads: take neither
				continue
			}
			b, err := d.p2pPayload()
			if err != nil {
				return st, err
			}
			st.P2P, st.P2PBad = b, b == nil
		case t.Name.Local == "result" && t.Name.Space == nsMAM && st.Kind == kindMessage:
			if st.MAM != nil || st.MAMBad {
				st.MAM, st.MAMBad = nil, true
				continue
			}
			m := &mamResult{}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space != "":
				case a.Name.Local == "queryid":
					m.QueryID = clip(a.Value, maxAttr)
				case a.Name.Local == "id":
					m.ID = clip(a.Value, maxArchiveID)
				}
			}
			if err := d.mamResult(m); err != nil {
				return st, err
			}
			if !st.MAMBad {
				st.MAM = m
			}
		case t.Name.Local == "identity" && t.Name.Space == nsIdentity:
			if st.HasIdentity {
				// Two announcements in one presence: trust neither.
				st.IdentityOK = false
				st.Identity = crypto.PublicKey{}
				st.Label, st.LabelSig = "", crypto.Signature{}
				continue
			}
			st.HasIdentity = true
			text, tooLong, err := d.text(identityTextLen)
			if err != nil {
				return st, err
			}
			if !tooLong {
				if key, err := parseIdentity(t.Attr, text); err == nil {
					st.Identity, st.IdentityOK = key, true
					if label, sig, ok := parseLabel(t.Attr); ok {
						st.Label, st.LabelSig = label, sig
					}
				}
			}
		case t.Name.Local == "error" && (t.Name.Space == nsClient || t.Name.Space == ""):
			if err := d.stanzaError(st); err != nil {
				return st, err
			}
		}
	}
}

// mamResult is an archived message as an archive result carries it
// (XEP-0313 §4.2: result → forwarded → message): only what a device
// channel packet needs.
type mamResult struct {
	QueryID string
	ID      string // the archive's id of the message
	From    jid.JID
	To      jid.JID
	FromOK  bool
	ToOK    bool
	Type    string
	P2P     []byte // nil when none or malformed
}

// mamResult reads the children of a MAM <result/> (the walker is just
// inside it).
func (d *walker) mamResult(m *mamResult) error {
	base := d.depth
	inFwd, inMsg, p2ps := false, false, 0
	for {
		tok, err := d.next()
		if err != nil || d.stopped {
			return err
		}
		if d.depth < base {
			return nil
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case d.depth == base+1 && t.Name.Local == "forwarded" && t.Name.Space == nsForward:
				inFwd = true
			case inFwd && d.depth == base+2 && t.Name.Local == "message" && (t.Name.Space == nsClient || t.Name.Space == ""):
				if inMsg {
					m.P2P, p2ps = nil, 2 // two messages: take neither
					continue
				}
				inMsg = true
				for _, a := range t.Attr {
					switch {
					case a.Name.Space != "" || len(a.Value) > maxJID:
					case a.Name.Local == "from":
						if j, err := jid.Parse(a.Value); err == nil {
							m.From, m.FromOK = j, true
						}
					case a.Name.Local == "to":
						if j, err := jid.Parse(a.Value); err == nil {
							m.To, m.ToOK = j, true
						}
					case a.Name.Local == "type":
						m.Type = clip(a.Value, maxAttr)
					}
				}
			case inMsg && d.depth == base+3 && t.Name.Local == "p2p" && t.Name.Space == nsP2P:
				p2ps++
				b, err := d.p2pPayload()
				if err != nil {
					return err
				}
				m.P2P = nil
				if p2ps == 1 {
					m.P2P = b
				}
			}
		case xml.EndElement:
			if d.depth == base && t.Name.Local == "forwarded" {
				inFwd = false
			}
		}
	}
}

// p2pPayload reads a <p2p/> element's text (the walker is just inside
// it): the decoded payload, or nil when it is not strict base64 of 1 to
// maxDirect bytes.
func (d *walker) p2pPayload() ([]byte, error) {
	text, tooLong, err := d.text(maxP2PText)
	if err != nil || tooLong {
		return nil, err
	}
	b, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil || len(b) == 0 {
		return nil, nil
	}
	return b, nil
}

// mucUser reads the children of a muc#user <x/> (the walker is just inside it).
func (d *walker) mucUser(st *inStanza) error {
	base := d.depth
	for {
		tok, err := d.next()
		if err != nil {
			return err
		}
		if d.stopped {
			st.Truncated = true
			return nil
		}
		if d.depth < base {
			return nil // the end of <x/>
		}
		t, ok := tok.(xml.StartElement)
		if !ok || d.depth != base+1 || t.Name.Space != nsMUCUser {
			continue
		}
		switch t.Name.Local {
		case "item":
			if st.Item != nil {
				continue
			}
			it := &mucItem{}
			for _, a := range t.Attr {
				if a.Name.Space != "" {
					continue
				}
				switch a.Name.Local {
				case "jid":
					it.JID = clip(a.Value, maxJID)
				case "nick":
					it.Nick = clip(a.Value, maxJID)
				case "role":
					it.Role = clip(a.Value, maxAttr)
				case "affiliation":
					it.Affiliation = clip(a.Value, maxAttr)
				}
			}
			st.Item = it
			reason, err := d.reasonChild()
			if err != nil {
				return err
			}
			it.Reason = reason
		case "status":
			if len(st.Status) >= maxStatus {
				continue
			}
			for _, a := range t.Attr {
				if a.Name.Local == "code" && a.Name.Space == "" && len(a.Value) == 3 {
					if n, err := strconv.Atoi(a.Value); err == nil && n >= 100 && n <= 999 {
						st.Status = append(st.Status, n)
					}
				}
			}
		case "destroy":
			if st.Destroyed {
				continue
			}
			st.Destroyed = true
			reason, err := d.reasonChild()
			if err != nil {
				return err
			}
			st.DestroyReason = reason
		case "invite":
			// A room relaying an occupant's stanza adds its own <invite/>
			// and keeps the rest: the room's word wins over a direct
			// invitation the occupant put in the same stanza.
			if st.Invite != nil && !st.Invite.Direct {
				continue
			}
			inv := &inInvite{}
			for _, a := range t.Attr {
				if a.Name.Local == "from" && a.Name.Space == "" {
					inv.From = clip(a.Value, maxJID)
				}
			}
			st.Invite = inv
			if err := d.inviteReason(inv); err != nil {
				return err
			}
		}
	}
}

// stanzaError reads a stanza <error/>: its defined condition and text.
func (d *walker) stanzaError(st *inStanza) error {
	base := d.depth
	for {
		tok, err := d.next()
		if err != nil {
			return err
		}
		if d.stopped {
			st.Truncated = true
			return nil
		}
		if d.depth < base {
			return nil
		}
		t, ok := tok.(xml.StartElement)
		if !ok || d.depth != base+1 || t.Name.Space != nsStanzas {
			continue
		}
		if t.Name.Local == "text" {
			text, _, err := d.text(maxErrText)
			if err != nil {
				return err
			}
			st.ErrText = text
		} else if st.ErrCondition == "" {
			st.ErrCondition = clip(t.Name.Local, maxAttr)
		}
	}
}

// inviteReason reads the children of a mediated <invite/> (the walker is
// just inside it): its <reason/>, bounded; longer ones are cut.
func (d *walker) inviteReason(inv *inInvite) error {
	base := d.depth
	for {
		tok, err := d.next()
		if err != nil {
			return err
		}
		if d.stopped || d.depth < base {
			return nil
		}
		t, ok := tok.(xml.StartElement)
		if !ok || d.depth != base+1 || t.Name.Local != "reason" || t.Name.Space != nsMUCUser {
			continue
		}
		text, tooLong, err := d.text(maxInviteReason)
		if err != nil {
			return err
		}
		if !tooLong {
			inv.Reason = text
		}
	}
}

// reasonChild reads the children of the muc#user element just opened (an
// <item/> or a <destroy/>) up to its end, and returns the text of its first
// <reason/>, cleaned by cleanReason: "" when there is none, or when it is
// longer than maxReasonRead.
func (d *walker) reasonChild() (string, error) {
	base := d.depth
	reason, seen := "", false
	for {
		tok, err := d.next()
		if err != nil {
			return reason, err
		}
		if d.stopped || d.depth < base {
			return reason, nil
		}
		t, ok := tok.(xml.StartElement)
		if !ok || seen || d.depth != base+1 || t.Name.Local != "reason" || t.Name.Space != nsMUCUser {
			continue
		}
		seen = true
		text, tooLong, err := d.text(maxReasonRead)
		if err != nil {
			return reason, err
		}
		if !tooLong {
			reason = cleanReason(text)
		}
	}
}

// cleanReason makes the room's free text (a kick's or a destroyed room's
// reason) fit an error message: invalid UTF-8 becomes U+FFFD, line breaks
// and tabs become spaces, control and invisible format characters
// (escape sequences, bidirectional overrides, zero-width joiners) are
// removed, runs of spaces become one, and the result is cut to maxReason
// bytes.
func cleanReason(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s { // invalid UTF-8 comes as U+FFFD
		switch {
		case r == '\n' || r == '\r' || r == '\t' || r == ' ' || r == 0x2028 || r == 0x2029:
			space = b.Len() > 0
			continue
		case unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r):
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return clip(b.String(), maxReason)
}

// walker reads tokens, tracking depth relative to the stanza (children are
// at depth 1) and stopping at the caps.
type walker struct {
	r       xml.TokenReader
	depth   int
	tokens  int
	stopped bool
}

// next returns the next token. After the stanza's end element (or the end
// of r) it returns io.EOF. When a cap is hit it sets stopped.
func (d *walker) next() (xml.Token, error) {
	if d.stopped {
		return nil, nil
	}
	tok, err := d.r.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, io.EOF
	}
	d.tokens++
	switch tok.(type) {
	case xml.StartElement:
		d.depth++
	case xml.EndElement:
		d.depth--
		if d.depth < 0 {
			return nil, io.EOF // the stanza's own end element
		}
	}
	if d.tokens > maxTokens || d.depth > maxDepth {
		d.stopped = true
	}
	return tok, nil
}

// text collects the character data of the element just opened, up to max
// bytes, and consumes its end. Nested elements inside it are skipped (their
// text is not part of a body).
func (d *walker) text(max int) (string, bool, error) {
	base := d.depth
	var b []byte
	tooLong := false
	for {
		tok, err := d.next()
		if err != nil {
			if err == io.EOF {
				return string(b), tooLong, io.ErrUnexpectedEOF
			}
			return string(b), tooLong, err
		}
		if d.stopped {
			return "", true, nil
		}
		if d.depth < base {
			return string(b), tooLong, nil
		}
		if cd, ok := tok.(xml.CharData); ok && d.depth == base && !tooLong {
			if len(b)+len(cd) > max {
				tooLong = true
				b = nil
				continue
			}
			b = append(b, cd...)
		}
	}
}

// clip cuts s to at most n bytes at a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// delayedBySender reports whether a delay mark (XEP-0203, or the old
// XEP-0091) says the stanza is old news from its sender's side: one
// without a from, or from the sender's own bare JID (a room marks its
// history so, XEP-0045 §7.2.15). A mark from anyone else is a server's
// note that it held the stanza for us: stream management resending what
// it queued while our connection was lost adds one from our own account
// (Prosody's mod_smacks) or our server; such a stanza is live
// (docs/XMPP.md "Stream management").
func delayedBySender(attrs []xml.Attr, sender jid.JID) bool {
	for _, a := range attrs {
		if a.Name.Local != "from" || a.Name.Space != "" {
			continue
		}
		if a.Value == "" {
			return true
		}
		if len(a.Value) > maxJID {
			return true
		}
		j, err := jid.Parse(a.Value)
		return err != nil || j.Bare().Equal(sender.Bare())
	}
	return true
}
