package zuulsim_test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// readFixture reads a file of the shared protocol fixtures.
func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	dir := os.Getenv("NODEPOOL_SPEC_FIXTURES")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "spec", "fixtures")
		if _, err := os.Stat(dir); err != nil {
			dir = "/work/shared/spec/fixtures"
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, name))
	if os.IsNotExist(err) {
		t.Skipf("fixture %s not available (set NODEPOOL_SPEC_FIXTURES)", name)
	}
	require.NoError(t, err)
	return data
}
