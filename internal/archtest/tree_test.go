package archtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// module is the module under test: its root directory and its path.
type module struct {
	root string // directory holding go.mod
	path string // module path, e.g. github.com/mpenc/mpenc
}

// rel turns an import path of the module into its module-relative form
// ("internal/wire"); ok is false for a path outside the module.
func (m module) rel(importPath string) (rel string, ok bool) {
	if importPath == m.path {
		return ".", true
	}
	rel, ok = strings.CutPrefix(importPath, m.path+"/")
	return rel, ok
}

// findModule walks up from the working directory to go.mod and reads the
// module path from it.
func findModule(t *testing.T) module {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				if p, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
					return module{root: dir, path: strings.Trim(strings.TrimSpace(p), `"`)}
				}
			}
			t.Fatalf("%s has no module line", filepath.Join(dir, "go.mod"))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// registerTree reads every directory of the module, so that the go test
// cache, which records the directories and files a test opens, never
// replays a result after a Go file was added, removed or changed (`go list`
// runs in a child process, whose reads the cache does not see).
func registerTree(t *testing.T, m module) {
	t.Helper()
	err := filepath.WalkDir(m.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != m.root && skipDir(d.Name()) {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// skipDir reports whether a directory holds no packages of the module, by
// the go tool's own rules (testdata, and names starting with . or _).
func skipDir(name string) bool {
	return name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}

// listedPackage is the part of `go list -json` these tests read.
type listedPackage struct {
	ImportPath     string
	Name           string
	Dir            string
	GoFiles        []string
	CgoFiles       []string
	IgnoredGoFiles []string
	Imports        []string
	Error          *struct{ Err string }
}

// listPackages runs `go list -e -json ./...` at the module root: every
// package of the module, with the imports of its non-test files for this
// platform. A package that does not load fails the test.
func listPackages(t *testing.T, m module) []listedPackage {
	t.Helper()
	registerTree(t, m)
	cmd := exec.Command("go", "list", "-e", "-json", "./...")
	cmd.Dir = m.root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Error != nil {
			t.Errorf("go list: package %s does not load: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}
