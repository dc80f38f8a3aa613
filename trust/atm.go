package trust

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"mellium.im/xmlstream"
	mcrypto "mellium.im/xmpp/crypto"
	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/crypto"
)

// Automatic trust management (XEP-0450 0.4.0, ATM) over trust messages
// (XEP-0434 0.6.0), carried only inside the device channel. Formats and
// the differences from the XEPs: docs/PROTOCOL.md "Trust messages".
const (
	nsSCE      = "urn:xmpp:sce:1"                               // XEP-0420 envelope
	nsATM      = "urn:xmpp:atm:1"                               // the trust message's usage
	encryption = "https://github.com/mpenc/mpenc/ns/identity/1" // the keys meant: mpENC identity keys

	// maxTrustMessage bounds an envelope (bytes), maxOwners its
	// key-owner elements and maxStatements its trust and distrust
	// elements, all counted before anything is decoded.
	maxTrustMessage = 32 << 10
	maxOwners       = 64
	maxStatements   = 256
	// maxParked bounds what devices of one account may have parked
	// (statements waiting for their sender's key to be authenticated).
	maxParked = 1024
	// maxWhy bounds the chain of vouching devices Why follows.
	maxWhy = 8
)

// errParkedFull is returned (wrapped) by HandleTrustMessage when the
// sender's account has parked maxParked statements already.
var errParkedFull = errors.New("trust: too many trust statements wait for this account's keys to be verified")

// statement is one key of one owner in a trust message: trust or
// distrust.
type statement struct {
	owner string // bare JID
	key   crypto.PublicKey
	trust bool
}

// trustMessage is one trust message in its envelope.
type trustMessage struct {
	from, to string // the envelope's: a full JID, a bare JID
	at       time.Time
	stmts    []statement
}

// Parked is a statement of a trust message from a device whose key was
// not authenticated when it arrived (XEP-0450 §5.1): kept, with the
// message's time, until that key is authenticated, then applied. Only
// statements the sender may make are parked (about its own account's
// keys, unless it is a device of ours).
type Parked struct {
	Sender    string // the sending device's full JID
	SenderKey crypto.PublicKey
	Owner     string // the bare JID the statement is about
	Key       crypto.PublicKey
	Trust     bool      // trust; false: distrust
	At        time.Time // the message's time
}

