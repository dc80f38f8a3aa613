package trust

// What the external tests (which also run internal/trusttest, so cannot be
// internal) reach of the unexported API.
type Memory = memory

var (
	ParseFingerprint = parseFingerprint
	ParseWords       = parseWords
	ParseURI         = parseURI
)
