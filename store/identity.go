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
	"github.com/mpenc/mpenc/trust"
)

// deviceRow is one of our devices: an account's resource with its own
// Ed25519 identity key (mpENC makes each device a separate member). The
// private key stays sealed in the database; Unlock opens it.
type deviceRow struct {
	ID       int64
	Account  int64
	Resource string // our resource: our participant id is Account's JID + "/" + Resource
	Public   crypto.PublicKey
	KDF      KDFParams // how the private key is sealed
	Created  time.Time
}

// deviceOptions tunes CreateDevice and ChangePassphrase.
type deviceOptions struct {
	// Rand is the source of the identity key, salt and nonce; nil means
	// crypto/rand.
	Rand io.Reader
	// KDF seals the key; the zero value means DefaultKDF. Tests use small
	// parameters; programs should not.
	KDF KDFParams
}

func (o *deviceOptions) kdf() KDFParams {
	if o == nil || o.KDF == (KDFParams{}) {
		return defaultKDF
	}
	return o.KDF
}

func (o *deviceOptions) rand() io.Reader {
	if o == nil {
		return nil
	}
	return o.Rand
}

// minPassphraseSize is the shortest passphrase accepted, in bytes. It is
// a floor against accidents (an empty variable), not a strength rule.
const minPassphraseSize = 8

// maxPassphraseSize bounds a passphrase, in bytes.
const maxPassphraseSize = 4096

func checkPassphrase(p []byte) error {
	if len(p) < minPassphraseSize || len(p) > maxPassphraseSize {
		return fmt.Errorf("%w: a passphrase must be %d to %d bytes", ErrInvalid, minPassphraseSize, maxPassphraseSize)
	}
	return nil
}

// DeviceResource is the resource of a new device with identity key key:
// "mpenc-" and the first 8 hex digits of the key's fingerprint
// (docs/PROTOCOL.md, "Devices"), so that the device's participant id, its
// full JID, names its key to anyone who looks. It is stored with the
// device and reused (stores made before it have random ones, kept).
func deviceResource(key crypto.PublicKey) string {
	fp := trust.FingerprintOf(key)
	return "mpenc-" + hex.EncodeToString(fp[:4])
}

// createDevice generates an identity key for a new device of account,
// seals it under passphrase (Argon2id + XChaCha20-Poly1305, see
// docs/STORE.md) and records it. It returns the device and the unlocked
// key; the caller owns the key and should Zero it when done. An empty
// resource is derived from the key (deviceResource). A resource already
// recorded for the account gives ErrExists.
func (s *Store) createDevice(ctx context.Context, account int64, resource string, passphrase []byte, opt *deviceOptions) (deviceRow, *crypto.SigningKey, error) {
	if err := checkText("resource", resource, 1023, true); err != nil {
		return deviceRow{}, nil, err
	}
	if err := checkPassphrase(passphrase); err != nil {
		return deviceRow{}, nil, err
	}
	sk, err := crypto.GenerateSigningKey(opt.rand())
	if err != nil {
		return deviceRow{}, nil, fmt.Errorf("store: generating identity key: %w", err)
	}
	if resource == "" {
		resource = deviceResource(sk.Public())
	}
	seed := sk.Seed()
	blob, err := seal(&seed, sk.Public(), passphrase, opt.kdf(), opt.rand())
	crypto.Zero(seed[:])
	if err != nil {
		sk.Zero()
		return deviceRow{}, nil, fmt.Errorf("store: sealing identity key: %w", err)
	}
	d := deviceRow{Account: account, Resource: resource, Public: sk.Public(), KDF: opt.kdf(), Created: s.now()}
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
			return fmt.Errorf("%w: device %q", errExists, resource)
		}
		d.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		sk.Zero()
		return deviceRow{}, nil, s.wrap("creating device", err)
	}
	return d, sk, nil
}

const deviceCols = `id, account_id, resource, public_key, sealed, created`

func scanDevice(sc interface{ Scan(...any) error }) (deviceRow, []byte, error) {
	var d deviceRow
	var pub, blob []byte
	var created int64
	if err := sc.Scan(&d.ID, &d.Account, &d.Resource, &pub, &blob, &created); err != nil {
		return deviceRow{}, nil, err
	}
	if len(pub) != crypto.PublicKeySize || checkText("resource", d.Resource, 1023, false) != nil {
		return deviceRow{}, nil, fmt.Errorf("%w: device %d", ErrCorrupt, d.ID)
	}
	k, err := decodeSealed(blob)
	if err != nil {
		return deviceRow{}, nil, fmt.Errorf("%w: device %d: %v", ErrCorrupt, d.ID, err)
	}
	copy(d.Public[:], pub)
	d.KDF = k.kdf
	d.Created = decTime(created)
	return d, blob, nil
}