// encodeTrustMessage writes m as an XEP-0420 envelope holding one
// XEP-0434 trust message, through mellium's TrustMessage type. No rpad:
// the device channel pads every packet (docs/PROTOCOL.md).
func encodeTrustMessage(m trustMessage) ([]byte, error) {
	tm := mcrypto.TrustMessage{Usage: nsATM, Encryption: encryption}
	for _, st := range m.stmts {
		owner, err := jid.Parse(st.owner)
		if err != nil {
			return nil, fmt.Errorf("trust: owner %q: %w", st.owner, err)
		}
		i := slices.IndexFunc(tm.Keys, func(o mcrypto.OwnedKeys) bool { return o.Owner.Equal(owner) })
		if i < 0 {
			tm.Keys = append(tm.Keys, mcrypto.OwnedKeys{Owner: owner})
			i = len(tm.Keys) - 1
		}
		tm.Keys[i].Keys = append(tm.Keys[i].Keys, mcrypto.Key{Trusted: st.trust, KeyID: slices.Clone(st.key[:])})
	}
	el := func(local, attr, val string) xml.TokenReader {
		return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: local}, Attr: []xml.Attr{{Name: xml.Name{Local: attr}, Value: val}}})
	}
	r := xmlstream.Wrap(xmlstream.MultiReader(
		el("time", "stamp", m.at.UTC().Format(time.RFC3339Nano)),
		el("from", "jid", m.from),
		el("to", "jid", m.to),
		xmlstream.Wrap(tm.TokenReader(), xml.StartElement{Name: xml.Name{Local: "payload"}}),
	), xml.StartElement{Name: xml.Name{Space: nsSCE, Local: "content"}})
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	if _, err := xmlstream.Copy(e, r); err != nil {
		return nil, err
	}
	if err := e.Flush(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// shape is where each element of an envelope may be: its parent's local
// name and its namespace.
var shape = map[string]struct{ parent, space string }{
	"content":       {"", nsSCE},
	"rpad":          {"content", nsSCE},
	"time":          {"content", nsSCE},
	"from":          {"content", nsSCE},
	"to":            {"content", nsSCE},
	"payload":       {"content", nsSCE},
	"trust-message": {"payload", mcrypto.NSTrust},
	"key-owner":     {"trust-message", mcrypto.NSTrust},
	"trust":         {"key-owner", mcrypto.NSTrust},
	"distrust":      {"key-owner", mcrypto.NSTrust},
}

// parseTrustMessage reads an envelope: sizes, counts and the shape are
// checked on the tokens before the trust message is decoded (by
// mellium's type); every key must be a valid 32-byte Ed25519 key and
// every owner a bare JID; repeated statements collapse (the last wins).
func parseTrustMessage(p []byte) (trustMessage, error) {
	bad := func(format string, args ...any) (trustMessage, error) {
		return trustMessage{}, fmt.Errorf("%w: trust message: %s", errInvalid, fmt.Sprintf(format, args...))
	}
	if len(p) > maxTrustMessage {
		return bad("%d bytes", len(p))
	}
	var m trustMessage
	var stack []string
	var seen = map[string]int{}
	owners, stmts := 0, 0
	d := xml.NewDecoder(bytes.NewReader(p))
	for {
		t, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return bad("%v", err)
		}
		switch t := t.(type) {
		case xml.StartElement:
			parent := ""
			if len(stack) > 0 {
				parent = stack[len(stack)-1]
			}
			want, ok := shape[t.Name.Local]
			if !ok || want.parent != parent || want.space != t.Name.Space {
				return bad("unexpected element {%s}%s in %q", t.Name.Space, t.Name.Local, parent)
			}
			seen[t.Name.Local]++
			switch t.Name.Local {
			case "content", "time", "from", "to", "payload", "trust-message":
				if seen[t.Name.Local] > 1 {
					return bad("two %s elements", t.Name.Local)
				}
			case "key-owner":
				if owners++; owners > maxOwners {
					return bad("more than %d key owners", maxOwners)
				}
			case "trust", "distrust":
				if stmts++; stmts > maxStatements {
					return bad("more than %d keys", maxStatements)
				}
			}
			attr := func(name string) string {
				for _, a := range t.Attr {
					if a.Name.Space == "" && a.Name.Local == name {
						return a.Value
					}
				}
				return ""
			}
			switch t.Name.Local {
			case "time":
				at, err := time.Parse(time.RFC3339, attr("stamp"))
				if err != nil {
					return bad("time %.40q", attr("stamp"))
				}
				m.at = at
			case "from":
				m.from = attr("jid")
			case "to":
				m.to = attr("jid")
			case "trust-message":
				if attr("usage") != nsATM || attr("encryption") != encryption {
					return bad("usage %.40q, encryption %.40q", attr("usage"), attr("encryption"))
				}
			}
			stack = append(stack, t.Name.Local)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 && (stack[len(stack)-1] == "trust" || stack[len(stack)-1] == "distrust" || stack[len(stack)-1] == "rpad") {
				continue
			}
			if len(bytes.TrimSpace(t)) > 0 {
				return bad("text outside keys")
			}
		default:
			return bad("%T", t)
		}
	}
	if seen["content"] != 1 || seen["trust-message"] != 1 || seen["time"] != 1 || seen["from"] != 1 || seen["to"] != 1 {
		return bad("an element is missing")
	}
	// The shape is right: decode the trust message with mellium's type.
	d = xml.NewDecoder(bytes.NewReader(p))
	var tm mcrypto.TrustMessage
	for {
		t, err := d.Token()
		if err != nil {
			return bad("%v", err)
		}
		if s, ok := t.(xml.StartElement); ok && s.Name.Local == "trust-message" {
			if err := tm.UnmarshalXML(d, s); err != nil {
				return bad("%v", err)
			}
			break
		}
	}
	for _, o := range tm.Keys {
		owner := o.Owner.String()
		if owner == "" || o.Owner.Resourcepart() != "" {
			return bad("key owner %.40q is not a bare JID", owner)
		}
		for _, k := range o.Keys {
			if len(k.KeyID) != crypto.PublicKeySize {
				return bad("a key id of %d bytes", len(k.KeyID))
			}
			st := statement{owner: owner, key: crypto.PublicKey(k.KeyID), trust: k.Trusted}
			if err := checkKey(st.key); err != nil {
				return bad("key of %.40q: %v", owner, err)
			}
			m.stmts = slices.DeleteFunc(m.stmts, func(x statement) bool { return x.owner == st.owner && x.key == st.key })
			m.stmts = append(m.stmts, st)
		}
	}
	if CheckJID(m.from) != nil || CheckJID(m.to) != nil {
		return bad("from %.40q to %.40q", m.from, m.to)
	}
	return m, nil
}

