package keysync

//go:generate go tool stringer -type=State,Event,Action -output=enum_string.go

// State is a state of the machine: appendix B's, and End.
type State uint8

// States, as appendix B names them (its "HandshakingPhase10fferer" with a
// zero is HandshakingPhase1Offerer).
const (
	InitState State = iota + 1
	Sole
	HandshakingOfferer
	HandshakingRequester
	HandshakingPhase1Offerer
	HandshakingPhase1Requester
	HandshakingPhase2Offerer
	HandshakingPhase2Requester
	FormingGroupOfferer
	FormingGroupRequester
	Grouped
	HandshakingToJoin
	HandshakingToJoinPhase1
	HandshakingToJoinPhase2
	JoiningGroup
	HandshakingGrouped
	HandshakingGroupedPhase1
	HandshakingGroupedPhase2
	End
)

// States lists every state, in order.
var States = []State{InitState, Sole, HandshakingOfferer, HandshakingRequester,
	HandshakingPhase1Offerer, HandshakingPhase1Requester, HandshakingPhase2Offerer, HandshakingPhase2Requester,
	FormingGroupOfferer, FormingGroupRequester, Grouped, HandshakingToJoin, HandshakingToJoinPhase1,
	HandshakingToJoinPhase2, JoiningGroup, HandshakingGrouped, HandshakingGroupedPhase1, HandshakingGroupedPhase2, End}

// Resting reports whether s waits for nothing (no timeout): InitState is
// left at once, Sole and Grouped are where the machine rests, End is
// final.
func (s State) Resting() bool {
	return s == InitState || s == Sole || s == Grouped || s == End
}

// Event is what the machine reacts to: its Init, the draft's internal
// events, the messages (numbered as the draft numbers them), the user's
// answers (the draft's externals, numbered as it numbers them), and our
// Timeout.
type Event uint8

// Events.
const (
	Init                  Event = 1
	Beacon                Event = 2
	NegotiationRequest    Event = 3
	NegotiationOpen       Event = 4
	Rollback              Event = 5
	CommitReject          Event = 6
	CommitAcceptOfferer   Event = 7
	CommitAcceptRequester Event = 8
	CommitAccept          Event = 9
	CommitAcceptForGroup  Event = 10
	GroupTrustThisKey     Event = 11
	GroupKeys             Event = 12
	OwnKeysOfferer        Event = 13
	OwnKeysRequester      Event = 14
	KeyGen                Event = 20 // a new own key
	CannotDecrypt         Event = 21 // a message we could not decrypt
	Timeout               Event = 22 // ours: the state's time is up
	// LeaveGroup is ours, a message outside the draft's machine (which
	// never sees it): a device tells its group it leaves
	// (docs/PROTOCOL.md "KeySync").
	LeaveGroup Event = 32
	Accept     Event = 129
	Reject     Event = 130
	Cancel     Event = 131
)

// Events lists every event, in order.
var Events = []Event{Init, Beacon, NegotiationRequest, NegotiationOpen, Rollback, CommitReject,
	CommitAcceptOfferer, CommitAcceptRequester, CommitAccept, CommitAcceptForGroup, GroupTrustThisKey,
	GroupKeys, OwnKeysOfferer, OwnKeysRequester, KeyGen, CannotDecrypt, Timeout, Accept, Reject, Cancel}

// Message reports whether e is a message (sent and received).
func (e Event) Message() bool { return e >= Beacon && e <= OwnKeysRequester }

// Action is one of the draft's "do" actions.
type Action uint8

// Actions (appendix A.1.2).
const (
	NewChallengeAndNegotiationBase Action = iota + 1
	ShowBeingSole
	UseOwnChallenge
	OpenNegotiation
	TellWeAreNotGrouped
	TellWeAreGrouped
	StoreNegotiation
	ShowSoleHandshake
	Disable
	TrustThisKey
	UntrustThisKey
	PrepareOwnKeys
	ShowFormingGroup
	SaveGroupKeys
	ReceivedKeysAreDefaultKeys
	OwnKeysAreDefaultKeys
	ShowGroupCreated
	ShowBeingInGroup
	ShowJoinGroupHandshake
	ShowDeviceAdded
	ShowGroupedHandshake
	HideHandshakeDialog
)

