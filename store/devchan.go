package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
)

// schemaV7: the pairwise device channel (issue [K], docs/STORE.md "Device
// channel"): one-time keys whose digests the device publishes, and the
// sessions with other devices. Private keys and session states are
// sealed under a key derived from the device's identity key, so they are
// as safe at rest as that key is under the passphrase.
const schemaV7 = `
CREATE TABLE devchan_keys (
	account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	key_id      BLOB    NOT NULL CHECK (length(key_id) = 8),
	digest      BLOB    NOT NULL CHECK (length(digest) = 32),
	sealed      BLOB    NOT NULL,
	last_resort INTEGER NOT NULL CHECK (last_resort IN (0, 1)),
	created     INTEGER NOT NULL,
	PRIMARY KEY (account_id, key_id)
) STRICT;

-- Requests accepted under the last-resort key, while it lives: a request
-- replayed (from the archive, by a server) must not make the same
-- session again.
CREATE TABLE devchan_used (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	key_id     BLOB    NOT NULL CHECK (length(key_id) = 8),
	init_key   BLOB    NOT NULL CHECK (length(init_key) = 8),
	PRIMARY KEY (account_id, key_id, init_key)
) STRICT;

CREATE TABLE devchan_sessions (
	account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	peer        TEXT    NOT NULL,
	resource    TEXT    NOT NULL,
	peer_device BLOB    NOT NULL CHECK (length(peer_device) = 8),
	init_key    BLOB    NOT NULL CHECK (length(init_key) = 8),
	resp_key    BLOB    NOT NULL CHECK (length(resp_key) = 8),
	sealed      BLOB    NOT NULL,
	created     INTEGER NOT NULL,
	retired     INTEGER NOT NULL,
	updated     INTEGER NOT NULL,
	PRIMARY KEY (account_id, peer_device, init_key, resp_key)
) STRICT;
`

// Bounds of the device channel's tables.
const (
	// maxDeviceKeys bounds the one-time keys DeviceChannelKeys keeps (the
	// bundle publishes at most 100).
	maxDeviceKeys = 100
	// lastResortAge is when the last-resort key is replaced by a new one.
	lastResortAge = 7 * 24 * time.Hour
	// maxSessionState bounds a saved session (devchan's state is under
	// 40 KiB with 1,000 kept keys).
	maxSessionState = 64 << 10
	// maxDeviceSessions bounds the sessions one account keeps.
	maxDeviceSessions = 10000
)

// DeviceSession is one pairwise session with another device, as saved:
// who, which session (the two ephemeral key ids), and its whole state
// (secret: sealed at rest).
type DeviceSession struct {
	Peer       string // the peer device's bare JID
	Resource   string // its resource, as its account's device list gives it
	PeerDevice [8]byte
	InitKey    [8]byte
	RespKey    [8]byte
	State      []byte
	// Created is when the session began; Retired, when not zero, is when
	// a newer session replaced it for sending (it still decrypts for a
	// while). Both are the caller's to set.
	Created time.Time
	Retired time.Time
	Updated time.Time // set by the store
}

const (
	ctxDevchanKey  = "mpenc/v1/store-devchan"
	adOneTimeKey   = "devchan-key\x00"
	adSessionState = "devchan-session\x00"
)

// devchanSealer is the AEAD that seals the device channel's secrets: a
// key derived from the identity key's seed.
func devchanSealer(identity *crypto.SigningKey) (interface {
	Seal(dst, nonce, plaintext, ad []byte) []byte
	Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
}, error) {
	seed := identity.Seed()
	defer crypto.Zero(seed[:])
	k, err := primitive.HKDF(seed[:], nil, ctxDevchanKey, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	defer crypto.Zero(k)
	return chacha20poly1305.NewX(k)
}

func sealWith(a interface {
	Seal(dst, nonce, plaintext, ad []byte) []byte
}, plain, ad []byte, r io.Reader) ([]byte, error) {
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(plain)+chacha20poly1305.Overhead)
	if err := primitive.RandomBytes(r, nonce); err != nil {
		return nil, err
	}
	return a.Seal(nonce, nonce, plain, ad), nil
}

func openWith(a interface {
	Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
}, blob, ad []byte) ([]byte, error) {
	if len(blob) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: a sealed device channel secret of %d bytes", ErrCorrupt, len(blob))
	}
	p, err := a.Open(nil, blob[:chacha20poly1305.NonceSizeX], blob[chacha20poly1305.NonceSizeX:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: a sealed device channel secret fails authentication", ErrCorrupt)
	}
	return p, nil
}

