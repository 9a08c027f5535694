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

// TestCacheCatchesUpAfterReconnect: changes made while the cache's
// connection was down (the session survives) reach the cache once it is
// back: a persistent watch dies with its connection, so the cache reads
// the directory again.
func TestCacheCatchesUpAfterReconnect(t *testing.T) {
	for _, oneShot := range []bool{false, true} {
		name := map[bool]string{false: "persistent", true: "one-shot"}[oneShot]
		t.Run(name, func(t *testing.T) {
			chroot := zktest.Chroot(t)
			c, proxy := zktest.ConnectViaProxy(t, chroot, 10*time.Second)
			other := zktest.ConnectChroot(t, chroot)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			require.NoError(t, c.EnsurePath(ctx, zkclient.RequestRoot))
			cache := zkclient.NewRequestCache(c)
			zkclient.StartCache(t, ctx, cache, oneShot)
			submit := func(state zkclient.RequestState) *zkclient.NodeRequest {
				r := &zkclient.NodeRequest{State: state, NodeTypes: []string{"l"}}
				p, err := other.Create(ctx, zkclient.RequestRoot+"/100-", r.AppendJSON(nil), zkclient.Sequential, false)
				require.NoError(t, err)
				r.ID = zkclient.Base(p)
				return r
			}
			kept, gone := submit(zkclient.RequestRequested), submit(zkclient.RequestRequested)
			require.Eventually(t, func() bool { return cache.Len() == 2 }, 10*time.Second, time.Millisecond)

			proxy.Pause()
			kept.State = zkclient.RequestPending
			require.NoError(t, other.StoreRequest(ctx, kept, nil))
			require.NoError(t, other.DeleteRequest(ctx, gone.ID))
			added := submit(zkclient.RequestRequested)
			time.Sleep(300 * time.Millisecond)
			proxy.Resume()

			require.Eventually(t, func() bool {
				r, ok := cache.Get(kept.ID)
				_, stale := cache.Get(gone.ID)
				_, fresh := cache.Get(added.ID)
				return ok && r.State == zkclient.RequestPending && !stale && fresh
			}, 20*time.Second, 5*time.Millisecond)
			require.Equal(t, !oneShot, zkclient.HasPersistentWatch(cache))

			// And the watch works again after the reconnection.
			kept.State = zkclient.RequestFulfilled
			require.NoError(t, other.StoreRequest(ctx, kept, nil))
			require.Eventually(t, func() bool {
				r, ok := cache.Get(kept.ID)
				return ok && r.State == zkclient.RequestFulfilled
			}, 10*time.Second, 5*time.Millisecond)
		})
	}
}
