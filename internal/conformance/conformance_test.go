package conformance_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mpenc/mpenc/internal/conformance"
	"github.com/mpenc/mpenc/internal/testvectors"
)

// minChecks is the least number of checks each shape must run on the
// vectors: a checker that silently stops checking fails here.
var minChecks = map[conformance.Kind]int{
	conformance.KindUpstream: 100,
	conformance.KindMisc:     100,
	conformance.KindFlow:     600,
	conformance.KindTrace:    300,
}

func vectorFiles(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join(testvectors.Dir(t), "*.json"))
	if err != nil || len(files) < 4 {
		t.Fatalf("vector files: %v %v", files, err)
	}
	return files
}

// TestVectors runs the runner's checks on every JSON file of the vectors
// folder: everything passes, and every shape checks enough.
func TestVectors(t *testing.T) {
	kinds := map[conformance.Kind]bool{}
	for _, f := range vectorFiles(t) {
		r := conformance.CheckFile(f)
		for _, line := range r.Failures {
			t.Errorf("%s: %s", filepath.Base(f), line)
		}
		if r.Passed < minChecks[r.Kind] {
			t.Errorf("%s (%s): only %d checks", filepath.Base(f), r.Kind, r.Passed)
		}
		kinds[r.Kind] = true
	}
	for k := range minChecks {
		if !kinds[k] {
			t.Errorf("no file of shape %s", k)
		}
	}
}