func keyAD(account int64, keyID []byte) []byte {
	return append(binary.BigEndian.AppendUint64([]byte(adOneTimeKey), uint64(account)), keyID...)
}

func sessionAD(account int64, ds *DeviceSession) []byte {
	b := binary.BigEndian.AppendUint64([]byte(adSessionState), uint64(account))
	b = append(b, ds.PeerDevice[:]...)
	b = append(b, ds.InitKey[:]...)
	b = append(b, ds.RespKey[:]...)
	return append(b, ds.Peer...)
}

// DeviceChannelKeys keeps want one-time X25519 keys (at most 100) and a
// last-resort key for the device channel, creating what is missing (and a
// new last-resort key when the current one is a week old), and returns
// the digests to publish in the device's bundle: one-time keys, oldest
// first, and the last-resort key's. digest computes a key's published
// digest from its public half (the channel's rule, passed in so that the
// store stays ignorant of it).
func (s *Store) DeviceChannelKeys(ctx context.Context, account int64, identity *crypto.SigningKey, want int, digest func(public [32]byte) [32]byte, r io.Reader) (oneTime [][32]byte, lastResort [32]byte, err error) {
	if want < 0 || want > maxDeviceKeys {
		return nil, lastResort, fmt.Errorf("%w: %d one-time keys, at most %d", ErrInvalid, want, maxDeviceKeys)
	}
	a, err := devchanSealer(identity)
	if err != nil {
		return nil, lastResort, err
	}
	now := s.now()
	err = inTx(ctx, s.db, func(tx *sql.Tx) error {
		oneTime, lastResort = nil, [32]byte{}
		rows, err := tx.QueryContext(ctx, `SELECT digest, last_resort, created FROM devchan_keys WHERE account_id = ? ORDER BY rowid`, account)
		if err != nil {
			return err
		}
		var lrCreated int64
		haveLR := false
		for rows.Next() {
			var d []byte
			var lr, created int64
			if err := rows.Scan(&d, &lr, &created); err != nil {
				rows.Close()
				return err
			}
			if len(d) != 32 {
				rows.Close()
				return fmt.Errorf("%w: a device channel key's digest", ErrCorrupt)
			}
			if lr == 1 {
				haveLR, lrCreated, lastResort = true, created, [32]byte(d)
			} else {
				oneTime = append(oneTime, [32]byte(d))
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		add := func(lr bool) ([32]byte, error) {
			k, err := primitive.GenerateX25519Key(r)
			if err != nil {
				return [32]byte{}, err
			}
			defer k.Zero()
			d := digest(k.Public())
			scalar := k.Scalar()
			defer crypto.Zero(scalar[:])
			blob, err := sealWith(a, scalar[:], keyAD(account, d[:8]), r)
			if err != nil {
				return d, err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO devchan_keys (account_id, key_id, digest, sealed, last_resort, created) VALUES (?, ?, ?, ?, ?, ?)`,
				account, d[:8], d[:], blob, boolInt(lr), encTime(now))
			if isFK(err) {
				return d, fmt.Errorf("%w: account %d", ErrNotFound, account)
			}
			return d, err
		}
		if !haveLR || now.Sub(decTime(lrCreated)) > lastResortAge {
			if haveLR {
				if _, err := tx.ExecContext(ctx, `DELETE FROM devchan_keys WHERE account_id = ? AND last_resort = 1`, account); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `DELETE FROM devchan_used WHERE account_id = ?`, account); err != nil {
					return err
				}
			}
			if lastResort, err = add(true); err != nil {
				return err
			}
		}
		for len(oneTime) < want {
			d, err := add(false)
			if err != nil {
				return err
			}
			oneTime = append(oneTime, d)
		}
		return nil
	})
	if err != nil {
		return nil, [32]byte{}, s.wrap("keeping the device channel's keys", err)
	}
	return oneTime, lastResort, nil
}

// ErrReplayed: AcceptDeviceChannel was asked for a session it made
// already (a request replayed): nothing is saved or spent.
var ErrReplayed = errors.New("store: a device channel request accepted before")

// errNoDeviceKey: AcceptDeviceChannel found no key with the digest.
var errNoDeviceKey = fmt.Errorf("%w: no device channel key with that digest (used already, or never ours)", ErrNotFound)

// AcceptDeviceChannel answers a request for the key whose digest is
// given, in one transaction: it opens the key, calls accept with its
// private scalar (which must not keep it), saves the session accept
// returns, and deletes the key unless it is the last-resort key, so that
// a one-time key serves one session only, and a session is never lost
// while its key is spent. The caller sends the response after it returns.
// It fails with ErrNotFound for a digest it does not have.
func (s *Store) AcceptDeviceChannel(ctx context.Context, account int64, identity *crypto.SigningKey, digest [32]byte, accept func(scalar [32]byte) (DeviceSession, error), r io.Reader) error {
	a, err := devchanSealer(identity)
	if err != nil {
		return err
	}
	err = inTx(ctx, s.db, func(tx *sql.Tx) error {
		var blob []byte
		var lr int64
		err := tx.QueryRowContext(ctx, `SELECT sealed, last_resort FROM devchan_keys WHERE account_id = ? AND key_id = ? AND digest = ?`,
			account, digest[:8], digest[:]).Scan(&blob, &lr)
		if errors.Is(err, sql.ErrNoRows) {
			return errNoDeviceKey
		}
		if err != nil {
			return err
		}
		plain, err := openWith(a, blob, keyAD(account, digest[:8]))
		if err != nil {
			return err
		}
		defer crypto.Zero(plain)
		if len(plain) != 32 {
			return fmt.Errorf("%w: a device channel key of %d bytes", ErrCorrupt, len(plain))
		}
		ds, err := accept([32]byte(plain))
		if err != nil {
			return err
		}
		if lr == 1 {
			// The last-resort key serves many requests, but each once.
			res, err := tx.ExecContext(ctx, `INSERT INTO devchan_used (account_id, key_id, init_key) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
				account, digest[:8], ds.InitKey[:])
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return ErrReplayed
			}
		}
		var exists int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM devchan_sessions WHERE account_id = ? AND peer_device = ? AND init_key = ? AND resp_key = ?`,
			account, ds.PeerDevice[:], ds.InitKey[:], ds.RespKey[:]).Scan(&exists); err != nil {
			return err
		}
		if exists > 0 {
			return ErrReplayed
		}
		if err := s.putSession(ctx, tx, a, account, &ds, r); err != nil {
			return err
		}
		if lr == 0 {
			_, err = tx.ExecContext(ctx, `DELETE FROM devchan_keys WHERE account_id = ? AND key_id = ?`, account, digest[:8])
		}
		return err
	})
	return s.wrap("accepting a device channel", err)
}

func (s *Store) putSession(ctx context.Context, tx *sql.Tx, a interface {
	Seal(dst, nonce, plaintext, ad []byte) []byte
}, account int64, ds *DeviceSession, r io.Reader) error {
	if len(ds.State) == 0 || len(ds.State) > maxSessionState {
		return fmt.Errorf("%w: a device session state of %d bytes", ErrInvalid, len(ds.State))
	}
	peer, err := normBare("peer", ds.Peer)
	if err != nil {
		return err
	}
	ds.Peer = peer
	if err := checkText("resource", ds.Resource, maxNickSize, false); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM devchan_sessions WHERE account_id = ?`, account).Scan(&n); err != nil {
		return err
	}
	blob, err := sealWith(a, ds.State, sessionAD(account, ds), r)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE devchan_sessions SET sealed = ?, updated = ?, peer = ?, resource = ?, created = ?, retired = ? WHERE account_id = ? AND peer_device = ? AND init_key = ? AND resp_key = ?`,
		blob, encTime(s.now()), ds.Peer, ds.Resource, encTime(ds.Created), encTime(ds.Retired), account, ds.PeerDevice[:], ds.InitKey[:], ds.RespKey[:])
	if err != nil {
		return err
	}
	if k, _ := res.RowsAffected(); k == 1 {
		return nil
	}
	if n >= maxDeviceSessions {
		return fmt.Errorf("%w: %d device sessions kept already", ErrInvalid, n)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO devchan_sessions (account_id, peer, resource, peer_device, init_key, resp_key, sealed, created, retired, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		account, ds.Peer, ds.Resource, ds.PeerDevice[:], ds.InitKey[:], ds.RespKey[:], blob, encTime(ds.Created), encTime(ds.Retired), encTime(s.now()))
	if isFK(err) {
		return fmt.Errorf("%w: account %d", ErrNotFound, account)
	}
	return err
}

// SaveDeviceSession saves a session's state (inserting it, or replacing
// the state saved before).
func (s *Store) SaveDeviceSession(ctx context.Context, account int64, identity *crypto.SigningKey, ds DeviceSession, r io.Reader) error {
	a, err := devchanSealer(identity)
	if err != nil {
		return err
	}
	return s.wrap("saving a device session", inTx(ctx, s.db, func(tx *sql.Tx) error {
		return s.putSession(ctx, tx, a, account, &ds, r)
	}))
}

// DeviceSessions returns every saved session of the account, opened, the
// most recently updated first.
func (s *Store) DeviceSessions(ctx context.Context, account int64, identity *crypto.SigningKey) ([]DeviceSession, error) {
	a, err := devchanSealer(identity)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT peer, resource, peer_device, init_key, resp_key, sealed, created, retired, updated FROM devchan_sessions WHERE account_id = ? ORDER BY updated DESC, peer_device`, account)
	if err != nil {
		return nil, s.wrap("reading device sessions", err)
	}
	defer rows.Close()
	var out []DeviceSession
	for rows.Next() {
		var ds DeviceSession
		var dev, ik, rk, blob []byte
		var created, retired, updated int64
		if err := rows.Scan(&ds.Peer, &ds.Resource, &dev, &ik, &rk, &blob, &created, &retired, &updated); err != nil {
			return nil, s.wrap("reading device sessions", err)
		}
		if len(dev) != 8 || len(ik) != 8 || len(rk) != 8 {
			return nil, fmt.Errorf("store: %w: a device session's ids", ErrCorrupt)
		}
		ds.PeerDevice, ds.InitKey, ds.RespKey = [8]byte(dev), [8]byte(ik), [8]byte(rk)
		ds.Created, ds.Retired, ds.Updated = decTime(created), decTime(retired), decTime(updated)
		if ds.State, err = openWith(a, blob, sessionAD(account, &ds)); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, ds)
	}
	return out, s.wrap("reading device sessions", rows.Err())
}

