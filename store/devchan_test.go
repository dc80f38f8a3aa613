package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/transcript"
)

func testDigest(pub [32]byte) [32]byte { return crypto.Hash([]byte("test-ek"), pub[:]) }

func testIdentity(n byte) *crypto.SigningKey {
	var seed [32]byte
	seed[0], seed[31] = n, 0x5e
	return crypto.NewSigningKey(seed)
}

// TestDeviceChannelKeys: the keys are made once and kept; each one's
// sealed scalar is the key whose digest is published; a one-time key
// serves one session only, the last-resort key any number; a failed
// acceptance spends nothing and saves nothing; a week later the
// last-resort key is replaced.
func TestDeviceChannelKeys(t *testing.T) {
	c := newClock()
	st, err := Open(tempPath(t), &Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := mustAccount(t, st, "me@example.org")
	id := testIdentity(1)
	otk, lr, err := st.DeviceChannelKeys(ctx, a.ID, id, 10, testDigest, nil)
	if err != nil || len(otk) != 10 || lr == ([32]byte{}) {
		t.Fatalf("%d keys, last resort %x: %v", len(otk), lr, err)
	}
	again, lr2, err := st.DeviceChannelKeys(ctx, a.ID, id, 10, testDigest, nil)
	if err != nil || lr2 != lr || len(again) != 10 || again[0] != otk[0] || again[9] != otk[9] {
		t.Fatalf("the keys changed: %v", err)
	}
	session := func(n byte) DeviceSession {
		return DeviceSession{Peer: "bob@example.org", Resource: "r", PeerDevice: [8]byte{n}, InitKey: [8]byte{n, 1}, RespKey: [8]byte{n, 2}, State: bytes.Repeat([]byte{n}, 100)}
	}
	accept := func(d [32]byte, ds DeviceSession) error {
		return st.AcceptDeviceChannel(ctx, a.ID, id, d, func(scalar [32]byte) (DeviceSession, error) {
			k, err := primitive.NewX25519Key(scalar)
			if err != nil {
				return ds, err
			}
			if testDigest(k.Public()) != d {
				t.Fatalf("the sealed key is not the one published")
			}
			return ds, nil
		}, nil)
	}
	if err := accept(otk[3], session(1)); err != nil {
		t.Fatal(err)
	}
	if err := accept(otk[3], session(2)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a one-time key used twice: %v", err)
	}
	for n := range byte(3) {
		if err := accept(lr, session(10+n)); err != nil {
			t.Fatalf("the last-resort key, use %d: %v", n, err)
		}
	}
	// The same request again (same initiator key) under the last-resort
	// key: refused, nothing saved.
	again10 := session(10)
	again10.PeerDevice = [8]byte{99}
	if err := accept(lr, again10); !errors.Is(err, ErrReplayed) {
		t.Fatalf("a replayed last-resort request: %v", err)
	}
	boom := errors.New("boom")
	err = st.AcceptDeviceChannel(ctx, a.ID, id, otk[4], func([32]byte) (DeviceSession, error) { return DeviceSession{}, boom }, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("a failed acceptance: %v", err)
	}
	if err := accept(otk[4], session(4)); err != nil {
		t.Fatalf("the key of a failed acceptance was spent: %v", err)
	}
	ss, err := st.DeviceSessions(ctx, a.ID, id)
	if err != nil || len(ss) != 5 {
		t.Fatalf("%d sessions: %v", len(ss), err)
	}
	// Updating a session replaces its state.
	up := session(1)
	up.State = []byte("newer")
	if err := st.SaveDeviceSession(ctx, a.ID, id, up, nil); err != nil {
		t.Fatal(err)
	}
	ss, _ = st.DeviceSessions(ctx, a.ID, id)
	if len(ss) != 5 || string(ss[0].State) != "newer" || ss[0].PeerDevice != up.PeerDevice {
		t.Fatalf("after an update: %+v", ss[0])
	}
	// Times kept; a session deleted is gone.
	up.Created, up.Retired = time.Unix(1_900_000_000, 0), time.Unix(1_900_000_100, 0)
	if err := st.SaveDeviceSession(ctx, a.ID, id, up, nil); err != nil {
		t.Fatal(err)
	}
	ss, _ = st.DeviceSessions(ctx, a.ID, id)
	if !ss[0].Created.Equal(up.Created) || !ss[0].Retired.Equal(up.Retired) {
		t.Fatalf("times %v %v", ss[0].Created, ss[0].Retired)
	}
	if err := st.DeleteDeviceSession(ctx, a.ID, up.PeerDevice, up.InitKey, up.RespKey); err != nil {
		t.Fatal(err)
	}
	if ss, _ = st.DeviceSessions(ctx, a.ID, id); len(ss) != 4 {
		t.Fatalf("%d sessions after a deletion", len(ss))
	}
	// Another identity opens nothing.
	if _, err := st.DeviceSessions(ctx, a.ID, testIdentity(2)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("opened with another identity key: %v", err)
	}
	// The spent key was replaced; a week on, a new last-resort key.
	otk2, lr3, err := st.DeviceChannelKeys(ctx, a.ID, id, 10, testDigest, nil)
	if err != nil || len(otk2) != 10 || lr3 != lr {
		t.Fatalf("refill: %d keys, %v", len(otk2), err)
	}
	c.mu.Lock()
	c.t = c.t.Add(lastResortAge + time.Hour)
	c.mu.Unlock()
	_, lr4, err := st.DeviceChannelKeys(ctx, a.ID, id, 10, testDigest, nil)
	if err != nil || lr4 == lr {
		t.Fatalf("the last-resort key was not replaced: %v", err)
	}
	if err := accept(lr, session(20)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the old last-resort key still accepted: %v", err)
	}
	if _, _, err := st.DeviceChannelKeys(ctx, a.ID, id, maxDeviceKeys+1, testDigest, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("too many keys asked: %v", err)
	}
	if err := st.SaveDeviceSession(ctx, a.ID, id, DeviceSession{Peer: "bob@example.org", Resource: "r", State: make([]byte, maxSessionState+1)}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an oversized state: %v", err)
	}
}

// TestDeviceOutbox: an outbox is replaced whole, read back in order per
// device, emptied by an empty list; limits refused with ErrInvalid; a
// payload moved to another position or device fails authentication.
func TestDeviceOutbox(t *testing.T) {
	st, err := Open(tempPath(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := mustAccount(t, st, "me@example.org")
	id := testIdentity(1)
	phone := DeviceOutbox{To: "me@example.org/phone", PeerDevice: [8]byte{1}, Payloads: [][]byte{[]byte("one"), []byte("two")}}
	desk := DeviceOutbox{To: "bob@example.org/desk", PeerDevice: [8]byte{2}, Payloads: [][]byte{[]byte("x")}}
	for _, o := range []DeviceOutbox{phone, desk} {
		if err := st.SetDeviceOutbox(ctx, a.ID, id, o, nil); err != nil {
			t.Fatal(err)
		}
	}
	phone.Payloads = append(phone.Payloads, []byte("three"))
	if err := st.SetDeviceOutbox(ctx, a.ID, id, phone, nil); err != nil {
		t.Fatal(err)
	}
	got, err := st.DeviceOutboxes(ctx, a.ID, id)
	if err != nil || len(got) != 2 {
		t.Fatalf("%d outboxes: %v", len(got), err)
	}
	if got[0].To != desk.To || got[1].To != phone.To || got[1].PeerDevice != phone.PeerDevice ||
		len(got[1].Payloads) != 3 || string(got[1].Payloads[2]) != "three" || string(got[0].Payloads[0]) != "x" {
		t.Fatalf("read back %+v", got)
	}
	if err := st.SetDeviceOutbox(ctx, a.ID, id, DeviceOutbox{To: desk.To, PeerDevice: desk.PeerDevice}, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ = st.DeviceOutboxes(ctx, a.ID, id); len(got) != 1 || got[0].To != phone.To {
		t.Fatalf("after emptying one: %+v", got)
	}
	for _, bad := range []DeviceOutbox{
		{To: phone.To, Payloads: make([][]byte, maxOutboxPayloads+1)},
		{To: phone.To, Payloads: [][]byte{make([]byte, maxOutboxPayload+1)}},
		{To: phone.To, Payloads: [][]byte{{}}},
		{To: "", Payloads: [][]byte{[]byte("a")}},
	} {
		for i := range bad.Payloads {
			if bad.Payloads[i] == nil {
				bad.Payloads[i] = []byte("p")
			}
		}
		if err := st.SetDeviceOutbox(ctx, a.ID, id, bad, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("%d payloads, first of %d bytes, to %q: %v", len(bad.Payloads), len(bad.Payloads[0]), bad.To, err)
		}
	}
	if got, _ = st.DeviceOutboxes(ctx, a.ID, id); len(got) != 1 || len(got[0].Payloads) != 3 {
		t.Fatalf("a refused outbox changed the store: %+v", got)
	}
	// Swapping two sealed payloads (a tampered file) is caught.
	for _, q := range []string{`UPDATE devchan_outbox SET seq = 9 WHERE seq = 0`, `UPDATE devchan_outbox SET seq = 0 WHERE seq = 1`, `UPDATE devchan_outbox SET seq = 1 WHERE seq = 9`} {
		if _, err := st.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.DeviceOutboxes(ctx, a.ID, id); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("swapped payloads: %v", err)
	}
	if _, err := st.DeviceOutboxes(ctx, a.ID, testIdentity(2)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("opened with another identity key: %v", err)
	}
}

// TestSecretSetting: a secret setting reads back under the device's key,
// is not in the file as written, and does not open under another key or
// another name.
func TestSecretSetting(t *testing.T) {
	st, err := Open(tempPath(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acct, key := mustAccount(t, st, "me@example.org").ID, testIdentity(1)
	secret := []byte("ARCHIVE-SECRET-MARKER-1234")
	if err := st.SetSecretSetting(ctx, acct, key, "history.own", secret, nil); err != nil {
		t.Fatal(err)
	}
	got, ok, err := st.SecretSetting(ctx, acct, key, "history.own")
	if err != nil || !ok || string(got) != string(secret) {
		t.Fatalf("read back %q, %v, %v", got, ok, err)
	}
	if _, ok, err := st.SecretSetting(ctx, acct, key, "history.none"); ok || err != nil {
		t.Fatalf("an unset secret: %v, %v", ok, err)
	}
	other := testIdentity(2)
	if _, _, err := st.SecretSetting(ctx, acct, other, "history.own"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("opened under another key: %v", err)
	}
	v, _, _ := st.Setting(ctx, acct, "history.own")
	if err := st.SetSetting(ctx, acct, "history.moved", v); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.SecretSetting(ctx, acct, key, "history.moved"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("opened under another name: %v", err)
	}
	if strings.Contains(v, string(secret)) {
		t.Fatal("the secret is in the clear")
	}
}

// TestSinceAndArchived: Since reads every room's entries after a cursor
// in the order they were appended, each with its room; an archived
// message already recorded (seen live) is not added again.
func TestSinceAndArchived(t *testing.T) {
	st, err := Open(tempPath(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acct := mustAccount(t, st, "me@example.org").ID
	at := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	live, err := st.Append(ctx, acct, "a@muc.example.org", Entry{Kind: "message", ID: transcript.ID{1}, Author: "bob@example.org/x", Text: "hi", At: at})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, acct, "b@muc.example.org", Entry{Kind: "membership", Include: []string{"bob@example.org/x"}, At: at}); err != nil {
		t.Fatal(err)
	}
	again, err := st.Append(ctx, acct, "a@muc.example.org", Entry{Kind: "archived", ID: transcript.ID{1}, Author: "bob@example.org/x", Text: "hi", At: at})
	if err != nil || again.Seq != live.Seq || again.Kind != "message" {
		t.Fatalf("an archived copy of a live message: %+v, %v", again, err)
	}
	arch, err := st.Append(ctx, acct, "a@muc.example.org", Entry{Kind: "archived", ID: transcript.ID{2}, Author: "bob@example.org/y", Text: "earlier", At: at})
	if err != nil || arch.Kind != "archived" || arch.Own {
		t.Fatalf("an archived message: %+v, %v", arch, err)
	}
	if last, err := st.LastSeq(ctx, acct); err != nil || last != arch.Seq {
		t.Fatalf("the last seq: %d, %v; want %d", last, err, arch.Seq)
	}
	got, err := st.Since(ctx, acct, 0, 10)
	if err != nil || len(got) != 3 || got[0].Room != "a@muc.example.org" || got[1].Room != "b@muc.example.org" || got[2].Kind != "archived" {
		t.Fatalf("since 0: %+v, %v", got, err)
	}
	if got, _ := st.Since(ctx, acct, got[1].Seq, 10); len(got) != 1 || got[0].ID != (transcript.ID{2}) {
		t.Fatalf("since the second: %+v", got)
	}
}
