package app

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestLogRotation: the log file is capped: at the size limit it becomes
// .1 (.1 becomes .2, .2 becomes .3, the oldest is dropped), every file is
// mode 0600 (an existing file made readable by others is made private
// again at open), a write is never split between files, and a missing
// directory is created mode 0700.
func TestLogRotation(t *testing.T) {
	oldMax := logMaxSize
	logMaxSize = 1000
	t.Cleanup(func() { logMaxSize = oldMax })
	dir := filepath.Join(t.TempDir(), "logs")
	path := filepath.Join(dir, "client.log")
	w, err := OpenLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory: %v, %v", fi.Mode(), err)
	}
	line := func(i int) []byte { return []byte(fmt.Sprintf("%04d %s\n", i, strings.Repeat("x", 94))) } // 100 bytes
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g * 25; i < g*25+25; i++ {
				if _, err := w.Write(line(i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(line(0)); err == nil {
		t.Fatal("a write after Close succeeded")
	}
	// 100 lines of 100 bytes, 10 per file: the newest 40 remain, in the
	// current file and .1 to .3; .4 was never made.
	for _, p := range []string{path, path + ".1", path + ".2", path + ".3"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(p)
		if len(b) != 1000 || bytes.Count(b, []byte("\n")) != 10 || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %d bytes, mode %v", p, len(b), fi.Mode())
		}
	}
	if _, err := os.Stat(path + ".4"); !os.IsNotExist(err) {
		t.Errorf(".4: %v", err)
	}
	// Reopening appends, and fixes a mode made wider meanwhile.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err = OpenLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("reopened: mode %v", fi.Mode())
	}
	// A write larger than the cap goes whole into a new file.
	big := bytes.Repeat([]byte("y"), 1500)
	if _, err := w.Write(big); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, big) {
		t.Errorf("big write: the file holds %d bytes", len(b))
	}
}