// DeleteDeviceSession forgets one session (a retired one past its time, a
// handshake that never completed): its keys are gone for good.
func (s *Store) DeleteDeviceSession(ctx context.Context, account int64, peerDevice, initKey, respKey [8]byte) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM devchan_sessions WHERE account_id = ? AND peer_device = ? AND init_key = ? AND resp_key = ?`,
		account, peerDevice[:], initKey[:], respKey[:])
	return s.wrap("deleting a device session", err)
}

const adSecretSetting = "secret-setting\x00"

// SetSecretSetting stores a per-account secret (the history archive's
// keys, issue [N]) sealed with a key derived from the device's identity
// key, as the device channel's secrets are: the file alone does not
// reveal it. Names are as SetSetting's; values at most 32 KiB.
func (s *Store) SetSecretSetting(ctx context.Context, account int64, identity *crypto.SigningKey, name string, value []byte, r io.Reader) error {
	if len(value) > maxValueSize/2 {
		return fmt.Errorf("%w: a secret setting of %d bytes", ErrInvalid, len(value))
	}
	a, err := devchanSealer(identity)
	if err != nil {
		return err
	}
	blob, err := sealWith(a, value, secretAD(account, name), r)
	if err != nil {
		return err
	}
	return s.SetSetting(ctx, account, name, "sealed:"+base64.StdEncoding.EncodeToString(blob))
}

// SecretSetting returns a secret SetSecretSetting stored; ok is false if
// it is not set, ErrCorrupt if it does not open (another device's key,
// or changed).
func (s *Store) SecretSetting(ctx context.Context, account int64, identity *crypto.SigningKey, name string) (value []byte, ok bool, err error) {
	v, ok, err := s.Setting(ctx, account, name)
	if err != nil || !ok {
		return nil, ok, err
	}
	b64, sealed := strings.CutPrefix(v, "sealed:")
	blob, derr := base64.StdEncoding.Strict().DecodeString(b64)
	if !sealed || derr != nil {
		return nil, false, fmt.Errorf("%w: setting %.40q is not sealed", ErrCorrupt, name)
	}
	a, err := devchanSealer(identity)
	if err != nil {
		return nil, false, err
	}
	p, err := openWith(a, blob, secretAD(account, name))
	if err != nil {
		return nil, false, err
	}
	return p, true, nil
}

func secretAD(account int64, name string) []byte {
	return append(binary.BigEndian.AppendUint64([]byte(adSecretSetting), uint64(account)), name...)
}
