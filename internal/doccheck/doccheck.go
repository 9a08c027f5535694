// Package doccheck finds the gaps in a Go module's documentation: packages
// without a package comment and exported identifiers without a doc comment
// that starts with their name. The module's own test (doccheck_test.go)
// runs it over every non-test file of this module, so an undocumented
// exported identifier fails `go test ./...`.
package doccheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Problem is one documentation gap.
type Problem struct {
	// File is the file of the declaration, or the directory of a package
	// without a package comment, relative to the checked root.
	File string
	// Line is the declaration's line (0 for a package gap).
	Line int
	// What says what is missing, e.g. `func Foo: no doc comment`.
	What string
}

// String formats the problem as "file:line: what" ("dir: what" for a
// package).
func (p Problem) String() string {
	if p.Line == 0 {
		return p.File + ": " + p.What
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.What)
}

// Check parses every non-test .go file under root (skipping testdata,
// vendor, third_party, hidden directories and generated files) and returns the gaps,
// sorted by position. It reports:
//
//   - a package none of whose files carries a package comment;
//   - an exported top-level func, type, const or var, or an exported
//     method of an exported type, without a doc comment; for funcs,
//     methods, types and ungrouped consts and vars the comment must start
//     with the name (optionally after "A", "An" or "The"); a comment on a
//     grouped const or var block counts for every name in it;
//   - in public API packages (neither main nor under an internal
//     directory), an exported field of an exported struct type, or an
//     exported method of an exported interface type, with neither a doc
//     comment nor a trailing line comment.
func Check(root string) ([]Problem, error) {
	dirs := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "vendor" || name == "third_party" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			dirs[filepath.Dir(path)] = append(dirs[filepath.Dir(path)], path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []Problem
	fset := token.NewFileSet()
	for dir, files := range dirs {
		rel := func(p token.Pos) (string, int) {
			pos := fset.Position(p)
			r, err := filepath.Rel(root, pos.Filename)
			if err != nil {
				r = pos.Filename
			}
			return filepath.ToSlash(r), pos.Line
		}
		hasPkgDoc, parsed := false, 0
		for _, path := range files {
			src, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
			if err != nil {
				return nil, err
			}
			if ast.IsGenerated(f) {
				continue
			}
			parsed++
			if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
				hasPkgDoc = true
			}
			out = append(out, checkFile(f, rel, publicAPI(root, dir, f))...)
		}
		if parsed > 0 && !hasPkgDoc {
			r, _ := filepath.Rel(root, dir)
			out = append(out, Problem{File: filepath.ToSlash(r), What: "package has no package comment"})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].What < out[j].What
	})
	return out, nil
}

// publicAPI reports whether the package in dir is importable API: not a
// command and not under an internal directory.
func publicAPI(root, dir string, f *ast.File) bool {
	if f.Name.Name == "main" {
		return false
	}
	rel, err := filepath.Rel(root, dir)
	if err != nil {
		return true
	}
	for _, elem := range strings.Split(filepath.ToSlash(rel), "/") {
		if elem == "internal" {
			return false
		}
	}
	return true
}

