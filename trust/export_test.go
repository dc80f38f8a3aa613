package trust

import "fmt"

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
