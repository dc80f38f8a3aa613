package testvectors

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestDefaultDir: without $MPENC_VECTORS the folder is testdata/ at the
// module root, and it holds the vectors.
func TestDefaultDir(t *testing.T) {
	t.Setenv("MPENC_VECTORS", "")
	d := Dir(t)
	wd, _ := os.Getwd()
	root := filepath.Dir(filepath.Dir(wd)) // internal/testvectors
	if want := filepath.Join(root, "testdata"); d != want {
		t.Fatalf("Dir = %s, want %s", d, want)
	}
	for _, f := range []string{"upstream_kat.json", "derived_misc.json", "derived_greeter_flow.json", "derived_hybrid_trace.json", "README.md"} {
		if _, err := os.Stat(filepath.Join(d, f)); err != nil {
			t.Error(err)
		}
	}
}

// TestEnvOverrides: $MPENC_VECTORS names the folder.
func TestEnvOverrides(t *testing.T) {
	d := t.TempDir()
	t.Setenv("MPENC_VECTORS", d)
	if got := Dir(t); got != d {
		t.Fatalf("Dir = %s, want %s", got, d)
	}
}

// fakeTB records how Dir ends a test.
type fakeTB struct {
	testing.TB
	fatal   string
	skipped bool
}

func (f *fakeTB) Helper()                   {}
func (f *fakeTB) Fatal(args ...any)         { f.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeTB) Fatalf(s string, a ...any) { f.fatal = fmt.Sprintf(s, a...); runtime.Goexit() }
func (f *fakeTB) Skip(...any)               { f.skipped = true; runtime.Goexit() }
func (f *fakeTB) Skipf(string, ...any)      { f.skipped = true; runtime.Goexit() }
func (f *fakeTB) SkipNow()                  { f.skipped = true; runtime.Goexit() }

func dirOn(tb *fakeTB) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		Dir(tb)
	}()
	<-done
}

// TestMissingFails: a missing folder fails the test, never skips it, and
// the message says where the vectors were looked for.
func TestMissingFails(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nowhere")
	t.Setenv("MPENC_VECTORS", missing)
	tb := &fakeTB{TB: t}
	dirOn(tb)
	if tb.skipped || !strings.Contains(tb.fatal, missing) || !strings.Contains(tb.fatal, "MPENC_VECTORS") {
		t.Fatalf("with $MPENC_VECTORS missing: skipped %v, fatal %q", tb.skipped, tb.fatal)
	}

	// A module without testdata/.
	mod := t.TempDir()
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.org/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MPENC_VECTORS", "")
	t.Chdir(mod)
	tb = &fakeTB{TB: t}
	dirOn(tb)
	if tb.skipped || !strings.Contains(tb.fatal, filepath.Join(mod, "testdata")) {
		t.Fatalf("in a module without testdata/: skipped %v, fatal %q", tb.skipped, tb.fatal)
	}
}
