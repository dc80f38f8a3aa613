package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
)

// CheckFile reads one vector file, recognises its shape ([Detect]) and
// checks it. A file that cannot be read or understood is reported as one
// failure.
func CheckFile(path string) *Report { return CheckFileAs(path, "") }

// CheckFileAs is [CheckFile] with the shape forced to kind (none: detect
// it). A kind that is not one of [Kinds], or a file that lacks the forced
// shape's keys, is reported as one failure without running any checker.
func CheckFileAs(path string, kind Kind) *Report {
	r := &Report{File: path, Kind: kind}
	if kind != "" {
		if _, err := ParseKind(string(kind)); err != nil {
			r.fail("%v", err)
			return r
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		r.fail("%v", err)
		return r
	}
	if kind == "" {
		if r.Kind, err = Detect(raw); err != nil {
			r.fail("%v", err)
			return r
		}
	} else {
		top, err := topKeys(raw)
		if err != nil {
			r.fail("%v", err)
			return r
		}
		sh, _ := shapeOf(kind)
		if miss := sh.missing(top); len(miss) > 0 {
			r.fail("not a file of shape %s: it lacks the keys %s", kind, strings.Join(miss, ", "))
			return r
		}
	}
	// A checker must report malformed content as failures; should one
	// panic on it all the same, the panic is one failure of this file (and
	// a bug of that checker), not the end of the run.
	defer func() {
		if p := recover(); p != nil {
			r.fail("the %s checker crashed on this file (a bug of the checker): %v\n%s", r.Kind, p, debug.Stack())
		}
	}()
	decode := func(v any) bool {
		if err := json.Unmarshal(raw, v); err != nil {
			r.fail("%v", err)
			return false
		}
		return true
	}
	switch r.Kind {
	case KindUpstream:
		var u Upstream
		if decode(&u) {
			CheckUpstream(&u, r)
		}
	case KindMisc:
		var m Misc
		if decode(&m) {
			CheckMisc(&m, r)
		}
	case KindFlow:
		var f Flow
		if decode(&f) {
			if len(f.Operations) == 0 {
				r.fail("no operations")
			}
			CheckFlow(&f, r)
		}
	case KindTrace:
		var t Trace
		if decode(&t) {
			CheckTrace(&t, r)
		}
	default:
		r.fail("shape %q has no checker", r.Kind)
	}
	if r.Passed == 0 && r.Failed == 0 {
		r.fail("nothing was checked")
	}
	return r
}

// Summary is the runner's last line.
func Summary(reports []*Report) string {
	p, f := 0, 0
	for _, r := range reports {
		p += r.Passed
		f += r.Failed
	}
	return fmt.Sprintf("%d passed, %d failed", p, f)
}
