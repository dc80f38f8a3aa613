package testvectors

import "testing"

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

// LoadMisc loads derived_misc.json.
func LoadMisc(tb testing.TB) *Misc {
	tb.Helper()
	m := new(Misc)
	Load(tb, "derived_misc.json", m)
	return m
}
