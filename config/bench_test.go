package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bigConfig returns a configuration with n node-attributes keys, n
// top-level labels and n pool labels.
func bigConfig(n int) []byte {
	var b strings.Builder
	b.WriteString("labels:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: label-%d\n", i)
	}
	b.WriteString("providers:\n  - name: static\n    driver: static\n    pools:\n      - name: main\n        node-attributes:\n")
	for i := range n {
		fmt.Fprintf(&b, "          key-%d: value-%d\n", i, i)
	}
	b.WriteString("        nodes:\n          - name: host.example.org\n            labels:\n")
	for i := range n {
		fmt.Fprintf(&b, "              - label-%d\n", i)
	}
	return []byte(b.String())
}

func writeBig(b *testing.B, n int) string {
	path := filepath.Join(b.TempDir(), "nodepool.yaml")
	if err := os.WriteFile(path, bigConfig(n), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkLoad loads and validates configurations of 10k and 100k keys
// (node-attributes keys, labels and pool labels each).
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		path := writeBig(b, n)
		b.Run(fmt.Sprintf("load-%dk", n/1000), func(b *testing.B) {
			for b.Loop() {
				if _, err := Load(path, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("validate-%dk", n/1000), func(b *testing.B) {
			for b.Loop() {
				if p := Validate(path); len(p.Errors) > 0 {
					b.Fatal(p.Err())
				}
			}
		})
	}
}
