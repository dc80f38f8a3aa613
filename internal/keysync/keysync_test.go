package keysync

import (
	"fmt"
	"strings"
	"testing"
)

// table is appendix B transcribed a second time, independently of
// Transition, one handler per line:
//
//	State Event [guards] -> Next: effect, effect, …
//
// Guards are dg (DeviceGrouped), sc (SameChallenge), of (WeAreOfferer),
// sn (SameNegotiation), pg (PartnerIsGrouped), snp
// (SameNegotiationAndPartner), "!" negating; the first line whose guards
// hold is the handler. Effects are actions, or "send Message". Lines
// marked "# ours" are docs/PROTOCOL.md "KeySync"'s additions; every pair
// no line names is ignored (state unchanged, no effect).
const table = `
InitState Init dg -> Grouped:
InitState Init !dg -> Sole:

Sole Init -> Sole: NewChallengeAndNegotiationBase, ShowBeingSole, send Beacon
Sole KeyGen -> Sole: send Beacon
Sole CannotDecrypt -> Sole: send Beacon
Sole Beacon sc -> Sole:
Sole Beacon !sc of -> Sole: UseOwnChallenge, send Beacon
Sole Beacon !sc !of -> Sole: OpenNegotiation, TellWeAreNotGrouped, send NegotiationRequest, UseOwnChallenge
Sole NegotiationRequest sc sn -> Sole:
Sole NegotiationRequest sc !sn pg -> HandshakingToJoin: StoreNegotiation, send NegotiationOpen
Sole NegotiationRequest sc !sn !pg -> HandshakingOfferer: StoreNegotiation, send NegotiationOpen
Sole NegotiationOpen snp -> HandshakingRequester: StoreNegotiation

HandshakingOfferer Init -> HandshakingOfferer: ShowSoleHandshake
HandshakingOfferer Cancel -> Sole: send Rollback
HandshakingOfferer Rollback snp -> Sole:
HandshakingOfferer Reject -> End: send CommitReject, Disable
HandshakingOfferer CommitReject snp -> End: Disable
HandshakingOfferer Accept -> HandshakingPhase1Offerer: TrustThisKey, send CommitAcceptOfferer
HandshakingOfferer CommitAcceptRequester snp -> HandshakingPhase2Offerer:
HandshakingOfferer Timeout -> Sole: send Rollback # ours

HandshakingRequester Init -> HandshakingRequester: ShowSoleHandshake
HandshakingRequester Cancel -> Sole: send Rollback
HandshakingRequester Rollback snp -> Sole:
HandshakingRequester Reject -> End: send CommitReject, Disable
HandshakingRequester CommitReject snp -> End: Disable
HandshakingRequester Accept -> HandshakingPhase1Requester: TrustThisKey, send CommitAcceptRequester
HandshakingRequester CommitAcceptOfferer snp -> HandshakingPhase2Requester:
HandshakingRequester Timeout -> Sole: send Rollback # ours

HandshakingPhase1Offerer Rollback snp -> Sole: UntrustThisKey
HandshakingPhase1Offerer CommitReject snp -> End: UntrustThisKey, Disable
HandshakingPhase1Offerer CommitAcceptRequester snp -> FormingGroupOfferer:
HandshakingPhase1Offerer Timeout -> Sole: send Rollback, UntrustThisKey # ours
HandshakingPhase1Offerer Cancel -> Sole: send Rollback, UntrustThisKey # ours: the draft leaves no way out but the timeout

HandshakingPhase1Requester Rollback snp -> Sole: UntrustThisKey
HandshakingPhase1Requester CommitReject snp -> End: UntrustThisKey, Disable
HandshakingPhase1Requester CommitAcceptOfferer snp -> FormingGroupRequester:
HandshakingPhase1Requester Timeout -> Sole: send Rollback, UntrustThisKey # ours
HandshakingPhase1Requester Cancel -> Sole: send Rollback, UntrustThisKey # ours: the draft leaves no way out but the timeout

HandshakingPhase2Offerer Cancel -> Sole: send Rollback
HandshakingPhase2Offerer Reject -> End: send CommitReject, Disable
HandshakingPhase2Offerer Accept -> FormingGroupOfferer: send CommitAcceptOfferer, TrustThisKey
HandshakingPhase2Offerer Timeout -> Sole: send Rollback # ours
HandshakingPhase2Offerer Rollback snp -> Sole: # ours: the partner, who accepted first, may cancel now

HandshakingPhase2Requester Cancel -> Sole: send Rollback
HandshakingPhase2Requester Reject -> End: send CommitReject, Disable
HandshakingPhase2Requester Accept -> FormingGroupRequester: send CommitAcceptRequester, TrustThisKey
HandshakingPhase2Requester Timeout -> Sole: send Rollback # ours
HandshakingPhase2Requester Rollback snp -> Sole: # ours: the partner, who accepted first, may cancel now

FormingGroupOfferer Init -> FormingGroupOfferer: PrepareOwnKeys, send OwnKeysOfferer, ShowFormingGroup
FormingGroupOfferer Cancel -> Sole: send Rollback, UntrustThisKey # ours: the untrust
FormingGroupOfferer Rollback snp -> Sole: UntrustThisKey # ours: the guard, the untrust
FormingGroupOfferer OwnKeysRequester snp -> Grouped: SaveGroupKeys, ReceivedKeysAreDefaultKeys, ShowGroupCreated # ours: the guard
FormingGroupOfferer Timeout -> Sole: send Rollback, UntrustThisKey # ours

FormingGroupRequester Init -> FormingGroupRequester: ShowFormingGroup
FormingGroupRequester Cancel -> Sole: send Rollback, UntrustThisKey # ours: the untrust
FormingGroupRequester Rollback snp -> Sole: UntrustThisKey # ours: the guard, the untrust
FormingGroupRequester OwnKeysOfferer snp -> Grouped: SaveGroupKeys, PrepareOwnKeys, OwnKeysAreDefaultKeys, send OwnKeysRequester, ShowGroupCreated # ours: the guard
FormingGroupRequester Timeout -> Sole: send Rollback, UntrustThisKey # ours

Grouped Init -> Grouped: NewChallengeAndNegotiationBase, ShowBeingInGroup
Grouped GroupKeys -> Grouped: SaveGroupKeys
Grouped KeyGen -> Grouped: PrepareOwnKeys, send GroupKeys
Grouped Beacon -> Grouped: OpenNegotiation, TellWeAreGrouped, send NegotiationRequest, UseOwnChallenge
Grouped NegotiationOpen snp -> HandshakingGrouped: StoreNegotiation
Grouped GroupTrustThisKey -> Grouped: TrustThisKey

HandshakingToJoin Init -> HandshakingToJoin: ShowJoinGroupHandshake
HandshakingToJoin Cancel -> Sole: send Rollback
HandshakingToJoin Rollback snp -> Sole:
HandshakingToJoin Reject -> End: send CommitReject, Disable
HandshakingToJoin CommitAcceptForGroup snp -> HandshakingToJoinPhase2:
HandshakingToJoin CommitReject snp -> End: Disable
HandshakingToJoin Accept -> HandshakingToJoinPhase1: TrustThisKey, send CommitAccept
HandshakingToJoin Timeout -> Sole: send Rollback # ours

HandshakingToJoinPhase1 Rollback snp -> Sole: UntrustThisKey # ours: the untrust
HandshakingToJoinPhase1 CommitReject snp -> End: UntrustThisKey, Disable # ours: the untrust
HandshakingToJoinPhase1 CommitAcceptForGroup snp -> JoiningGroup:
HandshakingToJoinPhase1 Timeout -> Sole: send Rollback, UntrustThisKey # ours
HandshakingToJoinPhase1 Cancel -> Sole: send Rollback, UntrustThisKey # ours

HandshakingToJoinPhase2 Cancel -> Sole: send Rollback
HandshakingToJoinPhase2 Reject -> End: send CommitReject, Disable
HandshakingToJoinPhase2 Accept -> JoiningGroup: TrustThisKey, send CommitAccept # ours: the CommitAccept
HandshakingToJoinPhase2 Timeout -> Sole: send Rollback # ours
HandshakingToJoinPhase2 Rollback snp -> Sole: # ours: the partner, who accepted first, may cancel now

JoiningGroup GroupKeys snp -> Grouped: SaveGroupKeys, ReceivedKeysAreDefaultKeys, PrepareOwnKeys, send GroupKeys, ShowDeviceAdded # ours: the guard
JoiningGroup Timeout -> Sole: send Rollback, UntrustThisKey # ours
JoiningGroup Cancel -> Sole: send Rollback, UntrustThisKey # ours

HandshakingGrouped Init -> HandshakingGrouped: ShowGroupedHandshake
HandshakingGrouped Cancel -> Grouped: send Rollback
HandshakingGrouped Rollback snp -> Grouped:
HandshakingGrouped Reject -> Grouped: send CommitReject
HandshakingGrouped CommitReject snp -> Grouped:
HandshakingGrouped Accept -> HandshakingGroupedPhase1: TrustThisKey, send GroupTrustThisKey, send CommitAcceptForGroup
HandshakingGrouped CommitAccept snp -> HandshakingGroupedPhase2:
HandshakingGrouped GroupTrustThisKey -> HandshakingGrouped: HideHandshakeDialog, TrustThisKey
HandshakingGrouped GroupKeys -> HandshakingGrouped: SaveGroupKeys
HandshakingGrouped Timeout -> Grouped: send Rollback # ours

HandshakingGroupedPhase1 Rollback snp -> Grouped: UntrustThisKey # ours: the untrust
HandshakingGroupedPhase1 CommitReject snp -> Grouped: UntrustThisKey # ours: the untrust
HandshakingGroupedPhase1 CommitAccept snp -> Grouped: PrepareOwnKeys, send GroupKeys
HandshakingGroupedPhase1 GroupTrustThisKey -> HandshakingGroupedPhase1: TrustThisKey
HandshakingGroupedPhase1 GroupKeys -> HandshakingGroupedPhase1: SaveGroupKeys
HandshakingGroupedPhase1 Timeout -> Grouped: send Rollback, UntrustThisKey # ours
HandshakingGroupedPhase1 Cancel -> Grouped: send Rollback, UntrustThisKey # ours

HandshakingGroupedPhase2 Cancel -> Grouped: send Rollback
HandshakingGroupedPhase2 Reject -> Grouped: send CommitReject
HandshakingGroupedPhase2 Accept -> Grouped: TrustThisKey, send GroupTrustThisKey, send CommitAcceptForGroup, PrepareOwnKeys, send GroupKeys # ours: the CommitAcceptForGroup
HandshakingGroupedPhase2 GroupTrustThisKey -> HandshakingGroupedPhase2: TrustThisKey
HandshakingGroupedPhase2 GroupKeys -> HandshakingGroupedPhase2: SaveGroupKeys
HandshakingGroupedPhase2 Timeout -> Grouped: send Rollback # ours
HandshakingGroupedPhase2 Rollback snp -> Grouped: # ours: the partner, who accepted first, may cancel now
`

