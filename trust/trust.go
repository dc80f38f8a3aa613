package trust

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

//go:generate go tool stringer -type=State,Kind -linecomment -output=enum_string.go

// State is what we have decided about one identity key of one JID.
// The numbers are stored on disk by package store: never renumber. Its
// String method gives the names in the constants' line comments.
type State uint8

// Trust states (XEP-0450 §2 and the mpENC architecture).
const (
	// Undecided: seen, not trusted. A key that replaced another for the
	// same member starts here, as does every new key once the JID has an
	// authenticated key, or under AuthenticatedOnly.
	Undecided State = 1 // undecided
	// BlindlyTrusted: trusted without verification (XEP-0450 "blind
	// trust before verification"). Used only while its JID has no
	// authenticated key and the policy allows blind trust.
	BlindlyTrusted State = 2 // blindly-trusted
	// Authenticated: verified by the user (fingerprint, words or QR code).
	Authenticated State = 3 // authenticated
	// Distrusted: never used. Record.Cause says whether the user
	// distrusted it here (sticky: ATM never overturns it) or a device
	// they authenticated told us to (XEP-0450 trust messages).
	Distrusted State = 4 // distrusted
	// AutoDistrusted: blindly trusted until its JID's first key was
	// authenticated, then no longer used (XEP-0450 TOAKAFA). A trust
	// message from an authenticated device, or the user, authenticates
	// it; unlike Distrusted it is not a judgement of the key.
	AutoDistrusted State = 5 // automatically-distrusted
)

// Record is what the store knows of one identity key of one JID.
//
// JID is always a bare JID: trust is a matter between an account and the
// keys of its devices (XEP-0450's identities and endpoints). Member is the
// full JID (participant id) that last announced the key.
type Record struct {
	JID       string
	Key       crypto.PublicKey
	State     State
	FirstSeen time.Time // when the key was first observed or recorded
	LastSeen  time.Time // last observation; equals FirstSeen for a key never announced
	Member    string    // the full JID that last announced it ("" if never announced)
	Decided   time.Time // last decision (the user's, a trust message's, TOAKAFA's); zero if none
	// Cause is the kind of the last decision about the key (the user's,
	// a trust message's, or TOAKAFA's: see Event.String), 0 if none;
	// Decided is when it was made.
	Cause Kind
	// Label is the name the device gave itself, as last announced with a
	// valid signature (SetLabel); "" if none. Not trust data: nothing in
	// the policy reads it.
	Label string

	// Trusted is computed by Store from State and the policy (and, from
	// Store.Current, Changed): whether the key may be used now. Backends
	// neither store nor read it.
	Trusted bool
	// Changed is set by Store.Current when the member announced Key in
	// place of the key it is known by (a KeyChanged warning) and the user
	// has not decided about Key since: the key is then not used for that
	// member, whatever its State. Backends neither store nor read it.
	Changed bool
	// Claimed is set by Store.Current when Key is also recorded for
	// another account (bare JID) no later than for JID, and the user has
	// not verified or trusted Key for JID since (a KeyClaimed warning):
	// the key is then not used for JID, whatever its State. Backends
	// neither store nor read it. Store.Current does not know our own key,
	// nor who is in the room: Directory.Current also sets it for our own
	// key announced by a member of another account, and for a key another
	// member of the same account present in the room announced there
	// first (Directory.SetPresent), for as long as both are present.
	Claimed bool
}

// Kind says what happened to a key: the outcome of observing it
// ([Decision].Kind), or an entry of the trust history ([Event].Kind), which
// holds the observations KeyNew, KeyNewDevice, KeyChanged and KeyClaimed
// and the user's decisions. The numbers are stored on disk (the history) by
// package store: never renumber. Its String method gives the names in the
// constants' line comments.
type Kind uint8

