package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

var errUnknownShape = errors.New("conformance: not a vector file of a known shape")

// The JSON shapes of the vector files.

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

// Upstream is upstream_kat.json: the reference implementation's own known
// answers.
type Upstream struct {
	Keys    map[string]struct{ Hex string } `json:"keys"`
	Cliques struct {
		NoIntKey   map[string]string `json:"no_intKey"`
		WithIntKey map[string]string `json:"intKey=C25519_PUB_KEY"`
	} `json:"cliques_computeKeyList"`
	HKDF struct {
		Cases []struct{ IKM, Info, OKM string } `json:"cases"`
	} `json:"cliques_deriveGroupKey"`
	SID struct {
		Members []string `json:"members"`
		Nonces  []string `json:"nonces"`
		SID     string   `json:"sid"`
	} `json:"ske_computeSid"`
	SessionSig struct {
		Signature string `json:"signature"`
	} `json:"ske_computeSessionSig"`
	Sign struct {
		Cases []struct {
			Data     string `json:"data_ascii"`
			GreetSig string `json:"greet_sig"`
			DataSig  string `json:"data_sig"`
		} `json:"cases"`
	} `json:"codec_signMessage"`
	Packets map[string]struct{ Hex string } `json:"packets"`
	// TLV is codec_tlv; some of its keys contain commas, which struct tags
	// cannot name: see TLVArray.
	TLV map[string]json.RawMessage `json:"codec_tlv"`
}

// Misc is derived_misc.json.
type Misc struct {
	ServerOrder []struct {
		Packet         string   `json:"packet"`
		Sender         string   `json:"sender"`
		ChannelMembers []string `json:"channelMembers"`
		Preimage       string   `json:"preimage"`
		PacketID       string   `json:"packetId"`
	} `json:"serverOrder"`
	ChainHash []struct {
		Fn             string   `json:"fn"`
		PrevCh         string   `json:"prevCh"`
		PID            string   `json:"pId"`
		PType          string   `json:"ptype"`
		Result         string   `json:"result"`
		PrevPi         string   `json:"prevPi"`
		Leavers        []string `json:"leavers"`
		ChannelMembers []string `json:"channelMembers"`
		PacketID       string   `json:"packetId"`
	} `json:"chainHash"`
	Padding []struct {
		Inner      int `json:"innerTlvPlaintextLen"`
		Base       int `json:"paddingSize"`
		Ciphertext int `json:"ciphertextLen"`
	} `json:"padding"`
	GreetTypes map[string]struct {
		Value string `json:"value"`
		Init  bool   `json:"INIT"`
		Op    string `json:"OP"`
		SKE   bool   `json:"SKE"`
		GKA   bool   `json:"GKA"`
		Down  bool   `json:"DOWN"`
		Aux   bool   `json:"AUX"`
	} `json:"greetTypes"`
	TLVTypes     map[string]string `json:"tlvTypes"`
	MessageTypes map[string]int    `json:"messageTypes"`
	BodyCodec    []struct {
		Body       string `json:"body"`
		EncodedHex string `json:"encodedHex"`
	} `json:"messageBodyCodec"`
	SidkeyHint string `json:"sidkeyHint"`
}

// Trace is a session trace in the shape of derived_hybrid_trace.json: a run
// of several users over a server-ordered room, every server-ordered event,
// and snapshots of every user's state.
type Trace struct {
	Source     string `json:"source"`
	StaticKeys map[string]struct {
		Seed string `json:"ed25519_seed"`
		Pub  string `json:"ed25519_pub"`
	} `json:"staticKeys"`
	Events    []TraceEvent    `json:"trace"`
	Snapshots []TraceSnapshot `json:"snapshots"`
}

// TraceEvent is one server-ordered event: a channel action (enter, leave,
// kick) or a packet.
type TraceEvent struct {
	I              int             `json:"i"`
	Kind           string          `json:"kind"` // "channel" or "packet"
	Sender         string          `json:"sender"`
	Action         json.RawMessage `json:"action"`
	MembersAfter   []string        `json:"membersAfter"`
	ChannelMembers []string        `json:"channelMembers"`
	MessageType    string          `json:"messageType"`
	Wire           string          `json:"wire"`
	PacketID       string          `json:"packetId"`
	GreetType      string          `json:"greetType"`
}

// TraceSnapshot is every user's state after an event.
type TraceSnapshot struct {
	Label           string                `json:"label"`
	AfterTraceIndex int                   `json:"afterTraceIndex"`
	Members         map[string]TraceState `json:"members"`
}

