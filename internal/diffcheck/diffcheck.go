// Package diffcheck keeps docs/differences.md honest about the command
// lines: the tests of the binaries hand it their flags and sub-commands
// and upstream's, and every one that is not in both must be named in the
// document.
package diffcheck

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Document returns the text of docs/differences.md, found from the
// working directory upwards (the module root holds it).
func Document(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "docs", "differences.md"))
		if err == nil {
			return string(data)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("diffcheck: docs/differences.md not found above the working directory")
		}
		dir = parent
	}
}

// Names checks that every name in ours but not in upstream (an addition)
// and every name in upstream but not in ours (an omission) appears in the
// document in backticks. A name is a flag ("-p", "--json-log": either
// spelling of a long flag will do), a sub-command ("request-explain") or a
// sub-command's flag ("hold --reason", which "`--reason`" also satisfies).
func Names(t testing.TB, doc, what string, upstream, ours []string) {
	t.Helper()
	up, us := set(upstream), set(ours)
	var missing []string
	for _, n := range sortedKeys(us) {
		if !up[n] && !named(doc, n) {
			missing = append(missing, "addition "+n)
		}
	}
	for _, n := range sortedKeys(up) {
		if !us[n] && !named(doc, n) {
			missing = append(missing, "omission "+n)
		}
	}
	for _, m := range missing {
		t.Errorf("%s: %s is not named in docs/differences.md", what, m)
	}
}

// named reports whether doc names n in backticks, in one of its spellings.
func named(doc, n string) bool {
	for _, s := range spellings(n) {
		if strings.Contains(doc, "`"+s+"`") || strings.Contains(doc, "`"+s+" ") {
			return true
		}
	}
	return false
}

func spellings(n string) []string {
	out := []string{n}
	cmd, flag, sub := strings.Cut(n, " ")
	if !sub {
		flag, cmd = n, ""
	}
	var alt []string
	switch {
	case strings.HasPrefix(flag, "--"):
		alt = []string{flag, flag[1:]}
	case strings.HasPrefix(flag, "-") && len(flag) > 2:
		alt = []string{flag, "-" + flag}
	}
	for _, a := range alt {
		out = append(out, a)
		if cmd != "" {
			out = append(out, cmd+" "+a)
		}
	}
	return out
}

func set(names []string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
