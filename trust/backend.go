package trust

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mpenc/mpenc/crypto"
)

// Backend persists the trust store. Package store implements it over
// SQLite; package trust keeps one in memory for its tests, and
// internal/trusttest checks that an implementation behaves as the store
// needs.
//
// Every Store operation is one call to Update or View, so a backend that
// runs fn in one database transaction makes each observation and each
// decision atomic: the store never holds a key without its binding, nor a
// binding without its event. Implementations must be safe for concurrent
// use; fn must see a consistent snapshot and its writes must be all or
// nothing (none if fn returns an error).
type Backend interface {
	// Update runs fn in a read-write transaction.
	Update(fn func(Tx) error) error
	// View runs fn in a transaction whose writes, if any, are discarded.
	View(fn func(Tx) error) error
}

// Tx is one transaction of a Backend. Its methods are only valid during
// the Update or View call that provided it.
//
// Nothing in Store reads the history (Events) or every record (Keys(""))
// yet: the behaviour tests (internal/trusttest) check them, and the client
// will show them.
type Tx interface {
	// Keys returns the records of jid (a bare JID), ordered by FirstSeen
	// then key bytes; if jid is "", every record, ordered by JID first.
	Keys(jid string) ([]Record, error)
	// KeyHolders returns every record of key, whatever its JID, ordered
	// by FirstSeen then JID: the store looks for other accounts claiming
	// a key (KeyClaimed) at every observation, so it must not read every
	// record.
	KeyHolders(key crypto.PublicKey) ([]Record, error)
	// PutKey inserts or replaces the record of (r.JID, r.Key).
	PutKey(r Record) error
	// Binding returns what is recorded of member (a full JID); ok is
	// false if it never announced a key.
	Binding(member string) (b Binding, ok bool, err error)
	// Bind inserts or replaces the binding of b.Member.
	Bind(b Binding) error
	// AppendEvent adds e to the trust history.
	AppendEvent(e Event) error
	// Events returns the most recent events of jid (all JIDs if jid is
	// ""), at most limit of them (all if limit <= 0), oldest first.
	Events(jid string, limit int) ([]Event, error)
	// Park keeps p, replacing what the same sender key parked about the
	// same (owner, key).
	Park(p Parked) error
	// Parked returns what the devices of sender (a bare JID) parked,
	// in the order it was parked.
	Parked(sender string) ([]Parked, error)
	// Unpark deletes what the device with senderKey of sender parked.
	Unpark(sender string, senderKey crypto.PublicKey) error
}

// Binding is what the store keeps of one member (a full JID, the
// participant id): the key it announced last and the key it is known by.
// A device keeps its key for life (a reinstalled one is a new device, with
// a new resource), so a member announcing another key than the one it is
// known by is a warning, whatever the store knows of that other key.
type Binding struct {
	Member string
	// Key is the identity key the member announced last.
	Key crypto.PublicKey
	// Accepted is the key the member is known by: the first key it
	// announced, or a key it changed to that the user decided about
	// afterwards. While Key differs, the member is not trusted.
	Accepted crypto.PublicKey
	// Since is when the member started announcing Key.
	Since time.Time
}

// Event is one entry of the trust history: what changed, when. Its Kind is
// an observation (KeyNew, KeyNewDevice, KeyChanged, or KeyClaimed: the
// first observation of a key for a JID when another account has it and
// the member did not change to it, which is KeyChanged) or
// a decision of the user (verified, trusted, distrusted: kinds 10, 11 and
// 12). Keys seen again (KeyKnown, and a claimed key announced again) and
// observations of distrusted keys are not events.
type Event struct {
	At     time.Time
	Kind   Kind
	Member string // the announcing full JID (observations only)
	JID    string
	Key    crypto.PublicKey
	// Previous is the member's previous key (KeyChanged only).
	Previous crypto.PublicKey
	// By is the key that caused a decision the user did not make: the
	// vouching device's for a trust message (Member is then its full
	// JID), the newly authenticated key for TOAKAFA's. Zero otherwise.
	By crypto.PublicKey
}

// errClosedTx is returned by a memory Tx used outside its callback.
var errClosedTx = errors.New("trust: transaction used after it ended")

// memory is an in-memory Backend, for tests. Safe for concurrent use; the
// zero value is ready.
type memory struct {
	mu       sync.Mutex
	keys     map[string]map[crypto.PublicKey]Record
	bindings map[string]Binding
	events   []Event
	parked   []Parked
}

var _ Backend = (*memory)(nil)

// Update runs fn with the store locked; fn's writes are applied only if it
// returns nil.
func (m *memory) Update(fn func(Tx) error) error { return m.run(fn, true) }

// View runs fn with the store locked and discards any write.
func (m *memory) View(fn func(Tx) error) error { return m.run(fn, false) }

