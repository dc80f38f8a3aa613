// Package serverorder is ServerOrder, mpENC's concurrency resolver: which
// greeting packets enter a session's chain of membership operations, in the
// server's order, and the hash chain all members compute over it. It is pure
// data (no clock, no I/O); package session feeds it candidates.
package serverorder

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/wire"
)

// Resolver is ServerOrder, the concurrency resolver of mpENC (design document
// 3.3; docs/SESSION.md, "ServerOrder"): it orders membership operations by
// the server's total order. For each parent (the final packet of the last
// completed operation), the first initial packet echoed wins; a final packet
// is accepted only for the operation under way. Every accepted packet extends
// a hash chain that all members of a session compute identically.
//
// It is pure data: callers classify packets (greeting.Classify), verify them,
// and pass candidates in with the membership stamped on their echo (for
// rule XP). The rule codes here (XP, EIO, EII, LI, LOI) are those of
// docs/SESSION.md, "Channel rules". Not safe for concurrent use.
type Resolver struct {
	synced    bool
	blacklist map[[32]byte]bool // PREV_PF values spent while unsynced (EIO)

	packetIDs   [][32]byte // index 0: the sync point
	chainHashes [][32]byte
	opInitial   [][32]byte // index 0: a sentinel
	opFinal     [][32]byte // index 0: the sync prevPf
	trimmed     bool       // packetIDs has lost its oldest entries
}

// Chain positions ServerOrder keeps at most; older ones are forgotten (only
// the last entries are ever compared). It bounds memory in long sessions.
const maxChainKept = 4096

// Why ServerOrder rejected a candidate (docs/SESSION.md, "The accept/reject
// order"; XP and EIO are channel rules there).
var (
	ErrNotSynced      = errors.New("serverorder: not synced to the chain")
	ErrBlacklisted    = errors.New("serverorder: parent already spent (EIO)")
	ErrNotForUs       = errors.New("serverorder: initial packet of an operation without us, while unsynced (EIO)")
	ErrDuplicatePI    = errors.New("serverorder: initial packet already accepted")
	ErrOngoing        = errors.New("serverorder: an operation is already under way")
	ErrStaleParent    = errors.New("serverorder: initial packet names another parent")
	ErrChainHash      = errors.New("serverorder: initial packet names our parent with another chain hash")
	ErrDuplicatePF    = errors.New("serverorder: final packet already accepted")
	ErrNoOperation    = errors.New("serverorder: no operation under way")
	ErrWrongOperation = errors.New("serverorder: final packet of another operation")
	ErrXP             = errors.New("serverorder: operation members not all in the channel (XP)")
)

// Candidate is an initial and/or final packet offered to ServerOrder.
type Candidate struct {
	PacketID [32]byte
	Initial  bool
	Final    bool
	// Initial packets: the proposal metadata, and whether we are among the
	// operation's members.
	PrevPF    [32]byte
	ChainHash [32]byte
	ForUs     bool
	// Members and EchoMembers: the operation's members and the channel
	// membership stamped on the packet, for rule XP (initial packets only).
	Members, EchoMembers []string
	// Final packets: the initial packet the operation began with (for a
	// one-packet operation, its own id).
	PrevPI [32]byte
}

// Synced reports whether we hold a chain.
func (s *Resolver) Synced() bool { return s.synced }

// Ongoing reports whether an accepted operation has not ended yet.
func (s *Resolver) Ongoing() bool { return s.synced && len(s.opInitial) > len(s.opFinal) }

// PrevPF is the id of the last final packet (the parent of the next
// operation).
func (s *Resolver) PrevPF() [32]byte { return s.opFinal[len(s.opFinal)-1] }

// PrevPI is the id of the last initial packet.
func (s *Resolver) PrevPI() [32]byte { return s.opInitial[len(s.opInitial)-1] }

// PrevCH is the chain hash after the last accepted packet.
func (s *Resolver) PrevCH() [32]byte { return s.chainHashes[len(s.chainHashes)-1] }

// PacketIDs and ChainHashes return copies of the chain (oldest kept first).
func (s *Resolver) PacketIDs() [][32]byte   { return slices.Clone(s.packetIDs) }
func (s *Resolver) ChainHashes() [][32]byte { return slices.Clone(s.chainHashes) }

// Position reports whether pid is a position of our kept chain, and its
// chain hash there; complete is false once the oldest positions have been
// forgotten (maxChainKept), when an unknown pid may just be too old.
func (s *Resolver) Position(pid [32]byte) (hash [32]byte, known, complete bool) {
	if i := slices.Index(s.packetIDs, pid); i >= 0 {
		return s.chainHashes[i], true, true
	}
	return [32]byte{}, false, !s.trimmed
}

// After reports whether a is a position of our kept chain that comes after
// position b; a b no longer kept (the chain was trimmed) is before every
// kept position.
func (s *Resolver) After(a, b [32]byte) bool {
	i, j := slices.Index(s.packetIDs, a), slices.Index(s.packetIDs, b)
	return i >= 0 && (i > j && j >= 0 || j < 0 && s.trimmed)
}

// Clear forgets everything (rule LI: we left the channel).
func (s *Resolver) Clear() { *s = Resolver{} }

