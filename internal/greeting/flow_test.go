package greeting_test

import (
	"testing"

	"github.com/mpenc/mpenc/internal/conformance"
	"github.com/mpenc/mpenc/internal/testvectors"
)

// TestGreeterFlowVector replays derived_greeter_flow.json through the
// greeter (internal/conformance.CheckFlow, the same code as
// cmd/mpenc-conformance): four chained operations among five members, the
// reference's random draws injected in order. Every packet must come out
// byte for byte, every member must classify every packet as the reference
// did, packet ids and chain hashes must match, and every member's state
// must equal the recorded one.
func TestGreeterFlowVector(t *testing.T) {
	f := testvectors.LoadFlow(t, "derived_greeter_flow.json")
	r := &conformance.Report{}
	conformance.CheckFlow(f, r)
	for _, line := range r.Failures {
		t.Error(line)
	}
	// 21 packets, each checked for bytes, id, chain and per-member
	// classification, plus 13 member states of 12 fields: hundreds of checks.
	if r.Passed < 500 {
		t.Errorf("only %d checks ran", r.Passed)
	}
}