// Observation outcomes.
const (
	// KeyNew: the first key ever seen for this JID. Recorded, blindly
	// trusted or undecided by policy.
	KeyNew Kind = 1 // new
	// KeyNewDevice: another key for a JID we already know, announced by a
	// member (full JID) we have not seen with any other key: a new device
	// of that account. Blindly trusted only while the JID has no
	// authenticated key (XEP-0450 TOAKAFA); Previous lists the JID's other
	// keys. Worth telling the user, not an alarm.
	KeyNewDevice Kind = 2 // new-device
	// KeyKnown: the key is already recorded for this JID and not
	// distrusted, and the member announcing it either announced no key
	// before (the same device under another resource) or is known by
	// this key.
	KeyKnown Kind = 3 // known
	// KeyChanged: the member announced a key other than the one it is
	// known by, whether or not the store knows that key from another
	// device: a possible man in the middle (a server that announced the
	// key for a device of its own first is one), or a device reinstalled
	// under its old resource. Loud, and untrusted for that member until
	// the user decides about the key (Verify, Trust), even if the key is
	// trusted for another device; the old key's record stays as it was.
	// A new key is recorded as Undecided. Previous holds the record of
	// the key the member is known by (and of the one it announced last,
	// if that is a third). Reported at every announcement until decided.
	KeyChanged Kind = 4 // changed
	// KeyDistrusted: the key is recorded as distrusted. It takes
	// precedence over every other outcome.
	KeyDistrusted Kind = 5 // distrusted
	// KeyClaimed: the key is also recorded for another account (bare
	// JID) whose record of it is no newer than this JID's (first seen no
	// later), and the user has not verified or trusted the key for this
	// JID at or after the latest such record appeared; or it is our own
	// key (Directory.SelfKey), announced by a member of another account.
	// Every device of this project has an identity key of its own for
	// each account (and mpENC has one key per member), so one of the
	// accounts may be posing as the other (docs/STORE.md). Loud,
	// and untrusted for this JID until the user verifies or trusts the
	// key for it (Verify, Trust: a decision made before the other
	// account's record appeared does not count, and none counts against
	// our own key); the other account's record stays as it was. The
	// account that had the key first is not flagged, except on a tie of
	// FirstSeen, where both are. A new key is recorded as Undecided.
	// Previous holds the other accounts' records of the key. Reported
	// at every announcement until decided. KeyChanged takes precedence
	// (the key is untrusted for that member already).
	//
	// Within one account a key announced by several members is not a
	// claim in the store: one device appears under a resource per room.
	// It is one in the room, once the Directory knows who is present
	// (Directory.SetPresent): a member that announces a key another
	// member of its account, present in the room, announced there before
	// it (Self first, for our own key) cannot be that device too, which
	// has one full JID per room. It is untrusted for that member while
	// both are present, whatever the user decided, and nothing more is
	// recorded; Previous ends with the other member's record of the key
	// (Member set to it: ours for Self). KeyChanged and KeyDistrusted
	// take precedence (docs/STORE.md).
	KeyClaimed Kind = 6 // claimed
)

// Decisions, as the trust history records them (Event.Kind, and
// Record.Cause for the last one about a key). Unexported: Event.String
// describes them.
const (
	// kindVerified: the user authenticated a key (Store.Verify).
	kindVerified Kind = 10 // verified
	// kindTrusted: the user trusted a key without verifying it
	// (Store.Trust).
	kindTrusted Kind = 11 // trusted
	// kindDistrusted: the user distrusted a key (Store.Distrust).
	kindDistrusted Kind = 12 // distrusted
	// kindVouched: a trust message from a device whose key is
	// authenticated authenticated the key (Event.By, Event.Member).
	kindVouched Kind = 13 // vouched
	// kindVouchedDistrust: such a message distrusted the key.
	kindVouchedDistrust Kind = 14 // vouched-distrust
	// kindAutoDistrusted: the key was blindly trusted and its JID's
	// first key was just authenticated (TOAKAFA, Event.By that key).
	kindAutoDistrusted Kind = 15 // auto-distrusted
	// kindVouchRefused: a trust message vouched for a key the user
	// distrusted; not applied (the user decides), recorded to be shown.
	kindVouchRefused Kind = 16 // vouch-refused
	// kindVerifyFailed: a live verification with the key's device
	// failed (Store.DistrustMismatch): distrusted, as stickily as by the
	// user, and not told to other devices.
	kindVerifyFailed Kind = 17 // verify-failed
	// kindLeft: the key's device, of our own account, said it left the
	// account's device group (Store.DistrustLeft): distrusted as by the
	// user, and told to other devices.
	kindLeft Kind = 18 // left
)

// Decision is the result of observing a key ([Directory.ObserveKey] hands
// it to OnDecision): data for the caller to act on, as ssh/knownhosts
// returns a KeyError. The store has already recorded what it describes.
type Decision struct {
	Kind   Kind
	Member string           // the full JID that announced the key
	JID    string           // its bare JID
	Key    crypto.PublicKey // the announced key
	// State of Key after the observation, and whether the policy lets it
	// be used now.
	State   State
	Trusted bool
	// Previous: for KeyChanged, the record of the key the member is known
	// by (and of the one it announced last, if that is a third), which a
	// KeyDistrusted that is also a change keeps; for KeyNewDevice, the
	// JID's other keys; for KeyClaimed, the other accounts' records of the
	// key that make it a claim (ours, if it is our own key), oldest first,
	// then the record of the member of the same account present in the
	// room that announced it there first, if any (JID is Decision.JID,
	// Member that member). Nil otherwise.
	Previous []Record
	// Own: the key was announced by another device of our own account
	// (set by Directory.ObserveKey: the bare JID of Member is that of
	// Directory.Self). Show it as "your other device"; the policy
	// applies to it as to anyone's, and a user who does not recognise it
	// should distrust it.
	Own bool
}

