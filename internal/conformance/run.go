package conformance

import (
	"encoding/json"
	"fmt"
	"os"
)

// CheckFile reads one vector file, recognises its shape and checks it. A
// file that cannot be read or understood is reported as one failure.
func CheckFile(path string) *Report {
	r := &Report{File: path}
	raw, err := os.ReadFile(path)
	if err != nil {
		r.fail("%v", err)
		return r
	}
	if r.Kind, err = Detect(raw); err != nil {
		r.fail("%s: %v", path, err)
		return r
	}
	decode := func(v any) bool {
		if err := json.Unmarshal(raw, v); err != nil {
			r.fail("%s: %v", path, err)
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
				r.fail("%s: no operations", path)
			}
			CheckFlow(&f, r)
		}
	case KindTrace:
		var t Trace
		if decode(&t) {
			CheckTrace(&t, r)
		}
	default:
		r.fail("%s: shape %q has no checker", path, r.Kind)
	}
	if r.Passed == 0 && r.Failed == 0 {
		r.fail("%s: nothing was checked", path)
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
