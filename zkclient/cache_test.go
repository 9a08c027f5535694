package zkclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

// TestCacheIndex: an index follows creations, state changes and deletions
// of the cached children.
func TestCacheIndex(t *testing.T) {
	c, _ := zktest.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.EnsurePath(ctx, zkclient.NodeRoot))
	cache := zkclient.NewNodeCache(c)
	ready := cache.Index(func(n *zkclient.Node) string {
		if n.State != zkclient.NodeReady {
			return ""
		}
		return n.Provider
	})
	go func() { _ = cache.Run(ctx) }()
	<-cache.Synced()

	var nodes []*zkclient.Node
	for i, prov := range []string{"a", "a", "b"} {
		n := &zkclient.Node{State: zkclient.NodeReady, Provider: prov, Type: []string{"l"}, StateTime: float64(i)}
		_, err := c.CreateNode(ctx, n)
		require.NoError(t, err)
		nodes = append(nodes, n)
	}
	building := &zkclient.Node{State: zkclient.NodeBuilding, Provider: "a"}
	_, err := c.CreateNode(ctx, building)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return ready.Count("a") == 2 && ready.Count("b") == 1 && cache.Len() == 4 },
		10*time.Second, 10*time.Millisecond)

	// A state change moves a node out of its group; a deletion drops it.
	lock := c.NodeLock(nodes[0].ID)
	require.NoError(t, lock.Acquire(ctx))
	nodes[0].State = zkclient.NodeInUse
	require.NoError(t, c.StoreNode(ctx, nodes[0], lock))
	require.NoError(t, lock.Release(ctx))
	require.NoError(t, c.DeleteNode(ctx, nodes[2], nil))
	require.Eventually(t, func() bool { return ready.Count("a") == 1 && ready.Count("b") == 0 },
		10*time.Second, 10*time.Millisecond)
	got := ready.Lookup("a")
	require.Len(t, got, 1)
	require.Equal(t, nodes[1].ID, got[0].ID)
	require.Empty(t, ready.Lookup("b"))
	require.Empty(t, ready.Lookup(""), "children with an empty key are not indexed")
}
