// Command mpenc-conformance checks conformance vector files through
// mpenc's real components: the reference's known answers, derived misc
// vectors, greeter flows (each member's recorded randomness injected) and
// session traces (ServerOrder, MessageSecurity and the transcript with the
// recorded subsession keys).
//
// Usage:
//
//	go run ./cmd/mpenc-conformance [-kind KIND] [FILE|FOLDER...]
//
// A folder stands for its *.json files. Without files it checks every *.json file of the vectors folder: testdata/
// at the module root (found by walking up from the working directory to
// go.mod), or $MPENC_VECTORS when set. Each file's shape is recognised from
// its top-level keys, the most specific shape first (internal/conformance,
// Detect); -kind forces one shape on every file instead (upstream-kat,
// derived-misc, greeter-flow or session-trace), and a file without that
// shape's keys fails.
//
// It prints one line per failed check, then "N passed, M failed" as its
// last line, and exits 1 on any failure, on a file it cannot understand or
// on a missing vectors folder (2 on bad usage, an unknown -kind included).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mpenc/mpenc/internal/conformance"
)

const usage = `usage: mpenc-conformance [-kind KIND] [FILE|FOLDER...]

Checks conformance vector files (upstream KATs, derived misc vectors,
greeter flows, session traces) through mpenc's own components; a FOLDER
stands for its *.json files. Without FILE, checks every *.json file of the vectors folder (testdata/ at the
module root, or $MPENC_VECTORS). Prints a line per failed check and a
summary; exits 1 on any failure.

`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mpenc-conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kindFlag := fs.String("kind", "", fmt.Sprintf("force every file's shape: one of %v (default: recognise each file's)", conformance.Kinds()))
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var kind conformance.Kind
	if *kindFlag != "" {
		k, err := conformance.ParseKind(*kindFlag)
		if err != nil {
			fmt.Fprintf(stderr, "mpenc-conformance: -kind: %v\n", err)
			return 2
		}
		kind = k
	}
	var files []string
	for _, arg := range fs.Args() {
		if st, err := os.Stat(arg); err == nil && st.IsDir() {
			// A folder (testdata, say) stands for its vector files.
			inDir, _ := filepath.Glob(filepath.Join(arg, "*.json"))
			if len(inDir) == 0 {
				fmt.Fprintf(stderr, "mpenc-conformance: no *.json file in %s\n", arg)
				return 1
			}
			files = append(files, inDir...)
			continue
		}
		files = append(files, arg)
	}
	if len(fs.Args()) == 0 {
		dir, err := conformance.VectorsDir()
		if err != nil {
			fmt.Fprintf(stderr, "mpenc-conformance: %v\n", err)
			return 1
		}
		files, _ = filepath.Glob(filepath.Join(dir, "*.json"))
		if len(files) == 0 {
			fmt.Fprintf(stderr, "mpenc-conformance: no *.json file in %s\n", dir)
			return 1
		}
	}
	var reports []*conformance.Report
	failed := false
	for _, path := range files {
		r := conformance.CheckFileAs(path, kind)
		reports = append(reports, r)
		for _, f := range r.Failures {
			fmt.Fprintf(stdout, "FAIL %s: %s\n", path, f)
		}
		if r.Failed > 0 {
			failed = true
		}
		fmt.Fprintf(stderr, "%s: %s, %d passed, %d failed\n", path, r.Kind, r.Passed, r.Failed)
	}
	fmt.Fprintln(stdout, conformance.Summary(reports))
	if failed {
		return 1
	}
	return 0
}
