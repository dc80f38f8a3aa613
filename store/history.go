package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/transcript"
)

// EntryKind is what a history entry holds. Stored: never renumber.
type EntryKind uint8

// History entry kinds.
const (
	// EntryMessage: an mpENC message (session.Message notice).
	EntryMessage EntryKind = 1
	// EntryMembership: the session's membership changed
	// (session.Membership notice).
	EntryMembership EntryKind = 2
	// EntryPlain: an unencrypted message from a client that does not
	// speak mpENC (session.Plain notice): show it marked as such.
	EntryPlain EntryKind = 3
)

func (k EntryKind) String() string {
	switch k {
	case EntryMessage:
		return "message"
	case EntryMembership:
		return "membership"
	case EntryPlain:
		return "plain"
	}
	return fmt.Sprintf("EntryKind(%d)", uint8(k))
}

// AckState is a message's acknowledgement state. Stored: never renumber.
type AckState uint8

// Acknowledgement states.
const (
	// AckPending: not yet acknowledged by everyone. After a restart, a
	// message still pending was never confirmed while its session ran:
	// the client should show it as such.
	AckPending AckState = 0
	// AckFull: everyone it was sent to acknowledged it.
	AckFull AckState = 1
	// AckMissing: not acknowledged in time by NotAcked.
	AckMissing AckState = 2
)

func (a AckState) String() string {
	switch a {
	case AckPending:
		return "pending"
	case AckFull:
		return "acked"
	case AckMissing:
		return "not-acked"
	}
	return fmt.Sprintf("AckState(%d)", uint8(a))
}

// Entry is one line of a room's history, as the client showed it.
type Entry struct {
	// Seq is the store's position of the entry: increasing in the order
	// entries were appended, across rooms. Set by Append; the cursor for
	// Page.
	Seq  int64
	Kind EntryKind
	// ID is the message id (EntryMessage); zero otherwise.
	ID     transcript.ID
	Author string // participant id
	Text   string // message text; never logged
	At     time.Time
	Own    bool
	// Members: who the message was sent to (EntryMessage), or who remains
	// (EntryMembership).
	Members []string
	// Include and Exclude: who joined and who left (EntryMembership).
	Include, Exclude []string
	// LogParents: how many entries above each of the message's log
	// parents is (session.Notice.LogParents).
	LogParents []int
	// Ack, NotAcked, Final, Absent: the acknowledgement state
	// (session.FullyAcked and NotFullyAcked notices).
	Ack      AckState
	NotAcked []string
	Final    bool
	Absent   bool
}

// History is one room's message history for one account. Get it from
// Store.History; it is a small value, safe for concurrent use.
type History struct {
	s       *Store
	account int64
	room    string
	err     error
}

// History returns the history of room (a bare room JID) for account.
// An invalid room JID is reported by every method.
func (s *Store) History(account int64, room string) *History {
	j, err := normBare("room JID", room)
	return &History{s: s, account: account, room: j, err: err}
}

// Room returns the normalised room JID.
func (h *History) Room() string { return h.room }

func checkList(what string, l []string) error {
	if len(l) > MaxListMembers {
		return fmt.Errorf("%w: %s has %d JIDs, more than %d", ErrInvalid, what, len(l), MaxListMembers)
	}
	for _, m := range l {
		if err := checkText(what, m, 3*1023+2, false); err != nil {
			return err
		}
	}
	return nil
}