// SyncNew starts a new chain from a random parent: prevPf = 32 random bytes,
// chain hash SHA256(prevPf ‖ 0xFF).
func (s *Resolver) SyncNew(rand io.Reader) error {
	pf, err := primitive.Random32(rand)
	if err != nil {
		return err
	}
	s.SyncWith(pf, wire.SyncChainHash(pf))
	return nil
}

// SyncWith restarts every list at the given point and drops the blacklist.
func (s *Resolver) SyncWith(prevPF, prevCH [32]byte) {
	*s = Resolver{
		synced:      true,
		packetIDs:   [][32]byte{prevPF},
		chainHashes: [][32]byte{prevCH},
		opInitial:   [][32]byte{{}},
		opFinal:     [][32]byte{prevPF},
	}
}

// Check decides on a candidate without changing anything, in the order of
// docs/SESSION.md, "The accept/reject order". A nil error means Commit will
// accept it.
func (s *Resolver) Check(c *Candidate) error {
	if c.Initial && !subset(c.Members, c.EchoMembers) {
		return ErrXP
	}
	if !s.synced {
		switch {
		case !c.Initial:
			return ErrNotSynced
		case s.blacklist[c.PrevPF]:
			return ErrBlacklisted
		case !c.ForUs:
			return ErrNotForUs
		}
		return nil // EII: Commit syncs to its parent
	}
	if c.Initial {
		switch {
		case slices.Contains(s.opInitial, c.PacketID):
			return ErrDuplicatePI
		case s.Ongoing():
			return ErrOngoing
		case c.PrevPF != s.PrevPF():
			return ErrStaleParent
		case c.ChainHash != s.PrevCH():
			// The same parent with another history before it: in one
			// server order a member's chain hash at a position is ours.
			return ErrChainHash
		}
	}
	if c.Final {
		ongoing := s.Ongoing() || c.Initial
		prevPI := s.PrevPI()
		if c.Initial {
			prevPI = c.PacketID
		}
		switch {
		case slices.Contains(s.opFinal, c.PacketID):
			return ErrDuplicatePF
		case !ongoing:
			return ErrNoOperation
		case c.PrevPI != prevPI:
			return ErrWrongOperation
		}
	}
	return nil
}

// Commit applies the decision of Check: an accepted candidate extends the
// chain (syncing first for a newcomer, rule EII); a candidate rejected by
// rule EIO blacklists its parent. It returns Check's error.
func (s *Resolver) Commit(c *Candidate) error {
	err := s.Check(c)
	switch {
	case errors.Is(err, ErrBlacklisted), errors.Is(err, ErrNotForUs):
		if s.blacklist == nil {
			s.blacklist = map[[32]byte]bool{}
		}
		if len(s.blacklist) < maxChainKept {
			s.blacklist[c.PrevPF] = true
		}
		return err
	case err != nil:
		return err
	}
	if !s.synced {
		s.SyncWith(c.PrevPF, c.ChainHash)
	}
	ptype := wire.PTypeFinal
	switch {
	case c.Initial && c.Final:
		ptype = wire.PTypeBoth
	case c.Initial:
		ptype = wire.PTypeInitial
	}
	if c.Initial {
		s.opInitial = append(s.opInitial, c.PacketID)
	}
	if c.Final {
		s.opFinal = append(s.opFinal, c.PacketID)
	}
	s.appendChain(c.PacketID, ptype)
	return nil
}

// AcceptLeave ends the operation under way with the leave pseudo-packet of
// rule LOI: leavers left the channel during it; members is the membership
// after the leave. It returns the pseudo-packet's id.
func (s *Resolver) AcceptLeave(leavers, members []string) ([32]byte, error) {
	if !s.Ongoing() {
		return [32]byte{}, ErrNoOperation
	}
	pid := wire.LeavePacketID(s.PrevPI(), leavers, members)
	s.opFinal = append(s.opFinal, pid)
	s.appendChain(pid, wire.PTypeLeave)
	return pid, nil
}

func (s *Resolver) appendChain(pid [32]byte, ptype string) {
	prev := s.PrevCH()
	ch := wire.ChainHash(prev[:], pid, ptype)
	s.packetIDs = append(s.packetIDs, pid)
	s.chainHashes = append(s.chainHashes, ch)
	if len(s.packetIDs) > maxChainKept {
		s.packetIDs = slices.Delete(s.packetIDs, 0, len(s.packetIDs)-maxChainKept)
		s.trimmed = true
		s.chainHashes = slices.Delete(s.chainHashes, 0, len(s.chainHashes)-maxChainKept)
	}
	// Duplicate checks need the operation lists; keep them bounded too, but
	// never drop the last entry of either.
	if len(s.opInitial) > maxChainKept {
		s.opInitial = slices.Delete(s.opInitial, 0, len(s.opInitial)-maxChainKept)
	}
	if len(s.opFinal) > maxChainKept {
		s.opFinal = slices.Delete(s.opFinal, 0, len(s.opFinal)-maxChainKept)
	}
}

// String describes the position in the chain (for logs; no secrets).
func (s *Resolver) String() string {
	if !s.synced {
		return fmt.Sprintf("serverorder.Resolver(unsynced, %d blacklisted)", len(s.blacklist))
	}
	ch := s.PrevCH()
	return fmt.Sprintf("serverorder.Resolver(%d entries, ongoing %v, ch %x)", len(s.packetIDs), s.Ongoing(), ch[:4])
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
