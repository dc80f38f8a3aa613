package message

import (
	"io"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/transcript"
)

// Internals for the external tests (package message_test), which must be
// external: the conformance vectors' loader imports this package.

// SealIV is Seal with the IV and the padded size (0 = standard) given.
func (s *Security) SealIV(parents []transcript.ID, body []byte, size int, iv *[primitive.IVSize]byte) (Sealed, error) {
	return s.seal(parents, body, size, iv)
}

func (s *Security) SidKeyHashForTest() [32]byte           { return s.skh }
func (s *Security) SigningKeyForTest() *crypto.SigningKey { return s.key }
func (s *Security) GroupKeyForTest() []byte               { return s.gk }
func (s *Security) SetRandForTest(r io.Reader)            { s.rand = r }

// AppendBodyForTest encodes any body, HeartBeat included.
func AppendBodyForTest(dst []byte, b Body) ([]byte, error) { return appendBody(dst, b) }