// Guards are the draft's conditions, as the caller evaluated them for
// the event at hand (each is read only where the draft tests it).
type Guards struct {
	DeviceGrouped             bool // InitState's Init
	SameChallenge             bool // a Beacon or NegotiationRequest carries our own challenge
	WeAreOfferer              bool // a Beacon's challenge is lower than ours
	SameNegotiation           bool // a NegotiationRequest is our own
	PartnerIsGrouped          bool // a NegotiationRequest came from a grouped device
	SameNegotiationAndPartner bool // a message is of our negotiation, from our partner
}

// Effect is one effect of a transition: an action to do, or a message to
// send (exactly one of the two is set).
type Effect struct {
	Do   Action
	Send Event
}

// Step is the result of one event in one state.
type Step struct {
	// Handled: the state has a handler for the event whose guard held.
	// An unhandled event is ignored: Next is the state, no Effects.
	Handled bool
	Next    State
	Effects []Effect
}

func do(a ...Action) []Effect {
	var out []Effect
	for _, x := range a {
		out = append(out, Effect{Do: x})
	}
	return out
}

func send(e Event) Effect { return Effect{Send: e} }

// seq concatenates effects.
func seq(parts ...[]Effect) []Effect {
	var out []Effect
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func one(e Effect) []Effect { return []Effect{e} }

// Transition is appendix B's table: what state s does on event e, given
// the guards. It does not run the Init of the state it enters: the
// caller delivers Init when Next differs from s.
func Transition(s State, e Event, g Guards) Step {
	st := Step{Next: s}
	handled := func(next State, effects ...[]Effect) Step {
		return Step{Handled: true, Next: next, Effects: seq(effects...)}
	}
	partner := g.SameNegotiationAndPartner
	switch s {
	case InitState:
		if e == Init {
			if g.DeviceGrouped {
				return handled(Grouped)
			}
			return handled(Sole)
		}
	case Sole:
		switch e {
		case Init:
			return handled(Sole, do(NewChallengeAndNegotiationBase, ShowBeingSole), one(send(Beacon)))
		case KeyGen, CannotDecrypt:
			return handled(Sole, one(send(Beacon)))
		case Beacon:
			switch {
			case g.SameChallenge:
				return handled(Sole) // our own Beacon: ignored, but handled
			case g.WeAreOfferer:
				return handled(Sole, do(UseOwnChallenge), one(send(Beacon)))
			default:
				return handled(Sole, do(OpenNegotiation, TellWeAreNotGrouped), one(send(NegotiationRequest)), do(UseOwnChallenge))
			}
		case NegotiationRequest:
			if !g.SameChallenge {
				break
			}
			if g.SameNegotiation {
				return handled(Sole) // our own NegotiationRequest
			}
			next := HandshakingOfferer
			if g.PartnerIsGrouped {
				next = HandshakingToJoin
			}
			return handled(next, do(StoreNegotiation), one(send(NegotiationOpen)))
		case NegotiationOpen:
			if partner {
				return handled(HandshakingRequester, do(StoreNegotiation))
			}
		}
	case HandshakingOfferer, HandshakingRequester:
		phase1, own, theirs, phase2 := HandshakingPhase1Offerer, CommitAcceptOfferer, CommitAcceptRequester, HandshakingPhase2Offerer
		if s == HandshakingRequester {
			phase1, own, theirs, phase2 = HandshakingPhase1Requester, CommitAcceptRequester, CommitAcceptOfferer, HandshakingPhase2Requester
		}
		switch e {
		case Init:
			return handled(s, do(ShowSoleHandshake))
		case Cancel, Timeout:
			return handled(Sole, one(send(Rollback)))
		case Rollback:
			if partner {
				return handled(Sole)
			}
		case Reject:
			return handled(End, one(send(CommitReject)), do(Disable))
		case CommitReject:
			if partner {
				return handled(End, do(Disable))
			}
		case Accept:
			return handled(phase1, do(TrustThisKey), one(send(own)))
		case theirs:
			if partner {
				return handled(phase2)
			}
		}
	case HandshakingPhase1Offerer, HandshakingPhase1Requester:
		forming, theirs := FormingGroupOfferer, CommitAcceptRequester
		if s == HandshakingPhase1Requester {
			forming, theirs = FormingGroupRequester, CommitAcceptOfferer
		}
		switch e {
		case Rollback:
			if partner {
				return handled(Sole, do(UntrustThisKey))
			}
		case CommitReject:
			if partner {
				return handled(End, do(UntrustThisKey, Disable))
			}
		case theirs:
			if partner {
				return handled(forming)
			}
		case Cancel, Timeout: // ours: the draft leaves a user who accepted no way out but the timeout
			return handled(Sole, one(send(Rollback)), do(UntrustThisKey))
		}
	case HandshakingPhase2Offerer, HandshakingPhase2Requester:
		forming, own := FormingGroupOfferer, CommitAcceptOfferer
		if s == HandshakingPhase2Requester {
			forming, own = FormingGroupRequester, CommitAcceptRequester
		}
		switch e {
		case Cancel, Timeout:
			return handled(Sole, one(send(Rollback)))
		case Rollback: // ours: the partner that accepted first may cancel now
			if partner {
				return handled(Sole)
			}
		case Reject:
			return handled(End, one(send(CommitReject)), do(Disable))
		case Accept:
			return handled(forming, one(send(own)), do(TrustThisKey))
		}
	case FormingGroupOfferer:
		switch e {
		case Init:
			return handled(s, do(PrepareOwnKeys), one(send(OwnKeysOfferer)), do(ShowFormingGroup))
		case Cancel, Timeout:
			return handled(Sole, one(send(Rollback)), do(UntrustThisKey))
		case Rollback:
			if partner { // the guard is ours
				return handled(Sole, do(UntrustThisKey))
			}
		case OwnKeysRequester:
			if partner {
				return handled(Grouped, do(SaveGroupKeys, ReceivedKeysAreDefaultKeys, ShowGroupCreated))
			}
		}
	case FormingGroupRequester:
		switch e {
		case Init:
			return handled(s, do(ShowFormingGroup))
		case Cancel, Timeout:
			return handled(Sole, one(send(Rollback)), do(UntrustThisKey))
		case Rollback:
			if partner {
				return handled(Sole, do(UntrustThisKey))
			}
		case OwnKeysOfferer:
			if partner {
				return handled(Grouped, do(SaveGroupKeys, PrepareOwnKeys, OwnKeysAreDefaultKeys), one(send(OwnKeysRequester)), do(ShowGroupCreated))
			}
		}
	case Grouped:
		switch e {
		case Init:
			return handled(Grouped, do(NewChallengeAndNegotiationBase, ShowBeingInGroup))
		case GroupKeys:
			return handled(Grouped, do(SaveGroupKeys))
		case KeyGen:
			return handled(Grouped, do(PrepareOwnKeys), one(send(GroupKeys)))
		case Beacon:
			return handled(Grouped, do(OpenNegotiation, TellWeAreGrouped), one(send(NegotiationRequest)), do(UseOwnChallenge))
		case NegotiationOpen:
			if partner {
				return handled(HandshakingGrouped, do(StoreNegotiation))
			}
		case GroupTrustThisKey:
			return handled(Grouped, do(TrustThisKey))
		}
	case HandshakingToJoin:
		switch e {
		case Init:
			return handled(s, do(ShowJoinGroupHandshake))
		case Cancel, Timeout:
			return handled(Sole, one(send(Rollback)))
		case Rollback:
			if partner {
				return handled(Sole)
			}
		case Reject:
			return handled(End, one(send(CommitReject)), do(Disable))
		case CommitAcceptForGroup:
			if partner {
				return handled(HandshakingToJoinPhase2)
			}
		case CommitReject:
			if partner {
				return handled(End, do(Disable))
			}
		case Accept:
			return handled(HandshakingToJoinPhase1, do(TrustThisKey), one(send(CommitAccept)))
		}
	case HandshakingToJoinPhase1:
		switch e {
		case Rollback:
			if partner {
				return handled(Sole, do(UntrustThisKey)) // the untrust is ours
			}
		case CommitReject:
			if partner {
				return handled(End, do(UntrustThisKey, Disable)) // the untrust is ours
			}
		case CommitAcceptForGroup:
			if partner {
				return handled(JoiningGroup)
			}
		case Cancel, Timeout: // ours
			return handled(Sole, one(send(Rollback)), do(UntrustThisKey))
		}
	case HandshakingToJoinPhase2:
		switch e {
		case Cancel, Timeout:
			return handled(Sole, one(send(Rollback)))
		case Rollback: // ours
			if partner {
				return handled(Sole)
			}
		case Reject:
			return handled(End, one(send(CommitReject)), do(Disable))
		case Accept:
			// The draft's code sends nothing here, and the active device
			// waits in HandshakingGroupedPhase1 for the CommitAccept its
			// prose (§2.2.2.1, step 10) has: ours.
			return handled(JoiningGroup, do(TrustThisKey), one(send(CommitAccept)))
		}
	case JoiningGroup:
		switch e {
		case GroupKeys:
			// The draft has no guard here; the group's keys come from
			// the partner only (ours, as in the FormingGroup states).
			if partner {
				return handled(Grouped, do(SaveGroupKeys, ReceivedKeysAreDefaultKeys, PrepareOwnKeys), one(send(GroupKeys)), do(ShowDeviceAdded))
			}
		case Cancel, Timeout: // ours
			return handled(Sole, one(send(Rollback)), do(UntrustThisKey))
		}
	case HandshakingGrouped:
		switch e {
		case Init:
			return handled(s, do(ShowGroupedHandshake))
		case Cancel, Timeout:
			return handled(Grouped, one(send(Rollback)))
		case Rollback:
			if partner {
				return handled(Grouped)
			}
		case Reject:
			return handled(Grouped, one(send(CommitReject)))
		case CommitReject:
			if partner {
				return handled(Grouped)
			}
		case Accept:
			return handled(HandshakingGroupedPhase1, do(TrustThisKey), one(send(GroupTrustThisKey)), one(send(CommitAcceptForGroup)))
		case CommitAccept:
			if partner {
				return handled(HandshakingGroupedPhase2)
			}
		case GroupTrustThisKey:
			return handled(s, do(HideHandshakeDialog, TrustThisKey))
		case GroupKeys:
			return handled(s, do(SaveGroupKeys))
		}
	case HandshakingGroupedPhase1:
		switch e {
		case Rollback:
			if partner {
				return handled(Grouped, do(UntrustThisKey)) // the untrust is ours
			}
		case CommitReject:
			if partner {
				return handled(Grouped, do(UntrustThisKey)) // the untrust is ours
			}
		case CommitAccept:
			if partner {
				return handled(Grouped, do(PrepareOwnKeys), one(send(GroupKeys)))
			}
		case GroupTrustThisKey:
			return handled(s, do(TrustThisKey))
		case GroupKeys:
			return handled(s, do(SaveGroupKeys))
		case Cancel, Timeout: // ours
			return handled(Grouped, one(send(Rollback)), do(UntrustThisKey))
		}
	case HandshakingGroupedPhase2:
		switch e {
		case Cancel, Timeout:
			return handled(Grouped, one(send(Rollback)))
		case Rollback: // ours
			if partner {
				return handled(Grouped)
			}
		case Reject:
			return handled(Grouped, one(send(CommitReject)))
		case Accept:
			// The new device waits in HandshakingToJoinPhase1 for a
			// CommitAcceptForGroup the draft's code does not send here:
			// ours, before the keys.
			return handled(Grouped, do(TrustThisKey), one(send(GroupTrustThisKey)), one(send(CommitAcceptForGroup)), do(PrepareOwnKeys), one(send(GroupKeys)))
		case GroupTrustThisKey:
			return handled(s, do(TrustThisKey))
		case GroupKeys:
			return handled(s, do(SaveGroupKeys))
		}
	}
	return st
}
