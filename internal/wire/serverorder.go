package wire

import (
	"slices"

	"github.com/mpenc/mpenc/crypto"
)

// Chain-hash packet types of mpENC/1 (the reference's strings; the design
// document swaps "1" and "2", docs/PROTOCOL.md §6).
const (
	PTypeInitial = "2"         // the initial packet (pI) of an operation
	PTypeFinal   = "1"         // the final packet (pF)
	PTypeBoth    = "3"         // a one-packet operation (pI+pF)
	PTypeLeave   = "\xffleave" // the leave pseudo-packet of rule LOI (docs/SESSION.md)
	PTypeSync    = "\xff"      // the start of a chain (SyncNew)
)

// ServerSender is the sender name of the leave pseudo-packet.
const ServerSender = "__server__"

// PacketID is the ServerOrder id of a packet:
//
//	SHA256(sender ‖ "\n" ‖ join("\n", sorted(members − {sender})) ‖ "\n\n" ‖ wire)
//
// where wire is the whole wire string as echoed by the server and members is
// the channel membership at the packet's position in the order. Sorting is
// byte-wise.
func PacketID(wire, sender string, members []string) [32]byte {
	others := make([]string, 0, len(members))
	for _, m := range members {
		if m != sender {
			others = append(others, m)
		}
	}
	slices.Sort(others)
	n := len(sender) + 3 + len(wire)
	for _, m := range others {
		n += len(m) + 1
	}
	pre := make([]byte, 0, n)
	pre = append(pre, sender...)
	pre = append(pre, '\n')
	for i, m := range others {
		if i > 0 {
			pre = append(pre, '\n')
		}
		pre = append(pre, m...)
	}
	pre = append(pre, "\n\n"...)
	pre = append(pre, wire...)
	return crypto.Hash(pre)
}

// ChainHash returns SHA256(prev ‖ packetID ‖ ptype).
func ChainHash(prev []byte, packetID [32]byte, ptype string) [32]byte {
	return crypto.Hash(prev, packetID[:], []byte(ptype))
}

// SyncChainHash is the chain hash at the start of a chain whose first final
// packet id is prevPF: SHA256(prevPF ‖ 0xFF).
func SyncChainHash(prevPF [32]byte) [32]byte { return ChainHash(nil, prevPF, PTypeSync) }

// LeavePacketID is the id of the pseudo final packet that fails an operation
// when a member leaves the channel during it (rule LOI, docs/SESSION.md,
// "The leave pseudo-packet"):
//
//	wire' = 0xFF ‖ "leave " ‖ prevPi ‖ "\n" ‖ join(",", sorted(leavers))
//	id    = PacketID(wire', "__server__", members ∪ {"__server__"})
//
// members is the channel membership after the leave.
func LeavePacketID(prevPi [32]byte, leavers, members []string) [32]byte {
	sorted := slices.Clone(leavers)
	slices.Sort(sorted)
	w := make([]byte, 0, 64)
	w = append(w, "\xffleave "...)
	w = append(w, prevPi[:]...)
	w = append(w, '\n')
	for i, l := range sorted {
		if i > 0 {
			w = append(w, ',')
		}
		w = append(w, l...)
	}
	return PacketID(string(w), ServerSender, append(slices.Clone(members), ServerSender))
}
