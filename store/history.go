package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/mpenc/mpenc/transcript"
)

// The kinds of entry and the acknowledgement states, as Entry names them
// and as the messages table numbers them (stored: never renumber).
const (
	kindMessage    = "message"
	kindMembership = "membership"
	kindPlain      = "plain"
	kindQueued     = "queued"
	kindArchived   = "archived"

	ackPending = "pending"
	ackFull    = "acked"
	ackMissing = "not-acked"
)

var (
	kindCodes = []string{1: kindMessage, 2: kindMembership, 3: kindPlain, 4: kindQueued, 5: kindArchived}
	ackCodes  = []string{0: ackPending, 1: ackFull, 2: ackMissing}
)

// code returns the stored number of name in codes, or false.
func code(codes []string, name string) (int64, bool) {
	for i, n := range codes {
		if n != "" && n == name {
			return int64(i), true
		}
	}
	return 0, false
}

// ack returns e's acknowledgement state, "" read as pending.
func (e *Entry) ack() string {
	if e.Ack == "" {
		return ackPending
	}
	return e.Ack
}

// Entry is one line of a room's history: an encrypted message, one typed
// while out of the session and waiting to be sent, an unencrypted one, or
// a change of the session's membership, with a message's acknowledgement
// state. The store keeps entries as it is given them; package app makes
// them from session notices.
type Entry struct {
	// Seq is the entry's position: increasing in the order entries were
	// appended, across rooms. Set by Append; the cursor for History.
	Seq int64
	// Kind is "message" (mpENC), "queued" (a message typed while out of
	// the session, waiting to be sent; ID is its handle until then),
	// "plain" (a message sent without encryption: always show it marked
	// as such), "membership", or "archived" (a message of the room this
	// device did not see, fetched from the history service: show it as
	// such; Own is false).
	Kind string
	// Room is the entry's room, set by Since (Append and History take
	// the room as an argument).
	Room string
	// ID is the message id (messages, queued and archived messages).
	ID transcript.ID
	// Replaces is, on a message, the ID of the queued entry it was sent
	// as: Append removes that entry (see Append). Not stored.
	Replaces transcript.ID
	// Until is when a queued message stops waiting.
	Until  time.Time
	Author string // participant id; empty for membership
	// AuthorLabel is the label the author's device announced (signed by
	// its key) when the entry was made; empty if none. At most 64 bytes.
	AuthorLabel string
	Text        string // message text; never logged
	At          time.Time
	Own         bool
	// Members: who a message was sent to, or who remains after a
	// membership change; Include and Exclude: who joined and who left.
	Members          []string
	Include, Exclude []string
	// LogParents: how many entries above each of the message's log
	// parents is.
	LogParents []int
	// Ack is a message's acknowledgement state: "pending" (also ""),
	// "acked" (by everyone it was sent to) or "not-acked" (NotAcked did not
	// acknowledge it in time; Final: it can no longer be; Absent: they all
	// left on purpose).
	Ack      string
	NotAcked []string
	Final    bool
	Absent   bool
	// NotDelivered: whom a message did not reach (a queued message sent
	// while they were away), or, on a queued entry, everyone it was meant
	// for: it was never sent.
	NotDelivered []string
	// Cut, on a plain entry, is how many bytes of its text were not kept:
	// Append keeps the first 4 KiB of an unencrypted message (at a
	// character boundary). 0: Text is whole.
	Cut int
}

// maxAuthorLabel caps Entry.AuthorLabel (bytes): twice what a device
// label may be (32), room for a later, longer rule.
const maxAuthorLabel = 64

// Bounds on the unencrypted messages kept (plain entries): anyone in a
// room can send them, as large and as fast as the server relays them,
// and they are context rather than the encrypted record, so each is kept
// as a prefix, and a room keeps the newest defaultPlainRows of them for
// defaultPlainAge at most (docs/STORE.md, "Bounds", gives the figures).
const (
	maxPlainText     = 4 << 10
	defaultPlainRows = 1000
	defaultPlainAge  = 30 * 24 * time.Hour
	plainAgeEvery    = time.Hour // how often appending applies the age bound
)

