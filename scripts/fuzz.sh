#!/usr/bin/env bash
# Runs every fuzz target of the module for $FUZZTIME each (default 2m), one
# after another, and stops at the first finding (the failing input is kept
# under the package's testdata/fuzz/ for replay with `go test -run`).
# Usage: FUZZTIME=2m scripts/fuzz.sh [package-pattern]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-2m}
pattern=${1:-./...}
for pkg in $(go list "$pattern"); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' || true)
  for t in $targets; do
    echo "== $pkg $t ($fuzztime)"
    go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" "$pkg"
  done
done
