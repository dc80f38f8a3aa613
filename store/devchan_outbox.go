package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/mpenc/mpenc/crypto"
)

// schemaV8: the device channel's outbox (issue [K], docs/STORE.md "Device
// channel"): payloads waiting for a session with a device survive a
// restart. Sealed like the sessions.
const schemaV8 = `
CREATE TABLE devchan_outbox (
	account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	peer        TEXT    NOT NULL,
	peer_device BLOB    NOT NULL CHECK (length(peer_device) = 8),
	seq         INTEGER NOT NULL,
	sealed      BLOB    NOT NULL,
	PRIMARY KEY (account_id, peer, seq)
) STRICT;
`

const (
	// maxOutboxPayloads and maxOutboxPayload bound one device's outbox
	// (the device channel carries at most 32 KiB per payload).
	maxOutboxPayloads = 256
	maxOutboxPayload  = 32 << 10
	adOutbox          = "devchan-outbox\x00"
)

// DeviceOutbox is what waits for a session with one device, in order.
type DeviceOutbox struct {
	To         string // the device's full JID
	PeerDevice [8]byte
	Payloads   [][]byte
}

func outboxAD(account int64, peerDevice [8]byte, seq int, to string) []byte {
	b := binary.BigEndian.AppendUint64([]byte(adOutbox), uint64(account))
	b = append(b, peerDevice[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	return append(b, to...)
}

// SetDeviceOutbox replaces what waits for device o.To with o.Payloads
// (none: the outbox is gone), sealed like the sessions; at most 256
// payloads of at most 32 KiB.
func (s *Store) SetDeviceOutbox(ctx context.Context, account int64, identity *crypto.SigningKey, o DeviceOutbox, r io.Reader) error {
	if len(o.Payloads) > maxOutboxPayloads {
		return fmt.Errorf("%w: %d payloads wait for a device, at most %d", ErrInvalid, len(o.Payloads), maxOutboxPayloads)
	}
	for _, p := range o.Payloads {
		if len(p) == 0 || len(p) > maxOutboxPayload {
			return fmt.Errorf("%w: a device payload of %d bytes", ErrInvalid, len(p))
		}
	}
	if err := checkText("device JID", o.To, 3071, false); err != nil { // RFC 7622: 3 × 1023 bytes and two separators
		return err
	}
	a, err := devchanSealer(identity)
	if err != nil {
		return err
	}
	return s.wrap("saving a device outbox", inTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM devchan_outbox WHERE account_id = ? AND peer = ?`, account, o.To); err != nil {
			return err
		}
		for i, p := range o.Payloads {
			blob, err := sealWith(a, p, outboxAD(account, o.PeerDevice, i, o.To), r)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO devchan_outbox (account_id, peer, peer_device, seq, sealed) VALUES (?, ?, ?, ?, ?)`,
				account, o.To, o.PeerDevice[:], i, blob); err != nil {
				return err
			}
		}
		return nil
	}))
}

// DeviceOutboxes returns every device's outbox, payloads in order. A
// payload that fails to open makes the whole call fail with ErrCorrupt.
func (s *Store) DeviceOutboxes(ctx context.Context, account int64, identity *crypto.SigningKey) ([]DeviceOutbox, error) {
	a, err := devchanSealer(identity)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT peer, peer_device, seq, sealed FROM devchan_outbox WHERE account_id = ? ORDER BY peer, seq`, account)
	if err != nil {
		return nil, s.wrap("reading device outboxes", err)
	}
	defer rows.Close()
	var out []DeviceOutbox
	for rows.Next() {
		var to string
		var dev, blob []byte
		var seq int
		if err := rows.Scan(&to, &dev, &seq, &blob); err != nil {
			return nil, s.wrap("reading device outboxes", err)
		}
		if len(dev) != 8 {
			return nil, fmt.Errorf("%w: a device outbox row", ErrCorrupt)
		}
		if len(out) == 0 || out[len(out)-1].To != to {
			out = append(out, DeviceOutbox{To: to, PeerDevice: [8]byte(dev)})
		}
		o := &out[len(out)-1]
		if seq != len(o.Payloads) || [8]byte(dev) != o.PeerDevice {
			return nil, fmt.Errorf("%w: a device outbox out of order", ErrCorrupt)
		}
		p, err := openWith(a, blob, outboxAD(account, o.PeerDevice, seq, to))
		if err != nil {
			return nil, err
		}
		o.Payloads = append(o.Payloads, p)
	}
	return out, s.wrap("reading device outboxes", rows.Err())
}
