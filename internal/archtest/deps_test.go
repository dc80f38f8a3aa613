package archtest

import (
	"bufio"
	"bytes"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// architectureDoc is the document whose tier table these tests read,
// relative to the module root.
const architectureDoc = "docs/ARCHITECTURE.md"

// tierRow is one row of the tier table: a package, its tier, and the
// packages of the module the table says it imports.
type tierRow struct {
	line    int      // line number in architectureDoc
	tier    int      // 0 is the bottom
	pkg     string   // module-relative path, e.g. "internal/wire"
	imports []string // module-relative, sorted; empty for "—"
}

// parseTierTable reads the table of architectureDoc whose header starts
// "| tier | package |": one row per package, the tier a number, the package
// in backquotes, and the last column the module's packages it imports
// (module-relative paths separated by commas, "—" for none).
func parseTierTable(t *testing.T, m module) []tierRow {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(m.root, architectureDoc))
	if err != nil {
		t.Fatal(err)
	}
	var rows []tierRow
	inTable := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if !inTable {
			cells := splitRow(line)
			if len(cells) >= 2 && strings.EqualFold(cells[0], "tier") && strings.EqualFold(cells[1], "package") {
				if len(cells) != 4 {
					t.Fatalf("%s:%d: the tier table must have 4 columns (tier, package, what it is for, imports (ours)), has %d", architectureDoc, n, len(cells))
				}
				inTable = true
			}
			continue
		}
		if !strings.HasPrefix(line, "|") {
			break // the table ends at the first line that is not a row
		}
		cells := splitRow(line)
		if len(cells) == 4 && strings.Trim(cells[0], "-: ") == "" {
			continue // the separator row
		}
		if len(cells) != 4 {
			t.Errorf("%s:%d: row has %d columns, want 4 (no | inside a cell): %s", architectureDoc, n, len(cells), line)
			continue
		}
		tier, err := strconv.Atoi(cells[0])
		if err != nil || tier < 0 {
			t.Errorf("%s:%d: tier %q is not a number ≥ 0", architectureDoc, n, cells[0])
			continue
		}
		pkg := strings.TrimSuffix(strings.Trim(cells[1], "`"), "/")
		if pkg == "" || strings.ContainsAny(pkg, "` ,") {
			t.Errorf("%s:%d: package cell %q must be one module-relative path in backquotes", architectureDoc, n, cells[1])
			continue
		}
		rows = append(rows, tierRow{line: n, tier: tier, pkg: pkg, imports: parseImportsCell(cells[3])})
	}
	if !inTable {
		t.Fatalf("%s has no table whose header starts | tier | package |", architectureDoc)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: the tier table has no rows", architectureDoc)
	}
	return rows
}

// splitRow splits a Markdown table row into its trimmed cells; nil if the
// line is not a row.
func splitRow(line string) []string {
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") || len(line) < 2 {
		return nil
	}
	cells := strings.Split(line[1:len(line)-1], "|")
	for i, c := range cells {
		cells[i] = strings.TrimSpace(c)
	}
	return cells
}

// parseImportsCell reads the "imports (ours)" cell: module-relative paths,
// optionally in backquotes, separated by commas; "—" or "-" for none.
func parseImportsCell(cell string) []string {
	var out []string
	for _, f := range strings.Split(cell, ",") {
		f = strings.TrimSuffix(strings.Trim(strings.TrimSpace(f), "`"), "/")
		if f == "" || f == "—" || f == "-" {
			continue
		}
		out = append(out, f)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ourImports returns, for every package of the module, the module-relative
// paths of the module's packages its non-test files import. Files excluded
// by build constraints on this platform count too (their imports are read
// from source), so the rule holds on every platform.
func ourImports(t *testing.T, m module, pkgs []listedPackage) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, p := range pkgs {
		rel, ok := m.rel(p.ImportPath)
		if !ok {
			t.Errorf("go list returned %s, outside module %s", p.ImportPath, m.path)
			continue
		}
		imports := slices.Clone(p.Imports)
		for _, f := range p.IgnoredGoFiles {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, f), nil, parser.ImportsOnly)
			if err != nil {
				t.Errorf("%s: %v", filepath.Join(p.Dir, f), err)
				continue
			}
			if file.Name.Name != p.Name {
				continue // a generator or other stray file (//go:build ignore)
			}
			for _, is := range file.Imports {
				path, _ := strconv.Unquote(is.Path.Value)
				imports = append(imports, path)
			}
		}
		var ours []string
		for _, imp := range imports {
			if r, ok := m.rel(imp); ok {
				ours = append(ours, r)
			}
		}
		slices.Sort(ours)
		out[rel] = slices.Compact(ours)
	}
	return out
}

