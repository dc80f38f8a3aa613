package trust

import (
	"fmt"
	"time"

	"github.com/mpenc/mpenc/crypto"
)

// What the external tests (which also run internal/trusttest, so cannot be
// internal) reach of the unexported API.
type (
	Memory          = memory
	KeyChangedError = keyChangedError
	DistrustedError = distrustedError
	UntrustedError  = untrustedError
)

var (
	ParseFingerprint = parseFingerprint
	ParseWords       = parseWords
	ParseURI         = parseURI
	ErrInvalid       = errInvalid
	ErrUnknownMember = errUnknownMember
)

const MaxJIDSize = maxJIDSize

// Err is the decision's error, as Directory.ObserveKey returns it.
func (d Decision) Err() error { return d.err() }

// All returns every record, by JID then age, with Trusted filled in.
func (s *Store) All() ([]Record, error) {
	var out []Record
	err := s.b.View(func(tx Tx) error {
		var err error
		out, err = tx.Keys("")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("trust: listing keys: %w", err)
	}
	return s.withTrusted(out), nil
}

// Statement is one statement of a trust message, for the tests.
type Statement struct {
	Owner string
	Key   crypto.PublicKey
	Trust bool
}

// ReadTrustMessage parses an envelope as HandleTrustMessage does.
func ReadTrustMessage(p []byte) (from, to string, at time.Time, stmts []Statement, err error) {
	m, err := parseTrustMessage(p)
	for _, st := range m.stmts {
		stmts = append(stmts, Statement{st.owner, st.key, st.trust})
	}
	return m.from, m.to, m.at, stmts, err
}

// WriteTrustMessage encodes an envelope as Vouches does.
func WriteTrustMessage(from, to string, at time.Time, stmts []Statement) ([]byte, error) {
	m := trustMessage{from: from, to: to, at: at}
	for _, st := range stmts {
		m.stmts = append(m.stmts, statement{st.Owner, st.Key, st.Trust})
	}
	return encodeTrustMessage(m)
}

const (
	MaxParked     = maxParked
	MaxStatements = maxStatements
	MaxOwners     = maxOwners
)

// Vouches is what Verify and Distrust hand to Config.OnVouch.
func (s *Store) Vouches(jid string, key crypto.PublicKey) ([]Vouch, error) {
	return s.vouches(jid, key)
}
