package zkclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

// TestCacheWriteThrough: the cache takes this client's locked writes
// without reading them back, and still sees every change made by others
// once the lock is released, however the writes and their watch events
// interleave.
func TestCacheWriteThrough(t *testing.T) {
	t.Run("persistent", func(t *testing.T) { testCacheWriteThrough(t, false) })
	t.Run("one-shot", func(t *testing.T) { testCacheWriteThrough(t, true) })
}

func testCacheWriteThrough(t *testing.T, oneShot bool) {
	c, chroot := zktest.Connect(t)
	other := zktest.ConnectChroot(t, chroot)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, c.EnsurePath(ctx, zkclient.NodeRoot))
	cache := zkclient.NewNodeCache(c)
	zkclient.StartCache(t, ctx, cache, oneShot)
	cached := func(id string, state zkclient.NodeState, version int32) func() bool {
		return func() bool {
			n, ok := cache.Get(id)
			return ok && n.State == state && n.Version == version
		}
	}

	for round := 0; round < 20; round++ {
		n := &zkclient.Node{State: zkclient.NodeInit, Provider: "p", Type: []string{"l"}}
		_, err := c.CreateNode(ctx, n)
		require.NoError(t, err)
		lock := c.NodeLock(n.ID)
		building := n.Clone()
		building.State = zkclient.NodeBuilding
		got, err := lock.TryAcquireWith(ctx, zkclient.SetOp{Path: zkclient.NodePath(n.ID), Data: building.AppendJSON(nil), Version: 0})
		require.NoError(t, err)
		require.True(t, got)
		building.Version = 1
		// Several writes in a row under the lock, as a launch makes them.
		for _, s := range []zkclient.NodeState{zkclient.NodeBuilding, zkclient.NodeReady} {
			building.State = s
			require.NoError(t, c.StoreNode(ctx, building, lock))
		}
		require.Eventually(t, cached(n.ID, zkclient.NodeReady, 3), 10*time.Second, time.Millisecond)
		require.NoError(t, c.ReleaseWith(ctx, []*zkclient.Lock{lock}))

		// Zuul's writes after the release reach the cache.
		for i, s := range []zkclient.NodeState{zkclient.NodeInUse, zkclient.NodeUsed} {
			zl := other.NodeLock(n.ID)
			require.NoError(t, zl.Acquire(ctx))
			fresh, err := other.GetNode(ctx, n.ID)
			require.NoError(t, err)
			fresh.State = s
			require.NoError(t, other.StoreNode(ctx, fresh, zl))
			require.NoError(t, zl.Release(ctx))
			require.Eventually(t, cached(n.ID, s, int32(4+i)), 10*time.Second, time.Millisecond,
				"round %d: %s seen", round, s)
		}

		// Deleted by its locker: gone from the cache at once.
		dl := c.NodeLock(n.ID)
		got, err = dl.TryAcquireIdle(ctx, zkclient.CheckOp{Path: zkclient.NodePath(n.ID), Version: 5})
		require.NoError(t, err)
		require.True(t, got)
		require.NoError(t, c.DeleteLockedNode(ctx, n, dl))
		_, ok := cache.Get(n.ID)
		require.False(t, ok)
	}
	// Our own writes are not read back: per node, one read per change of
	// Zuul's (and, with one-shot watches, the read that re-arms the watch
	// after the release), plus the odd read of a new node or of a change
	// that raced one of ours (reading every change back costs at least 6
	// per node).
	ph := c.Ops().ByPhase()
	reads := ph["nodes-cache:changed"] + ph["nodes-cache:rearm"] + ph["nodes-cache:new"]
	limit := int64(20 * 3)
	if oneShot {
		limit = 20 * 5
	}
	require.LessOrEqual(t, reads, limit, "cache reads by phase: %v", ph)
	if !oneShot {
		require.Zero(t, ph["nodes-cache:list"], "a persistent watch needs no listing: %v", ph)
	}
}
