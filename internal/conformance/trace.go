package conformance

// CheckTrace checks a session trace; see trace checks below.
func CheckTrace(t *Trace, r *Report) {
	r.fail("session-trace checks are not implemented yet")
}
