package message_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/mpenc/mpenc/internal/causal"
	"github.com/mpenc/mpenc/internal/message"
)

func TestChainCheckBody(t *testing.T) {
	pos := message.ChainPosition{PacketID: [32]byte{1, 2, 3}, ChainHash: [32]byte{0xab, 0xcd}}
	b, err := message.EncodeBody(message.Body{Kind: causal.KindChainCheck, Chain: &pos})
	if err != nil {
		t.Fatal(err)
	}
	want := "\x04[\"010203" + strings.Repeat("0", 58) + "\",\"abcd" + strings.Repeat("0", 60) + "\"]"
	if string(b) != want {
		t.Fatalf("encoded %q", b)
	}
	back, err := message.DecodeBody(b)
	if err != nil || back.Kind != causal.KindChainCheck || back.Chain == nil || *back.Chain != pos {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	for name, bad := range map[string][]byte{
		"upper-case hex": bytes.Replace(b, []byte("abcd"), []byte("ABCD"), 1),
		"short":          b[:len(b)-1],
		"long":           append(bytes.Clone(b), ' '),
		"not hex":        bytes.Replace(b, []byte("abcd"), []byte("abcg"), 1),
		"spaces":         bytes.Replace(b, []byte(`","`), []byte(`", "`), 1),
	} {
		if _, err := message.DecodeBody(bad); !errors.Is(err, message.ErrBody) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := message.EncodeBody(message.Body{Kind: causal.KindChainCheck}); err == nil {
		t.Error("a ChainCheck without a position was encoded")
	}
}