// mutate writes a copy of a vector file changed by f and returns its path.
func mutate(t *testing.T, name string, f func(m map[string]any)) string {
	raw, err := os.ReadFile(filepath.Join(testvectors.Dir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, _ := json.Marshal(m)
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func flipHex(s string) string {
	b := []byte(s)
	if b[len(b)-1] == '0' {
		b[len(b)-1] = '1'
	} else {
		b[len(b)-1] = '0'
	}
	return string(b)
}

// TestCorruptionDetected: a changed value anywhere makes the checks fail.
func TestCorruptionDetected(t *testing.T) {
	cases := map[string]string{
		"flow packet": mutate(t, "derived_greeter_flow.json", func(m map[string]any) {
			p := m["operations"].([]any)[1].(map[string]any)["packets"].([]any)[2].(map[string]any)
			w := p["wire"].(string)
			p["wire"] = w[:40] + strings.Map(func(r rune) rune {
				if r == 'A' {
					return 'B'
				}
				return 'A'
			}, w[40:41]) + w[41:]
		}),
		"flow group key": mutate(t, "derived_greeter_flow.json", func(m map[string]any) {
			res := m["operations"].([]any)[2].(map[string]any)["results"].(map[string]any)["4"].(map[string]any)
			res["groupKey"] = flipHex(res["groupKey"].(string))
		}),
		"flow classification": mutate(t, "derived_greeter_flow.json", func(m map[string]any) {
			p := m["operations"].([]any)[0].(map[string]any)["packets"].([]any)[3].(map[string]any)
			p["summaryByMember"].(map[string]any)["1"] = "1"
		}),
		"trace chain hash": mutate(t, "derived_hybrid_trace.json", func(m map[string]any) {
			so := m["snapshots"].([]any)[1].(map[string]any)["members"].(map[string]any)["52"].(map[string]any)["serverOrder"].(map[string]any)
			ch := so["chainHashes"].([]any)
			ch[2] = flipHex(ch[2].(string))
		}),
		"trace message order": mutate(t, "derived_hybrid_trace.json", func(m map[string]any) {
			tr := m["snapshots"].([]any)[2].(map[string]any)["members"].(map[string]any)["51"].(map[string]any)["subsession"].(map[string]any)["transcript"].([]any)
			tr[1], tr[2] = tr[2], tr[1]
		}),
		"trace packet id": mutate(t, "derived_hybrid_trace.json", func(m map[string]any) {
			ev := m["trace"].([]any)[7].(map[string]any)
			ev["packetId"] = flipHex(ev["packetId"].(string))
		}),
		"upstream signature": mutate(t, "upstream_kat.json", func(m map[string]any) {
			c := m["codec_signMessage"].(map[string]any)["cases"].([]any)[2].(map[string]any)
			c["data_sig"] = flipHex(c["data_sig"].(string))
		}),
		"misc padding": mutate(t, "derived_misc.json", func(m map[string]any) {
			m["padding"].([]any)[7].(map[string]any)["ciphertextLen"] = 128.0
		}),
	}
	for name, path := range cases {
		if r := conformance.CheckFile(path); r.Failed == 0 {
			t.Errorf("%s: the corrupted file passes (%d checks)", name, r.Passed)
		}
	}
	// Files of no known shape fail.
	junk := filepath.Join(t.TempDir(), "junk.json")
	os.WriteFile(junk, []byte(`{"hello": 1}`), 0o600)
	for _, p := range []string{junk, filepath.Join(testvectors.Dir(t), "README.md"), filepath.Join(t.TempDir(), "missing.json")} {
		if r := conformance.CheckFile(p); r.Failed == 0 {
			t.Errorf("%s passes", filepath.Base(p))
		}
	}
}

// wantKind is the shape of each vector file.
var wantKind = map[string]conformance.Kind{
	"upstream_kat.json":         conformance.KindUpstream,
	"derived_misc.json":         conformance.KindMisc,
	"derived_greeter_flow.json": conformance.KindFlow,
	"derived_hybrid_trace.json": conformance.KindTrace,
}

func detect(t *testing.T, path string) conformance.Kind {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := conformance.Detect(raw)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	return k
}

// TestDetectMostSpecific: every file is recognised as its own shape; a
// file that also carries a less specific shape's keys keeps its most
// specific shape (a trace that also lists greeter operations is a trace),
// and keys no shape names never change the verdict nor the checks.
func TestDetectMostSpecific(t *testing.T) {
	for name, want := range wantKind {
		if got := detect(t, filepath.Join(testvectors.Dir(t), name)); got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}

	var flowOps any
	mutate(t, "derived_greeter_flow.json", func(m map[string]any) { flowOps = m["operations"] })
	base := conformance.CheckFile(filepath.Join(testvectors.Dir(t), "derived_hybrid_trace.json"))
	for what, f := range map[string]func(m map[string]any){
		"the flow's operations": func(m map[string]any) { m["operations"] = flowOps },
		"empty operations":      func(m map[string]any) { m["operations"] = []any{} },
		"junk operations":       func(m map[string]any) { m["operations"] = "not a list" },
		"operations and dataMessages": func(m map[string]any) {
			m["operations"] = flowOps
			m["dataMessages"] = []any{}
		},
	} {
		p := mutate(t, "derived_hybrid_trace.json", f)
		if k := detect(t, p); k != conformance.KindTrace {
			t.Errorf("a trace with %s: %s", what, k)
		}
		if r := conformance.CheckFile(p); r.Kind != conformance.KindTrace || r.Failed != 0 || r.Passed != base.Passed {
			t.Errorf("a trace with %s: %s, %d passed, %d failed (alone: %d passed)", what, r.Kind, r.Passed, r.Failed, base.Passed)
		}
	}

	// Unknown keys, of every JSON type, added to every file.
	unknown := map[string]any{"zzz": 1.0, "comment": "added", "_extra": map[string]any{"trace": []any{}}, "list": []any{nil}, "null": nil}
	for name, want := range wantKind {
		alone := conformance.CheckFile(filepath.Join(testvectors.Dir(t), name))
		p := mutate(t, name, func(m map[string]any) {
			for k, v := range unknown {
				m[k] = v
			}
		})
		if r := conformance.CheckFile(p); r.Kind != want || r.Failed != 0 || r.Passed != alone.Passed {
			t.Errorf("%s with unknown keys: %s, %d passed, %d failed (alone: %d passed)", name, r.Kind, r.Passed, r.Failed, alone.Passed)
		}
	}

	// One of a more specific shape's keys is not enough to change it.
	p := mutate(t, "derived_greeter_flow.json", func(m map[string]any) { m["trace"] = []any{} })
	if k := detect(t, p); k != conformance.KindFlow {
		t.Errorf("a flow with a trace key: %s", k)
	}

	// Two shapes of the same specificity: ambiguous, not a guess.
	p = mutate(t, "upstream_kat.json", func(m map[string]any) {
		m["serverOrder"], m["chainHash"], m["padding"] = []any{}, []any{}, []any{}
	})
	raw, _ := os.ReadFile(p)
	if k, err := conformance.Detect(raw); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("upstream and misc keys together: %q, %v", k, err)
	}
	for _, bad := range []string{`[1, 2]`, `null`, `"trace"`, `{"trace": 1}`, `not json`} {
		if k, err := conformance.Detect([]byte(bad)); err == nil {
			t.Errorf("%s: recognised as %s", bad, k)
		}
	}
}

// TestForcedKind: a forced shape that is the file's own checks exactly as
// detection does; any other fails cleanly (a failure, no checker run, no
// panic), as does an unknown kind.
func TestForcedKind(t *testing.T) {
	if got := conformance.Kinds(); len(got) != len(minChecks) {
		t.Fatalf("Kinds() = %v", got)
	}
	traceWithOps := mutate(t, "derived_hybrid_trace.json", func(m map[string]any) {
		m["operations"] = []any{map[string]any{"label": "x", "initiator": "51"}}
	})
	files := append(vectorFiles(t), traceWithOps)
	for _, f := range files {
		detected := conformance.CheckFile(f)
		for _, k := range conformance.Kinds() {
			r := conformance.CheckFileAs(f, k)
			if r.Kind != k {
				t.Errorf("%s as %s: reported as %s", filepath.Base(f), k, r.Kind)
			}
			for _, line := range r.Failures {
				if strings.Contains(line, "crashed") {
					t.Errorf("%s as %s: %s", filepath.Base(f), k, line)
				}
			}
			switch {
			case k == detected.Kind:
				if r.Passed != detected.Passed || r.Failed != 0 {
					t.Errorf("%s as its own shape %s: %d passed, %d failed; detected: %d passed", filepath.Base(f), k, r.Passed, r.Failed, detected.Passed)
				}
			case r.Failed == 0:
				t.Errorf("%s as %s passes (%d checks)", filepath.Base(f), k, r.Passed)
			}
		}
	}
	// The trace forced to a greeter flow: its keys are there, the checker
	// runs and fails.
	if r := conformance.CheckFileAs(traceWithOps, conformance.KindFlow); r.Failed == 0 {
		t.Errorf("a trace with operations, as a greeter flow: %d passed, no failure", r.Passed)
	}
	// Without the forced shape's keys: one failure naming them.
	r := conformance.CheckFileAs(filepath.Join(testvectors.Dir(t), "derived_hybrid_trace.json"), conformance.KindFlow)
	if r.Failed != 1 || r.Passed != 0 || !strings.Contains(r.Failures[0], "operations") {
		t.Errorf("the trace as a greeter flow: %d passed, %v", r.Passed, r.Failures)
	}
	r = conformance.CheckFileAs(filepath.Join(testvectors.Dir(t), "upstream_kat.json"), "greeter")
	if r.Failed != 1 || r.Passed != 0 || !strings.Contains(r.Failures[0], "unknown kind") {
		t.Errorf("an unknown kind: %d passed, %v", r.Passed, r.Failures)
	}
	if _, err := conformance.ParseKind("greeter"); err == nil || !strings.Contains(err.Error(), string(conformance.KindFlow)) {
		t.Errorf("ParseKind(greeter): %v", err)
	}
}

// runCmd runs the built command in dir with env added; it returns stdout,
// stderr and the exit code.
func runCmd(t *testing.T, bin, dir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestCommand runs cmd/mpenc-conformance as a user would.
func TestCommand(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mpenc-conformance")
	build := exec.Command("go", "build", "-o", bin, "github.com/mpenc/mpenc/cmd/mpenc-conformance")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	root, err := conformance.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	noEnv := []string{"MPENC_VECTORS="}

	// The vector files named, then none named (the default: every *.json
	// of testdata/, also from a subfolder of the module): the same checks,
	// all passing.
	want := 0
	for _, f := range vectorFiles(t) {
		want += conformance.CheckFile(f).Passed
	}
	wantLine := fmt.Sprintf("%d passed, 0 failed", want)
	files, _ := filepath.Glob(filepath.Join(root, "testdata", "*.json"))
	for what, args := range map[string][]string{"files": files, "no files": nil} {
		for _, dir := range []string{root, filepath.Join(root, "internal")} {
			out, errOut, code := runCmd(t, bin, dir, noEnv, args...)
			if code != 0 || lastLine(out) != wantLine {
				t.Errorf("%s, in %s: exit %d, last line %q, want %q\n%s", what, dir, code, lastLine(out), wantLine, errOut)
			}
		}
	}

	// $MPENC_VECTORS names the default folder.
	vdir := t.TempDir()
	raw, _ := os.ReadFile(filepath.Join(root, "testdata", "derived_misc.json"))
	os.WriteFile(filepath.Join(vdir, "derived_misc.json"), raw, 0o600)
	misc := conformance.CheckFile(filepath.Join(root, "testdata", "derived_misc.json")).Passed
	if out, _, code := runCmd(t, bin, root, []string{"MPENC_VECTORS=" + vdir}); code != 0 || lastLine(out) != fmt.Sprintf("%d passed, 0 failed", misc) {
		t.Errorf("with MPENC_VECTORS: exit %d, %q", code, lastLine(out))
	}
	// Outside any module, without MPENC_VECTORS: a clear failure.
	if _, errOut, code := runCmd(t, bin, t.TempDir(), noEnv); code != 1 || !strings.Contains(errOut, "no go.mod") {
		t.Errorf("outside a module: exit %d, %s", code, errOut)
	}

	// -kind: the right shape passes, a wrong one fails cleanly, an
	// unknown one is bad usage naming the kinds.
	trace := filepath.Join(root, "testdata", "derived_hybrid_trace.json")
	if out, _, code := runCmd(t, bin, root, noEnv, "-kind", "session-trace", trace); code != 0 || !strings.HasSuffix(lastLine(out), " passed, 0 failed") {
		t.Errorf("-kind session-trace: exit %d, %q", code, lastLine(out))
	}
	if out, errOut, code := runCmd(t, bin, root, noEnv, "-kind", "greeter-flow", trace); code != 1 || lastLine(out) != "0 passed, 1 failed" || strings.Contains(errOut, "panic") {
		t.Errorf("-kind greeter-flow on a trace: exit %d, %q\n%s", code, out, errOut)
	}
	if _, errOut, code := runCmd(t, bin, root, noEnv, "-kind", "trace", trace); code != 2 || !strings.Contains(errOut, `unknown kind "trace"`) || !strings.Contains(errOut, "session-trace") {
		t.Errorf("-kind trace: exit %d, %s", code, errOut)
	}

	// A file of no known shape: one failure.
	out, _, code := runCmd(t, bin, root, noEnv, filepath.Join(root, "testdata", "README.md"))
	if code != 1 || lastLine(out) != "0 passed, 1 failed" {
		t.Fatalf("on README.md: exit %d, %s", code, out)
	}
}
