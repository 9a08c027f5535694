package nodepool_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

type simState struct {
	Servers []struct {
		ID       string            `json:"id"`
		Metadata map[string]string `json:"metadata"`
	} `json:"servers"`
}

func readSimState(t *testing.T, path string) simState {
	var st simState
	data, err := os.ReadFile(path)
	if err != nil {
		return st
	}
	require.NoError(t, json.Unmarshal(data, &st))
	return st
}

// launcherProcess prepares a nodepool-launcher process on a simcloud whose
// state lives in a file (so a restarted process finds its instances); the
// knob line configures the cloud. It returns the ZooKeeper client acting
// as Zuul, a function starting a launcher process, and the state file.
func launcherProcess(t *testing.T, knob string) (*zkclient.Client, func() *exec.Cmd, string) {
	t.Helper()
	bin := buildBinary(t, "./cmd/nodepool-launcher")
	zk, chroot := zktest.Connect(t)
	host, port, err := net.SplitHostPort(zktest.Hosts()[0])
	require.NoError(t, err)
	dir := t.TempDir()
	state := filepath.Join(dir, "cloud.json")
	cfgPath := filepath.Join(dir, "nodepool.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(sprintf(`
zookeeper-servers:
  - host: %s
    port: %s
    chroot: %s
zookeeper-timeout: 2.0
labels:
  - name: small
providers:
  - name: sim
    driver: simcloud
    state-file: %s
    %s
    pools:
      - name: main
        max-servers: 5
        labels:
          - name: small
`, host, port, chroot, state, knob)), 0o600))
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "-c", cfgPath, "--no-webapp", "--cleanup-interval", "1s")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		require.NoError(t, cmd.Start())
		return cmd
	}
	return zk, start, state
}

// TestLauncherKilledMidLaunch kills the launcher process (SIGKILL) while a
// node is booting, starts a new one, and checks the request is served and
// no instance is left without a node record.
func TestLauncherKilledMidLaunch(t *testing.T) {
	zk, start, state := launcherProcess(t, "boot-time: 3")
	first := start()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		nodes, _ := zk.Nodes(ctx, nil)
		return len(nodes) == 1 && nodes[0].State == zkclient.NodeBuilding && nodes[0].ExternalID != "" &&
			len(readSimState(t, state).Servers) == 1
	}, 30*time.Second, 20*time.Millisecond, "a node is booting")
	require.NoError(t, first.Process.Kill())
	_ = first.Wait()

	second := start()
	t.Cleanup(func() {
		_ = second.Process.Signal(os.Interrupt)
		_ = second.Wait()
	})
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))
	require.Eventually(t, func() bool {
		ids, _ := zk.NodeIDs(ctx)
		return len(ids) == 0 && len(readSimState(t, state).Servers) == 0
	}, 60*time.Second, 100*time.Millisecond, "every instance, including the one of the killed launch, is deleted")
	for _, s := range readSimState(t, state).Servers {
		t.Errorf("instance %s (node %s) leaked", s.ID, s.Metadata[driver.MetaNodeID])
	}
}

// TestLauncherKilledMidDelete kills the launcher while it deletes a used
// node (the cloud answers slowly), restarts it, and checks the node record
// and the instance are both gone.
func TestLauncherKilledMidDelete(t *testing.T) {
	zk, start, state := launcherProcess(t, "api-latency: 1.5")
	first := start()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	_, err = req.Wait(ctx)
	require.NoError(t, err)
	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	id := ns.Nodes[0].ID
	require.NoError(t, ns.Return(ctx))
	// The launcher locks the used node and starts the (slow) cloud delete.
	require.Eventually(t, func() bool {
		locked, _ := zk.IsLocked(ctx, zkclient.NodeLockPath(id))
		return locked
	}, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, first.Process.Kill())
	_ = first.Wait()
	_, err = zk.GetNode(ctx, id)
	require.NoError(t, err, "killed before the node record was removed")

	second := start()
	t.Cleanup(func() {
		_ = second.Process.Signal(os.Interrupt)
		_ = second.Wait()
	})
	require.Eventually(t, func() bool {
		_, err := zk.GetNode(ctx, id)
		return err != nil && len(readSimState(t, state).Servers) == 0
	}, 60*time.Second, 100*time.Millisecond, "the restarted launcher finishes the delete")
}