// Vouch is one trust message to send after a decision of the user
// (Config.OnVouch): the envelope, Payload, for the device whose key is To
// (authenticated when it was made), to send only over the device channel
// with that device.
type Vouch struct {
	To      Record
	Payload []byte
}

// vouches returns the trust messages to send now that the user has
// authenticated or distrusted key as jid's (Verify and Distrust hand them
// to Config.OnVouch), as XEP-0450 §4 has them (docs/PROTOCOL.md "Trust
// messages"): for an own key authenticated, {us: trust key} to every
// other authenticated device and every key we have authenticated to
// key's device; for a contact's key authenticated, {contact: trust key}
// to our authenticated devices and our authenticated keys to key's
// device; for an own key distrusted, {us: distrust key} to every
// authenticated device; for a contact's key distrusted, {contact:
// distrust key} to our authenticated devices. Only devices whose keys
// are authenticated now are addressed; none for a key in any other
// state.
func (s *Store) vouches(jid string, key crypto.PublicKey) ([]Vouch, error) {
	if err := CheckJID(jid); err != nil {
		return nil, err
	}
	if s.cfg.Self == "" {
		return nil, errors.New("trust: vouching without Config.Self")
	}
	jid = Bare(jid)
	self := Bare(s.cfg.Self)
	var all []Record
	if err := s.b.View(func(tx Tx) error {
		var err error
		all, err = tx.Keys("")
		return err
	}); err != nil {
		return nil, fmt.Errorf("trust: vouching: %w", err)
	}
	subject, ok := find(filter(all, func(r Record) bool { return r.JID == jid }), key)
	if !ok || (subject.State != Authenticated && subject.State != Distrusted) || key == s.cfg.SelfKey {
		return nil, nil
	}
	// Devices a message may go to: authenticated, not ours, not the
	// subject.
	recipients := filter(all, func(r Record) bool {
		return r.State == Authenticated && r.Key != s.cfg.SelfKey && !(r.JID == jid && r.Key == key)
	})
	own := filter(recipients, func(r Record) bool { return r.JID == self })
	one := []statement{{owner: jid, key: key, trust: subject.State == Authenticated}}
	var out []Vouch
	add := func(to []Record, stmts []statement) error {
		for _, r := range to {
			for _, chunk := range chunks(stmts) {
				p, err := s.envelope(r.JID, chunk)
				if err != nil {
					return err
				}
				out = append(out, Vouch{To: r, Payload: p})
			}
		}
		return nil
	}
	var err error
	switch {
	case subject.State == Authenticated && jid == self:
		// The new own device learns every key we authenticated and,
		// ours (docs/PROTOCOL.md "Trust messages"), every key we
		// distrusted: a device removed, or one that left its group,
		// must not be trusted by a device that joins afterwards.
		distrusted := filter(all, func(r Record) bool {
			return r.State == Distrusted && r.Key != s.cfg.SelfKey && !(r.JID == jid && r.Key == key)
		})
		if err = add(recipients, one); err == nil {
			err = add([]Record{subject}, append(statementsOf(recipients, true), statementsOf(distrusted, false)...))
		}
	case subject.State == Authenticated:
		if err = add(own, one); err == nil {
			err = add([]Record{subject}, statementsOf(own, true))
		}
	case jid == self:
		err = add(recipients, one)
	default:
		err = add(own, one)
	}
	if err != nil {
		return nil, fmt.Errorf("trust: vouching: %w", err)
	}
	return out, nil
}

// envelope encodes stmts for a device of to (a bare JID), from us, now;
// nil statements make no message.
func (s *Store) envelope(to string, stmts []statement) ([]byte, error) {
	if len(stmts) == 0 {
		return nil, nil
	}
	owners := map[string]bool{}
	for _, st := range stmts {
		owners[st.owner] = true
	}
	if len(owners) > maxOwners {
		return nil, fmt.Errorf("statements about %d accounts", len(owners))
	}
	return encodeTrustMessage(trustMessage{from: s.cfg.Self, to: to, at: s.now(), stmts: stmts})
}

