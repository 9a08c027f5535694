package zuulsim_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// readFixture reads a protocol fixture from the copy the zkclient tests
// keep (testdata/fixtures there, copied from the spec).
func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "zkclient", "testdata", "fixtures", name))
	require.NoError(t, err)
	return data
}
