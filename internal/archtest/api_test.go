package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// maxExportedAPI is the ceiling on the public API: the public packages
// together must export fewer identifiers than this. 300 held the group
// core (issue [G]); the device work ([J] to [N]) has a budget of 70 more
// (40 at first, raised by 15 with [L]: the client's live verification
// and trust notices; by 15 again with [N]: the own archive), spent as
// docs/ARCHITECTURE.md "Public API" records.
const maxExportedAPI = 370

// exported is one exported identifier of a public package.
type exported struct {
	name   string // "Func", "Type", "Type.Method", "Interface.Method"
	method bool   // a method of an exported type or interface
	pos    string // file:line, module-relative
	doc    bool   // it has a doc comment (by the rules of TestExportedAPIDocumented)
}

// publicAPI is the API of one public package.
type publicAPI struct {
	pkg    string // module-relative path
	idents []exported
}

// count returns the package's top-level identifiers and methods.
func (a publicAPI) count() (top, methods int) {
	for _, e := range a.idents {
		if e.method {
			methods++
		} else {
			top++
		}
	}
	return top, methods
}

// loadPublicAPI parses the non-test files of every public package: a
// package of the module that is not under an internal/ directory and is
// not a command. Every non-test file of the directory counts, whatever its
// build constraints (an identifier declared for two platforms counts once).
func loadPublicAPI(t *testing.T) []publicAPI {
	t.Helper()
	m := findModule(t)
	var out []publicAPI
	for _, p := range listPackages(t, m) {
		rel, ok := m.rel(p.ImportPath)
		if !ok || p.Name == "main" || slices.Contains(strings.Split(rel, "/"), "internal") {
			continue
		}
		files := slices.Concat(p.GoFiles, p.CgoFiles, p.IgnoredGoFiles)
		slices.Sort(files)
		seen := map[string]bool{}
		api := publicAPI{pkg: rel}
		for _, name := range slices.Compact(files) {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			path := filepath.Join(p.Dir, name)
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			if f.Name.Name != p.Name {
				continue // a generator or other stray file (//go:build ignore)
			}
			relFile, _ := filepath.Rel(m.root, path)
			for _, e := range exportedIdents(f, fset) {
				if seen[e.name] {
					continue
				}
				seen[e.name] = true
				e.pos = relFile + ":" + e.pos
				api.idents = append(api.idents, e)
			}
		}
		out = append(out, api)
	}
	slices.SortFunc(out, func(a, b publicAPI) int { return strings.Compare(a.pkg, b.pkg) })
	return out
}

// exportedIdents lists a file's exported identifiers by the counting rule:
// exported top-level funcs, types, vars and consts; exported methods of
// exported types; explicit exported methods of exported interfaces. Struct
// fields and embedded interfaces are not counted. pos is the line only.
func exportedIdents(f *ast.File, fset *token.FileSet) []exported {
	var out []exported
	line := func(n ast.Node) string { return fmt.Sprint(fset.Position(n.Pos()).Line) }
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() {
				continue
			}
			if d.Recv == nil {
				out = append(out, exported{name: d.Name.Name, pos: line(d), doc: hasDoc(d.Doc)})
				continue
			}
			recv := receiverName(d.Recv.List[0].Type)
			if !ast.IsExported(recv) {
				continue // a method of an unexported type
			}
			out = append(out, exported{
				name:   recv + "." + d.Name.Name,
				method: true,
				pos:    line(d),
				doc:    hasDoc(d.Doc) || standardMethod(d.Name.Name, d.Type),
			})
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if !s.Name.IsExported() {
						continue
					}
					// go/doc's rule: a type in a parenthesised group needs
					// its own comment; a lone declaration's comment is its.
					doc := hasDoc(s.Doc) || (!d.Lparen.IsValid() && hasDoc(d.Doc))
					out = append(out, exported{name: s.Name.Name, pos: line(s), doc: doc})
					it, ok := s.Type.(*ast.InterfaceType)
					if !ok {
						continue
					}
					// The only method an interface declares is documented by
					// the interface's comment (io.Reader's convention).
					declared := 0
					for _, fl := range it.Methods.List {
						if _, isFunc := fl.Type.(*ast.FuncType); isFunc {
							declared += len(fl.Names)
						}
					}
					for _, fl := range it.Methods.List {
						ft, isFunc := fl.Type.(*ast.FuncType)
						for _, n := range fl.Names {
							if !n.IsExported() || !isFunc {
								continue
							}
							out = append(out, exported{
								name:   s.Name.Name + "." + n.Name,
								method: true,
								pos:    line(n),
								doc: hasDoc(fl.Doc) || hasDoc(fl.Comment) || standardMethod(n.Name, ft) ||
									(declared == 1 && doc),
							})
						}
					}
				case *ast.ValueSpec:
					// A const or var is documented by its own comment (above
					// it or at the end of its line) or by its group's.
					doc := hasDoc(s.Doc) || hasDoc(s.Comment) || hasDoc(d.Doc)
					for _, n := range s.Names {
						if n.IsExported() {
							out = append(out, exported{name: n.Name, pos: line(n), doc: doc})
						}
					}
				}
			}
		}
	}
	return out
}

// receiverName returns the name of a method's receiver type, without the
// pointer and type parameters.
func receiverName(t ast.Expr) string {
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
		case *ast.ParenExpr:
			t = x.X
		case *ast.IndexExpr:
			t = x.X
		case *ast.IndexListExpr:
			t = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}

// hasDoc reports whether a comment group holds text (directives such as
// //go:generate alone are not documentation).
func hasDoc(c *ast.CommentGroup) bool {
	return c != nil && strings.TrimSpace(c.Text()) != ""
}

