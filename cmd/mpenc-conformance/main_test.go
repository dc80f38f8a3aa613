package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mpenc/mpenc/internal/conformance"
)

// TestFolderArgument: a folder on the command line is checked like its
// *.json files named one by one (before, "read testdata: is a directory"
// was one failure), and a folder with no vector file is an error.
func TestFolderArgument(t *testing.T) {
	dir, err := conformance.VectorsDir()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var byFolder, byFiles, errs bytes.Buffer
	if code := run([]string{dir}, &byFolder, &errs); code != 0 {
		t.Fatalf("run(%s) = %d\n%s%s", dir, code, byFolder.String(), errs.String())
	}
	if code := run(files, &byFiles, &errs); code != 0 {
		t.Fatalf("run(files) = %d", code)
	}
	last := strings.TrimSpace(byFolder.String())
	if last != strings.TrimSpace(byFiles.String()) || !strings.HasSuffix(last, " passed, 0 failed") || strings.HasPrefix(last, "0 passed") {
		t.Errorf("the folder gives %q, its files %q", last, strings.TrimSpace(byFiles.String()))
	}
	var out bytes.Buffer
	if code := run([]string{t.TempDir()}, &out, &errs); code != 1 || !strings.Contains(errs.String(), "no *.json file in") {
		t.Errorf("an empty folder: exit %d, %q", code, errs.String())
	}
}
