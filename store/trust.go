package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/trust"
)

// trustBackendOf returns account's trust store as a trust.Backend. Each
// Update is one SQLite write transaction, so an observation and its
// binding and event are committed together or not at all.
func (s *Store) trustBackendOf(account int64) trust.Backend {
	return &trustBackend{s: s, account: account}
}

// Trust returns account's trust store with the given policy: what the
// client and bot use (trust.Directory{Store: st.Trust(id, cfg)} is a
// session's key directory). cfg.Now defaults to the store's clock.
func (s *Store) Trust(account int64, cfg trust.Config) *trust.Store {
	if cfg.Now == nil {
		cfg.Now = s.now
	}
	return trust.New(s.trustBackendOf(account), cfg)
}

type trustBackend struct {
	s       *Store
	account int64
}

func (b *trustBackend) Update(fn func(trust.Tx) error) error {
	ctx := context.Background()
	return b.s.wrap("trust store", inTx(ctx, b.s.db, func(tx *sql.Tx) error {
		t := &trustTx{ctx: ctx, tx: tx, account: b.account}
		err := fn(t)
		t.done = true
		return err
	}))
}

func (b *trustBackend) View(fn func(trust.Tx) error) error {
	ctx := context.Background()
	tx, err := b.s.db.BeginTx(ctx, nil)
	if err != nil {
		return b.s.wrap("trust store", err)
	}
	defer tx.Rollback()
	t := &trustTx{ctx: ctx, tx: tx, account: b.account}
	err = fn(t)
	t.done = true
	return b.s.wrap("trust store", err)
}

type trustTx struct {
	ctx     context.Context
	tx      *sql.Tx
	account int64
	done    bool
}

var errTxDone = errors.New("store: trust transaction used after it ended")

// validState and validEventKind say which numbers the trust tables may
// hold: the trust package's values, stored as they are (never renumbered).
func validState(s trust.State) bool {
	switch s {
	case trust.Undecided, trust.BlindlyTrusted, trust.Authenticated, trust.Distrusted, trust.AutoDistrusted:
		return true
	}
	return false
}

// validEventKind: the history holds the observations KeyNew, KeyNewDevice,
// KeyChanged and KeyClaimed (a key first observed for a JID while another
// account has it), and the user's decisions, which trust stores as 10
// (verified), 11 (trusted) and 12 (distrusted), and the decisions trust
// messages, TOAKAFA, failed verifications and devices leaving their
// group make (13 to 18), and does not name outside itself (Event.String
// describes them). The trust behaviour tests
// (TestTrustBackend) record each and read it back through this backend.
func validEventKind(k trust.Kind) bool {
	switch k {
	case trust.KeyNew, trust.KeyNewDevice, trust.KeyChanged, trust.KeyClaimed, 10, 11, 12, 13, 14, 15, 16, 17, 18:
		return true
	}
	return false
}

const trustKeyCols = `jid, key, state, first_seen, last_seen, member, decided, label, cause`

func scanRecord(sc interface{ Scan(...any) error }) (trust.Record, error) {
	var r trust.Record
	var key []byte
	var state, first, last, decided, cause int64
	if err := sc.Scan(&r.JID, &key, &state, &first, &last, &r.Member, &decided, &r.Label, &cause); err != nil {
		return r, err
	}
	r.State, r.Cause = trust.State(state), trust.Kind(cause)
	if len(key) != crypto.PublicKeySize || state != int64(r.State) || !validState(r.State) ||
		cause != int64(r.Cause) || (cause != 0 && !validEventKind(r.Cause)) ||
		trust.CheckJID(r.JID) != nil || (r.Member != "" && trust.CheckJID(r.Member) != nil) {
		return trust.Record{}, fmt.Errorf("%w: trust record of %.40q", ErrCorrupt, r.JID)
	}
	copy(r.Key[:], key)
	r.FirstSeen, r.LastSeen, r.Decided = decTime(first), decTime(last), decTime(decided)
	return r, nil
}

