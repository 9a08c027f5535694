package nodepool_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver/simcloud"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// A request too large to serve fails alone: the launcher's session never
// drops, good requests submitted next to it are served, and a request so
// large that even its declined version does not fit is left alone.
func TestPoisonRequestFailsAlone(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	lzk := zktest.ConnectChroot(t, chroot)
	cloud := "cloud-" + chroot[1:]
	l := launchertest.Start(t, lzk, simYAML("sim", cloud, 10))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sessions := lzk.Subscribe()
	defer lzk.Unsubscribe(sessions)

	// A requestor of about a megabyte would make the node record too
	// large; a requestor of 100 kB would make each node record of a
	// request of ten nodes 100 kB; a padding key near the packet limit
	// makes every update of the request itself too large.
	big := &zkclient.NodeRequest{State: zkclient.RequestRequested, NodeTypes: []string{"small"}, Reuse: true,
		Requestor: strings.Repeat("r", 1000_000)}
	bigID, err := zk.SubmitRequest(ctx, big, "100", false)
	require.NoError(t, err)
	long := &zkclient.NodeRequest{State: zkclient.RequestRequested, NodeTypes: []string{"small"}, Reuse: true,
		Requestor: strings.Repeat("r", 100_000)}
	longID, err := zk.SubmitRequest(ctx, long, "100", false)
	require.NoError(t, err)
	padding, _ := json.Marshal(strings.Repeat("p", zkclient.DefaultMaxPacket-600))
	padded := &zkclient.NodeRequest{State: zkclient.RequestRequested, NodeTypes: []string{"small"}, Reuse: true,
		Requestor: "zuul", Extra: []zkclient.Member{{Key: "padding", Value: padding}}}
	paddedID, err := zk.SubmitRequest(ctx, padded, "100", false)
	require.NoError(t, err)

	start := time.Now()
	for range 3 {
		ns := launchertest.Acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{})
		require.NoError(t, ns.Return(ctx))
	}
	t.Logf("3 good requests next to 2 poison ones served in %v", time.Since(start).Round(time.Millisecond))

	require.Eventually(t, func() bool {
		r, err := zk.GetRequest(ctx, bigID)
		return err == nil && r.State == zkclient.RequestFailed
	}, 20*time.Second, 100*time.Millisecond, "the oversized request fails")
	ex, ok := launchertest.Explanation(ctx, zk, bigID)
	require.True(t, ok)
	require.Contains(t, ex.Reason, "request too large")
	require.Eventually(t, func() bool {
		r, err := zk.GetRequest(ctx, longID)
		return err == nil && r.State == zkclient.RequestFailed
	}, 20*time.Second, 100*time.Millisecond, "the request with a long requestor fails")
	ex, ok = launchertest.Explanation(ctx, zk, longID)
	require.True(t, ok)
	require.Contains(t, ex.Reason, "requestor too long: 100000 bytes")

	r, err := zk.GetRequest(ctx, paddedID)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestRequested, r.State, "a request whose update cannot be stored is left as it is")
	require.NotEmpty(t, r.Extra, "and loses nothing")

	nodes, err := zk.Nodes(ctx, nil)
	require.NoError(t, err)
	for _, n := range nodes {
		require.NotEqual(t, bigID, n.AllocatedTo)
		require.NotEqual(t, longID, n.AllocatedTo)
		require.NotEqual(t, paddedID, n.AllocatedTo)
	}
	for {
		select {
		case ev := <-sessions:
			require.Equal(t, zkclient.StateConnected, ev.State, "the launcher's connection never dropped")
			continue
		default:
		}
		break
	}
	require.True(t, lzk.Connected())
	_ = l
}

// A cloud that cannot be asked for its images (failed authentication)
// fails requests with that reason, not with "image not found".
func TestImageLookupFailureReason(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	launchertest.StartChroot(t, chroot, simYAML("sim", cloud, 10))
	simcloud.Get(cloud).SetImageLookupError(errors.New("authentication failed (HTTP 401)"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	var ex zkclient.Explanation
	require.Eventually(t, func() bool {
		var ok bool
		ex, ok = launchertest.Explanation(ctx, zk, req.ID)
		return ok && ex.Status == zkclient.ExplainDeclined
	}, 20*time.Second, 50*time.Millisecond)
	_, err = req.Wait(ctx)
	require.ErrorIs(t, err, zuulsim.ErrRequestFailed)
	require.Contains(t, ex.Reason, "cannot look up cloud image default of label small: authentication failed (HTTP 401)")
	require.NotContains(t, ex.Reason, "not found")

	simcloud.Get(cloud).SetImageLookupError(nil)
	ns := launchertest.Acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, ns.Return(ctx))
}

// A server reporting a host key too large for a node record fails its
// launch (the node and its instance are cleaned up) instead of retrying
// the write for ever; the launcher keeps serving.
func TestOversizedHostKeyFailsLaunch(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	lzk := zktest.ConnectChroot(t, chroot)
	cloud := "cloud-" + chroot[1:]
	launchertest.Start(t, lzk, sprintf(`
labels:
  - name: small
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    launch-retries: 1
    pools:
      - name: main
        max-servers: 10
        labels:
          - name: small
`, cloud))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	simcloud.Get(cloud).SetHostKey("ssh-ed25519 " + strings.Repeat("A", zkclient.DefaultMaxPacket))
	req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	_, err = req.Wait(ctx)
	require.ErrorIs(t, err, zuulsim.ErrRequestFailed)

	simcloud.Get(cloud).SetHostKey("")
	ns := launchertest.Acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, ns.Return(ctx))
	require.Eventually(t, func() bool {
		nodes, err := zk.Nodes(ctx, nil)
		return err == nil && len(nodes) == 0 && len(simcloud.Get(cloud).Instances()) == 0
	}, 30*time.Second, 100*time.Millisecond, "the failed node and its instance are deleted")
	require.True(t, lzk.Connected())
}
