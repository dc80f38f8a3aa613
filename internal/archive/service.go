// Package archive is the history service's state (issue [N],
// docs/PROTOCOL.md "History: the service"): the untrusted side of the
// recryption of package recrypt, as mpenc-bot hosts it. It keeps groups
// (one per own archive or room epoch), their members with the service's
// share of each and the sealed entry that carries the member's share,
// pages as writers sealed them, and an audit log of every request, in
// SQLite. It never sees a page key or a plaintext: what it holds alone
// opens nothing (the collusion limit is package recrypt's).
//
// Requests arrive with the sender the transport authenticated (the XMPP
// full JID); admin requests are also signed by the group's admin key,
// fetches by the member's identity key. Every check is made before
// anything is written, and a refused request changes nothing but the
// audit log.
package archive

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/recrypt"
)

// Limits: a request over one is refused.
const (
	MaxPage          = 48 << 10 // bytes of one sealed page
	MaxEntry         = 256      // bytes of a member's sealed entry
	MaxPagesPerGroup = 100_000
	MaxMembers       = 256
	MaxFetch         = 64 // pages per fetch
	maxJID           = 3071
	// fetchWindow: a fetch's signed time must be this close to ours.
	fetchWindow = 5 * time.Minute
	maxNonces   = 4096
	// RatePerWindow requests per account (bare JID) per rateWindow reach
	// the database; more are answered busy.
	RatePerWindow   = 600
	rateWindow      = 10 * time.Second
	maxRateAccounts = 10_000
	// The audit log keeps its last MaxAudit lines and none older than
	// AuditAge, pruned every auditPruneEvery lines.
	MaxAudit        = 100_000
	AuditAge        = 90 * 24 * time.Hour
	auditPruneEvery = 1000
)

// Errors callers branch on (each wrapped with the reason).
var (
	ErrRefused  = errors.New("archive: request refused")
	ErrNotFound = errors.New("archive: no such group or member")
	ErrRevoked  = errors.New("archive: member not active")
)

// Kind is a group's kind.
type Kind uint8

// Kinds; the numbers are stored.
const (
	OwnArchive Kind = 1 // one user's devices
	RoomEpoch  Kind = 2 // one room's subsession
)

// Status is a member's standing.
type Status uint8

// Statuses; the numbers are stored and signed.
const (
	Active    Status = 1
	Revoked   Status = 2
	Suspended Status = 3
)

