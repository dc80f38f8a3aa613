// Package archtest holds the tests that keep the module's shape honest. It
// has no code of its own: everything is in its tests.
//
//   - TestDeps parses the tier table of docs/ARCHITECTURE.md and checks,
//     with `go list`, that every package of the module has a row and imports
//     only packages of a strictly lower tier; TestDepsImportsColumn, that
//     the table's "imports (ours)" column is exactly what each package
//     imports.
//   - TestExportedAPI counts the exported identifiers of the public
//     (non-internal, non-main) packages against a ceiling, and
//     TestExportedAPIDocumented requires a doc comment on each of them.
//   - TestNoOutsideCitations fails when a Go or Markdown file cites the
//     design notes kept outside the repository, which nobody who clones it
//     has (the names it looks for are in citations_test.go): what the code
//     relies on is in docs/, and comments cite docs/. A few mentions of
//     where facts came from are allowed, each by its exact text.
//
// Print the per-package API table with:
//
//	go test ./internal/archtest -run TestExportedAPI -v
//
// Only the non-test files of a package count, for imports and for the API:
// tests may import what they need.
package archtest