// Warning reports whether the decision must be shown to the user as a
// security warning (a changed, claimed or distrusted key). New devices
// and untrusted new keys are information, not alarms.
func (d Decision) Warning() bool {
	return d.Kind == KeyChanged || d.Kind == KeyClaimed || d.Kind == KeyDistrusted
}

// err returns the decision as an error for callers that only pass errors
// on (session.KeyObserver, through [Directory.ObserveKey]): a
// *keyChangedError for KeyChanged, a *keyClaimedError for KeyClaimed, a
// *distrustedError for a distrusted key, nil otherwise.
func (d Decision) err() error {
	switch d.Kind {
	case KeyChanged:
		return &keyChangedError{Member: d.Member, Key: d.Key, Previous: d.Previous}
	case KeyClaimed:
		return &keyClaimedError{Member: d.Member, Key: d.Key, Others: d.Previous}
	case KeyDistrusted:
		return &distrustedError{Member: d.Member, Key: d.Key}
	}
	return nil
}

// String describes the decision in one line, for logs: kind, member,
// fingerprint, state and whether the key may be used.
func (d Decision) String() string {
	return fmt.Sprintf("%v %s %s (%v, trusted=%v)", d.Kind, d.Member, FingerprintOf(d.Key), d.State, d.Trusted)
}

// keyChangedError reports that a member announced a key other than the one
// it announced before. The previous key stays recorded as it was; the new
// one is undecided until the user verifies (or trusts) it. Callers show its
// text; the same facts are in the Decision.
type keyChangedError struct {
	Member   string
	Key      crypto.PublicKey
	Previous []Record
}

// Error names the member, the new key's fingerprint and the keys it
// announced before.
func (e *keyChangedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "trust: %s announced a DIFFERENT identity key %s", e.Member, FingerprintOf(e.Key))
	for i, p := range e.Previous {
		if i == 0 {
			b.WriteString(" (before: ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s, %v", FingerprintOf(p.Key), p.State)
	}
	if len(e.Previous) > 0 {
		b.WriteString(")")
	}
	b.WriteString("; not trusted until verified")
	return b.String()
}

// keyClaimedError reports a member that announced a key another account
// has, or another member of its account present in the room announced
// first (KeyClaimed). Callers show its text; the same facts are in the
// Decision.
type keyClaimedError struct {
	Member string
	Key    crypto.PublicKey
	Others []Record // Decision.Previous: the records that make Key claimed
	self   string   // Directory.Self, to tell our own device among Others
}

// Error names the member, the key's fingerprint and the other accounts,
// or the other member in the room.
func (e *keyClaimedError) Error() string {
	fp := FingerprintOf(e.Key)
	accts, here := splitClaim(e.Member, e.Others)
	switch {
	case len(here) > 0 && here[0].Member == e.self:
		return fmt.Sprintf("trust: %s announced YOUR OWN identity key %s, which this device uses in this room: "+
			"someone is posing as this device; never used for %s", e.Member, fp, e.Member)
	case len(here) > 0:
		also := ""
		if len(accts) > 0 {
			also = " (it is also the key of " + accounts(accts) + ")"
		}
		return fmt.Sprintf("trust: %s announced the identity key %s, which %s, also in this room, announced first%s: "+
			"one of them is not the device it claims to be; not used for %s while both are here", e.Member, fp, here[0].Member, also, e.Member)
	}
	return fmt.Sprintf("trust: %s announced the identity key %s, which is also the key of %s: one account may be posing as another; "+
		"not used for %s until verified or trusted for it", e.Member, fp, accounts(accts), Bare(e.Member))
}

// splitClaim splits the records that make member's key claimed into the
// other accounts' (accts) and those of members of its own account present
// in the room (here: see Directory.SetPresent).
func splitClaim(member string, rs []Record) (accts, here []Record) {
	for _, r := range rs {
		if r.JID == Bare(member) {
			here = append(here, r)
		} else {
			accts = append(accts, r)
		}
	}
	return accts, here
}

