package wire_test

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/mpenc/mpenc/internal/testvectors"
	"github.com/mpenc/mpenc/internal/wire"
)

func TestMiscPacketIDs(t *testing.T) {
	m := testvectors.LoadMisc(t)
	if len(m.ServerOrder) != 3 {
		t.Fatalf("%d packet-id cases, want 3", len(m.ServerOrder))
	}
	for _, c := range m.ServerOrder {
		id := wire.PacketID(c.Packet, c.Sender, c.ChannelMembers)
		if hex.EncodeToString(id[:]) != c.PacketID {
			t.Errorf("packetId(%q, %q, %v) = %x, want %s (preimage %q)", c.Packet, c.Sender, c.ChannelMembers, id, c.PacketID, c.Preimage)
		}
	}
}

func TestMiscChainHashes(t *testing.T) {
	m := testvectors.LoadMisc(t)
	if len(m.ChainHash) != 5 {
		t.Fatalf("%d chain-hash cases, want 5", len(m.ChainHash))
	}
	for i, c := range m.ChainHash {
		switch {
		case strings.Contains(c.Fn, "syncNew"):
			got := wire.SyncChainHash(testvectors.Hex32(t, c.PID))
			if hex.EncodeToString(got[:]) != c.Result {
				t.Errorf("case %d: sync chain hash %x, want %s", i, got, c.Result)
			}
		case strings.Contains(c.Fn, "acceptLeavePacket"):
			got := wire.LeavePacketID(testvectors.Hex32(t, c.PrevPi), c.Leavers, c.ChannelMembers)
			if hex.EncodeToString(got[:]) != c.PacketID {
				t.Errorf("case %d: leave packet id %x, want %s", i, got, c.PacketID)
			}
		default:
			ptype := map[string]string{"2": wire.PTypeInitial, "1": wire.PTypeFinal, "3": wire.PTypeBoth}[c.PType]
			if ptype == "" {
				t.Fatalf("case %d: unknown ptype %q", i, c.PType)
			}
			got := wire.ChainHash(testvectors.Hex(t, c.PrevCh), testvectors.Hex32(t, c.PID), ptype)
			if hex.EncodeToString(got[:]) != c.Result {
				t.Errorf("case %d: chain hash %x, want %s", i, got, c.Result)
			}
		}
	}
}

func TestMiscPadding(t *testing.T) {
	m := testvectors.LoadMisc(t)
	if len(m.Padding) == 0 {
		t.Fatal("no padding cases")
	}
	for _, c := range m.Padding {
		if c.Base != wire.PaddingBase {
			t.Errorf("padding base %d, want %d", c.Base, wire.PaddingBase)
		}
		if got := wire.PaddedSize(c.Inner); got != c.Ciphertext {
			t.Errorf("PaddedSize(%d) = %d, want %d", c.Inner, got, c.Ciphertext)
		}
		// A plaintext whose inner TLV string is c.Inner bytes long: a body
		// record of c.Inner-4 bytes (cases below 4 bytes use parents=0 and
		// cannot be built from one record; check the size function only).
		if c.Inner >= 4 {
			p := &wire.Plaintext{Body: make([]byte, c.Inner-4)}
			b, err := p.Marshal()
			if err != nil || len(b) != c.Ciphertext {
				t.Errorf("inner %d: padded to %d, want %d (%v)", c.Inner, len(b), c.Ciphertext, err)
			}
		}
	}
}

func TestMiscCodeTables(t *testing.T) {
	m := testvectors.LoadMisc(t)
	if len(m.GreetTypes) != 12 {
		t.Fatalf("%d greeting types, want 12", len(m.GreetTypes))
	}
	for name, g := range m.GreetTypes {
		v, err := strconv.ParseUint(strings.TrimPrefix(g.Value, "0x"), 16, 16)
		if err != nil {
			t.Fatal(err)
		}
		gt := wire.GreetType(v)
		if gt.String() != name || !gt.Known() {
			t.Errorf("%s: String %q", g.Value, gt.String())
		}
		if gt.Init() != g.Init || gt.SKE() != g.SKE || gt.GKA() != g.GKA || gt.Down() != g.Down || gt.Aux() != g.Aux || gt.Op().String() != g.Op {
			t.Errorf("%s: flags differ from %+v", name, g)
		}
	}
	if len(m.TLVTypes) != 21 {
		t.Fatalf("%d record types, want 21", len(m.TLVTypes))
	}
	for name, code := range m.TLVTypes {
		v, _ := strconv.ParseUint(strings.TrimPrefix(code, "0x"), 16, 16)
		if got := wire.RecordType(v).String(); got != name {
			t.Errorf("record %s: String %q, want %q", code, got, name)
		}
	}
	for name, v := range m.MessageTypes {
		if got := wire.MessageType(v).String(); got != name {
			t.Errorf("message type %d: String %q, want %q", v, got, name)
		}
	}
}
