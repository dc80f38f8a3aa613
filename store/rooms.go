package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// includePolicy says whom a member includes automatically when they enter
// the room. Room.Include holds its name; the numbers are stored: never
// renumber.
type includePolicy uint8

// Include policies.
const (
	// includeManual: nobody automatically; the user decides (/invite).
	includeManual includePolicy = 0
	// includeTrusted: newcomers whose key the trust policy allows.
	includeTrusted includePolicy = 1
	// includeEveryone: every newcomer (bots in open rooms).
	includeEveryone includePolicy = 2
)

func (p includePolicy) String() string {
	switch p {
	case includeManual:
		return "manual"
	case includeTrusted:
		return "trusted"
	case includeEveryone:
		return "everyone"
	}
	return fmt.Sprintf("IncludePolicy(%d)", uint8(p))
}

// parseIncludePolicy parses the names String returns; "" is manual.
func parseIncludePolicy(s string) (includePolicy, error) {
	if s == "" {
		return includeManual, nil
	}
	for _, p := range []includePolicy{includeManual, includeTrusted, includeEveryone} {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: include policy %.40q (want manual, trusted or everyone)", ErrInvalid, s)
}

// Room is a room of one of our accounts.
type Room struct {
	Account  int64
	JID      string // bare room JID, normalised
	Nick     string // our nick there
	AutoJoin bool   // join at start
	// Include is whom we include automatically when they enter: "manual"
	// (nobody; also ""), "trusted" (members whose key the trust policy
	// allows) or "everyone" (bots in open rooms). Others are refused.
	Include string
	Added   time.Time
}

// SaveRoom records a room, or updates its nick, auto-join flag and policy
// if it is recorded already (Added is kept). It returns the saved room
// with its JID normalised.
func (s *Store) SaveRoom(ctx context.Context, r Room) (Room, error) {
	j, err := normBare("room JID", r.JID)
	if err != nil {
		return Room{}, err
	}
	r.JID = j
	if err := checkText("nick", r.Nick, maxNickSize, false); err != nil {
		return Room{}, err
	}
	inc, err := parseIncludePolicy(r.Include)
	if err != nil {
		return Room{}, err
	}
	err = inTx(ctx, s.db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO rooms (account_id, jid, nick, auto_join, include, added) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (account_id, jid) DO UPDATE SET nick = excluded.nick, auto_join = excluded.auto_join, include = excluded.include`,
			r.Account, r.JID, r.Nick, boolInt(r.AutoJoin), int64(inc), encTime(s.now()))
		if isFK(err) {
			return fmt.Errorf("%w: account %d", ErrNotFound, r.Account)
		}
		return err
	})
	if err != nil {
		return Room{}, s.wrap("saving room", err)
	}
	return s.room(ctx, r.Account, r.JID)
}

const roomCols = `account_id, jid, nick, auto_join, include, added`

func scanRoom(sc interface{ Scan(...any) error }) (Room, error) {
	var r Room
	var auto, include, added int64
	if err := sc.Scan(&r.Account, &r.JID, &r.Nick, &auto, &include, &added); err != nil {
		return Room{}, err
	}
	r.Include = includePolicy(include).String()
	if include < 0 || include > int64(includeEveryone) || auto < 0 || auto > 1 ||
		checkText("room JID", r.JID, 3*1023+2, false) != nil || checkText("nick", r.Nick, maxNickSize, false) != nil {
		return Room{}, fmt.Errorf("%w: room %.40q", ErrCorrupt, r.JID)
	}
	r.AutoJoin = auto == 1
	r.Added = decTime(added)
	return r, nil
}

// room returns a recorded room, or ErrNotFound.
func (s *Store) room(ctx context.Context, account int64, roomJID string) (Room, error) {
	j, err := normBare("room JID", roomJID)
	if err != nil {
		return Room{}, err
	}
	r, err := scanRoom(s.db.QueryRowContext(ctx, `SELECT `+roomCols+` FROM rooms WHERE account_id = ? AND jid = ?`, account, j))
	if errors.Is(err, sql.ErrNoRows) {
		return Room{}, fmt.Errorf("%w: room %s", ErrNotFound, j)
	}
	return r, s.wrap("reading room", err)
}

// Rooms lists account's rooms in the order they were added.
func (s *Store) Rooms(ctx context.Context, account int64) ([]Room, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+roomCols+` FROM rooms WHERE account_id = ? ORDER BY added, jid`, account)
	if err != nil {
		return nil, s.wrap("listing rooms", err)
	}
	defer rows.Close()
	var out []Room
	for rows.Next() {
		r, err := scanRoom(rows)
		if err != nil {
			return nil, s.wrap("listing rooms", err)
		}
		out = append(out, r)
	}
	return out, s.wrap("listing rooms", rows.Err())
}

// deleteRoom forgets a room (its message history stays; DeleteHistory
// removes it). ErrNotFound if it was not recorded.
func (s *Store) deleteRoom(ctx context.Context, account int64, roomJID string) error {
	j, err := normBare("room JID", roomJID)
	if err != nil {
		return err
	}
	return s.wrap("deleting room", inTx(ctx, s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM rooms WHERE account_id = ? AND jid = ?`, account, j)
		if err != nil {
			return err
		}
		return mustAffect(res, "room", j)
	}))
}
