// Package kubee2e holds the end-to-end test helpers of the Kubernetes-based
// drivers: a launcher run on a configuration against the test ZooKeeper,
// and a request served as Zuul does.
package kubee2e

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// StartLauncher runs a launcher on the configuration until the test ends
// or stop is called; cleanup, when positive, is its cleanup interval.
func StartLauncher(t *testing.T, zk *zkclient.Client, yaml string, cleanup time.Duration) (stop func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	cfg, err := nodepool.LoadConfig(path, "")
	require.NoError(t, err)
	opts := []nodepool.Option{nodepool.WithZooKeeper(zk), nodepool.WithHostname("kube-e2e")}
	if cleanup > 0 {
		opts = append(opts, nodepool.WithCleanupInterval(cleanup))
	}
	l, err := nodepool.NewLauncher(cfg, opts...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			buf := make([]byte, 1<<22)
			t.Errorf("launcher did not stop; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		}
	}
	t.Cleanup(stop)
	require.Eventually(t, l.Ready, 20*time.Second, 20*time.Millisecond)
	return stop
}

// Serve submits a request for labels, waits until it is fulfilled and
// returns it with its nodes.
func Serve(t *testing.T, ctx context.Context, zk *zkclient.Client, labels ...string) (*zuulsim.Request, []*zkclient.Node) {
	t.Helper()
	req, err := zuulsim.Submit(ctx, zk, labels, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	var nodes []*zkclient.Node
	for _, id := range got.Nodes {
		n, err := zk.GetNode(ctx, id)
		require.NoError(t, err)
		nodes = append(nodes, n)
	}
	return req, nodes
}

// Return accepts a fulfilled request's nodes, uses them and returns them.
func Return(t *testing.T, ctx context.Context, req *zuulsim.Request) {
	t.Helper()
	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))
}