// devices lists account's devices in creation order.
func (s *Store) devices(ctx context.Context, account int64) ([]deviceRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE account_id = ? ORDER BY id`, account)
	if err != nil {
		return nil, s.wrap("listing devices", err)
	}
	defer rows.Close()
	var out []deviceRow
	for rows.Next() {
		d, _, err := scanDevice(rows)
		if err != nil {
			return nil, s.wrap("listing devices", err)
		}
		out = append(out, d)
	}
	return out, s.wrap("listing devices", rows.Err())
}

// deviceByResource returns account's device with the given resource, or ErrNotFound.
func (s *Store) deviceByResource(ctx context.Context, account int64, resource string) (deviceRow, error) {
	d, _, err := scanDevice(s.db.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE account_id = ? AND resource = ?`, account, resource))
	if errors.Is(err, sql.ErrNoRows) {
		return deviceRow{}, fmt.Errorf("%w: device %q", ErrNotFound, resource)
	}
	return d, s.wrap("reading device", err)
}

func (s *Store) deviceBlob(ctx context.Context, device int64) (deviceRow, []byte, error) {
	d, blob, err := scanDevice(s.db.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ?`, device))
	if errors.Is(err, sql.ErrNoRows) {
		return deviceRow{}, nil, fmt.Errorf("%w: device %d", ErrNotFound, device)
	}
	return d, blob, s.wrap("reading device", err)
}

// unlockDevice opens a device's identity key with passphrase. A wrong
// passphrase gives ErrWrongPassphrase; a damaged or tampered key
// ErrCorrupt. It runs Argon2id once (DefaultKDF: 64 MiB, about 0.4 s
// on two cores). The caller owns the key and should Zero it when done.
func (s *Store) unlockDevice(ctx context.Context, device int64, passphrase []byte) (*crypto.SigningKey, error) {
	if len(passphrase) > maxPassphraseSize {
		return nil, errWrongPassphrase
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

// changePassphrase re-seals a device's key under a new passphrase (and
// new KDF parameters and salt), after checking the old one.
func (s *Store) changePassphrase(ctx context.Context, device int64, old, passphrase []byte, opt *deviceOptions) error {
	if err := checkPassphrase(passphrase); err != nil {
		return err
	}
	sk, err := s.unlockDevice(ctx, device, old)
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

// Unlock opens this program's identity in the account accountJID (a bare
// JID): the account's device and its identity key, unlocked with the
// passphrase that passphrase returns. The first time, it records the
// account (with nick, the default room nick) and creates the device, and
// passphrase is called with create true (a prompt should ask twice): the
// device gets a new identity key and a resource derived from it ("mpenc-"
// and the first 8 hex digits of its fingerprint, kept so that its
// participant id survives restarts), the key sealed
// under the passphrase with kdf (zero: Argon2id t=3, 64 MiB, p=4; tests
// pass smaller parameters). Unlock zeroes the passphrase once used.
//
// It returns the account, the device's resource and the unlocked key; the
// caller owns the key and should Zero it when done. A wrong passphrase
// gives an error saying so, and a damaged or tampered key ErrCorrupt
// (wrapped): never another key.
func (s *Store) Unlock(ctx context.Context, accountJID, nick string, passphrase func(create bool) ([]byte, error), kdf KDFParams) (Account, string, *crypto.SigningKey, error) {
	acct, err := s.account(ctx, accountJID)
	if errors.Is(err, ErrNotFound) {
		acct, err = s.CreateAccount(ctx, accountJID, nick)
	}
	if err != nil {
		return Account{}, "", nil, err
	}
	devs, err := s.devices(ctx, acct.ID)
	if err != nil {
		return Account{}, "", nil, err
	}
	create := len(devs) == 0
	pass, err := passphrase(create)
	if err != nil {
		return Account{}, "", nil, fmt.Errorf("store: passphrase: %w", err)
	}
	defer crypto.Zero(pass)
	if create {
		d, key, err := s.createDevice(ctx, acct.ID, "", pass, &deviceOptions{KDF: kdf})
		if err != nil {
			return Account{}, "", nil, err
		}
		return acct, d.Resource, key, nil
	}
	key, err := s.unlockDevice(ctx, devs[0].ID, pass)
	if err != nil {
		return Account{}, "", nil, err
	}
	return acct, devs[0].Resource, key, nil
}

// errNoPassphrase is returned by PassphraseFromEnv when the variable is
// unset or empty.
var errNoPassphrase = errors.New("store: no passphrase in the environment")

// PassphraseFromEnv reads a passphrase from the environment variable name
// (for bots and scripts: MPENC_PASSPHRASE, say), then overwrites the
// value where the process holds it and removes the variable, so that
// child processes do not inherit it and /proc/PID/environ no longer shows
// it. The caller owns the returned slice and should zero it (crypto.Zero)
// after Unlock.
//
// Overwritten in place: Go's copy of the environment string (the runtime
// copies the environment at start) and, on Linux, the process's initial
// environment on its stack, which is what /proc/PID/environ reads
// (through /proc/self/mem; where that fails, for example without /proc,
// the variable is still removed). Not reachable from here: the copies the
// parent (a shell, a supervisor) keeps, and the value as it was until
// this call (docs/USAGE.md, "The security model", says who can read what).
func PassphraseFromEnv(name string) ([]byte, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return nil, fmt.Errorf("%w: $%s is not set", errNoPassphrase, name)
	}
	p := []byte(v)
	scrubEnv(name, v)
	if err := os.Unsetenv(name); err != nil {
		crypto.Zero(p)
		return nil, fmt.Errorf("store: removing $%s: %w", name, err)
	}
	return p, nil
}