// checkFile checks one file's declarations; members (struct fields and
// interface methods) only when the package is public API.
func checkFile(f *ast.File, pos func(token.Pos) (string, int), members bool) []Problem {
	var out []Problem
	add := func(p token.Pos, format string, args ...any) {
		file, line := pos(p)
		out = append(out, Problem{File: file, Line: line, What: fmt.Sprintf(format, args...)})
	}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() {
				continue
			}
			kind, name := "func", d.Name.Name
			if d.Recv != nil && len(d.Recv.List) > 0 {
				recv := receiverName(d.Recv.List[0].Type)
				if !ast.IsExported(recv) {
					continue
				}
				kind, name = "method", recv+"."+d.Name.Name
			}
			if msg := docProblem(d.Doc, d.Name.Name, true); msg != "" {
				add(d.Pos(), "%s %s: %s", kind, name, msg)
			}
		case *ast.GenDecl:
			if d.Tok == token.IMPORT {
				continue
			}
			grouped := d.Lparen.IsValid()
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if !s.Name.IsExported() {
						continue
					}
					doc, strict := s.Doc, true
					if doc == nil {
						// The declaration's comment: the type's own when
						// ungrouped, the group's (any wording) otherwise.
						doc, strict = d.Doc, !grouped
					}
					if msg := docProblem(doc, s.Name.Name, strict); msg != "" {
						add(s.Pos(), "type %s: %s", s.Name.Name, msg)
					}
					if members {
						checkTypeBody(s, add)
					}
				case *ast.ValueSpec:
					kind := "const"
					if d.Tok == token.VAR {
						kind = "var"
					}
					for _, n := range s.Names {
						if !n.IsExported() {
							continue
						}
						if grouped {
							if !hasText(s.Doc) && !hasText(s.Comment) && !hasText(d.Doc) {
								add(n.Pos(), "%s %s: no doc comment (nor one on its group)", kind, n.Name)
							}
							continue
						}
						doc := s.Doc
						if doc == nil {
							doc = d.Doc
						}
						if msg := docProblem(doc, n.Name, len(s.Names) == 1); msg != "" {
							add(n.Pos(), "%s %s: %s", kind, n.Name, msg)
						}
					}
				}
			}
		}
	}
	return out
}

// checkTypeBody checks the exported fields of a struct type and the
// methods of an interface type: each needs a doc or trailing comment.
func checkTypeBody(s *ast.TypeSpec, add func(token.Pos, string, ...any)) {
	var fields *ast.FieldList
	what := "field"
	switch t := s.Type.(type) {
	case *ast.StructType:
		fields = t.Fields
	case *ast.InterfaceType:
		fields, what = t.Methods, "method"
	default:
		return
	}
	for _, fl := range fields.List {
		if hasText(fl.Doc) || hasText(fl.Comment) {
			continue
		}
		for _, n := range fl.Names {
			if n.IsExported() {
				add(n.Pos(), "%s %s.%s: no doc comment", what, s.Name.Name, n.Name)
			}
		}
	}
}

func hasText(c *ast.CommentGroup) bool { return c != nil && strings.TrimSpace(c.Text()) != "" }

// receiverName returns the type name of a method receiver expression.
func receiverName(e ast.Expr) string {
	for {
		switch t := e.(type) {
		case *ast.StarExpr:
			e = t.X
		case *ast.ParenExpr:
			e = t.X
		case *ast.IndexExpr:
			e = t.X
		case *ast.IndexListExpr:
			e = t.X
		case *ast.Ident:
			return t.Name
		default:
			return ""
		}
	}
}

// docProblem says what is wrong with doc as the comment of name ("" when
// nothing); strict requires the comment to start with the name.
func docProblem(doc *ast.CommentGroup, name string, strict bool) string {
	if doc == nil || strings.TrimSpace(doc.Text()) == "" {
		return "no doc comment"
	}
	if !strict {
		return ""
	}
	text := strings.TrimSpace(doc.Text())
	for _, article := range []string{"A ", "An ", "The "} {
		if t, ok := strings.CutPrefix(text, article); ok && startsWithName(t, name) {
			return ""
		}
	}
	if startsWithName(text, name) || strings.HasPrefix(text, "Deprecated:") {
		return ""
	}
	first, _, _ := strings.Cut(text, "\n")
	if len(first) > 40 {
		first = first[:40] + "..."
	}
	return fmt.Sprintf("doc comment does not start with %q (it says %q)", name, first)
}

func startsWithName(text, name string) bool {
	rest, ok := strings.CutPrefix(text, name)
	if !ok {
		return false
	}
	return rest == "" || !isIdentRune(rune(rest[0]))
}

func isIdentRune(r rune) bool {
	return r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
}
