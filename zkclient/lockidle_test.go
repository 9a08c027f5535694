package zkclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

func TestTryAcquireIdle(t *testing.T) {
	c1, chroot := zktest.Connect(t)
	c2 := zktest.ConnectChroot(t, chroot)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := c1.Create(ctx, "/obj", []byte("0"), zkclient.Persistent, true)
	require.NoError(t, err)
	check := zkclient.CheckOp{Path: "/obj", Version: 0}

	// No lock directory yet: taken as by the plain recipe.
	a := c1.NewLock("/obj/lock")
	got, err := a.TryAcquireIdle(ctx, check)
	require.NoError(t, err)
	require.True(t, got)

	// Held elsewhere: refused in one request, nothing left behind.
	b := c2.NewLock("/obj/lock")
	before := c2.Ops().Total()
	got, err = b.TryAcquireIdle(ctx, check)
	require.NoError(t, err)
	require.False(t, got)
	require.Equal(t, int64(1), c2.Ops().Total()-before)
	kids, err := c1.Children(ctx, "/obj/lock")
	require.NoError(t, err)
	require.Len(t, kids, 1, "only the holder's contender")
	require.NoError(t, a.Release(ctx))

	// A waiting contender (even without a holder) also refuses it.
	w := c1.NewLock("/obj/lock")
	waiting := make(chan error, 1)
	require.NoError(t, w.Acquire(ctx))
	c4 := zktest.ConnectChroot(t, chroot)
	go func() {
		x := c4.NewLock("/obj/lock", zkclient.WithIdentifier("waiter"))
		waiting <- x.Acquire(ctx)
	}()
	require.Eventually(t, func() bool {
		kids, _ := c1.Children(ctx, "/obj/lock")
		return len(kids) == 2
	}, 10*time.Second, 10*time.Millisecond)
	got, err = b.TryAcquireIdle(ctx, check)
	require.NoError(t, err)
	require.False(t, got)
	require.NoError(t, w.Release(ctx))
	require.NoError(t, <-waiting)

	// A check that fails: not taken.
	require.Eventually(t, func() bool {
		kids, _ := c1.Children(ctx, "/obj/lock")
		return len(kids) == 1
	}, 10*time.Second, 10*time.Millisecond)
	_, err = c1.Set(ctx, "/obj", []byte("1"), -1)
	require.NoError(t, err)

	// Idle directory: taken in one request, and it excludes others.
	c3 := zktest.ConnectChroot(t, chroot)
	idle := c3.NewLock("/obj/lock")
	kids, err = c1.Children(ctx, "/obj/lock")
	require.NoError(t, err)
	for _, k := range kids {
		require.NoError(t, c1.Delete(ctx, "/obj/lock/"+k, -1)) // the waiter's, so the directory is idle
	}
	_, err = idle.TryAcquireIdle(ctx, check)
	require.ErrorIs(t, err, zkclient.ErrPrecondition)
	before = c3.Ops().Total()
	got, err = idle.TryAcquireIdle(ctx, zkclient.CheckOp{Path: "/obj", Version: 1})
	require.NoError(t, err)
	require.True(t, got)
	require.Equal(t, int64(1), c3.Ops().Total()-before)
	require.True(t, idle.Held())
	got, err = c2.NewLock("/obj/lock").TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, got)
	require.NoError(t, idle.Release(ctx))
	got, err = c2.NewLock("/obj/lock").TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, got)
}
