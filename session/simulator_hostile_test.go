package session_test

import "testing"

// TestSimulatorHostile: the simulator's random runs with a hostile server
// that drops, duplicates and reorders deliveries per recipient and injects
// corrupted copies of packets. Nothing forged may be accepted, members must
// agree on every message they share, every message must reach its readers
// or its author be warned, and every divergence of the server order between
// members of one subsession must be detected.
func TestSimulatorHostile(t *testing.T) { simulate(t, true, "TestSimulatorHostile") }
