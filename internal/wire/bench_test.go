package wire_test

import (
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/wire"
)

// oneKiBData is a signed data packet of about 1 KiB.
func oneKiBData(b *testing.B) []byte {
	k, _ := crypto.GenerateSigningKey(nil)
	h := wire.SidKeyHash([]byte("sid"), []byte("gk"))
	p := &wire.DataPacket{Payload: make([]byte, 1024-88)}
	raw, err := p.Sign(k, &h)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// oneKiBGreet is a signed greeting of about 1 KiB: 10 members with all
// their keys, as in an operation's downflow.
func oneKiBGreet(b *testing.B) []byte {
	k, _ := crypto.GenerateSigningKey(nil)
	g := &wire.GreetPacket{Type: wire.GreetInitParticipantDown, Source: "member9@example.org/dev"}
	for i := 0; i < 10; i++ {
		g.Members = append(g.Members, "member"+string(rune('0'+i))+"@example.org/dev")
		g.IntKeys = append(g.IntKeys, wire.IntKey{1, byte(i)})
		g.Nonces = append(g.Nonces, [32]byte{2, byte(i)})
		g.PubKeys = append(g.PubKeys, crypto.PublicKey{3, byte(i)})
	}
	g.SessionSignature = new(crypto.Signature)
	raw, err := g.Sign(k)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func BenchmarkDecodeData1KiB(b *testing.B) {
	raw := oneKiBData(b)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := wire.Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeGreet1KiB(b *testing.B) {
	raw := oneKiBGreet(b)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := wire.Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDearmourDecode1KiB(b *testing.B) {
	s := wire.Armour(oneKiBData(b))
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		if _, err := wire.DecodeWire(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPacketID1KiB(b *testing.B) {
	s := wire.Armour(oneKiBData(b))
	members := []string{"a@x/1", "b@x/1", "c@x/1", "d@x/1", "e@x/1"}
	for b.Loop() {
		wire.PacketID(s, "c@x/1", members)
	}
}
