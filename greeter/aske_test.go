package greeter_test

import (
	"encoding/hex"
	"testing"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/greeter"
	"github.com/mpenc/mpenc/internal/testvectors"
)

func TestUpstreamSessionID(t *testing.T) {
	u := testvectors.LoadUpstream(t)
	var nonces [][]byte
	for _, n := range u.SID.Nonces {
		nonces = append(nonces, []byte(n))
	}
	sid := greeter.SessionID(u.SID.Members, nonces)
	if hex.EncodeToString(sid[:]) != u.SID.SID {
		t.Errorf("sid %x, want %s", sid, u.SID.SID)
	}
	if want := u.Key(t, "SESSION_ID"); string(sid[:]) != string(want) {
		t.Errorf("sid differs from SESSION_ID %x", want)
	}
}

func TestUpstreamSessionSignature(t *testing.T) {
	u := testvectors.LoadUpstream(t)
	static := crypto.NewSigningKey([32]byte(u.Key(t, "ED25519_PRIV_KEY")))
	pub := crypto.PublicKey(u.Key(t, "ED25519_PUB_KEY"))
	sid := [32]byte(u.Key(t, "SESSION_ID"))
	sig := greeter.SignSession(static, "1", pub, pub[:], sid)
	if hex.EncodeToString(sig[:]) != u.SessionSig.Signature {
		t.Errorf("session signature %x, want %s", sig, u.SessionSig.Signature)
	}
	if want := u.Key(t, "SIGNATURE"); string(sig[:]) != string(want) {
		t.Error("differs from SIGNATURE")
	}
	if !greeter.VerifySession(pub, "1", pub, pub[:], sid, &sig) {
		t.Error("does not verify")
	}
	if greeter.VerifySession(pub, "2", pub, pub[:], sid, &sig) {
		t.Error("verifies for another member id")
	}
}
