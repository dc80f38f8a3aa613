// Command mpenc-conformance checks vector files in the shapes of
// ../shared/vectors/ through mpenc's real components: the reference's known
// answers, derived misc vectors, greeter flows (each member's recorded
// randomness injected) and session traces (ServerOrder, MessageSecurity and
// the transcript with the recorded subsession keys).
//
// Usage:
//
//	go run ./cmd/mpenc-conformance FILE...
//
// It prints one line per failed check, then "N passed, M failed", and exits
// 1 on any failure or on a file it cannot understand (2 on bad usage).
package main

import (
	"fmt"
	"os"

	"github.com/mpenc/mpenc/internal/conformance"
)

const usage = `usage: mpenc-conformance FILE...

Checks conformance vector files (upstream KATs, derived misc vectors,
greeter flows, session traces) through mpenc's own components.
Prints a line per failed check and a summary; exits 1 on any failure.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var reports []*conformance.Report
	failed := false
	for _, path := range os.Args[1:] {
		r := conformance.CheckFile(path)
		reports = append(reports, r)
		for _, f := range r.Failures {
			fmt.Printf("FAIL %s: %s\n", path, f)
		}
		if r.Failed > 0 {
			failed = true
		}
		fmt.Fprintf(os.Stderr, "%s: %s, %d passed, %d failed\n", path, r.Kind, r.Passed, r.Failed)
	}
	fmt.Println(conformance.Summary(reports))
	if failed {
		os.Exit(1)
	}
}
