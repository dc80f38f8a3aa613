package testvectors

import "testing"

// Flow is a greeter flow in the shape of derived_greeter_flow.json: chained
// operations among fixed identities, with every packet, classification,
// chain hash, member state and random draw.
type Flow struct {
	Source     string `json:"source"`
	StaticKeys map[string]struct {
		Seed string `json:"ed25519_seed"`
		Pub  string `json:"ed25519_pub"`
	} `json:"staticKeys"`
	Operations   []FlowOp          `json:"operations"`
	DataMessages []FlowDataMessage `json:"dataMessages"`
}

// FlowOp is one operation of a Flow.
type FlowOp struct {
	Label          string   `json:"label"`
	Initiator      string   `json:"initiator"`
	PrevMembers    []string `json:"prevMembers"`
	NextMembers    []string `json:"nextMembers"`
	ChannelMembers []string `json:"channelMembers"`
	Metadata       struct {
		PrevPF  string   `json:"prevPf"`
		PrevCh  string   `json:"prevCh"`
		Author  string   `json:"author"`
		Parents []string `json:"parents"`
	} `json:"metadata"`
	Packets []struct {
		Index           int                `json:"index"`
		Sender          string             `json:"sender"`
		Wire            string             `json:"wire"`
		PacketID        string             `json:"packetId"`
		SummaryByMember map[string]*string `json:"summaryByMember"`
		ChainHashAfter  string             `json:"chainHashAfter"`
		GreetType       string             `json:"greetType"`
		GreetTypeName   string             `json:"greetTypeName"`
	} `json:"packets"`
	Results  map[string]FlowResult `json:"results"`
	RNGDraws []Draw                `json:"rngDraws"`
}

// FlowResult is one member's state after an operation.
type FlowResult struct {
	Finished         int      `json:"finished"`
	OpState          string   `json:"opState"`
	Members          []string `json:"members"`
	SessionID        string   `json:"sessionId"`
	GroupKey         string   `json:"groupKey"`
	EphemeralSeed    string   `json:"ephemeralPrivKey_seed"`
	EphemeralPub     string   `json:"ephemeralPubKey"`
	Nonce            string   `json:"nonce"`
	EphemeralPubKeys []string `json:"ephemeralPubKeys"`
	Nonces           []string `json:"nonces"`
	PrivKeyList      []string `json:"cliques_privKeyList"`
	IntKeys          []string `json:"cliques_intKeys"`
	SidkeyHint       string   `json:"sidkeyHint"`
}

// Draw is one recorded random draw.
type Draw struct {
	Label string `json:"label"`
	N     int    `json:"n"`
	Hex   string `json:"hex"`
}

// FlowDataMessage is a data message of a Flow's final subsession.
type FlowDataMessage struct {
	Author    string   `json:"author"`
	Readers   []string `json:"readers"`
	Parents   []string `json:"parents"`
	Padding   int      `json:"paddingSize"`
	Body      string   `json:"bodyEncodedByDefaultMessageCodec_utf8"`
	GroupKey  string   `json:"groupKey"`
	SessionID string   `json:"sessionId"`
	Wire      string   `json:"wire"`
	MessageID string   `json:"mId"`
	Plaintext string   `json:"decryptedPlaintextIncludingLengthPrefixAndPadding"`
	RNGDraws  []Draw   `json:"rngDraws"`
}

// LoadFlow loads a flow file of the vectors folder.
func LoadFlow(tb testing.TB, name string) *Flow {
	tb.Helper()
	f := new(Flow)
	Load(tb, name, f)
	if len(f.Operations) == 0 {
		tb.Fatalf("testvectors: %s has no operations", name)
	}
	return f
}

// DrawReader replays recorded draws in order. Each Read must ask for exactly
// the next draw's size, as the reference's calls did; anything else fails
// the test. Remaining reports what is left unread.
type DrawReader struct {
	tb    testing.TB
	draws []Draw
	i     int
}

// NewDrawReader returns a reader over draws.
func NewDrawReader(tb testing.TB, draws []Draw) *DrawReader {
	return &DrawReader{tb: tb, draws: draws}
}

func (r *DrawReader) Read(p []byte) (int, error) {
	r.tb.Helper()
	if r.i >= len(r.draws) {
		r.tb.Fatalf("testvectors: random draw %d requested (%d bytes), only %d recorded", r.i+1, len(p), len(r.draws))
	}
	d := r.draws[r.i]
	if len(p) != d.N {
		r.tb.Fatalf("testvectors: draw %d (%s) is %d bytes, %d requested", r.i+1, d.Label, d.N, len(p))
	}
	r.i++
	return copy(p, Hex(r.tb, d.Hex)), nil
}

// Remaining returns the number of draws not yet read.
func (r *DrawReader) Remaining() int { return len(r.draws) - r.i }