// chunks splits statements into messages of at most maxStatements keys
// of at most maxOwners owners.
func chunks(stmts []statement) [][]statement {
	var out [][]statement
	var cur []statement
	owners := map[string]bool{}
	for _, st := range stmts {
		if len(cur) == maxStatements || !owners[st.owner] && len(owners) == maxOwners {
			out, cur, owners = append(out, cur), nil, map[string]bool{}
		}
		cur = append(cur, st)
		owners[st.owner] = true
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// filter returns the elements of rs that keep keeps.
func filter[T any](rs []T, keep func(T) bool) []T {
	var out []T
	for _, r := range rs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

func statementsOf(rs []Record, trust bool) []statement {
	var out []statement
	for _, r := range rs {
		out = append(out, statement{owner: r.JID, key: r.Key, trust: trust})
	}
	return out
}

// HandleTrustMessage reads a trust message that arrived over the device
// channel from the device from (a full JID) whose identity key, as the
// channel authenticated it, is fromKey, and applies it as XEP-0450 §4
// and §5 have it: statements the sender may not make (a contact's device
// speaking of another account's keys) are dropped; if fromKey is
// authenticated for its account the rest apply now, otherwise they are
// parked until it is (Verify, or a trust message, authenticating it
// applies them); a distrusted sender's are dropped. A statement older than the last decision about its key
// is ignored; a trust for a key the user distrusted is not applied (the
// user decides: a refusal is recorded and returned); a statement about
// our own key is ignored. It returns the decisions recorded, as
// Config.OnChange also receives them. An error means nothing was
// recorded: a malformed message (or one not from from, or not for us), a
// full parking space, or a backend failure.
func (s *Store) HandleTrustMessage(from string, fromKey crypto.PublicKey, payload []byte) ([]Event, error) {
	if err := CheckJID(from); err != nil {
		return nil, err
	}
	if s.cfg.Self == "" {
		return nil, errors.New("trust: HandleTrustMessage without Config.Self")
	}
	m, err := parseTrustMessage(payload)
	if err != nil {
		return nil, err
	}
	sender, self := Bare(from), Bare(s.cfg.Self)
	if m.from != from || Bare(m.to) != self {
		return nil, fmt.Errorf("%w: a trust message from %.40q to %.40q over the channel with %.40q", errInvalid, m.from, m.to, from)
	}
	var stmts []statement
	for _, st := range m.stmts {
		if (sender == self || st.owner == sender) && !(st.owner == self && st.key == s.cfg.SelfKey) {
			stmts = append(stmts, st)
		}
	}
	now := s.now()
	var changes []Event
	err = s.b.Update(func(tx Tx) error {
		changes = nil
		recs, err := tx.Keys(sender)
		if err != nil {
			return err
		}
		r, ok := find(recs, fromKey)
		if ok && r.State == Distrusted {
			return nil // a distrusted device's word counts for nothing, now or later
		}
		if !ok || r.State != Authenticated {
			parked, err := tx.Parked(sender)
			if err != nil {
				return err
			}
			if len(parked)+len(stmts) > maxParked {
				return errParkedFull
			}
			for _, st := range stmts {
				p := Parked{Sender: from, SenderKey: fromKey, Owner: st.owner, Key: st.key, Trust: st.trust, At: m.at}
				if err := tx.Park(p); err != nil {
					return err
				}
			}
			return nil
		}
		for _, st := range stmts {
			c, err := s.apply(tx, Parked{Sender: from, SenderKey: fromKey, Owner: st.owner, Key: st.key, Trust: st.trust, At: m.at}, now)
			if err != nil {
				return err
			}
			changes = append(changes, c...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("trust: a trust message from %s: %w", from, err)
	}
	s.report(changes)
	return changes, nil
}

// apply applies one statement from an authenticated device, and what its
// authentication of a key unparks.
func (s *Store) apply(tx Tx, p Parked, now time.Time) ([]Event, error) {
	recs, err := tx.Keys(p.Owner)
	if err != nil {
		return nil, err
	}
	rec, ok := find(recs, p.Key)
	if !ok {
		// Vouched for before we saw it (XEP-0450 §5.2): recorded now,
		// so that it is known when it appears.
		rec = Record{JID: p.Owner, Key: p.Key, FirstSeen: now, LastSeen: now, State: Undecided}
	}
	if ok && !rec.Decided.IsZero() && !p.At.After(rec.Decided) {
		return nil, nil // older than the last decision about the key
	}
	ev := Event{At: now, Member: p.Sender, JID: p.Owner, Key: p.Key, By: p.SenderKey}
	switch {
	case p.Trust && rec.State == Authenticated, !p.Trust && rec.State == Distrusted:
		return nil, nil
	case p.Trust && rec.State == Distrusted && (rec.Cause == kindDistrusted || rec.Cause == kindVerifyFailed || rec.Cause == kindLeft):
		// Manual distrust is sticky: the user decides.
		ev.Kind = kindVouchRefused
		return []Event{ev}, tx.AppendEvent(ev)
	case p.Trust:
		ev.Kind = kindVouched
		out, err := s.setState(tx, recs, rec, Authenticated, ev)
		if err != nil {
			return nil, err
		}
		more, err := s.unpark(tx, p.Owner, p.Key, now)
		return append(out, more...), err
	default:
		ev.Kind = kindVouchedDistrust
		return s.setState(tx, recs, rec, Distrusted, ev)
	}
}

// unpark applies what the device with key (of the account jid) parked,
// now that key is authenticated, and deletes it.
func (s *Store) unpark(tx Tx, jid string, key crypto.PublicKey, now time.Time) ([]Event, error) {
	parked, err := tx.Parked(jid)
	if err != nil {
		return nil, err
	}
	parked = filter(parked, func(p Parked) bool { return p.SenderKey == key })
	if len(parked) == 0 {
		return nil, nil
	}
	if err := tx.Unpark(jid, key); err != nil {
		return nil, err
	}
	var out []Event
	for _, p := range parked {
		c, err := s.apply(tx, p, now)
		if err != nil {
			return nil, err
		}
		out = append(out, c...)
	}
	return out, nil
}

// Why returns the trust history of key as jid's (a bare JID), oldest
// first, followed, when the last decision about it came from a trust
// message or TOAKAFA, by the history of the key that caused it, and so on
// (at most 8 keys): the chain /why shows ("verified automatically,
// vouched for by bob/laptop" … "bob/laptop: verified by you on 2 Dec").
func (s *Store) Why(jid string, key crypto.PublicKey) ([]Event, error) {
	if err := CheckJID(jid); err != nil {
		return nil, err
	}
	var out []Event
	err := s.b.View(func(tx Tx) error {
		out = nil
		seen := map[crypto.PublicKey]bool{}
		owner := Bare(jid)
		for range maxWhy {
			if seen[key] {
				return nil
			}
			seen[key] = true
			evs, err := tx.Events(owner, 0)
			if err != nil {
				return err
			}
			var last *Event
			for i := range evs {
				if evs[i].Key == key {
					out = append(out, evs[i])
					if evs[i].Kind >= kindVerified && evs[i].Kind != kindVouchRefused {
						last = &evs[i] // the decision the state comes from
					}
				}
			}
			if last == nil || last.By == (crypto.PublicKey{}) {
				return nil
			}
			by := last.By
			switch last.Kind {
			case kindVouched, kindVouchedDistrust:
				owner = Bare(last.Member)
			case kindAutoDistrusted:
				// The authenticated key is the same account's.
			default:
				return nil
			}
			key = by
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("trust: the history of a key of %s: %w", jid, err)
	}
	return out, nil
}

// String describes the event for the user, in one line without the key:
// "verified by you on 2 Dec 2026 10:04 UTC", "verified automatically on
// …, vouched for by bob@example.org/laptop (key 1a2b …)".
func (e Event) String() string {
	on := e.At.UTC().Format("2 Jan 2006 15:04 MST")
	by := func() string { return FingerprintOf(e.By).String()[:9] }
	switch e.Kind {
	case KeyNew:
		return fmt.Sprintf("first key of the account, seen on %s (announced by %s)", on, e.Member)
	case KeyNewDevice:
		return fmt.Sprintf("new device, seen on %s (announced by %s)", on, e.Member)
	case KeyChanged:
		return fmt.Sprintf("announced on %s by %s in place of the key %s", on, e.Member, FingerprintOf(e.Previous).String()[:9])
	case KeyClaimed:
		return fmt.Sprintf("first seen on %s (announced by %s) while another account had it", on, e.Member)
	case kindVerified:
		return "verified by you on " + on
	case kindTrusted:
		return "trusted by you without verification on " + on
	case kindDistrusted:
		return "distrusted by you on " + on
	case kindVouched:
		return fmt.Sprintf("verified automatically on %s, vouched for by %s (key %s)", on, e.Member, by())
	case kindVouchedDistrust:
		return fmt.Sprintf("distrusted automatically on %s, on the word of %s (key %s)", on, e.Member, by())
	case kindAutoDistrusted:
		return fmt.Sprintf("no longer trusted blindly from %s, when the account's key %s was verified", on, by())
	case kindVouchRefused:
		return fmt.Sprintf("%s (key %s) vouched for it on %s; not applied, because it is distrusted here (/why shows by what): /verify to accept it", e.Member, by(), on)
	case kindVerifyFailed:
		return "distrusted on " + on + ": a live verification with it failed (the two screens showed different words, or its confirmation did not match)"
	case kindLeft:
		return "distrusted on " + on + ": this device of yours left your device group (/devices leave on it)"
	}
	return fmt.Sprintf("%v on %s", e.Kind, on)
}