// standardMethod reports whether a method implements a standard interface
// whose contract already says what it does, so that it needs no comment of
// its own: String() string and GoString() string (fmt.Stringer,
// fmt.GoStringer), Error() string (error), Unwrap() error or []error and
// Is(error) bool (package errors). The signature must match exactly; any
// other method named so still needs its comment.
func standardMethod(name string, ft *ast.FuncType) bool {
	params, results := fieldTypes(ft.Params), fieldTypes(ft.Results)
	switch name {
	case "String", "GoString", "Error":
		return params == "" && results == "string"
	case "Unwrap":
		return params == "" && (results == "error" || results == "[]error")
	case "Is":
		return params == "error" && results == "bool"
	}
	return false
}

// fieldTypes renders the types of a parameter or result list, one per
// parameter, separated by commas.
func fieldTypes(fl *ast.FieldList) string {
	if fl == nil {
		return ""
	}
	var types []string
	for _, f := range fl.List {
		n := max(len(f.Names), 1)
		for range n {
			types = append(types, exprString(f.Type))
		}
	}
	return strings.Join(types, ",")
}

// exprString renders the few type expressions standardMethod compares.
func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.ArrayType:
		if x.Len == nil {
			return "[]" + exprString(x.Elt)
		}
	}
	return fmt.Sprintf("%T", e)
}

// TestExportedAPI counts the exported identifiers of the public packages
// (the rule of exportedIdents) and fails when they reach maxExportedAPI.
// With -v it prints the count per package:
//
//	go test ./internal/archtest -run TestExportedAPI -v
func TestExportedAPI(t *testing.T) {
	apis := loadPublicAPI(t)
	var b strings.Builder
	fmt.Fprintf(&b, "exported identifiers of the public packages (struct fields not counted):\n")
	fmt.Fprintf(&b, "%-20s %5s %8s %6s %13s\n", "package", "top", "methods", "total", "undocumented")
	total, totalTop, totalMethods, totalUndoc := 0, 0, 0, 0
	for _, a := range apis {
		top, methods := a.count()
		undoc := 0
		for _, e := range a.idents {
			if !e.doc {
				undoc++
			}
		}
		fmt.Fprintf(&b, "%-20s %5d %8d %6d %13d\n", a.pkg, top, methods, top+methods, undoc)
		total += top + methods
		totalTop += top
		totalMethods += methods
		totalUndoc += undoc
	}
	fmt.Fprintf(&b, "%-20s %5d %8d %6d %13d", "total", totalTop, totalMethods, total, totalUndoc)
	t.Log("\n" + b.String())
	if total >= maxExportedAPI {
		t.Errorf("the public packages export %d identifiers; the ceiling is fewer than %d (maxExportedAPI): move what only the module uses under internal/, or unexport it", total, maxExportedAPI)
	}
}

// TestExportedAPIDocumented requires a doc comment on every exported
// identifier of the public packages. A func, method or type needs its own
// (a type in a parenthesised group too); a const or var may have its own
// comment, above it or at the end of its line, or its group's; an interface
// method its own, above or at the end of its line, unless it is the only
// method its interface declares, which the interface's comment documents
// (as io.Reader's does Read). String, GoString, Error, Unwrap and Is methods
// with the standard signatures are exempt: their interface says what they
// do.
func TestExportedAPIDocumented(t *testing.T) {
	for _, a := range loadPublicAPI(t) {
		var missing []string
		for _, e := range a.idents {
			if !e.doc {
				missing = append(missing, fmt.Sprintf("\t%s (%s)", e.name, e.pos))
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s: %d exported identifiers without a doc comment:\n%s", a.pkg, len(missing), strings.Join(missing, "\n"))
		}
	}
}

// The rules of exportedIdents and standardMethod, on a file written for it.
func TestExportedIdentsRules(t *testing.T) {
	const src = `package p

// F is documented.
func F() {}
func G() {}
func unexported() {}

// T is documented.
type T struct{ Field int }
type U int
type hidden int

func (T) M() {}
// N is documented.
func (*T) N() {}
func (T) String() string { return "" }
func (T) Error(x int) string { return "" }
func (U) Unwrap() error { return nil }
func (hidden) Exported() {}

type (
	// V is documented.
	V int
	W int
)

// The group's comment documents A and B.
const (
	A = 1
	B = 2
)

var (
	C = 1 // C's own line comment.
	D = 2
	e = 3
)

// I is documented.
type I interface {
	// Do is documented.
	Do()
	Undone()
	Is(error) bool
	fmt.Stringer
}

// One is documented, and so is its only method.
type One interface {
	Only()
	fmt.Stringer
}

type Bare interface{ Alone() }
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	methods := 0
	for _, e := range exportedIdents(f, fset) {
		got[e.name] = e.doc
		if e.method {
			methods++
		}
	}
	want := map[string]bool{
		"F": true, "G": false,
		"T": true, "U": false,
		"T.M": false, "T.N": true, "T.String": true, "T.Error": false, "U.Unwrap": true,
		"V": true, "W": false,
		"A": true, "B": true, "C": true, "D": false,
		"I": true, "I.Do": true, "I.Undone": false, "I.Is": true,
		"One": true, "One.Only": true, "Bare": false, "Bare.Alone": false,
	}
	for name, doc := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s not counted", name)
		} else if g != doc {
			t.Errorf("%s: documented = %v, want %v", name, g, doc)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s counted, should not be", name)
		}
	}
	if methods != 10 {
		t.Errorf("%d methods, want 10", methods)
	}
}