type row struct {
	state   State
	event   Event
	guards  []string
	next    State
	effects string
	line    int
}

var (
	stateByName  = map[string]State{}
	eventByName  = map[string]Event{}
	actionByName = map[string]Action{}
)

func init() {
	for _, s := range States {
		stateByName[s.String()] = s
	}
	for _, e := range Events {
		eventByName[e.String()] = e
	}
	for a := NewChallengeAndNegotiationBase; a <= HideHandshakeDialog; a++ {
		actionByName[a.String()] = a
	}
}

func parseTable(t *testing.T) []row {
	t.Helper()
	var rows []row
	for n, line := range strings.Split(table, "\n") {
		line, _, _ = strings.Cut(line, "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		lhs, rhs, ok := strings.Cut(line, "->")
		if !ok {
			t.Fatalf("table line %d: no ->", n)
		}
		f := strings.Fields(lhs)
		next, effects, _ := strings.Cut(rhs, ":")
		r := row{state: stateByName[f[0]], event: eventByName[f[1]], guards: f[2:], next: stateByName[strings.TrimSpace(next)], line: n}
		if r.state == 0 || r.event == 0 || r.next == 0 {
			t.Fatalf("table line %d: unknown name in %q", n, line)
		}
		var parts []string
		for _, e := range strings.Split(effects, ",") {
			if e = strings.TrimSpace(e); e == "" {
				continue
			}
			if m, ok := strings.CutPrefix(e, "send "); ok {
				if eventByName[m] == 0 || !eventByName[m].Message() {
					t.Fatalf("table line %d: %q is not a message", n, m)
				}
			} else if actionByName[e] == 0 {
				t.Fatalf("table line %d: unknown action %q", n, e)
			}
			parts = append(parts, e)
		}
		r.effects = strings.Join(parts, ", ")
		rows = append(rows, r)
	}
	return rows
}

func (r row) holds(g Guards) bool {
	for _, name := range r.guards {
		want := !strings.HasPrefix(name, "!")
		var v bool
		switch strings.TrimPrefix(name, "!") {
		case "dg":
			v = g.DeviceGrouped
		case "sc":
			v = g.SameChallenge
		case "of":
			v = g.WeAreOfferer
		case "sn":
			v = g.SameNegotiation
		case "pg":
			v = g.PartnerIsGrouped
		case "snp":
			v = g.SameNegotiationAndPartner
		default:
			panic("unknown guard " + name)
		}
		if v != want {
			return false
		}
	}
	return true
}

func effectsString(es []Effect) string {
	var parts []string
	for _, e := range es {
		if e.Send != 0 {
			parts = append(parts, "send "+e.Send.String())
		} else {
			parts = append(parts, e.Do.String())
		}
	}
	return strings.Join(parts, ", ")
}

// allGuards is every combination of the six guards.
func allGuards() []Guards {
	var out []Guards
	for m := range 64 {
		out = append(out, Guards{DeviceGrouped: m&1 != 0, SameChallenge: m&2 != 0, WeAreOfferer: m&4 != 0,
			SameNegotiation: m&8 != 0, PartnerIsGrouped: m&16 != 0, SameNegotiationAndPartner: m&32 != 0})
	}
	return out
}

// TestTransitionTable: every (state, event) pair, under every
// combination of guards, does what the table says: the first handler
// whose guards hold, or nothing (ignored, state unchanged).
func TestTransitionTable(t *testing.T) {
	rows := parseTable(t)
	used := map[int]bool{}
	checked := 0
	for _, s := range States {
		for _, e := range Events {
			for _, g := range allGuards() {
				want := Step{Next: s}
				wantEffects := ""
				for _, r := range rows {
					if r.state == s && r.event == e && r.holds(g) {
						want = Step{Handled: true, Next: r.next}
						wantEffects = r.effects
						used[r.line] = true
						break
					}
				}
				got := Transition(s, e, g)
				checked++
				if got.Handled != want.Handled || got.Next != want.Next || effectsString(got.Effects) != wantEffects {
					t.Fatalf("%v on %v with %+v: got handled=%v %v [%s], want handled=%v %v [%s]",
						s, e, g, got.Handled, got.Next, effectsString(got.Effects), want.Handled, want.Next, wantEffects)
				}
			}
		}
	}
	for _, r := range rows {
		if !used[r.line] {
			t.Errorf("table line %d (%v %v %v) never applies", r.line, r.state, r.event, r.guards)
		}
	}
	t.Logf("%d (state, event, guards) combinations checked, %d handlers", checked, len(rows))
}

// TestTimeouts: every state between the resting ones times out back to
// one of them, telling the partner; the resting ones have no timeout.
func TestTimeouts(t *testing.T) {
	for _, s := range States {
		st := Transition(s, Timeout, Guards{})
		switch {
		case s.Resting() && st.Handled:
			t.Errorf("%v handles a timeout", s)
		case !s.Resting() && (!st.Handled || !st.Next.Resting() || st.Next == End ||
			!strings.Contains(effectsString(st.Effects), "send Rollback")):
			t.Errorf("%v on Timeout: %+v", s, st)
		}
	}
}

// TestTrustRemovedWhenAbandoned: after our Accept granted trust
// (TrustThisKey), every way back to Sole, Grouped or End without the
// group formed removes it; a way back before any Accept has none to
// remove.
func TestTrustRemovedWhenAbandoned(t *testing.T) {
	trusted := map[State]bool{
		HandshakingPhase1Offerer: true, HandshakingPhase1Requester: true,
		FormingGroupOfferer: true, FormingGroupRequester: true,
		HandshakingToJoinPhase1: true, JoiningGroup: true, HandshakingGroupedPhase1: true,
	}
	for _, s := range States {
		for _, e := range []Event{Cancel, Reject, Rollback, CommitReject, Timeout} {
			st := Transition(s, e, Guards{SameNegotiationAndPartner: true})
			if !st.Handled || st.Next == s || !st.Next.Resting() {
				continue
			}
			untrust := strings.Contains(effectsString(st.Effects), "UntrustThisKey")
			if untrust != trusted[s] {
				t.Errorf("%v on %v → %v: UntrustThisKey %v, want %v", s, e, st.Next, untrust, trusted[s])
			}
		}
	}
}

func ExampleTransition() {
	st := Transition(Sole, Beacon, Guards{}) // another device's Beacon, its challenge higher: we request
	fmt.Println(st.Next, effectsString(st.Effects))
	// Output: Sole OpenNegotiation, TellWeAreNotGrouped, send NegotiationRequest, UseOwnChallenge
}
