package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mpenc/mpenc/crypto"
)

// Device is one of our devices: an account's resource with its own
// Ed25519 identity key (mpENC makes each device a separate member). The
// private key stays sealed in the database; Unlock opens it.
type Device struct {
	ID       int64
	Account  int64
	Resource string // our resource: our participant id is Account's JID + "/" + Resource
	Public   crypto.PublicKey
	KDF      KDFParams // how the private key is sealed
	Created  time.Time
}

// DeviceOptions tunes CreateDevice and ChangePassphrase.
type DeviceOptions struct {
	// Rand is the source of the identity key, salt and nonce; nil means
	// crypto/rand.
	Rand io.Reader
	// KDF seals the key; the zero value means DefaultKDF. Tests use small
	// parameters; programs should not.
	KDF KDFParams
}

func (o *DeviceOptions) kdf() KDFParams {
	if o == nil || o.KDF == (KDFParams{}) {
		return DefaultKDF
	}
	return o.KDF
}

func (o *DeviceOptions) rand() io.Reader {
	if o == nil {
		return nil
	}
	return o.Rand
}

// MinPassphraseSize is the shortest passphrase accepted, in bytes. It is
// a floor against accidents (an empty variable), not a strength rule.
const MinPassphraseSize = 8

// MaxPassphraseSize bounds a passphrase, in bytes.
const MaxPassphraseSize = 4096

func checkPassphrase(p []byte) error {
	if len(p) < MinPassphraseSize || len(p) > MaxPassphraseSize {
		return fmt.Errorf("%w: a passphrase must be %d to %d bytes", ErrInvalid, MinPassphraseSize, MaxPassphraseSize)
	}
	return nil
}

// RandomResource returns a fresh resource name for a new device,
// "mpenc-" and 8 hex digits from r (crypto/rand if nil). Store it with the
// device and reuse it: the participant id then survives restarts.
func RandomResource(r io.Reader) (string, error) {
	var b [4]byte
	if err := crypto.RandomBytes(r, b[:]); err != nil {
		return "", err
	}
	return "mpenc-" + hex.EncodeToString(b[:]), nil
}

// CreateDevice generates an identity key for a new device of account,
// seals it under passphrase (Argon2id + XChaCha20-Poly1305, see
// docs/STORE.md) and records it. It returns the device and the unlocked
// key; the caller owns the key and should Zero it when done. A resource
// already recorded for the account gives ErrExists.
func (s *Store) CreateDevice(ctx context.Context, account int64, resource string, passphrase []byte, opt *DeviceOptions) (Device, *crypto.SigningKey, error) {
	if err := checkText("resource", resource, 1023, false); err != nil {
		return Device{}, nil, err
	}
	if err := checkPassphrase(passphrase); err != nil {
		return Device{}, nil, err
	}
	sk, err := crypto.GenerateSigningKey(opt.rand())
	if err != nil {
		return Device{}, nil, fmt.Errorf("store: generating identity key: %w", err)
	}
	seed := sk.Seed()
	blob, err := seal(&seed, sk.Public(), passphrase, opt.kdf(), opt.rand())
	crypto.Zero(seed[:])
	if err != nil {
		sk.Zero()
		return Device{}, nil, fmt.Errorf("store: sealing identity key: %w", err)
	}
	d := Device{Account: account, Resource: resource, Public: sk.Public(), KDF: opt.kdf(), Created: s.now()}
	err = inTx(ctx, s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO devices (account_id, resource, public_key, sealed, created) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (account_id, resource) DO NOTHING`, account, resource, d.Public[:], blob, encTime(d.Created))
		if isFK(err) {
			return fmt.Errorf("%w: account %d", ErrNotFound, account)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: device %q", ErrExists, resource)
		}
		d.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		sk.Zero()
		return Device{}, nil, s.wrap("creating device", err)
	}
	return d, sk, nil
}

const deviceCols = `id, account_id, resource, public_key, sealed, created`

func scanDevice(sc interface{ Scan(...any) error }) (Device, []byte, error) {
	var d Device
	var pub, blob []byte
	var created int64
	if err := sc.Scan(&d.ID, &d.Account, &d.Resource, &pub, &blob, &created); err != nil {
		return Device{}, nil, err
	}
	if len(pub) != crypto.PublicKeySize || checkText("resource", d.Resource, 1023, false) != nil {
		return Device{}, nil, fmt.Errorf("%w: device %d", ErrCorrupt, d.ID)
	}
	k, err := decodeSealed(blob)
	if err != nil {
		return Device{}, nil, fmt.Errorf("%w: device %d: %v", ErrCorrupt, d.ID, err)
	}
	copy(d.Public[:], pub)
	d.KDF = k.kdf
	d.Created = decTime(created)
	return d, blob, nil
}

// Devices lists account's devices in creation order.
func (s *Store) Devices(ctx context.Context, account int64) ([]Device, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE account_id = ? ORDER BY id`, account)
	if err != nil {
		return nil, s.wrap("listing devices", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d, _, err := scanDevice(rows)
		if err != nil {
			return nil, s.wrap("listing devices", err)
		}
		out = append(out, d)
	}
	return out, s.wrap("listing devices", rows.Err())
}

// Device returns account's device with the given resource, or ErrNotFound.
func (s *Store) Device(ctx context.Context, account int64, resource string) (Device, error) {
	d, _, err := scanDevice(s.db.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE account_id = ? AND resource = ?`, account, resource))
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, fmt.Errorf("%w: device %q", ErrNotFound, resource)
	}
	return d, s.wrap("reading device", err)
}

func (s *Store) deviceBlob(ctx context.Context, device int64) (Device, []byte, error) {
	d, blob, err := scanDevice(s.db.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ?`, device))
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, nil, fmt.Errorf("%w: device %d", ErrNotFound, device)
	}
	return d, blob, s.wrap("reading device", err)
}

