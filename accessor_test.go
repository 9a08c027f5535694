package nodepool_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/internal/zktest"
)

// TestAccessorsWhileRunConnects reads ZooKeeper() and Nodes() while Run
// connects by itself (no WithZooKeeper), as nodepool-launcher's web server
// does: under -race this fails if Run's assignment is unsynchronised.
func TestAccessorsWhileRunConnects(t *testing.T) {
	_, chroot := zktest.Connect(t)
	host, port, err := net.SplitHostPort(zktest.Hosts()[0])
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(sprintf(`
zookeeper-servers:
  - host: %s
    port: %s
    chroot: %s
labels:
  - name: small
providers:
  - name: accessor-sim
    driver: simcloud
    pools:
      - name: main
        labels:
          - name: small
`, host, port, chroot)), 0o600))
	cfg, err := nodepool.LoadConfig(path, "")
	require.NoError(t, err)
	l, err := nodepool.NewLauncher(cfg, nodepool.WithHostname("accessor-test"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for l.ZooKeeper() == nil || l.Nodes() == nil {
		require.True(t, time.Now().Before(deadline), "Run never connected")
		time.Sleep(time.Millisecond)
	}
	require.Eventually(t, l.Ready, 20*time.Second, 10*time.Millisecond)
	require.True(t, l.ZooKeeper().Connected())
}
