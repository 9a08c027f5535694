package doccheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestModuleDocumented fails for every package of this module without a
// package comment and every exported identifier without a doc comment.
func TestModuleDocumented(t *testing.T) {
	problems, err := Check(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	if len(problems) > 0 {
		t.Logf("%d documentation gaps; see internal/doccheck for the rules", len(problems))
	}
}

// TestCheck runs the checker over a small module with one gap of each kind.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("good/good.go", `// Package good is fully documented.
package good

// T is a type.
type T struct {
	// A is a field.
	A int
	B int // B is a field too.
	c int
}

// M is a method.
func (T) M() {}

// An Error is a documented type with an article.
type Error struct{}

// Kinds.
const (
	K1 = iota
	K2
)

// V is a variable.
var V = 1

// I is an interface.
type I interface {
	// Do does.
	Do()
}

func (T) unexported() {}

type hidden struct{ X int }

// X is exported on an unexported type: not API.
func (hidden) Y() {}
`)
	write("good/good_test.go", `package good

func Undocumented() {}
`)
	write("bad/a.go", `package bad

func F() {}

// says nothing of its name
func G() {}

type S struct {
	Field int
}

const (
	C1 = 1
)

var W, Z = 1, 2

type J interface {
	Do()
}

// Gen is generic.
type Gen[T any] struct{}

func (g *Gen[T]) Get() {}
`)
	write("internal/priv/priv.go", `// Package priv is internal: its fields need no comments.
package priv

// T is a type.
type T struct {
	Field int
}

func Undocumented() {}
`)
	write("bad/testdata/x.go", `package x

func Ignored() {}
`)
	problems, err := Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	want := []string{
		"bad: package has no package comment",
		"bad/a.go:3: func F: no doc comment",
		`bad/a.go:6: func G: doc comment does not start with "G" (it says "says nothing of its name")`,
		"bad/a.go:8: type S: no doc comment",
		"bad/a.go:9: field S.Field: no doc comment",
		"bad/a.go:13: const C1: no doc comment (nor one on its group)",
		"bad/a.go:16: var W: no doc comment",
		"bad/a.go:16: var Z: no doc comment",
		"bad/a.go:18: type J: no doc comment",
		"bad/a.go:19: method J.Do: no doc comment",
		"bad/a.go:25: method Gen.Get: no doc comment",
		"internal/priv/priv.go:9: func Undocumented: no doc comment",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