// Unlock opens a device's identity key with passphrase. A wrong
// passphrase gives ErrWrongPassphrase; a damaged or tampered key
// ErrCorrupt. It runs Argon2id once (DefaultKDF: 64 MiB, about 0.4 s
// on two cores). The caller owns the key and should Zero it when done.
func (s *Store) Unlock(ctx context.Context, device int64, passphrase []byte) (*crypto.SigningKey, error) {
	if len(passphrase) > MaxPassphraseSize {
		return nil, ErrWrongPassphrase
	}
	d, blob, err := s.deviceBlob(ctx, device)
	if err != nil {
		return nil, err
	}
	sk, err := open(blob, d.Public, passphrase)
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("unlocking device %d", device), err)
	}
	return sk, nil
}

// ChangePassphrase re-seals a device's key under a new passphrase (and
// new KDF parameters and salt), after checking the old one.
func (s *Store) ChangePassphrase(ctx context.Context, device int64, old, passphrase []byte, opt *DeviceOptions) error {
	if err := checkPassphrase(passphrase); err != nil {
		return err
	}
	sk, err := s.Unlock(ctx, device, old)
	if err != nil {
		return err
	}
	defer sk.Zero()
	seed := sk.Seed()
	blob, err := seal(&seed, sk.Public(), passphrase, opt.kdf(), opt.rand())
	crypto.Zero(seed[:])
	if err != nil {
		return fmt.Errorf("store: sealing identity key: %w", err)
	}
	pub := sk.Public()
	return s.wrap("changing passphrase", inTx(ctx, s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE devices SET sealed = ? WHERE id = ? AND public_key = ?`, blob, device, pub[:])
		if err != nil {
			return err
		}
		return mustAffect(res, "device", device)
	}))
}

// ErrNoPassphrase is returned by PassphraseFromEnv when the variable is
// unset or empty.
var ErrNoPassphrase = errors.New("store: no passphrase in the environment")

// PassphraseFromEnv reads a passphrase from the environment variable name
// (for bots and scripts: MPENC_PASSPHRASE, say) and removes the variable,
// so that child processes do not inherit it. The caller owns the returned
// slice and should zero it (crypto.Zero) after Unlock. Go cannot wipe the
// process's copy of the environment string; removing the variable is the
// most it can do.
func PassphraseFromEnv(name string) ([]byte, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return nil, fmt.Errorf("%w: $%s is not set", ErrNoPassphrase, name)
	}
	if err := os.Unsetenv(name); err != nil {
		return nil, fmt.Errorf("store: removing $%s: %w", name, err)
	}
	return []byte(v), nil
}
