package app

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/mpenc/mpenc/internal/devchan"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/store"
)

// TestDeviceChannelCrashAfterAccept: the responder spends a one-time key
// and saves the new session in one transaction (onRequest's), then dies
// before its response leaves. After the restart the session is there,
// unconfirmed, the spent key is no longer among the keys its bundle
// publishes, and the key cannot serve again (the request read again from
// the archive matches the saved session, which onRequest's find takes
// for a replay). The initiator, without a response after responseWait,
// starts over with a key of the bundle as now published (sendToDevice's
// way): that handshake completes and data flows. The orphaned session,
// never confirmed, carries no traffic (TestDeviceSessionChoice).
func TestDeviceChannelCrashAfterAccept(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "responder.db")
	alice, bob := newTestDevice("alice@example.org", 1), newTestDevice("bob@example.org", 2)
	var acctID int64
	open := func() (*store.Store, int64) {
		st, err := store.Open(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if acctID == 0 {
			acct, err := st.CreateAccount(ctx, bob.party.Account, "bob")
			if err != nil {
				t.Fatal(err)
			}
			acctID = acct.ID
		}
		return st, acctID
	}
	published := func(st *store.Store, acct int64) [][32]byte {
		otk, _, err := st.DeviceChannelKeys(ctx, acct, bob.key, 5, devchan.Digest, nil)
		if err != nil {
			t.Fatal(err)
		}
		return otk
	}
	// accept is onRequest's transaction.
	accept := func(st *store.Store, acct int64, req *devchan.Request) (*devchan.Session, []byte, error) {
		var s *devchan.Session
		var resp []byte
		err := st.AcceptDeviceChannel(ctx, acct, bob.key, req.Digest, func(scalar [32]byte) (store.DeviceSession, error) {
			ek, err := primitive.NewX25519Key(scalar)
			if err != nil {
				return store.DeviceSession{}, err
			}
			defer ek.Zero()
			s, resp, err = devchan.Accept(bob.party, bob.key, alice.party, req, ek)
			if err != nil {
				return store.DeviceSession{}, err
			}
			return store.DeviceSession{Peer: alice.party.Account, Resource: "r", PeerDevice: alice.party.Device,
				InitKey: req.InitKey, RespKey: req.RespKey, State: s.Marshal()}, nil
		}, nil)
		return s, resp, err
	}

	st, acct := open()
	keys := published(st, acct)
	first, req1, err := devchan.Initiate(alice.party, alice.key, bob.party, keys[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := devchan.ParseRequest(req1, bob.party.Device)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := accept(st, acct, r1); err != nil {
		t.Fatal(err)
	}
	// The crash: the response is never sent.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, acct = open()
	defer st.Close()
	saved, err := st.DeviceSessions(ctx, acct, bob.key)
	if err != nil || len(saved) != 1 || saved[0].InitKey != r1.InitKey {
		t.Fatalf("after the restart: %d sessions, %v", len(saved), err)
	}
	orphan, err := devchan.Unmarshal(saved[0].State)
	if err != nil {
		t.Fatal(err)
	}
	if orphan.State() == devchan.Confirmed {
		t.Fatal("the orphaned session is confirmed")
	}
	keys2 := published(st, acct)
	for _, k := range keys2 {
		if k == keys[0] {
			t.Fatal("the spent key is published again")
		}
	}
	// The same request again (from the archive): the app finds its
	// session (find) and stays silent; the store would refuse the key.
	if _, _, err := accept(st, acct, r1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the spent key served again: %v", err)
	}
	if first.State() != devchan.AwaitResponse {
		t.Fatalf("initiator state %v", first.State())
	}

	// The initiator starts over with the bundle as published now.
	second, req2, err := devchan.Initiate(alice.party, alice.key, bob.party, keys2[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := devchan.ParseRequest(req2, bob.party.Device)
	if err != nil {
		t.Fatal(err)
	}
	sb, resp, err := accept(st, acct, r2)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.HandleResponse(resp, alice.key); err != nil {
		t.Fatal(err)
	}
	p, err := second.Seal([]byte("after the crash"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := sb.Open(p)
	if err != nil || string(got) != "after the crash" || sb.State() != devchan.Confirmed {
		t.Fatalf("data after recovery: %q, %v, %v", got, err, sb.State())
	}
}
