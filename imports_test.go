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

// TestKubeDriversLinkNoClientset: the Kubernetes drivers reach the API
// through REST clients over a scheme of core/v1 and rbac/v1 alone, so they
// link neither client-go's clientset nor its scheme of every API group
// (both register ~50 groups at start, a cost in the launcher's binary
// size and resident memory).
func TestKubeDriversLinkNoClientset(t *testing.T) {
	allowed := map[string]bool{"k8s.io/api/core/v1": true, "k8s.io/api/rbac/v1": true}
	for _, dep := range goListDeps(t, "./driver/kubernetes", "./driver/openshift", "./driver/openshiftpods") {
		if strings.HasPrefix(dep, "k8s.io/client-go/kubernetes") || strings.HasPrefix(dep, "k8s.io/api/") && !allowed[dep] {
			t.Errorf("the Kubernetes drivers link %s", dep)
		}
	}
}
