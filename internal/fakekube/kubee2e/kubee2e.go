// Package kubee2e holds the end-to-end test helpers of the Kubernetes-based
// drivers: a launcher run on a configuration against the test ZooKeeper,
// and a request served as Zuul does.
package kubee2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// StartLauncher runs a launcher on the configuration until the test ends
// or stop is called; cleanup, when positive, is its cleanup interval.
func StartLauncher(t *testing.T, zk *zkclient.Client, yaml string, cleanup time.Duration) (stop func()) {
	t.Helper()
	opts := []nodepool.Option{nodepool.WithHostname("kube-e2e")}
	if cleanup > 0 {
		opts = append(opts, nodepool.WithCleanupInterval(cleanup))
	}
	return launchertest.StartStop(t, zk, yaml, opts...)
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
