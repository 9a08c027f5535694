package nodepool_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/nodepool-go/nodepool"

// goListDeps returns every package the given packages import, directly or
// not (test files excluded).
func goListDeps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, pkgs...)
	out, err := exec.Command("go", args...).CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	return strings.Fields(string(out))
}

// TestCoreLinksNoConcreteDriver: the public root, configuration loading,
// the launcher's machinery and the builder reach drivers only through the
// driver contract, so an embedder who imports them links no cloud SDK and
// may register any driver under any name.
func TestCoreLinksNoConcreteDriver(t *testing.T) {
	core := []string{".", "./config", "./internal/launcher/...", "./internal/placement", "./internal/leak", "./builder", "./zkclient", "./quota"}
	for _, dep := range goListDeps(t, core...) {
		if strings.HasPrefix(dep, module+"/driver/") {
			t.Errorf("the core links %s; only %s/driver is allowed", dep, module)
		}
		require.NotContains(t, dep, "gophercloud", "the core links a cloud SDK")
	}
}

// TestDriverContractKnowsNoLauncher: the driver contract imports neither
// ZooKeeper nor the launcher, so drivers stay independent of both.
func TestDriverContractKnowsNoLauncher(t *testing.T) {
	for _, dep := range goListDeps(t, "./driver") {
		if strings.HasPrefix(dep, module) && dep != module+"/driver" && dep != module+"/quota" {
			t.Errorf("the driver contract imports %s", dep)
		}
	}
}
