package zkclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

// waitState reads session events until want arrives, returning the states
// seen on the way.
func waitState(t *testing.T, ch <-chan zkclient.SessionEvent, want zkclient.SessionState, d time.Duration) []zkclient.SessionState {
	t.Helper()
	var seen []zkclient.SessionState
	timeout := time.After(d)
	for {
		select {
		case ev := <-ch:
			seen = append(seen, ev.State)
			if ev.State == want {
				return seen
			}
		case <-timeout:
			t.Fatalf("no %v session event within %v (saw %v)", want, d, seen)
		}
	}
}

func TestSessionLossDropsLocks(t *testing.T) {
	direct, chroot := zktest.Connect(t)
	c, proxy := zktest.ConnectViaProxy(t, chroot, 2*time.Second)
	ctx := ctxT(t, 60*time.Second)

	// Records to write under locks.
	n := &zkclient.Node{State: zkclient.NodeReady, Type: []string{"label"}}
	_, err := c.CreateNode(ctx, n)
	require.NoError(t, err)
	req := &zkclient.NodeRequest{State: zkclient.RequestRequested, NodeTypes: []string{"label"}, Reuse: true}
	_, err = direct.SubmitRequest(ctx, req, "200", false)
	require.NoError(t, err)

	nl := c.NodeLock(n.ID)
	require.NoError(t, nl.Acquire(ctx))
	rl := c.RequestLock(req.ID)
	require.NoError(t, rl.Acquire(ctx))
	require.NoError(t, c.StoreNode(ctx, n, nl), "write while the lock is held")
	oldSession := c.SessionID()
	lost := nl.Lost()
	require.NotNil(t, lost)

	events := c.Subscribe()
	defer c.Unsubscribe(events)
	proxy.Pause()
	seen := waitState(t, events, zkclient.StateSuspended, 10*time.Second)
	require.Equal(t, []zkclient.SessionState{zkclient.StateSuspended}, seen)
	require.False(t, c.Connected())
	// Stay away well past the 2 s session timeout, so the server expires it.
	time.Sleep(5 * time.Second)
	proxy.Resume()
	waitState(t, events, zkclient.StateLost, 20*time.Second)
	waitState(t, events, zkclient.StateConnected, 20*time.Second)
	require.True(t, c.Connected())
	require.NotEqual(t, oldSession, c.SessionID(), "a new session")

	select {
	case <-lost:
	default:
		t.Fatal("Lost() channel not closed")
	}
	require.False(t, nl.Held())
	require.False(t, rl.Held())

	n.Comment = "must not be written"
	require.ErrorIs(t, c.StoreNode(ctx, n, nl), zkclient.ErrLockLost)
	req.State = zkclient.RequestPending
	require.ErrorIs(t, c.StoreRequest(ctx, req, rl), zkclient.ErrLockLost)
	got, err := direct.GetNode(ctx, n.ID)
	require.NoError(t, err)
	require.Empty(t, got.Comment)
	gotReq, err := direct.GetRequest(ctx, req.ID)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestRequested, gotReq.State)

	// The server removed the ephemeral contenders: others may lock now.
	ok, err := direct.NodeLock(n.ID).TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = direct.RequestLock(req.ID).TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)

	// Releasing a lost lock is not an error, and the client works again.
	require.NoError(t, nl.Release(ctx))
	require.NoError(t, rl.Release(ctx))
	_, err = c.GetNode(ctx, n.ID)
	require.NoError(t, err)
}

// TestSessionSuspendKeepsLocks: a short disconnection (shorter than the
// session timeout) keeps the session and therefore the lock.
func TestSessionSuspendKeepsLocks(t *testing.T) {
	direct, chroot := zktest.Connect(t)
	c, proxy := zktest.ConnectViaProxy(t, chroot, 8*time.Second)
	ctx := ctxT(t, 60*time.Second)
	n := &zkclient.Node{State: zkclient.NodeReady}
	_, err := c.CreateNode(ctx, n)
	require.NoError(t, err)
	nl := c.NodeLock(n.ID)
	require.NoError(t, nl.Acquire(ctx))
	sid := c.SessionID()

	events := c.Subscribe()
	defer c.Unsubscribe(events)
	proxy.Pause()
	waitState(t, events, zkclient.StateSuspended, 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	proxy.Resume()
	seen := waitState(t, events, zkclient.StateConnected, 20*time.Second)
	require.NotContains(t, seen, zkclient.StateLost)
	require.Equal(t, sid, c.SessionID())
	require.True(t, nl.Held())
	require.NoError(t, c.StoreNode(ctx, n, nl))
	ok, err := direct.NodeLock(n.ID).TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, nl.Release(context.Background()))
}