func (e *Entry) check() error {
	if e.Kind < EntryMessage || e.Kind > EntryPlain {
		return fmt.Errorf("%w: entry kind %d", ErrInvalid, e.Kind)
	}
	if e.Ack > AckMissing {
		return fmt.Errorf("%w: ack state %d", ErrInvalid, e.Ack)
	}
	if err := checkText("author", e.Author, 3*1023+2, e.Kind == EntryMembership); err != nil {
		return err
	}
	if err := checkText("text", e.Text, MaxTextSize, true); err != nil {
		return err
	}
	for what, l := range map[string][]string{"members": e.Members, "include": e.Include, "exclude": e.Exclude, "not acked": e.NotAcked} {
		if err := checkList(what, l); err != nil {
			return err
		}
	}
	if len(e.LogParents) > MaxLogParents {
		return fmt.Errorf("%w: %d log parents", ErrInvalid, len(e.LogParents))
	}
	return nil
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
const maxListJSON = MaxListMembers * (6*(3*1023+2) + 3)

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
	if len(s) > MaxLogParents*24 {
		return nil, errors.New("list too long")
	}
	var l []int
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, err
	}
	if len(l) > MaxLogParents {
		return nil, errors.New("list too long")
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

// Append adds an entry at the end of the room's history and returns its
// Seq. A message whose ID is already recorded in this room is not added
// again: Append returns the existing Seq and ErrExists (wrapped).
func (h *History) Append(ctx context.Context, e Entry) (int64, error) {
	if h.err != nil {
		return 0, h.err
	}
	if err := e.check(); err != nil {
		return 0, err
	}
	var id any
	if e.Kind == EntryMessage {
		id = e.ID[:]
	}
	var seq int64
	err := inTx(ctx, h.s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO messages (account_id, room, kind, msg_id, author, body, at, own,
			members, include, exclude, log_parents, ack, not_acked, final, absent)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (account_id, room, msg_id) DO NOTHING`,
			h.account, h.room, int64(e.Kind), id, e.Author, e.Text, encTime(e.At), boolInt(e.Own),
			listJSON(e.Members), listJSON(e.Include), listJSON(e.Exclude), listJSON(e.LogParents),
			int64(e.Ack), listJSON(e.NotAcked), boolInt(e.Final), boolInt(e.Absent))
		if isFK(err) {
			return fmt.Errorf("%w: account %d", ErrNotFound, h.account)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if err := tx.QueryRowContext(ctx, `SELECT seq FROM messages WHERE account_id = ? AND room = ? AND msg_id = ?`,
				h.account, h.room, id).Scan(&seq); err != nil {
				return err
			}
			return fmt.Errorf("%w: message %s", ErrExists, e.ID)
		}
		seq, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return seq, h.s.wrap("appending to history", err)
	}
	return seq, nil
}

// SetAck records a message's acknowledgement state: AckFull, or
// AckMissing with who has not acknowledged it. ErrNotFound if the message
// is not in this room's history.
func (h *History) SetAck(ctx context.Context, id transcript.ID, ack AckState, notAcked []string, final, absent bool) error {
	if h.err != nil {
		return h.err
	}
	if ack > AckMissing {
		return fmt.Errorf("%w: ack state %d", ErrInvalid, ack)
	}
	if err := checkList("not acked", notAcked); err != nil {
		return err
	}
	return h.s.wrap("recording acknowledgement", inTx(ctx, h.s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET ack = ?, not_acked = ?, final = ?, absent = ?
			WHERE account_id = ? AND room = ? AND msg_id = ?`,
			int64(ack), listJSON(notAcked), boolInt(final), boolInt(absent), h.account, h.room, id[:])
		if err != nil {
			return err
		}
		return mustAffect(res, "message", id)
	}))
}