func (m *memory) run(fn func(Tx) error, commit bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	tx := &memTx{m: m, keys: map[string]map[crypto.PublicKey]Record{}, bindings: map[string]Binding{}}
	err := fn(tx)
	tx.done = true
	if err != nil || !commit {
		return err
	}
	if m.keys == nil {
		m.keys = map[string]map[crypto.PublicKey]Record{}
		m.bindings = map[string]Binding{}
	}
	for jid, ks := range tx.keys {
		if m.keys[jid] == nil {
			m.keys[jid] = map[crypto.PublicKey]Record{}
		}
		for k, r := range ks {
			m.keys[jid][k] = r
		}
	}
	for member, b := range tx.bindings {
		m.bindings[member] = b
	}
	m.events = append(m.events, tx.events...)
	if tx.parked != nil {
		m.parked = *tx.parked
	}
	return nil
}

// memTx buffers writes over the committed maps, so a failed Update leaves
// nothing behind.
type memTx struct {
	m        *memory
	done     bool
	keys     map[string]map[crypto.PublicKey]Record
	bindings map[string]Binding
	events   []Event
	parked   *[]Parked // nil: unchanged
}

func sortRecords(rs []Record) {
	slices.SortFunc(rs, func(a, b Record) int {
		if a.JID != b.JID {
			if a.JID < b.JID {
				return -1
			}
			return 1
		}
		if c := a.FirstSeen.Compare(b.FirstSeen); c != 0 {
			return c
		}
		return bytes.Compare(a.Key[:], b.Key[:])
	})
}

func (t *memTx) Keys(jid string) ([]Record, error) {
	if t.done {
		return nil, errClosedTx
	}
	if jid != "" {
		return t.keysOf(jid), nil
	}
	jids := map[string]bool{}
	for j := range t.m.keys {
		jids[j] = true
	}
	for j := range t.keys {
		jids[j] = true
	}
	var out []Record
	for j := range jids {
		out = append(out, t.keysOf(j)...)
	}
	sortRecords(out)
	return out, nil
}

func (t *memTx) KeyHolders(key crypto.PublicKey) ([]Record, error) {
	all, err := t.Keys("")
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, r := range all {
		if r.Key == key {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b Record) int {
		if c := a.FirstSeen.Compare(b.FirstSeen); c != 0 {
			return c
		}
		return strings.Compare(a.JID, b.JID)
	})
	return out, nil
}

// keysOf returns jid's records, committed and pending, sorted.
func (t *memTx) keysOf(jid string) []Record {
	merged := map[crypto.PublicKey]Record{}
	for k, r := range t.m.keys[jid] {
		merged[k] = r
	}
	for k, r := range t.keys[jid] {
		merged[k] = r
	}
	var out []Record
	for _, r := range merged {
		out = append(out, r)
	}
	sortRecords(out)
	return out
}

func (t *memTx) PutKey(r Record) error {
	if t.done {
		return errClosedTx
	}
	r.Trusted, r.Changed, r.Claimed = false, false, false
	if t.keys[r.JID] == nil {
		t.keys[r.JID] = map[crypto.PublicKey]Record{}
	}
	t.keys[r.JID][r.Key] = r
	return nil
}

func (t *memTx) Binding(member string) (Binding, bool, error) {
	if t.done {
		return Binding{}, false, errClosedTx
	}
	if b, ok := t.bindings[member]; ok {
		return b, true, nil
	}
	b, ok := t.m.bindings[member]
	return b, ok, nil
}

func (t *memTx) Bind(b Binding) error {
	if t.done {
		return errClosedTx
	}
	t.bindings[b.Member] = b
	return nil
}

func (t *memTx) AppendEvent(e Event) error {
	if t.done {
		return errClosedTx
	}
	t.events = append(t.events, e)
	return nil
}

func (t *memTx) Events(jid string, limit int) ([]Event, error) {
	if t.done {
		return nil, errClosedTx
	}
	var out []Event
	for _, evs := range [][]Event{t.m.events, t.events} {
		for _, e := range evs {
			if jid == "" || e.JID == jid {
				out = append(out, e)
			}
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

func (t *memTx) parkedNow() []Parked {
	if t.parked != nil {
		return *t.parked
	}
	return t.m.parked
}

func (t *memTx) Park(p Parked) error {
	if t.done {
		return errClosedTx
	}
	ps := slices.DeleteFunc(slices.Clone(t.parkedNow()), func(x Parked) bool {
		return x.SenderKey == p.SenderKey && x.Owner == p.Owner && x.Key == p.Key
	})
	ps = append(ps, p)
	t.parked = &ps
	return nil
}

func (t *memTx) Parked(sender string) ([]Parked, error) {
	if t.done {
		return nil, errClosedTx
	}
	var out []Parked
	for _, p := range t.parkedNow() {
		if Bare(p.Sender) == sender {
			out = append(out, p)
		}
	}
	return out, nil
}

func (t *memTx) Unpark(sender string, senderKey crypto.PublicKey) error {
	if t.done {
		return errClosedTx
	}
	ps := slices.DeleteFunc(slices.Clone(t.parkedNow()), func(x Parked) bool {
		return Bare(x.Sender) == sender && x.SenderKey == senderKey
	})
	t.parked = &ps
	return nil
}
