package nodepool_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver/simcloud"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

// TestCLIAgainstRunningLauncher: hold, delete and erase change ZooKeeper
// as the spec says while a launcher runs, and the launcher acts on it.
func TestCLIAgainstRunningLauncher(t *testing.T) {
	bin := buildBinary(t, "./cmd/nodepool")
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	host, port, err := net.SplitHostPort(zktest.Hosts()[0])
	require.NoError(t, err)
	yaml := sprintf(`
zookeeper-servers:
  - host: %s
    port: %s
    chroot: %s
labels:
  - name: small
    min-ready: 3
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    pools:
      - name: main
        max-servers: 10
        labels:
          - name: small
`, host, port, chroot, cloud)
	cfgPath := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(yaml), 0o600))
	l := launchertest.StartChroot(t, chroot, yaml)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cli := func(args ...string) string {
		out, err := exec.Command(bin, append([]string{"-c", cfgPath}, args...)...).Output()
		require.NoError(t, err, "nodepool %v", args)
		return string(out)
	}
	var ids []string
	require.Eventually(t, func() bool {
		nodes, _ := zk.Nodes(ctx, nil)
		ids = ids[:0]
		for _, n := range nodes {
			if n.State == zkclient.NodeReady && n.AllocatedTo == "" {
				ids = append(ids, n.ID)
			}
		}
		return len(ids) == 3
	}, 20*time.Second, 50*time.Millisecond)

	out := cli("list")
	for _, id := range ids {
		require.Contains(t, out, id)
	}

	// hold: the node is kept by the launcher's cleanup.
	cli("hold", ids[0], "--reason", "debugging")
	n, err := zk.GetNode(ctx, ids[0])
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeHold, n.State)
	require.Equal(t, "debugging", n.Comment)
	l.CleanupPass(ctx)
	n, err = zk.GetNode(ctx, ids[0])
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeHold, n.State)

	// delete: the node goes deleting and the launcher removes it and its
	// instance; min-ready replaces it.
	ext := n.ExternalID
	cli("delete", ids[1])
	require.Eventually(t, func() bool {
		_, err := zk.GetNode(ctx, ids[1])
		return err != nil
	}, 20*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		_, ok := simcloud.Get(cloud).Server(ext)
		return ok // the held node's instance stays
	}, time.Second, 50*time.Millisecond)

	// An unknown node id is a message, not an error.
	require.Contains(t, cli("hold", "9999999999"), "not found")

	// erase: every node record of the provider is removed.
	out = cli("erase", "sim", "--force")
	require.NotEmpty(t, strings.TrimSpace(out))
	nodes, err := zk.Nodes(ctx, nil)
	require.NoError(t, err)
	for _, n := range nodes {
		require.NotEqual(t, ids[0], n.ID, "erase removed the held node's record")
	}
}
