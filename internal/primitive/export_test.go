package primitive

// Errors the external tests check.
var (
	ErrLowOrderPoint = errLowOrderPoint
	ErrKeySize       = errKeySize
)