// cutText returns the first maxPlainText bytes of s, at a character
// boundary, and how many bytes were left out.
func cutText(s string) (string, int) {
	if len(s) <= maxPlainText {
		return s, 0
	}
	i := maxPlainText
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i], len(s) - i
}

// history is one room's history for one account.
type history struct {
	s       *Store
	account int64
	room    string
	err     error
}

// roomHistory returns the history of room (a bare room JID) for account.
// An invalid room JID is reported by every method.
func (s *Store) roomHistory(account int64, room string) *history {
	j, err := normBare("room JID", room)
	return &history{s: s, account: account, room: j, err: err}
}

func checkList(what string, l []string) error {
	if len(l) > maxListMembers {
		return fmt.Errorf("%w: %s has %d JIDs, more than %d", ErrInvalid, what, len(l), maxListMembers)
	}
	for _, m := range l {
		if err := checkText(what, m, 3*1023+2, false); err != nil {
			return err
		}
	}
	return nil
}

func (e *Entry) check() error {
	if _, ok := code(kindCodes, e.Kind); !ok {
		return fmt.Errorf("%w: entry kind %.20q", ErrInvalid, e.Kind)
	}
	if _, ok := code(ackCodes, e.ack()); !ok {
		return fmt.Errorf("%w: ack state %.20q", ErrInvalid, e.Ack)
	}
	if err := checkText("author", e.Author, 3*1023+2, e.Kind == kindMembership); err != nil {
		return err
	}
	if err := checkText("text", e.Text, maxTextSize, true); err != nil {
		return err
	}
	if err := checkText("author label", e.AuthorLabel, maxAuthorLabel, true); err != nil {
		return err
	}
	for what, l := range map[string][]string{"members": e.Members, "include": e.Include, "exclude": e.Exclude, "not acked": e.NotAcked,
		"not delivered": e.NotDelivered} {
		if err := checkList(what, l); err != nil {
			return err
		}
	}
	if len(e.LogParents) > maxLogParents {
		return fmt.Errorf("%w: %d log parents", ErrInvalid, len(e.LogParents))
	}
	if e.Replaces != (transcript.ID{}) && e.Kind != kindMessage {
		return fmt.Errorf("%w: a %s entry replaces another", ErrInvalid, e.Kind)
	}
	if e.Cut < 0 || e.Cut > maxTextSize || e.Cut > 0 && e.Kind != kindPlain {
		return fmt.Errorf("%w: a %s entry cut by %d bytes", ErrInvalid, e.Kind, e.Cut)
	}
	return nil
}

// hasID reports whether entries of kind carry a message id.
func hasID(kind string) bool {
	return kind == kindMessage || kind == kindQueued || kind == kindArchived
}

// listJSON encodes a list for a TEXT column ("[]" for none).
func listJSON[T any](l []T) string {
	if len(l) == 0 {
		return "[]"
	}
	b, err := json.Marshal(l)
	if err != nil {
		panic(err) // strings and ints always marshal
	}
	return string(b)
}

// maxListJSON bounds what decodeList parses: 256 JIDs at their largest,
// escaped.
const maxListJSON = maxListMembers * (6*(3*1023+2) + 3)

func decodeStrings(s string) ([]string, error) {
	if len(s) > maxListJSON || !utf8.ValidString(s) {
		return nil, errors.New("list too long")
	}
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, checkList("list", l)
}