// accounts names the JIDs of rs for a message: "bob@example.org (another
// account)", "bob@example.org and carol@example.org (other accounts)".
func accounts(rs []Record) string {
	var jids []string
	for _, r := range rs {
		jids = append(jids, r.JID)
	}
	switch len(jids) {
	case 0:
		return "another account"
	case 1:
		return jids[0] + " (another account)"
	}
	return strings.Join(jids[:len(jids)-1], ", ") + " and " + jids[len(jids)-1] + " (other accounts)"
}

// distrustedError reports a key the user distrusted.
type distrustedError struct {
	Member string
	Key    crypto.PublicKey
}

// Error names the member and the key's fingerprint.
func (e *distrustedError) Error() string {
	return fmt.Sprintf("trust: %s uses the distrusted identity key %s", e.Member, FingerprintOf(e.Key))
}

// untrustedError is the key directory's refusal of a member whose key the
// policy does not let us use (undecided, distrusted, or blindly trusted
// once the JID has an authenticated key or under AuthenticatedOnly), or
// that is changed or claimed. The
// session shows its text as the reason an operation failed.
type untrustedError struct {
	Member string
	Key    crypto.PublicKey
	State  State
	// JIDAuthenticated: the JID has an authenticated key, so only
	// authenticated keys are used (XEP-0450 TOAKAFA).
	JIDAuthenticated bool
	// Changed: the member announced this key in place of the one it is
	// known by, and nobody decided about it since.
	Changed bool
	// ClaimedBy: the records of this key that make it a claimed key
	// (KeyClaimed: other accounts', or another present member's of its
	// account); nil if it is not.
	ClaimedBy []Record
	self      string // Directory.Self, to tell our own device in ClaimedBy
}

// Error names the member and the key's fingerprint, and says why the key
// is not used.
func (e *untrustedError) Error() string {
	why := ""
	switch {
	case e.State == Distrusted:
		why = "it is distrusted"
	case e.Changed:
		why = "it replaced the key this device had, and you have not verified or trusted it since"
	case len(e.ClaimedBy) > 0:
		accts, here := splitClaim(e.Member, e.ClaimedBy)
		switch {
		case len(here) > 0 && here[0].Member == e.self:
			why = "it is YOUR OWN key, which this device uses in this room: someone is posing as this device"
		case len(here) > 0:
			why = fmt.Sprintf("%s, also in this room, announced it first: one of them is not the device it claims to be", here[0].Member)
		default:
			why = fmt.Sprintf("it is also the key of %s, and you have not verified or trusted it for %s since", accounts(accts), Bare(e.Member))
		}
	case e.State == AutoDistrusted:
		why = "it was trusted blindly until the account's first key was verified, and it is not verified"
	case e.State == BlindlyTrusted && e.JIDAuthenticated:
		why = "the account has verified keys and this one is not verified"
	case e.State == BlindlyTrusted:
		why = "only verified keys are used"
	default:
		why = "it is not verified"
	}
	return fmt.Sprintf("trust: %s's identity key %s is not trusted: %s", e.Member, FingerprintOf(e.Key), why)
}

// errUnknownMember is returned (wrapped) by the key directory for a member
// that has announced no identity key.
var errUnknownMember = errors.New("trust: no identity key announced")

// errInvalid is returned (wrapped) for a malformed JID or key.
var errInvalid = errors.New("trust: invalid input")

// maxJIDSize bounds a JID in bytes: RFC 7622 allows 1023 bytes for each of
// the three parts, plus the separators.
const maxJIDSize = 3*1023 + 2

// Bare returns the bare JID of a full JID (everything before the first
// '/'). Participant ids without a resource are their own bare JID.
func Bare(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[:i]
	}
	return jid
}

// CheckJID validates a JID as the trust store needs it: non-empty,
// bounded, valid UTF-8 without control characters, with a non-empty bare
// part. It does not apply PRECIS: callers pass JIDs as the XMPP layer
// normalised them (channel/xmpp passes jid.JID.String()).
//
// Its error wraps, and nothing else, the error that every refusal of a
// malformed JID or key by this package wraps.
func CheckJID(jid string) error {
	if jid == "" || len(jid) > maxJIDSize || !utf8.ValidString(jid) || Bare(jid) == "" {
		return fmt.Errorf("%w: JID %.40q", errInvalid, jid)
	}
	for _, r := range jid {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: JID %.40q has a control character", errInvalid, jid)
		}
	}
	return nil
}

// checkKey refuses keys no honest device announces: non-canonical
// encodings and points of small order (under which anyone can sign), the
// all-zero key among them.
func checkKey(k crypto.PublicKey) error {
	if err := primitive.CheckEd25519PublicKey(k); err != nil {
		return fmt.Errorf("%w: %w", errInvalid, err)
	}
	return nil
}
