package nodepool_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

const reloadBase = `
labels:
  - name: small
  - name: other
providers:
  - name: first
    driver: simcloud
    cloud: %[1]s-a
    pools:
      - name: main
        max-servers: %[2]d
        labels:
          - name: small
`

const reloadSecond = `
  - name: second
    driver: simcloud
    cloud: %[1]s-b
    pools:
      - name: main
        labels:
          - name: other
`

func TestConfigReloadRestartsOnlyChangedProviders(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "nodepool.yaml")
	write := func(s string) {
		tmp := path + ".tmp"
		require.NoError(t, os.WriteFile(tmp, []byte(s), 0o600))
		require.NoError(t, os.Rename(tmp, path))
	}
	name := chroot[1:]
	write(sprintf(reloadBase, name, 5))
	cfg, err := nodepool.LoadConfig(path, "")
	require.NoError(t, err)
	l, err := nodepool.NewLauncher(cfg, nodepool.WithZooKeeper(zktest.ConnectChroot(t, chroot)), nodepool.WithConfigFile(path, ""))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	require.Eventually(t, l.Ready, 20*time.Second, 20*time.Millisecond)

	tctx, tcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer tcancel()
	held := launchertest.Acquire(t, tctx, zk, []string{"small"}, zuulsim.Options{})
	poolIDs := func() map[string]string {
		comps, _ := zk.Components(tctx, zkclient.KindPool)
		out := map[string]string{}
		for _, c := range comps {
			out[c.ProviderName] = c.ID
		}
		return out
	}
	before := poolIDs()
	require.Len(t, before, 1)

	// Adding a provider leaves the unchanged one running.
	write(sprintf(reloadBase+reloadSecond, name, 5))
	require.Eventually(t, func() bool { return len(poolIDs()) == 2 }, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, before["first"], poolIDs()["first"], "an unchanged provider keeps its pool worker")
	launchertest.Acquire(t, tctx, zk, []string{"other"}, zuulsim.Options{})

	// Changing a provider restarts it; the node in use is untouched.
	write(sprintf(reloadBase+reloadSecond, name, 6))
	require.Eventually(t, func() bool {
		ids := poolIDs()
		return len(ids) == 2 && ids["first"] != before["first"]
	}, 30*time.Second, 20*time.Millisecond, "a changed provider gets a new pool worker")
	for _, n := range held.Nodes {
		node, err := zk.GetNode(tctx, n.ID)
		require.NoError(t, err)
		require.Equal(t, zkclient.NodeInUse, node.State)
	}
	launchertest.Acquire(t, tctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, held.Return(tctx))

	// A broken file keeps the previous configuration.
	write("labels: [")
	time.Sleep(1500 * time.Millisecond)
	require.Len(t, poolIDs(), 2)
}
