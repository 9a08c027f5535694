package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A %(NODEPOOL_*) reference to an unset variable is kept as written (as
// upstream does) and reported as a warning with its line.
func TestUnsetVariableWarns(t *testing.T) {
	path := writeConfig(t, "zookeeper-servers:\n  - host: zk\n    chroot: /%(NODEPOOL_UNSET_CHROOT)\n")
	cfg, err := Load(path, "")
	require.NoError(t, err)
	require.Equal(t, "/%(NODEPOOL_UNSET_CHROOT)", cfg.ZooKeeperServers[0].Chroot)
	var found bool
	for _, w := range cfg.Warnings {
		if strings.Contains(w.Msg, "NODEPOOL_UNSET_CHROOT is not set") {
			found = true
			require.Equal(t, 3, w.Line)
		}
	}
	require.True(t, found, "warnings: %v", messages(cfg.Warnings))
	require.Contains(t, strings.Join(messages(Validate(path).Warnings), "\n"), "NODEPOOL_UNSET_CHROOT is not set")
	pc, err := Parse("inline", []byte("labels: []\nimages-dir: '%(NODEPOOL_UNSET_DIR)'\n"))
	require.NoError(t, err)
	require.Contains(t, strings.Join(messages(pc.Warnings), "\n"), "NODEPOOL_UNSET_DIR is not set")

	t.Setenv("NODEPOOL_SET_CHROOT", "x")
	cfg, err = Load(writeConfig(t, "zookeeper-servers:\n  - host: zk\n    chroot: /%(NODEPOOL_SET_CHROOT)\n"), "")
	require.NoError(t, err)
	require.Empty(t, cfg.Warnings)
}

// A configuration file larger than MaxFileSize is refused with a clear
// error, by Load, Validate and Parse.
func TestFileSizeLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.yaml")
	f, err := os.Create(path)
	require.NoError(t, err)
	_, err = f.WriteString("labels: []\n")
	require.NoError(t, err)
	require.NoError(t, f.Truncate(MaxFileSize+1))
	require.NoError(t, f.Close())
	_, err = Load(path, "")
	require.ErrorIs(t, err, ErrTooLarge)
	require.Contains(t, err.Error(), "the limit is 32 MiB")
	require.Contains(t, strings.Join(messages(Validate(path).Errors), "\n"), "configuration file too large")
	_, err = Parse("big", make([]byte, MaxFileSize+1))
	require.ErrorIs(t, err, ErrTooLarge)
	// At the limit is fine as far as size goes.
	require.NoError(t, os.Truncate(path, MaxFileSize))
	_, err = Load(path, "")
	require.NotErrorIs(t, err, ErrTooLarge)
}

// Free-form values (node-attributes) keep their meaning: duplicate keys
// are refused, merge keys apply, alias bombs are stopped.
func TestNodeAttributesDecoding(t *testing.T) {
	load := func(attrs string) (map[string]any, error) {
		cfg, err := Parse("t", []byte("labels: []\nproviders:\n  - name: s\n    driver: static\n    pools:\n      - name: main\n        node-attributes:\n"+attrs))
		if err != nil {
			return nil, err
		}
		return cfg.Providers[0].Pools[0].NodeAttributes, nil
	}
	m, err := load("          a: 1\n          b: [x, 2.5, true, null]\n          c: {d: e}\n          3: three\n")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"a": 1, "b": []any{"x", 2.5, true, nil}, "c": map[string]any{"d": "e"}, "3": "three"}, m)

	_, err = load("          a: 1\n          a: 2\n")
	require.ErrorContains(t, err, `mapping key "a" already defined`)

	m, err = load("          base: &b {x: 1, y: 2}\n          merged:\n            <<: *b\n            y: 3\n")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"x": 1, "y": 3}, m["merged"])

	var b strings.Builder
	b.WriteString("          l0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("          l" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	_, err = load(b.String())
	require.Error(t, err, "a billion laughs is refused")
}