// loadTiers returns the tier table and the module's real imports, having
// checked that each names the same set of packages.
func loadTiers(t *testing.T) (rows map[string]tierRow, imports map[string][]string) {
	t.Helper()
	m := findModule(t)
	imports = ourImports(t, m, listPackages(t, m))
	rows = map[string]tierRow{}
	for _, r := range parseTierTable(t, m) {
		if prev, dup := rows[r.pkg]; dup {
			t.Errorf("%s:%d: %s already has a row (line %d)", architectureDoc, r.line, r.pkg, prev.line)
			continue
		}
		rows[r.pkg] = r
		if _, ok := imports[r.pkg]; !ok {
			t.Errorf("%s:%d: %s is not a package of the module (go list ./...): remove its row", architectureDoc, r.line, r.pkg)
		}
	}
	for _, pkg := range sortedKeys(imports) {
		if _, ok := rows[pkg]; !ok {
			t.Errorf("%s has no row for package %s: add one with its tier", architectureDoc, pkg)
		}
	}
	return rows, imports
}

// TestDeps checks the layering rule: every package of the module has a row
// in the tier table of docs/ARCHITECTURE.md, and its non-test files import
// only packages of the module at a strictly lower tier. Test files are not
// checked: a package's tests may use anything (a session test drives
// internal/sim), and cmd/ and integration/ are the top anyway.
func TestDeps(t *testing.T) {
	rows, imports := loadTiers(t)
	for _, pkg := range sortedKeys(imports) {
		row, ok := rows[pkg]
		if !ok {
			continue // reported by loadTiers
		}
		for _, imp := range imports[pkg] {
			dep, ok := rows[imp]
			switch {
			case !ok:
				t.Errorf("%s (tier %d) imports %s, which has no row in %s", pkg, row.tier, imp, architectureDoc)
			case dep.tier >= row.tier:
				t.Errorf("%s (tier %d) imports %s (tier %d): a package may import only packages of a strictly lower tier (%s:%d)",
					pkg, row.tier, imp, dep.tier, architectureDoc, row.line)
			}
		}
	}
}

// TestDepsImportsColumn keeps the table's "imports (ours)" column true: for
// every package it must list exactly the module's packages that the
// package's non-test files import.
func TestDepsImportsColumn(t *testing.T) {
	rows, imports := loadTiers(t)
	for _, pkg := range sortedKeys(rows) {
		row := rows[pkg]
		real, ok := imports[pkg]
		if !ok {
			continue // reported by loadTiers
		}
		missing := difference(real, row.imports)
		extra := difference(row.imports, real)
		if len(missing) > 0 || len(extra) > 0 {
			var b strings.Builder
			fmt.Fprintf(&b, "%s:%d: the imports column of %s is wrong:", architectureDoc, row.line, pkg)
			if len(missing) > 0 {
				fmt.Fprintf(&b, " it imports %s, not listed;", strings.Join(missing, ", "))
			}
			if len(extra) > 0 {
				fmt.Fprintf(&b, " listed %s, not imported;", strings.Join(extra, ", "))
			}
			want := strings.Join(real, ", ")
			if want == "" {
				want = "—"
			}
			fmt.Fprintf(&b, " want %q", want)
			t.Error(b.String())
		}
	}
}

// difference returns the elements of a (sorted) that are not in b.
func difference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