func decodeInts(s string) ([]int, error) {
	if len(s) > maxLogParents*24 {
		return nil, errors.New("list too long")
	}
	var l []int
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, err
	}
	if len(l) > maxLogParents {
		return nil, errors.New("list too long")
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

// Append records e in the history of room (a bare room JID) for account
// and returns it as stored, with its Seq; the caller shows what it
// returns. A new entry goes at the end. A plain entry keeps the first
// 4 KiB of its text (Cut says how much was left out), and appending one
// first removes the room's plain entries beyond the newest 1000, and, at
// most hourly, every room's older than 30 days (Options changes both). A message or queued message
// already recorded in this room (same ID) keeps its place and content:
// Append records e's acknowledgement state (Ack, NotAcked, Final, Absent)
// instead, unless e's is pending, and e's NotDelivered, unless it is
// empty. A message whose Replaces names a queued entry of this room (the
// queued message, now sent) is appended and the queued entry removed, in
// one transaction: the line moves to where the message was sent.
//
// Append returns once the entry is committed: recorded before it is
// shown, it survives a crash.
func (s *Store) Append(ctx context.Context, account int64, room string, e Entry) (Entry, error) {
	h := s.roomHistory(account, room)
	seq, err := h.append(ctx, e)
	if errors.Is(err, errExists) {
		err = nil
		if e.ack() != ackPending || len(e.NotDelivered) > 0 {
			err = h.setState(ctx, e)
		}
	}
	if err != nil {
		return Entry{}, err
	}
	return h.entry(ctx, seq)
}

// History returns up to limit entries of room's history for account older
// than before (a Seq; 0 or less means from the newest), oldest first:
// the page just above what the client shows. Pass the first entry's Seq
// to get the page before it; an empty result means the beginning. limit
// is capped at 1000.
func (s *Store) History(ctx context.Context, account int64, room string, before int64, limit int) ([]Entry, error) {
	return s.roomHistory(account, room).page(ctx, before, limit)
}

// append adds an entry at the end of the room's history and returns its
// Seq, and removes the queued entry it replaces, if any. A message whose
// ID is already recorded in this room is not added again: append returns
// the existing Seq and errExists (wrapped).
func (h *history) append(ctx context.Context, e Entry) (int64, error) {
	if h.err != nil {
		return 0, h.err
	}
	if err := e.check(); err != nil {
		return 0, err
	}
	kind, _ := code(kindCodes, e.Kind)
	ack, _ := code(ackCodes, e.ack())
	var id any
	if hasID(e.Kind) {
		id = e.ID[:]
	}
	if e.Kind == kindPlain {
		var n int
		e.Text, n = cutText(e.Text)
		e.Cut += n
	}
	var seq int64
	err := inTx(ctx, h.s.db, func(tx *sql.Tx) error {
		if e.Kind == kindPlain {
			if err := h.s.prunePlain(ctx, tx, h.account, h.room, 1); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO messages (account_id, room, kind, msg_id, author, body, at, own,
			members, include, exclude, log_parents, ack, not_acked, final, absent, not_delivered, wait_until, cut, author_label)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (account_id, room, msg_id) DO NOTHING`,
			h.account, h.room, kind, id, e.Author, e.Text, encTime(e.At), boolInt(e.Own),
			listJSON(e.Members), listJSON(e.Include), listJSON(e.Exclude), listJSON(e.LogParents),
			ack, listJSON(e.NotAcked), boolInt(e.Final), boolInt(e.Absent), listJSON(e.NotDelivered), encTime(e.Until), e.Cut, e.AuthorLabel)
		if isFK(err) {
			return fmt.Errorf("%w: account %d", ErrNotFound, h.account)
		}
		if err != nil {
			return err
		}
		if e.Replaces != (transcript.ID{}) {
			queued, _ := code(kindCodes, kindQueued)
			if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE account_id = ? AND room = ? AND msg_id = ? AND kind = ?`,
				h.account, h.room, e.Replaces[:], queued); err != nil {
				return err
			}
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if err := tx.QueryRowContext(ctx, `SELECT seq FROM messages WHERE account_id = ? AND room = ? AND msg_id = ?`,
				h.account, h.room, id).Scan(&seq); err != nil {
				return err
			}
			return fmt.Errorf("%w: message %s", errExists, e.ID)
		}
		seq, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return seq, h.s.wrap("appending to history", err)
	}
	return seq, nil
}

// setState records what changed about a message already recorded (e has
// passed check): its acknowledgement state (ackFull, or ackMissing with
// who has not acknowledged it) unless e's is pending, and whom it did not
// reach unless e names nobody, in one transaction. ErrNotFound if the
// message is not in this room's history.
func (h *history) setState(ctx context.Context, e Entry) error {
	if h.err != nil {
		return h.err
	}
	ack, _ := code(ackCodes, e.ack())
	return h.s.wrap("recording a message's state", inTx(ctx, h.s.db, func(tx *sql.Tx) error {
		if e.ack() != ackPending {
			res, err := tx.ExecContext(ctx, `UPDATE messages SET ack = ?, not_acked = ?, final = ?, absent = ?
				WHERE account_id = ? AND room = ? AND msg_id = ?`,
				ack, listJSON(e.NotAcked), boolInt(e.Final), boolInt(e.Absent), h.account, h.room, e.ID[:])
			if err != nil {
				return err
			}
			if err := mustAffect(res, "message", e.ID); err != nil {
				return err
			}
		}
		if len(e.NotDelivered) > 0 {
			res, err := tx.ExecContext(ctx, `UPDATE messages SET not_delivered = ? WHERE account_id = ? AND room = ? AND msg_id = ?`,
				listJSON(e.NotDelivered), h.account, h.room, e.ID[:])
			if err != nil {
				return err
			}
			return mustAffect(res, "message", e.ID)
		}
		return nil
	}))
}

// prunePlain removes the oldest plain entries of a room (of every room if
// room is "") beyond the store's row bound less spare (room for the
// entries about to be appended), and, if the last time was more than
// plainAgeEvery ago (or room is ""), the plain entries of every room older
// than the store's age bound. The row bound of one room is cheap (an index
// range); the age bound reads every plain entry, hence at most hourly.
func (s *Store) prunePlain(ctx context.Context, tx *sql.Tx, account int64, room string, spare int) error {
	plain, _ := code(kindCodes, kindPlain)
	keep := max(s.plainRows-spare, 0)
	var err error
	if room != "" {
		_, err = tx.ExecContext(ctx, `DELETE FROM messages WHERE account_id = ? AND room = ? AND kind = ? AND seq <= (
			SELECT seq FROM messages WHERE account_id = ? AND room = ? AND kind = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)`,
			account, room, plain, account, room, plain, keep)
	} else {
		_, err = tx.ExecContext(ctx, `DELETE FROM messages WHERE seq IN (SELECT seq FROM (
			SELECT seq, row_number() OVER (PARTITION BY account_id, room ORDER BY seq DESC) AS n FROM messages WHERE kind = ?)
			WHERE n > ?)`, plain, keep)
	}
	if err != nil {
		return err
	}
	now := s.now()
	s.mu.Lock()
	due := room == "" || now.Sub(s.agePruned) >= plainAgeEvery || now.Before(s.agePruned)
	if due {
		s.agePruned = now
	}
	s.mu.Unlock()
	if !due {
		return nil
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM messages WHERE kind = ? AND at != 0 AND at < ?`, plain, now.Add(-s.plainAge).UnixNano())
	return err
}

const entryCols = `seq, kind, msg_id, author, body, at, own, members, include, exclude, log_parents, ack, not_acked, final, absent,
	not_delivered, wait_until, cut, author_label`

func scanEntry(sc interface{ Scan(...any) error }) (Entry, error) {
	var e Entry
	var kind, at, own, ack, final, absent, until, cut int64
	var id []byte
	var members, include, exclude, parents, notAcked, notDelivered string
	if err := sc.Scan(&e.Seq, &kind, &id, &e.Author, &e.Text, &at, &own, &members, &include, &exclude, &parents,
		&ack, &notAcked, &final, &absent, &notDelivered, &until, &cut, &e.AuthorLabel); err != nil {
		return Entry{}, err
	}
	corrupt := func(why string) (Entry, error) {
		return Entry{}, fmt.Errorf("%w: history entry %d: %s", ErrCorrupt, e.Seq, why)
	}
	if kind < 1 || kind >= int64(len(kindCodes)) || ack < 0 || ack >= int64(len(ackCodes)) {
		return corrupt("kind or ack state")
	}
	e.Kind, e.Ack = kindCodes[kind], ackCodes[ack]
	switch {
	case hasID(e.Kind) && len(id) != transcript.IDSize:
		return corrupt("message id")
	case !hasID(e.Kind) && id != nil:
		return corrupt("message id")
	}
	copy(e.ID[:], id)
	if len(e.Text) > maxTextSize || !utf8.ValidString(e.Text) || len(e.Author) > 3*1023+2 || !utf8.ValidString(e.Author) ||
		len(e.AuthorLabel) > maxAuthorLabel || !utf8.ValidString(e.AuthorLabel) {
		return corrupt("text, author or label")
	}
	if cut < 0 || cut > maxTextSize || cut > 0 && e.Kind != kindPlain {
		return corrupt("cut")
	}
	e.Cut = int(cut)
	var err error
	if e.Members, err = decodeStrings(members); err != nil {
		return corrupt("members")
	}
	if e.Include, err = decodeStrings(include); err != nil {
		return corrupt("include")
	}
	if e.Exclude, err = decodeStrings(exclude); err != nil {
		return corrupt("exclude")
	}
	if e.NotAcked, err = decodeStrings(notAcked); err != nil {
		return corrupt("not acked")
	}
	if e.NotDelivered, err = decodeStrings(notDelivered); err != nil {
		return corrupt("not delivered")
	}
	if e.LogParents, err = decodeInts(parents); err != nil {
		return corrupt("log parents")
	}
	e.At, e.Own, e.Final, e.Absent, e.Until = decTime(at), own != 0, final != 0, absent != 0, decTime(until)
	return e, nil
}

// Since returns up to limit entries of every room of the account
// appended after the entry at after (a Seq; 0: from the first), oldest
// first, each with its Room.
func (s *Store) Since(ctx context.Context, account int64, after int64, limit int) ([]Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT room, `+entryCols+` FROM messages
		WHERE account_id = ? AND seq > ? ORDER BY seq LIMIT ?`, account, after, min(limit, maxPage))
	if err != nil {
		return nil, s.wrap("reading history", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var room string
		e, err := scanEntry(prefixScanner{rows, &room})
		if err != nil {
			return nil, s.wrap("reading history", err)
		}
		e.Room = room
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("reading history", err)
	}
	return out, nil
}

// LastSeq is the Seq of the account's newest history entry, in any
// room (0 when there is none): what Since starts after to read only
// what comes next.
func (s *Store) LastSeq(ctx context.Context, account int64) (int64, error) {
	var last int64
	if err := s.db.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM messages WHERE account_id = ?`, account).Scan(&last); err != nil {
		return 0, s.wrap("reading history", err)
	}
	return last, nil
}

// prefixScanner scans one column into first, the rest as scanEntry asks.
type prefixScanner struct {
	rows  *sql.Rows
	first *string
}

func (p prefixScanner) Scan(dest ...any) error {
	return p.rows.Scan(append([]any{p.first}, dest...)...)
}

// page returns up to limit entries older than before, oldest first (see
// Store.History).
func (h *history) page(ctx context.Context, before int64, limit int) ([]Entry, error) {
	if h.err != nil {
		return nil, h.err
	}
	if limit <= 0 {
		return nil, nil
	}
	limit = min(limit, maxPage)
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := h.s.db.QueryContext(ctx, `SELECT `+entryCols+` FROM messages
		WHERE account_id = ? AND room = ? AND seq < ? ORDER BY seq DESC LIMIT ?`, h.account, h.room, before, limit)
	if err != nil {
		return nil, h.s.wrap("reading history", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, h.s.wrap("reading history", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, h.s.wrap("reading history", err)
	}
	slices.Reverse(out)
	return out, nil
}

// entry returns the entry at seq in this room, or ErrNotFound.
func (h *history) entry(ctx context.Context, seq int64) (Entry, error) {
	return h.one(ctx, fmt.Sprintf("entry %d", seq), `seq = ?`, seq)
}

// message returns the history entry of a message, or ErrNotFound.
func (h *history) message(ctx context.Context, id transcript.ID) (Entry, error) {
	return h.one(ctx, "message "+id.String(), `msg_id = ?`, id[:])
}

func (h *history) one(ctx context.Context, what, where string, arg any) (Entry, error) {
	if h.err != nil {
		return Entry{}, h.err
	}
	e, err := scanEntry(h.s.db.QueryRowContext(ctx, `SELECT `+entryCols+` FROM messages WHERE account_id = ? AND room = ? AND `+where,
		h.account, h.room, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	return e, h.s.wrap("reading history", err)
}

// delete removes the room's whole history.
func (h *history) delete(ctx context.Context) error {
	if h.err != nil {
		return h.err
	}
	return h.s.wrap("deleting history", inTx(ctx, h.s.db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE account_id = ? AND room = ?`, h.account, h.room)
		return err
	}))
}