func (t *trustTx) records(q string, args ...any) ([]trust.Record, error) {
	if t.done {
		return nil, errTxDone
	}
	rows, err := t.tx.QueryContext(t.ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []trust.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (t *trustTx) Keys(jid string) ([]trust.Record, error) {
	if jid == "" {
		return t.records(`SELECT `+trustKeyCols+` FROM trust_keys WHERE account_id = ? ORDER BY jid, first_seen, key`, t.account)
	}
	return t.records(`SELECT `+trustKeyCols+` FROM trust_keys WHERE account_id = ? AND jid = ? ORDER BY first_seen, key`, t.account, jid)
}

// KeyHolders finds a key's records through the index trust_keys_key
// (migration 4): the store asks at every observation and lookup.
func (t *trustTx) KeyHolders(key crypto.PublicKey) ([]trust.Record, error) {
	return t.records(`SELECT `+trustKeyCols+` FROM trust_keys WHERE account_id = ? AND key = ? ORDER BY first_seen, jid`, t.account, key[:])
}

func (t *trustTx) PutKey(r trust.Record) error {
	if t.done {
		return errTxDone
	}
	if !validState(r.State) || (r.Cause != 0 && !validEventKind(r.Cause)) {
		return fmt.Errorf("%w: trust state %d, cause %d", ErrInvalid, r.State, r.Cause)
	}
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO trust_keys (account_id, `+trustKeyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (account_id, jid, key) DO UPDATE SET state = excluded.state, first_seen = excluded.first_seen,
			last_seen = excluded.last_seen, member = excluded.member, decided = excluded.decided, label = excluded.label,
			cause = excluded.cause`,
		t.account, r.JID, r.Key[:], int64(r.State), encTime(r.FirstSeen), encTime(r.LastSeen), r.Member, encTime(r.Decided), r.Label, int64(r.Cause))
	if isFK(err) {
		return fmt.Errorf("%w: account %d", ErrNotFound, t.account)
	}
	return err
}

func (t *trustTx) Binding(member string) (trust.Binding, bool, error) {
	if t.done {
		return trust.Binding{}, false, errTxDone
	}
	var key, accepted []byte
	var since int64
	err := t.tx.QueryRowContext(t.ctx, `SELECT key, accepted, since FROM trust_bindings WHERE account_id = ? AND member = ?`,
		t.account, member).Scan(&key, &accepted, &since)
	if errors.Is(err, sql.ErrNoRows) {
		return trust.Binding{}, false, nil
	}
	if err != nil {
		return trust.Binding{}, false, err
	}
	if len(key) != crypto.PublicKeySize || len(accepted) != crypto.PublicKeySize {
		return trust.Binding{}, false, fmt.Errorf("%w: trust binding of %.40q", ErrCorrupt, member)
	}
	b := trust.Binding{Member: member, Since: decTime(since)}
	copy(b.Key[:], key)
	copy(b.Accepted[:], accepted)
	return b, true, nil
}

func (t *trustTx) Bind(b trust.Binding) error {
	if t.done {
		return errTxDone
	}
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO trust_bindings (account_id, member, key, accepted, since) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (account_id, member) DO UPDATE SET key = excluded.key, accepted = excluded.accepted, since = excluded.since`,
		t.account, b.Member, b.Key[:], b.Accepted[:], encTime(b.Since))
	if isFK(err) {
		return fmt.Errorf("%w: account %d", ErrNotFound, t.account)
	}
	return err
}

func (t *trustTx) AppendEvent(e trust.Event) error {
	if t.done {
		return errTxDone
	}
	var prev, by any
	if e.Previous != (crypto.PublicKey{}) {
		prev = e.Previous[:]
	}
	if e.By != (crypto.PublicKey{}) {
		by = e.By[:]
	}
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO trust_events (account_id, at, kind, member, jid, key, previous, by_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.account, encTime(e.At), int64(e.Kind), e.Member, e.JID, e.Key[:], prev, by)
	if isFK(err) {
		return fmt.Errorf("%w: account %d", ErrNotFound, t.account)
	}
	return err
}

func (t *trustTx) Events(jid string, limit int) ([]trust.Event, error) {
	if t.done {
		return nil, errTxDone
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	q := `SELECT at, kind, member, jid, key, previous, by_key FROM trust_events WHERE account_id = ? AND (? = '' OR jid = ?) ORDER BY id DESC LIMIT ?`
	rows, err := t.tx.QueryContext(t.ctx, q, t.account, jid, jid, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []trust.Event
	for rows.Next() {
		var e trust.Event
		var at, kind int64
		var key, prev, by []byte
		if err := rows.Scan(&at, &kind, &e.Member, &e.JID, &key, &prev, &by); err != nil {
			return nil, err
		}
		e.Kind = trust.Kind(kind)
		if len(key) != crypto.PublicKeySize || (prev != nil && len(prev) != crypto.PublicKeySize) ||
			(by != nil && len(by) != crypto.PublicKeySize) ||
			kind != int64(e.Kind) || !validEventKind(e.Kind) || trust.CheckJID(e.JID) != nil {
			return nil, fmt.Errorf("%w: trust event", ErrCorrupt)
		}
		e.At = decTime(at)
		copy(e.Key[:], key)
		copy(e.Previous[:], prev)
		copy(e.By[:], by)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Oldest first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

func (t *trustTx) Park(p trust.Parked) error {
	if t.done {
		return errTxDone
	}
	if trust.CheckJID(p.Sender) != nil || trust.CheckJID(p.Owner) != nil {
		return fmt.Errorf("%w: a parked trust statement", ErrInvalid)
	}
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO trust_parked (account_id, sender, sender_jid, sender_key, owner, key, trust, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (account_id, sender_key, owner, key) DO UPDATE SET sender = excluded.sender, sender_jid = excluded.sender_jid,
			trust = excluded.trust, at = excluded.at`,
		t.account, p.Sender, trust.Bare(p.Sender), p.SenderKey[:], p.Owner, p.Key[:], boolInt(p.Trust), encTime(p.At))
	if isFK(err) {
		return fmt.Errorf("%w: account %d", ErrNotFound, t.account)
	}
	return err
}

func (t *trustTx) Parked(sender string) ([]trust.Parked, error) {
	if t.done {
		return nil, errTxDone
	}
	rows, err := t.tx.QueryContext(t.ctx, `SELECT sender, sender_key, owner, key, trust, at FROM trust_parked
		WHERE account_id = ? AND sender_jid = ? ORDER BY id`, t.account, sender)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []trust.Parked
	for rows.Next() {
		var p trust.Parked
		var sk, key []byte
		var tr, at int64
		if err := rows.Scan(&p.Sender, &sk, &p.Owner, &key, &tr, &at); err != nil {
			return nil, err
		}
		if len(sk) != crypto.PublicKeySize || len(key) != crypto.PublicKeySize || trust.CheckJID(p.Sender) != nil || trust.CheckJID(p.Owner) != nil {
			return nil, fmt.Errorf("%w: a parked trust statement", ErrCorrupt)
		}
		copy(p.SenderKey[:], sk)
		copy(p.Key[:], key)
		p.Trust, p.At = tr == 1, decTime(at)
		out = append(out, p)
	}
	return out, rows.Err()
}

func (t *trustTx) Unpark(sender string, senderKey crypto.PublicKey) error {
	if t.done {
		return errTxDone
	}
	_, err := t.tx.ExecContext(t.ctx, `DELETE FROM trust_parked WHERE account_id = ? AND sender_jid = ? AND sender_key = ?`,
		t.account, sender, senderKey[:])
	return err
}
