package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// Size limits on what the store accepts (and accepts back from disk).
const (
	maxNickSize    = 1023      // bytes, as a JID resourcepart (MUC nicks are resourceparts)
	maxNameSize    = 256       // bytes of a setting name
	maxValueSize   = 64 << 10  // bytes of a setting value
	maxTextSize    = 256 << 10 // bytes of a message text: the largest groupchat body channel/xmpp accepts
	maxListMembers = 256       // JIDs in a member list (causal.MaxMembers)
	maxLogParents  = 256       // log parent offsets of one message
	maxPage        = 1000      // entries one Page call returns at most
)

// Account is one of our XMPP accounts.
type Account struct {
	ID      int64
	JID     string // bare JID, normalised
	Nick    string // default room nick
	Created time.Time
}

// normBare parses a bare JID and returns its normalised form.
func normBare(what, s string) (string, error) {
	if len(s) > 3*1023+2 {
		return "", fmt.Errorf("%w: %s too long", ErrInvalid, what)
	}
	j, err := jid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: %s %.40q: %v", ErrInvalid, what, s, err)
	}
	if j.Resourcepart() != "" || j.Domainpart() == "" {
		return "", fmt.Errorf("%w: %s %.40q must be a bare JID", ErrInvalid, what, s)
	}
	return j.String(), nil
}

func checkText(what, s string, max int, allowEmpty bool) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s is %d bytes, more than %d", ErrInvalid, what, len(s), max)
	}
	if !allowEmpty && s == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalid, what)
	}
	return nil
}

// CreateAccount records one of our accounts. A JID already recorded gives
// ErrExists.
func (s *Store) CreateAccount(ctx context.Context, accountJID, nick string) (Account, error) {
	j, err := normBare("account JID", accountJID)
	if err != nil {
		return Account{}, err
	}
	if err := checkText("nick", nick, maxNickSize, false); err != nil {
		return Account{}, err
	}
	a := Account{JID: j, Nick: nick, Created: s.now()}
	err = inTx(ctx, s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO accounts (jid, nick, created) VALUES (?, ?, ?) ON CONFLICT (jid) DO NOTHING`,
			a.JID, a.Nick, encTime(a.Created))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: account %s", errExists, j)
		}
		a.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return Account{}, s.wrap("creating account", err)
	}
	return a, nil
}

func scanAccount(sc interface{ Scan(...any) error }) (Account, error) {
	var a Account
	var created int64
	if err := sc.Scan(&a.ID, &a.JID, &a.Nick, &created); err != nil {
		return Account{}, err
	}
	if checkText("account JID", a.JID, 3*1023+2, false) != nil || checkText("nick", a.Nick, maxNickSize, true) != nil {
		return Account{}, fmt.Errorf("%w: account %d", ErrCorrupt, a.ID)
	}
	a.Created = decTime(created)
	return a, nil
}

// account returns the account with the given bare JID, or ErrNotFound.
func (s *Store) account(ctx context.Context, accountJID string) (Account, error) {
	j, err := normBare("account JID", accountJID)
	if err != nil {
		return Account{}, err
	}
	a, err := scanAccount(s.db.QueryRowContext(ctx, `SELECT id, jid, nick, created FROM accounts WHERE jid = ?`, j))
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("%w: account %s", ErrNotFound, j)
	}
	return a, s.wrap("reading account", err)
}

// accountByID returns the account with the given id, or ErrNotFound.
func (s *Store) accountByID(ctx context.Context, id int64) (Account, error) {
	a, err := scanAccount(s.db.QueryRowContext(ctx, `SELECT id, jid, nick, created FROM accounts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("%w: account %d", ErrNotFound, id)
	}
	return a, s.wrap("reading account", err)
}

// accounts lists our accounts in creation order.
func (s *Store) accounts(ctx context.Context) ([]Account, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, jid, nick, created FROM accounts ORDER BY id`)
	if err != nil {
		return nil, s.wrap("listing accounts", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, s.wrap("listing accounts", err)
		}
		out = append(out, a)
	}
	return out, s.wrap("listing accounts", rows.Err())
}

// setNick changes an account's default nick.
func (s *Store) setNick(ctx context.Context, account int64, nick string) error {
	if err := checkText("nick", nick, maxNickSize, false); err != nil {
		return err
	}
	return s.wrap("setting nick", inTx(ctx, s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET nick = ? WHERE id = ?`, nick, account)
		if err != nil {
			return err
		}
		return mustAffect(res, "account", account)
	}))
}

func mustAffect(res sql.Result, what string, id any) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: %s %v", ErrNotFound, what, id)
	}
	return nil
}

// SetSetting stores a per-account setting (for example where the device
// channel's archive catch-up stopped). Names are free-form, at most 256
// bytes; use dotted names ("devchan.archive") so programs do not collide.
// Values are at most 64 KiB of text.
func (s *Store) SetSetting(ctx context.Context, account int64, name, value string) error {
	if err := checkText("setting name", name, maxNameSize, false); err != nil {
		return err
	}
	if err := checkText("setting value", value, maxValueSize, true); err != nil {
		return err
	}
	return s.wrap("saving setting", inTx(ctx, s.db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO settings (account_id, name, value) VALUES (?, ?, ?)
			ON CONFLICT (account_id, name) DO UPDATE SET value = excluded.value`, account, name, value)
		if isFK(err) {
			return fmt.Errorf("%w: account %d", ErrNotFound, account)
		}
		return err
	}))
}

// Setting returns a setting; ok is false if it is not set.
func (s *Store) Setting(ctx context.Context, account int64, name string) (value string, ok bool, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE account_id = ? AND name = ?`, account, name).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, s.wrap("reading setting", err)
	}
	if checkText("setting value", value, maxValueSize, true) != nil {
		return "", false, fmt.Errorf("%w: setting %.40q", ErrCorrupt, name)
	}
	return value, true, nil
}

// deleteSetting removes a setting (no error if it was not set).
func (s *Store) deleteSetting(ctx context.Context, account int64, name string) error {
	return s.wrap("deleting setting", inTx(ctx, s.db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM settings WHERE account_id = ? AND name = ?`, account, name)
		return err
	}))
}