func (s Status) String() string {
	switch s {
	case Active:
		return "active"
	case Revoked:
		return "revoked"
	case Suspended:
		return "suspended"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// GroupID names a group (random, chosen by its admin).
type GroupID [16]byte

// PageID names a page (chosen by its writer; unique in its group).
type PageID [16]byte

// Service is the history service's state over one SQLite database.
type Service struct {
	db  *sql.DB
	now func() time.Time

	mu     sync.Mutex
	nonces map[[16]byte]time.Time // fetch nonces seen within fetchWindow
	// budgets: requests each account may still make in the current
	// rate window (Handle), reset every rateWindow.
	budgets     map[string]int
	budgetSince time.Time
	audits      int // audit lines written since the last pruning
	// maxAudit and pruneEvery are MaxAudit and auditPruneEvery (tests
	// make them small).
	maxAudit, pruneEvery int
}

// Open opens (creating if needed) the service's database at path; now
// is the clock (time.Now if nil).
func Open(path string, now func() time.Time) (*Service, error) {
	if now == nil {
		now = time.Now
	}
	// Private from its first byte (SQLite gives the -wal and -shm files
	// the database's mode), and again at every open: it holds who wrote
	// when, and the audit log.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("archive: opening %s: %w", path, err)
	}
	err = f.Chmod(0o600)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("archive: making %s private: %w", path, err)
	}
	for _, companion := range []string{path + "-wal", path + "-shm"} {
		if err := os.Chmod(companion, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("archive: making %s private: %w", companion, err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("archive: opening %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("archive: schema of %s: %w", path, err)
	}
	return &Service{db: db, now: now, nonces: map[[16]byte]time.Time{}, budgets: map[string]int{},
		maxAudit: MaxAudit, pruneEvery: auditPruneEvery}, nil
}

// Close closes the database.
func (s *Service) Close() error { return s.db.Close() }

const schema = `
CREATE TABLE IF NOT EXISTS groups (
	id        BLOB PRIMARY KEY CHECK (length(id) = 16),
	owner     TEXT NOT NULL,
	kind      INTEGER NOT NULL CHECK (kind IN (1, 2)),
	room      TEXT NOT NULL,
	epoch     INTEGER NOT NULL,
	a_pub     BLOB NOT NULL CHECK (length(a_pub) = 32),
	admin_key BLOB NOT NULL CHECK (length(admin_key) = 32),
	admin_seq INTEGER NOT NULL,
	created   INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS members (
	grp     BLOB NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
	member  TEXT NOT NULL,
	ik      BLOB NOT NULL CHECK (length(ik) = 32),
	share   BLOB NOT NULL CHECK (length(share) = 32),
	entry   BLOB NOT NULL,
	status  INTEGER NOT NULL CHECK (status IN (1, 2, 3)),
	changed INTEGER NOT NULL,
	PRIMARY KEY (grp, member)
) STRICT;
CREATE TABLE IF NOT EXISTS pages (
	grp     BLOB NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
	seq     INTEGER NOT NULL,
	page_id BLOB NOT NULL CHECK (length(page_id) = 16),
	t       BLOB NOT NULL CHECK (length(t) = 32),
	c       BLOB NOT NULL,
	writer  TEXT NOT NULL,
	at      INTEGER NOT NULL,
	PRIMARY KEY (grp, seq),
	UNIQUE (grp, page_id)
) STRICT;
CREATE TABLE IF NOT EXISTS audit (
	id     INTEGER PRIMARY KEY,
	at     INTEGER NOT NULL,
	grp    BLOB,
	actor  TEXT NOT NULL,
	op     TEXT NOT NULL,
	result TEXT NOT NULL
) STRICT;
`

// signed is what a signature covers: a context, the operation, and each
// field with its length (so no two requests share bytes).
func signed(op string, fields ...[]byte) []byte {
	b := []byte("mpenc recrypt v1\x00" + op + "\x00")
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// CreateGroup is an admin's request for a new group. Sig is the admin
// key's signature (proof that the requester holds it).
type CreateGroup struct {
	Group    GroupID
	Kind     Kind
	Room     string // the room's bare JID for RoomEpoch, "" for OwnArchive
	Epoch    uint64
	A        recrypt.Point
	AdminKey crypto.PublicKey
	Sig      crypto.Signature
}

func (r CreateGroup) bytes(owner string) []byte {
	return signed("create-group", r.Group[:], []byte(owner), []byte{byte(r.Kind)}, []byte(r.Room), u64(r.Epoch), r.A[:], r.AdminKey[:])
}

// SignCreateGroup signs r for the owner's account (bare JID).
func SignCreateGroup(r *CreateGroup, owner string, k *crypto.SigningKey) {
	r.AdminKey = k.Public()
	r.Sig = k.Sign(r.bytes(owner))
}

// AddMember is an admin's request to add (or replace) a member: its full
// JID, identity key, the service's share and the member's sealed entry.
type AddMember struct {
	Group  GroupID
	Seq    uint64 // greater than the group's last admin request
	Member string
	IK     crypto.PublicKey
	Share  recrypt.Scalar
	Entry  []byte
	Sig    crypto.Signature
}

func (r AddMember) bytes() []byte {
	return signed("add-member", r.Group[:], u64(r.Seq), []byte(r.Member), r.IK[:], r.Share[:], r.Entry)
}

// SignAddMember signs r with the admin key.
func SignAddMember(r *AddMember, k *crypto.SigningKey) { r.Sig = k.Sign(r.bytes()) }

// SetStatus is an admin's request to change a member's status.
type SetStatus struct {
	Group  GroupID
	Seq    uint64
	Member string
	Status Status
	Sig    crypto.Signature
}

func (r SetStatus) bytes() []byte {
	return signed("set-status", r.Group[:], u64(r.Seq), []byte(r.Member), []byte{byte(r.Status)})
}

// SignSetStatus signs r with the admin key.
func SignSetStatus(r *SetStatus, k *crypto.SigningKey) { r.Sig = k.Sign(r.bytes()) }

// Put stores a page. For a room epoch it must be signed by the admin key
// (every member of the epoch holds it); for an own archive the sender
// must be an active member (of the account that owns the group).
type Put struct {
	Group  GroupID
	Page   PageID
	T      recrypt.Point
	Sealed []byte
	Sig    crypto.Signature // room epochs only
}

func (r Put) bytes() []byte {
	h := crypto.Hash(r.Sealed)
	return signed("put", r.Group[:], r.Page[:], r.T[:], h[:])
}

// SignPut signs r with the admin key (room epochs).
func SignPut(r *Put, k *crypto.SigningKey) { r.Sig = k.Sign(r.bytes()) }

// Fetch asks for the pages after a sequence number, for the member the
// sender is, signed by its identity key over a fresh nonce and the time.
type Fetch struct {
	Group GroupID
	After uint64
	Max   int
	Nonce [16]byte
	Time  time.Time
	Sig   crypto.Signature
}

func (r Fetch) bytes(member string) []byte {
	return signed("fetch", r.Group[:], []byte(member), u64(r.After), u64(uint64(max(r.Max, 0))), r.Nonce[:], u64(uint64(r.Time.UnixMilli())))
}

// SignFetch signs r for member (its full JID) with its identity key.
func SignFetch(r *Fetch, member string, k *crypto.SigningKey) { r.Sig = k.Sign(r.bytes(member)) }

// Page is one page as a fetch returns it: R is the service's step for the
// member who asked.
type Page struct {
	Seq    uint64
	ID     PageID
	T, R   recrypt.Point
	Sealed []byte
}

// Fetched is a fetch's answer.
type Fetched struct {
	Entry []byte // the member's sealed entry
	Pages []Page
	// Last is the group's last sequence number: a member that got fewer
	// pages than there are after After knows some were held back.
	Last uint64
}

// audit records a request and its result (in its own transaction: a
// refused request leaves this trace only).
func (s *Service) audit(ctx context.Context, g *GroupID, actor, op string, err error) {
	result := "ok"
	if err != nil {
		result = err.Error()
	}
	var grp any
	if g != nil {
		grp = g[:]
	}
	_, _ = s.db.ExecContext(ctx, `INSERT INTO audit (at, grp, actor, op, result) VALUES (?, ?, ?, ?, ?)`,
		s.now().UnixMilli(), grp, actor, op, result)
	s.mu.Lock()
	s.audits++
	prune := s.audits >= s.pruneEvery
	if prune {
		s.audits = 0
	}
	s.mu.Unlock()
	if prune {
		// The log keeps the last MaxAudit lines and nothing older than
		// AuditAge: bounded however many requests arrive.
		_, _ = s.db.ExecContext(ctx, `DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) - ? OR at < ?`,
			s.maxAudit, s.now().Add(-AuditAge).UnixMilli())
	}
}

// allow takes one request from the account's budget for the current
// rate window: false when it has none left (Handle answers busy, and
// nothing is written, not even to the audit log).
func (s *Service) allow(account string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if now.Sub(s.budgetSince) >= rateWindow || now.Before(s.budgetSince) || len(s.budgets) >= maxRateAccounts {
		clear(s.budgets)
		s.budgetSince = now
	}
	if s.budgets[account] >= RatePerWindow {
		return false
	}
	s.budgets[account]++
	return true
}

func refused(why string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(why, args...))
}

func checkJID(what, j string, full bool) error {
	local, rest, ok := strings.Cut(j, "@")
	_, res, hasRes := strings.Cut(rest, "/")
	if !ok || local == "" || rest == "" || len(j) > maxJID || hasRes != full || (full && res == "") {
		return refused("%s %.64q is not a %s JID", what, j, map[bool]string{true: "full", false: "bare"}[full])
	}
	return nil
}

func bare(full string) string {
	b, _, _ := strings.Cut(full, "/")
	return b
}

// CreateGroup creates a group for the sender's account.
func (s *Service) CreateGroup(ctx context.Context, sender string, r CreateGroup) (err error) {
	defer func() { s.audit(ctx, &r.Group, sender, "create-group", err) }()
	owner := bare(sender)
	if err := checkJID("sender", sender, true); err != nil {
		return err
	}
	switch {
	case r.Kind != OwnArchive && r.Kind != RoomEpoch:
		return refused("kind %d", r.Kind)
	case r.Kind == OwnArchive && r.Room != "":
		return refused("an own archive names no room")
	case r.Kind == RoomEpoch && checkJID("room", r.Room, false) != nil:
		return refused("a room epoch without its room")
	}
	if _, err := recrypt.DecodePoint(r.A); err != nil {
		return refused("A: %v", err)
	}
	if !crypto.Verify(r.AdminKey, r.bytes(owner), &r.Sig) {
		return refused("bad admin signature")
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO groups (id, owner, kind, room, epoch, a_pub, admin_key, admin_seq, created) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)`,
		r.Group[:], owner, int64(r.Kind), r.Room, int64(r.Epoch), r.A[:], r.AdminKey[:], s.now().UnixMilli())
	if err != nil && strings.Contains(err.Error(), "UNIQUE") {
		return refused("group exists")
	}
	return err
}

type group struct {
	owner    string
	kind     Kind
	adminKey crypto.PublicKey
	adminSeq uint64
}

func (s *Service) group(ctx context.Context, tx *sql.Tx, id GroupID) (group, error) {
	var g group
	var key []byte
	var kind, seq int64
	err := tx.QueryRowContext(ctx, `SELECT owner, kind, admin_key, admin_seq FROM groups WHERE id = ?`, id[:]).Scan(&g.owner, &kind, &key, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return g, ErrNotFound
	}
	if err != nil {
		return g, err
	}
	g.kind, g.adminSeq = Kind(kind), uint64(seq)
	copy(g.adminKey[:], key)
	return g, nil
}

// admin checks an admin request's sequence number and signature, and
// records the sequence number (in tx).
func (s *Service) admin(ctx context.Context, tx *sql.Tx, id GroupID, seq uint64, msg []byte, sig *crypto.Signature) error {
	g, err := s.group(ctx, tx, id)
	if err != nil {
		return err
	}
	if !crypto.Verify(g.adminKey, msg, sig) {
		return refused("bad admin signature")
	}
	if seq <= g.adminSeq || seq > 1<<62 {
		return refused("admin request %d not after %d (a replay?)", seq, g.adminSeq)
	}
	_, err = tx.ExecContext(ctx, `UPDATE groups SET admin_seq = ? WHERE id = ?`, int64(seq), id[:])
	return err
}

func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// AddMember adds or replaces a member (admin).
func (s *Service) AddMember(ctx context.Context, sender string, r AddMember) (err error) {
	defer func() { s.audit(ctx, &r.Group, sender, "add-member "+r.Member, err) }()
	if err := checkJID("member", r.Member, true); err != nil {
		return err
	}
	if len(r.Entry) == 0 || len(r.Entry) > MaxEntry {
		return refused("an entry of %d bytes", len(r.Entry))
	}
	var zero recrypt.Scalar
	if r.Share == zero {
		return refused("a zero share")
	}
	return inTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := s.admin(ctx, tx, r.Group, r.Seq, r.bytes(), &r.Sig); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM members WHERE grp = ? AND member != ?`, r.Group[:], r.Member).Scan(&n); err != nil {
			return err
		}
		if n >= MaxMembers {
			return refused("%d members already", n)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO members (grp, member, ik, share, entry, status, changed) VALUES (?, ?, ?, ?, ?, 1, ?)
			ON CONFLICT (grp, member) DO UPDATE SET ik = excluded.ik, share = excluded.share, entry = excluded.entry, status = 1, changed = excluded.changed`,
			r.Group[:], r.Member, r.IK[:], r.Share[:], r.Entry, s.now().UnixMilli())
		return err
	})
}

// SetStatus changes a member's status (admin).
func (s *Service) SetStatus(ctx context.Context, sender string, r SetStatus) (err error) {
	defer func() { s.audit(ctx, &r.Group, sender, fmt.Sprintf("set-status %s %v", r.Member, r.Status), err) }()
	if r.Status < Active || r.Status > Suspended {
		return refused("status %d", r.Status)
	}
	return inTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := s.admin(ctx, tx, r.Group, r.Seq, r.bytes(), &r.Sig); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE members SET status = ?, changed = ? WHERE grp = ? AND member = ?`,
			int64(r.Status), s.now().UnixMilli(), r.Group[:], r.Member)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// Put stores a page and returns its sequence number. The same page
// (id, T and sealed bytes) put again returns its number and stores
// nothing; another page under a stored id is refused.
func (s *Service) Put(ctx context.Context, sender string, r Put) (seq uint64, err error) {
	defer func() { s.audit(ctx, &r.Group, sender, "put", err) }()
	if len(r.Sealed) <= recrypt.Overhead || len(r.Sealed) > MaxPage {
		return 0, refused("a page of %d bytes", len(r.Sealed))
	}
	if _, err := recrypt.DecodePoint(r.T); err != nil {
		return 0, refused("T: %v", err)
	}
	err = inTx(ctx, s.db, func(tx *sql.Tx) error {
		g, err := s.group(ctx, tx, r.Group)
		if err != nil {
			return err
		}
		switch g.kind {
		case OwnArchive:
			if bare(sender) != g.owner {
				return refused("%s does not own this archive", bare(sender))
			}
			// And only an active member writes: a device removed from
			// the group still logs in as the account.
			var status int64
			err := tx.QueryRowContext(ctx, `SELECT status FROM members WHERE grp = ? AND member = ?`, r.Group[:], sender).Scan(&status)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return refused("%s is not a member of this archive", sender)
			case err != nil:
				return err
			case Status(status) != Active:
				return fmt.Errorf("%w: %v", ErrRevoked, Status(status))
			}
		case RoomEpoch:
			if !crypto.Verify(g.adminKey, r.bytes(), &r.Sig) {
				return refused("bad epoch signature")
			}
		}
		// The same page again (a writer that did not see our answer
		// retries it) is stored once: its number is the answer.
		var have int64
		var haveT, haveC []byte
		err = tx.QueryRowContext(ctx, `SELECT seq, t, c FROM pages WHERE grp = ? AND page_id = ?`, r.Group[:], r.Page[:]).Scan(&have, &haveT, &haveC)
		switch {
		case err == nil && bytes.Equal(haveT, r.T[:]) && bytes.Equal(haveC, r.Sealed):
			seq = uint64(have)
			return nil
		case err == nil:
			return refused("page id stored already, with other contents")
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		var last int64
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0), count(*) FROM pages WHERE grp = ?`, r.Group[:]).Scan(&last, &n); err != nil {
			return err
		}
		if n >= MaxPagesPerGroup {
			return refused("the group holds %d pages already", n)
		}
		seq = uint64(last) + 1
		_, err = tx.ExecContext(ctx, `INSERT INTO pages (grp, seq, page_id, t, c, writer, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.Group[:], int64(seq), r.Page[:], r.T[:], r.Sealed, sender, s.now().UnixMilli())
		if err != nil && strings.Contains(err.Error(), "UNIQUE") {
			return refused("page id stored already")
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// Fetch answers a member's fetch: its entry, and up to Max pages after
// After, each with R = [share]T, as many as fit in an answer (MaxAnswer;
// at least one).
func (s *Service) Fetch(ctx context.Context, sender string, r Fetch) (out Fetched, err error) {
	defer func() { s.audit(ctx, &r.Group, sender, fmt.Sprintf("fetch after %d", r.After), err) }()
	if err := checkJID("sender", sender, true); err != nil {
		return out, err
	}
	now := s.now()
	if d := now.Sub(r.Time); d > fetchWindow || d < -fetchWindow {
		return out, refused("a fetch signed at %v, not within %v of now", r.Time.UTC(), fetchWindow)
	}
	limit := r.Max
	if limit <= 0 || limit > MaxFetch {
		limit = MaxFetch
	}
	var ik, share, entry []byte
	var status int64
	err = s.db.QueryRowContext(ctx, `SELECT ik, share, entry, status FROM members WHERE grp = ? AND member = ?`, r.Group[:], sender).
		Scan(&ik, &share, &entry, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return out, ErrNotFound
	}
	if err != nil {
		return out, err
	}
	if !crypto.Verify(crypto.PublicKey(ik), r.bytes(sender), &r.Sig) {
		return out, refused("bad member signature")
	}
	if Status(status) != Active {
		return out, fmt.Errorf("%w: %v", ErrRevoked, Status(status))
	}
	if !s.freshNonce(r.Nonce, now) {
		return out, refused("a fetch nonce seen before (a replay?)")
	}
	rows, err := s.db.QueryContext(ctx, `SELECT seq, page_id, t, c FROM pages WHERE grp = ? AND seq > ? ORDER BY seq LIMIT ?`,
		r.Group[:], int64(min(r.After, 1<<62)), limit)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	out.Entry = entry
	size := 0
	for rows.Next() {
		var p Page
		var seq int64
		var id, t []byte
		if err := rows.Scan(&seq, &id, &t, &p.Sealed); err != nil {
			return Fetched{}, err
		}
		p.Seq, p.ID, p.T = uint64(seq), PageID(id), recrypt.Point(t)
		// What an answer carries (MaxAnswer): the rest is not worth a
		// recryption, the member asks again from here.
		if size += len(p.Sealed) + 100; len(out.Pages) > 0 && size > MaxAnswer-len(entry)-64 {
			break
		}
		if p.R, err = recrypt.Recrypt(recrypt.Scalar(share), p.T); err != nil {
			return Fetched{}, fmt.Errorf("archive: page %d: %w", seq, err)
		}
		out.Pages = append(out.Pages, p)
	}
	if err := rows.Err(); err != nil {
		return Fetched{}, err
	}
	rows.Close() // before the next query: one connection
	var last int64
	if err := s.db.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM pages WHERE grp = ?`, r.Group[:]).Scan(&last); err != nil {
		return Fetched{}, err
	}
	out.Last = uint64(last)
	return out, nil
}

// freshNonce records a fetch nonce, false if seen within fetchWindow.
func (s *Service) freshNonce(n [16]byte, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.nonces[n]; ok {
		return false
	}
	if len(s.nonces) >= maxNonces {
		for k, at := range s.nonces {
			if now.Sub(at) > 2*fetchWindow {
				delete(s.nonces, k)
			}
		}
		if len(s.nonces) >= maxNonces {
			return false // under a flood of fetches: refuse rather than forget
		}
	}
	s.nonces[n] = now
	return true
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	At     time.Time
	Actor  string
	Op     string
	Result string
}

// Audit returns the last n lines of a group's audit log, newest first.
func (s *Service) Audit(ctx context.Context, g GroupID, n int) ([]AuditEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT at, actor, op, result FROM audit WHERE grp = ? ORDER BY id DESC LIMIT ?`, g[:], n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&at, &e.Actor, &e.Op, &e.Result); err != nil {
			return nil, err
		}
		e.At = time.UnixMilli(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
