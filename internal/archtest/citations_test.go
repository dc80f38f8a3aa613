package archtest

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// outsideCitation matches a reference to the design notes the project was
// built from, which live outside the repository (next to it, in
// ../shared/design/): SESSION-RULES, LIVENESS-NOTES, REFERENCE-NOTES,
// XMPP-NOTES, any path into ../shared/, and "SR §", the abbreviation
// docs/SESSION.md once used for SESSION-RULES. Nobody who clones the
// repository has those files. What the code relies on is written down in
// docs/ (SESSION.md, MESSAGE-LAYER.md, PROTOCOL.md, XMPP.md), and comments
// point there.
var outsideCitation = regexp.MustCompile(`SESSION-RULES|LIVENESS-NOTES|REFERENCE-NOTES|XMPP-NOTES|shared/design|\.\./shared/|\bSR §`)

// allowedCitation is a mention of the outside notes that a file makes on
// purpose. Mention is the exact text, starting where outsideCitation
// matches; only matches inside it are allowed, so the file cannot gain
// other citations unnoticed.
type allowedCitation struct {
	file    string // slash-separated, relative to the module root
	mention string
	why     string
}

// allowedCitations are the only mentions of the outside notes the module
// may hold. Each says where a fact came from (provenance); none is a
// citation a reader needs to follow to understand the code.
var allowedCitations = []allowedCitation{
	{"docs/ARCHITECTURE.md", "../shared/design/ARCHITECTURE.md",
		"provenance: the design the tier table follows; where the code differs, docs/PROTOCOL.md and docs/SESSION.md say so"},
	{"docs/DEPENDENCIES.md", "../shared/seeds/README.md",
		"provenance: where the design document's licence (CC-BY-SA-4.0) was read"},
	{"docs/DEPENDENCIES.md", "../shared/design/REFERENCE-NOTES.md",
		"provenance: one of the two sources of the reference implementation's licence (AGPL-3.0)"},
}

// TestNoOutsideCitations fails when a Go file or a Markdown file of the
// module cites the design notes outside the repository, except for the
// mentions in allowedCitations; and when an allowed mention is gone (its
// entry must go too).
func TestNoOutsideCitations(t *testing.T) {
	m := findModule(t)
	self := filepath.Join("internal", "archtest", "citations_test.go")
	used := make([]bool, len(allowedCitations))
	checked := 0
	err := filepath.WalkDir(m.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// testdata is checked too: its README explains where the
			// vectors came from, and must not cite the notes either.
			if p != m.root && d.Name() != "testdata" && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		ext := filepath.Ext(p)
		if ext != ".go" && ext != ".md" {
			return nil
		}
		rel, err := filepath.Rel(m.root, p)
		if err != nil {
			return err
		}
		if rel == self {
			return nil // it names the notes to find them
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		checked++
		text := string(data)
		file := filepath.ToSlash(rel)
		// The spans the allowed mentions of this file cover.
		var spans [][2]int
		for i, a := range allowedCitations {
			if a.file != file {
				continue
			}
			for off := 0; ; {
				k := strings.Index(text[off:], a.mention)
				if k < 0 {
					break
				}
				used[i] = true
				spans = append(spans, [2]int{off + k, off + k + len(a.mention)})
				off += k + len(a.mention)
			}
		}
		reported := map[int]bool{} // one report per line
		for _, loc := range outsideCitation.FindAllStringIndex(text, -1) {
			if slices.ContainsFunc(spans, func(s [2]int) bool { return s[0] <= loc[0] && loc[1] <= s[1] }) {
				continue
			}
			line := 1 + strings.Count(text[:loc[0]], "\n")
			if reported[line] {
				continue
			}
			reported[line] = true
			t.Errorf("%s:%d: %q cites design notes outside the repository; cite what docs/ says instead (docs/SESSION.md, docs/MESSAGE-LAYER.md, docs/PROTOCOL.md, docs/XMPP.md)",
				file, line, lineAt(text, loc[0]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("only %d Go and Markdown files found under %s: is this the module root?", checked, m.root)
	}
	for i, a := range allowedCitations {
		if !used[i] {
			t.Errorf("%s no longer mentions %q: delete its entry from allowedCitations (%s)", a.file, a.mention, a.why)
		}
	}
}

// lineAt returns the line of text holding offset i, trimmed.
func lineAt(text string, i int) string {
	start := strings.LastIndexByte(text[:i], '\n') + 1
	end := strings.IndexByte(text[i:], '\n')
	if end < 0 {
		end = len(text) - i
	}
	return strings.TrimSpace(text[start : i+end])
}
