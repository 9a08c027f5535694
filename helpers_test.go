package nodepool_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	// The drivers the configurations of these tests name.
	_ "github.com/nodepool-go/nodepool/driver/openstack"
	_ "github.com/nodepool-go/nodepool/driver/simcloud"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

var (
	binMu    sync.Mutex
	binPaths = map[string]string{}
)

// buildBinary compiles a command of this module once per test run and
// returns the binary's path.
func buildBinary(t *testing.T, pkg string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := binPaths[pkg]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "nodepool-test-bin")
	require.NoError(t, err)
	p := filepath.Join(dir, filepath.Base(pkg))
	out, err := exec.Command("go", "build", "-o", p, pkg).CombinedOutput()
	require.NoError(t, err, "building %s: %s", pkg, out)
	binPaths[pkg] = p
	return p
}
