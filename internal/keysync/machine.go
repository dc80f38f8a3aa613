package keysync

import (
	"crypto/subtle"
	"errors"
	"io"
	"time"
)

// TID is a transaction id: a challenge or a negotiation (the draft's
// UUIDs; 16 random bytes here), compared as a 128-bit big-endian number.
type TID [16]byte

// less reports whether a is numerically below b.
func (a TID) less(b TID) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func (a TID) xor(b TID) TID {
	var out TID
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

// Message is one KeySync message (appendix B's fields; what the
// GroupKeys and OwnKeys messages carry, and the key of a
// GroupTrustThisKey, are the caller's, in Payload).
type Message struct {
	Type        Event // Beacon … OwnKeysRequester
	Challenge   TID   // Beacon, NegotiationRequest
	Negotiation TID   // every message but Beacon
	IsGroup     bool  // NegotiationRequest: the sender is grouped
	Payload     []byte
}

// Output is one effect of a step for the caller to carry out, in order:
// an action (Do), or a message to send (Send) to To, a device, or to
// every own device when To is "" (Beacons, and what the draft sends the
// group: GroupTrustThisKey, GroupKeys from a grouped device). The caller
// fills the Payload of GroupTrustThisKey (the partner's key), GroupKeys
// and the OwnKeys messages (what the group shares).
type Output struct {
	Do   Action
	Send *Message
	To   string
	// Partner is the device the negotiation was with when the effect
	// was produced ("" if none): whose key TrustThisKey, UntrustThisKey
	// and a GroupTrustThisKey mean (the machine may have left the
	// negotiation by the time the caller reads the outputs).
	Partner string
}

// StateTimeout is how long a state between the resting ones waits (the
// draft's 600 s, for every such state: docs/PROTOCOL.md "KeySync").
const StateTimeout = 600 * time.Second

// maxChain bounds the Init events one step may chain (a state entering
// a state entering a state…); the table never chains more than two.
const maxChain = 4

// errRandom: the machine could not draw a challenge.
var errRandom = errors.New("keysync: no randomness for a challenge")

// Machine is one device's KeySync machine with its negotiation data: the
// table ([Transition]) driven by messages, the user's answers and the
// clock, the guards computed from the data. It is not safe for
// concurrent use; time and randomness come from the caller, so that runs
// replay exactly.
type Machine struct {
	state       State
	grouped     bool
	challenge   TID    // our challenge
	negotiation TID    // the negotiation at hand (zero: none)
	partner     string // the device it is with ("": none)
	deadline    time.Time
	rand        io.Reader
	// from is the sender of the message being handled (openNegotiation
	// and storeNegotiation take it as the partner).
	from string
	// peerChallenge is the challenge of the Beacon being handled, and
	// peerNegotiation the negotiation of the NegotiationRequest or
	// NegotiationOpen being handled.
	peerChallenge, peerNegotiation TID
}

// New starts a machine (InitState, then its Init: Sole or Grouped as
// grouped says), and returns what that start does (a Sole device sends
// its Beacon).
func New(grouped bool, rand io.Reader, now time.Time) (*Machine, []Output, error) {
	m := &Machine{state: InitState, grouped: grouped, rand: rand}
	out, err := m.step(Init, Guards{DeviceGrouped: grouped}, now)
	return m, out, err
}

// State is the machine's state.
func (m *Machine) State() State { return m.state }

// Partner is the device the negotiation at hand is with ("" if none).
func (m *Machine) Partner() string { return m.partner }

// Negotiation is the negotiation at hand (zero if none).
func (m *Machine) Negotiation() TID { return m.negotiation }

// Deadline is when the state times out (zero for a resting state).
func (m *Machine) Deadline() time.Time { return m.deadline }

// Grouped reports whether the device is in a device group.
func (m *Machine) Grouped() bool { return m.grouped }

// Receive handles a message from device from.
func (m *Machine) Receive(from string, msg Message, now time.Time) ([]Output, error) {
	if !msg.Type.Message() || from == "" {
		return nil, nil
	}
	m.from = from
	defer func() { m.from, m.peerChallenge, m.peerNegotiation = "", TID{}, TID{} }()
	g := Guards{
		DeviceGrouped:             m.grouped,
		SameChallenge:             subtle.ConstantTimeCompare(msg.Challenge[:], m.challenge[:]) == 1,
		WeAreOfferer:              msg.Challenge.less(m.challenge),
		SameNegotiation:           m.negotiation != (TID{}) && msg.Negotiation == m.negotiation,
		PartnerIsGrouped:          msg.IsGroup,
		SameNegotiationAndPartner: m.partner != "" && from == m.partner && msg.Negotiation == m.negotiation,
	}
	if msg.Type == Beacon {
		m.peerChallenge = msg.Challenge
	}
	if msg.Type == NegotiationRequest || msg.Type == NegotiationOpen {
		m.peerNegotiation = msg.Negotiation
	}
	return m.step(msg.Type, g, now)
}

// User handles the user's answer: Accept, Reject or Cancel.
func (m *Machine) User(e Event, now time.Time) ([]Output, error) {
	if e != Accept && e != Reject && e != Cancel {
		return nil, nil
	}
	return m.step(e, Guards{DeviceGrouped: m.grouped}, now)
}

// KeyGen tells the machine of a new own key (a grouped device sends the
// group its keys).
func (m *Machine) KeyGen(now time.Time) ([]Output, error) {
	return m.step(KeyGen, Guards{DeviceGrouped: m.grouped}, now)
}

// Tick times the state out if its deadline has passed.
func (m *Machine) Tick(now time.Time) ([]Output, error) {
	if m.deadline.IsZero() || now.Before(m.deadline) {
		return nil, nil
	}
	return m.step(Timeout, Guards{DeviceGrouped: m.grouped}, now)
}

// step runs one event through the table, carries out the actions on the
// negotiation data, and chains the Init of each state entered.
func (m *Machine) step(e Event, g Guards, now time.Time) ([]Output, error) {
	var out []Output
	for range maxChain {
		st := Transition(m.state, e, g)
		if !st.Handled {
			return out, nil
		}
		for _, ef := range st.Effects {
			if ef.Send != 0 {
				out = append(out, m.message(ef.Send))
				continue
			}
			partner := m.partner
			if err := m.act(ef.Do); err != nil {
				return out, err
			}
			if ef.Do == OpenNegotiation || ef.Do == StoreNegotiation {
				partner = m.partner
			}
			out = append(out, Output{Do: ef.Do, Partner: partner})
		}
		entered := st.Next != m.state
		m.state = st.Next
		switch {
		case m.state == Grouped:
			m.grouped = true
		case m.state == Sole || m.state == End:
			m.grouped = false
		}
		if !entered {
			return out, nil
		}
		m.deadline = time.Time{}
		if !m.state.Resting() {
			m.deadline = now.Add(StateTimeout)
		}
		if m.state == Sole || m.state == Grouped {
			m.negotiation, m.partner = TID{}, ""
		}
		e, g = Init, Guards{DeviceGrouped: m.grouped}
	}
	return out, nil
}

// act carries out the actions that change the negotiation data; the
// others are the caller's (shown by their Output).
func (m *Machine) act(a Action) error {
	switch a {
	case NewChallengeAndNegotiationBase:
		if _, err := io.ReadFull(m.rand, m.challenge[:]); err != nil {
			return errRandom
		}
		m.negotiation, m.partner = TID{}, ""
	case OpenNegotiation:
		// A.1.2.4: our challenge and the Beacon's, combined by XOR, name
		// the negotiation both sides will check; the partner is the
		// Beacon's sender.
		m.negotiation, m.partner = m.challenge.xor(m.peerChallenge), m.from
	case StoreNegotiation:
		m.negotiation, m.partner = m.peerNegotiation, m.from
	}
	return nil
}

// message builds a message of type t for the negotiation at hand.
func (m *Machine) message(t Event) Output {
	msg := &Message{Type: t, Negotiation: m.negotiation}
	to := m.partner
	switch t {
	case Beacon:
		msg.Challenge, msg.Negotiation, to = m.challenge, TID{}, ""
	case NegotiationRequest:
		// Sent before useOwnChallenge: it carries the Beacon's challenge,
		// which its addressee recognises as its own (sameChallenge).
		msg.Challenge, msg.IsGroup = m.peerChallenge, m.grouped
	case GroupTrustThisKey:
		to = "" // to the group
	case GroupKeys:
		if m.state == Grouped || m.state == HandshakingGroupedPhase1 || m.state == HandshakingGroupedPhase2 {
			to = "" // a grouped device tells the whole group
		}
	}
	return Output{Send: msg, To: to, Partner: m.partner}
}