// TraceState is one user's state in a snapshot.
type TraceState struct {
	InternalState string   `json:"internalState"`
	CurMembers    []string `json:"curMembers"`
	ServerOrder   *struct {
		PrevPF      string   `json:"prevPf"`
		PrevCH      string   `json:"prevCh"`
		PacketIDs   []string `json:"packetIds"`
		ChainHashes []string `json:"chainHashes"`
	} `json:"serverOrder"`
	Subsession *struct {
		SID              string      `json:"sId"`
		GroupKey         string      `json:"groupKey"`
		EphemeralSeed    string      `json:"ephemeralPrivKey_seed"`
		EphemeralPubKeys [][2]string `json:"ephemeralPubKeys"`
		Transcript       []struct {
			ID         string   `json:"mId"`
			Author     string   `json:"author"`
			Parents    []string `json:"parents"`
			Readers    []string `json:"readers"`
			Body       string   `json:"body"`
			BodyFields []any    `json:"bodyFields"`
		} `json:"transcript"`
	} `json:"subsession"`
}

// Kind is the shape of a vector file.
type Kind string

// The shapes the runner understands.
const (
	KindUpstream Kind = "upstream-kat"
	KindMisc     Kind = "derived-misc"
	KindFlow     Kind = "greeter-flow"
	KindTrace    Kind = "session-trace"
)

// shapes lists every shape with the top-level keys that identify it, from
// the most specific (the most keys required) to the least. [Detect] takes
// the first shape whose keys are all present, so a file of a specific shape
// that also carries a less specific shape's keys keeps its own: a session
// trace that also lists greeter operations is a trace. Keys that no shape
// names are ignored and never change the verdict.
var shapes = []shape{
	{KindTrace, []string{"trace", "snapshots", "staticKeys"}},
	{KindUpstream, []string{"keys", "packets", "codec_signMessage"}},
	{KindMisc, []string{"serverOrder", "chainHash", "padding"}},
	{KindFlow, []string{"operations", "staticKeys"}},
}

// shape is a vector file's shape and the top-level keys it requires.
type shape struct {
	kind Kind
	keys []string
}

// Kinds returns the shape names, most specific first.
func Kinds() []Kind {
	out := make([]Kind, len(shapes))
	for i, sh := range shapes {
		out[i] = sh.kind
	}
	return out
}

// kindList is the shape names as "a, b, c".
func kindList() string {
	var names []string
	for _, sh := range shapes {
		names = append(names, string(sh.kind))
	}
	return strings.Join(names, ", ")
}

// ParseKind returns the shape named s, or an error listing the names.
func ParseKind(s string) (Kind, error) {
	for _, sh := range shapes {
		if string(sh.kind) == s {
			return sh.kind, nil
		}
	}
	return "", fmt.Errorf("conformance: unknown kind %q (the kinds are %s)", s, kindList())
}

func shapeOf(k Kind) (shape, bool) {
	for _, sh := range shapes {
		if sh.kind == k {
			return sh, true
		}
	}
	return shape{}, false
}

// topKeys decodes a JSON object's top-level keys.
func topKeys(raw []byte) (map[string]json.RawMessage, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, err
	}
	if top == nil {
		return nil, errors.New("conformance: not a JSON object")
	}
	return top, nil
}

// missing returns the keys of sh that top lacks.
func (sh shape) missing(top map[string]json.RawMessage) []string {
	var out []string
	for _, k := range sh.keys {
		if _, ok := top[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// Detect recognises a file's shape from its top-level keys: the most
// specific shape whose keys are all present (the first of shapes). When two shapes
// of the same specificity both match, the file is ambiguous and Detect
// fails (force the kind instead).
func Detect(raw []byte) (Kind, error) {
	top, err := topKeys(raw)
	if err != nil {
		return "", err
	}
	for i, sh := range shapes {
		if len(sh.missing(top)) > 0 {
			continue
		}
		for _, other := range shapes[i+1:] {
			if len(other.keys) == len(sh.keys) && len(other.missing(top)) == 0 {
				return "", fmt.Errorf("conformance: ambiguous: the file has the keys of both %s and %s", sh.kind, other.kind)
			}
		}
		return sh.kind, nil
	}
	return "", errUnknownShape
}

// Key returns the bytes of the key whose name starts with name followed by a
// space or the end (the file's names carry explanations after the name).
func (u *Upstream) Key(name string) ([]byte, error) {
	for k, v := range u.Keys {
		if k == name || strings.HasPrefix(k, name+" ") {
			return unhex(v.Hex)
		}
	}
	return nil, fmt.Errorf("conformance: no key %q", name)
}

// Packet returns the raw bytes of the named packet.
func (u *Upstream) Packet(name string) ([]byte, error) {
	p, ok := u.Packets[name]
	if !ok {
		return nil, fmt.Errorf("conformance: no packet %q", name)
	}
	return unhex(p.Hex)
}

// TLVField decodes one field of codec_tlv into v.
func (u *Upstream) TLVField(name string, v any) error {
	raw, ok := u.TLV[name]
	if !ok {
		return fmt.Errorf("conformance: no codec_tlv field %q", name)
	}
	return json.Unmarshal(raw, v)
}
