package testvectors

import (
	"encoding/json"
	"strings"
	"testing"
)

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

// TLVField decodes one field of codec_tlv into v.
func (u *Upstream) TLVField(tb testing.TB, name string, v any) {
	tb.Helper()
	raw, ok := u.TLV[name]
	if !ok {
		tb.Fatalf("testvectors: no codec_tlv field %q", name)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		tb.Fatalf("testvectors: codec_tlv %q: %v", name, err)
	}
}

// LoadUpstream loads upstream_kat.json.
func LoadUpstream(tb testing.TB) *Upstream {
	tb.Helper()
	u := new(Upstream)
	Load(tb, "upstream_kat.json", u)
	return u
}

// Key returns the bytes of the key whose name starts with name followed by a
// space or the end (the file's names carry explanations after the name).
func (u *Upstream) Key(tb testing.TB, name string) []byte {
	tb.Helper()
	for k, v := range u.Keys {
		if k == name || strings.HasPrefix(k, name+" ") {
			return Hex(tb, v.Hex)
		}
	}
	tb.Fatalf("testvectors: no key %q in upstream_kat.json", name)
	return nil
}

// Packet returns the raw bytes of the named packet.
func (u *Upstream) Packet(tb testing.TB, name string) []byte {
	tb.Helper()
	p, ok := u.Packets[name]
	if !ok {
		tb.Fatalf("testvectors: no packet %q in upstream_kat.json", name)
	}
	return Hex(tb, p.Hex)
}
