package conformance_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mpenc/mpenc/internal/conformance"
	"github.com/mpenc/mpenc/internal/testvectors"
)

// minChecks is the least number of checks each shape must run on the
// shared vectors: a checker that silently stops checking fails here.
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

// TestCommand runs cmd/mpenc-conformance as a user would.
func TestCommand(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mpenc-conformance")
	build := exec.Command("go", "build", "-o", bin, "github.com/mpenc/mpenc/cmd/mpenc-conformance")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, vectorFiles(t)...).Output()
	if err != nil {
		t.Fatalf("on the vectors: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if last := lines[len(lines)-1]; !strings.HasSuffix(last, " passed, 0 failed") {
		t.Fatalf("summary %q", last)
	}
	cmd := exec.Command(bin, filepath.Join(testvectors.Dir(t), "README.md"))
	out, _ = cmd.Output()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "1 failed") {
		t.Fatalf("on README.md: exit %d, %s", cmd.ProcessState.ExitCode(), out)
	}
	cmd = exec.Command(bin)
	cmd.Run()
	if cmd.ProcessState.ExitCode() != 2 {
		t.Fatalf("without arguments: exit %d", cmd.ProcessState.ExitCode())
	}
}
