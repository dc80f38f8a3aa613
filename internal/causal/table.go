package causal

import (
	"encoding/binary"
	"math/bits"

	"github.com/mpenc/mpenc/transcript"
)

// idTable maps message ids to indexes: open addressing with linear probing
// over one []uint64, each slot holding a 32-bit tag of the hash (high half)
// and index+1 (low half, 0 = empty). Against Go's map[transcript.ID]Index (a 20-byte
// key and a 4-byte value in every slot, about 30–57 bytes per entry) it costs
// 8 bytes per slot, 11–21 bytes per entry at its load factor, and the tag
// lets a probe skip the id comparison (a cache miss into the id slab) for
// nearly every non-matching slot.
//
// Ids are SHA-256 outputs, but members choose what they sign and could grind
// ids into one cluster; the hash is therefore keyed (mix of the first 8 id
// bytes with a per-graph key the caller draws from its random source).
type idTable struct {
	slots []uint64
	count int
	shift uint // 64 - log2(len(slots))
	key   uint64
}

const minTableSize = 16

// hash is the splitmix64 finaliser of the first 8 id bytes xor the key: a
// bijection, so distinct id prefixes never collide in full, and without the
// key an author cannot aim at a bucket.
func (t *idTable) hash(id *transcript.ID) uint64 {
	x := binary.LittleEndian.Uint64(id[:8]) ^ t.key
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func (t *idTable) init(key uint64) {
	t.key = key
	t.slots = make([]uint64, minTableSize)
	t.shift = 64 - uint(bits.TrailingZeros(minTableSize))
}

// lookup returns the index stored for id. ids is the graph's id slab.
func (t *idTable) lookup(id *transcript.ID, ids []transcript.ID) (Index, bool) {
	h := t.hash(id)
	tag := h & 0xffffffff00000000
	mask := uint64(len(t.slots) - 1)
	for i := h >> t.shift; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return 0, false
		}
		if s&0xffffffff00000000 == tag {
			idx := Index(uint32(s) - 1)
			if ids[idx] == *id {
				return idx, true
			}
		}
	}
}

// insert adds id → idx. The caller has checked that id is absent.
func (t *idTable) insert(id *transcript.ID, idx Index, ids []transcript.ID) {
	if (t.count+1)*4 > len(t.slots)*3 {
		t.grow(ids)
	}
	t.put(t.hash(id), idx)
	t.count++
}

func (t *idTable) put(h uint64, idx Index) {
	mask := uint64(len(t.slots) - 1)
	i := h >> t.shift
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = h&0xffffffff00000000 | uint64(idx+1)
}

func (t *idTable) grow(ids []transcript.ID) {
	old := t.slots
	t.slots = make([]uint64, 2*len(old))
	t.shift--
	for _, s := range old {
		if s != 0 {
			idx := Index(uint32(s) - 1)
			t.put(t.hash(&ids[idx]), idx)
		}
	}
}