// Record stores what a session notice adds to the history: a Message or
// Plain notice appends an entry, a Membership notice a membership line,
// FullyAcked and NotFullyAcked update the message's acknowledgement
// state. Other notices are not history; Record returns nil for them. A
// message recorded twice is not an error.
//
// The client calls Record for every notice before showing it: once Record
// returns, what is shown survives a crash.
func (h *History) Record(ctx context.Context, n session.Notice) error {
	switch n.Kind {
	case session.Message:
		_, err := h.Append(ctx, Entry{Kind: EntryMessage, ID: n.ID, Author: n.Author, Text: n.Text, At: n.At,
			Own: n.Own, Members: n.Members, LogParents: n.LogParents})
		if errors.Is(err, ErrExists) {
			return nil
		}
		return err
	case session.Plain:
		_, err := h.Append(ctx, Entry{Kind: EntryPlain, Author: n.Author, Text: n.Text, At: n.At})
		return err
	case session.Membership:
		_, err := h.Append(ctx, Entry{Kind: EntryMembership, At: n.At, Members: n.Remain, Include: n.Include,
			Exclude: n.Exclude, LogParents: n.LogParents})
		return err
	case session.FullyAcked:
		return h.SetAck(ctx, n.ID, AckFull, nil, false, false)
	case session.NotFullyAcked:
		return h.SetAck(ctx, n.ID, AckMissing, n.Members, n.Final, n.Absent)
	}
	return nil
}

const entryCols = `seq, kind, msg_id, author, body, at, own, members, include, exclude, log_parents, ack, not_acked, final, absent`

func scanEntry(sc interface{ Scan(...any) error }) (Entry, error) {
	var e Entry
	var kind, at, own, ack, final, absent int64
	var id []byte
	var members, include, exclude, parents, notAcked string
	if err := sc.Scan(&e.Seq, &kind, &id, &e.Author, &e.Text, &at, &own, &members, &include, &exclude, &parents,
		&ack, &notAcked, &final, &absent); err != nil {
		return Entry{}, err
	}
	corrupt := func(why string) (Entry, error) {
		return Entry{}, fmt.Errorf("%w: history entry %d: %s", ErrCorrupt, e.Seq, why)
	}
	if kind < int64(EntryMessage) || kind > int64(EntryPlain) || ack < 0 || ack > int64(AckMissing) {
		return corrupt("kind or ack state")
	}
	e.Kind, e.Ack = EntryKind(kind), AckState(ack)
	switch {
	case e.Kind == EntryMessage && len(id) != transcript.IDSize:
		return corrupt("message id")
	case e.Kind != EntryMessage && id != nil:
		return corrupt("message id")
	}
	copy(e.ID[:], id)
	if len(e.Text) > MaxTextSize || !utf8.ValidString(e.Text) || len(e.Author) > 3*1023+2 || !utf8.ValidString(e.Author) {
		return corrupt("text or author")
	}
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
	if e.LogParents, err = decodeInts(parents); err != nil {
		return corrupt("log parents")
	}
	e.At, e.Own, e.Final, e.Absent = decTime(at), own != 0, final != 0, absent != 0
	return e, nil
}

// Page returns up to limit entries older than before (a Seq; 0 or less
// means from the newest), oldest first: the page of history just above
// what the client shows. Pass the first entry's Seq to get the page
// before it; an empty result means the beginning. limit is capped at
// MaxPage.
func (h *History) Page(ctx context.Context, before int64, limit int) ([]Entry, error) {
	if h.err != nil {
		return nil, h.err
	}
	if limit <= 0 {
		return nil, nil
	}
	limit = min(limit, MaxPage)
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
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// Message returns the history entry of a message, or ErrNotFound.
func (h *History) Message(ctx context.Context, id transcript.ID) (Entry, error) {
	if h.err != nil {
		return Entry{}, h.err
	}
	e, err := scanEntry(h.s.db.QueryRowContext(ctx, `SELECT `+entryCols+` FROM messages WHERE account_id = ? AND room = ? AND msg_id = ?`,
		h.account, h.room, id[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, fmt.Errorf("%w: message %s", ErrNotFound, id)
	}
	return e, h.s.wrap("reading history", err)
}

// Delete removes the room's whole history.
func (h *History) Delete(ctx context.Context) error {
	if h.err != nil {
		return h.err
	}
	return h.s.wrap("deleting history", inTx(ctx, h.s.db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE account_id = ? AND room = ?`, h.account, h.room)
		return err
	}))
}
