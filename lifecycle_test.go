package nodepool_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/simcloud"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

func TestMaxReadyAgeReplacesOldReadyNodes(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	l := launchertest.StartChroot(t, chroot, sprintf(`
labels:
  - name: small
    min-ready: 1
    max-ready-age: 1
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    pools:
      - name: main
        labels:
          - name: small
`, "cloud-"+chroot[1:]))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var first string
	require.Eventually(t, func() bool {
		nodes, _ := zk.Nodes(ctx, nil)
		for _, n := range nodes {
			if n.State == zkclient.NodeReady && n.AllocatedTo == "" {
				first = n.ID
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond)
	time.Sleep(1100 * time.Millisecond)
	l.CleanupPass(ctx)
	require.Eventually(t, func() bool {
		_, err := zk.GetNode(ctx, first)
		return err != nil
	}, 20*time.Second, 50*time.Millisecond, "the old ready node is deleted")
	require.Eventually(t, func() bool {
		nodes, _ := zk.Nodes(ctx, nil)
		for _, n := range nodes {
			if n.State == zkclient.NodeReady && n.ID != first {
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond, "min-ready replaces it")
}

func TestCloudQuotaErrorAbortsWithoutUsingARetry(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	launchertest.StartChroot(t, chroot, sprintf(`
labels:
  - name: small
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    launch-retries: 1
    pools:
      - name: main
        ignore-provider-quota: true
        labels:
          - name: small
`, cloud))
	c := simcloud.Get(cloud)
	c.SetQuota(0, -1, -1) // the cloud refuses every server
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	// The launch is aborted (not failed): the request stays pending, paused.
	require.Eventually(t, func() bool {
		r, err := zk.GetRequest(ctx, req.ID)
		return err == nil && r.State == zkclient.RequestPending && c.Counters().Creates >= 1
	}, 20*time.Second, 20*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	r, err := zk.GetRequest(ctx, req.ID)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestPending, r.State, "with launch-retries 1 a counted failure would have declined it")
	c.SetQuota(-1, -1, -1)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
}

func TestHoldAndHoldExpiry(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	l := launchertest.StartChroot(t, chroot, simYAML("sim", "cloud-"+chroot[1:], 10))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := zuulsim.Submit(ctx, zk, []string{"small", "small"}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Hold(ctx, "tenant project job .*", "debugging", 1))
	l.CleanupPass(ctx)
	for _, id := range got.Nodes {
		n, err := zk.GetNode(ctx, id)
		require.NoError(t, err)
		require.Equal(t, zkclient.NodeHold, n.State, "held nodes are kept")
	}
	time.Sleep(1100 * time.Millisecond)
	l.CleanupPass(ctx)
	require.Eventually(t, func() bool {
		ids, _ := zk.NodeIDs(ctx)
		return len(ids) == 0
	}, 20*time.Second, 50*time.Millisecond, "expired holds are deleted")
}

func TestLeakedInstanceRemovedAfterTwoPasses(t *testing.T) {
	_, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	l := launchertest.StartChroot(t, chroot, simYAML("sim", cloud, 10))
	c := simcloud.Get(cloud)
	leaked := c.AddInstance(simcloud.Server{Name: "np9999999999", Status: "ACTIVE",
		Metadata: map[string]string{driver.MetaProviderName: "sim", driver.MetaNodeID: "9999999999", driver.MetaPoolName: "main"}})
	foreign := c.AddInstance(simcloud.Server{Name: "someone-elses", Status: "ACTIVE"})
	other := c.AddInstance(simcloud.Server{Name: "other-provider", Status: "ACTIVE",
		Metadata: map[string]string{driver.MetaProviderName: "not-ours", driver.MetaNodeID: "9999999998"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l.CleanupPass(ctx)
	_, ok := c.Server(leaked.ID)
	require.True(t, ok, "a leak candidate survives its first pass")
	l.CleanupPass(ctx)
	_, ok = c.Server(leaked.ID)
	require.False(t, ok, "the leaked instance is deleted on the second pass")
	_, ok = c.Server(foreign.ID)
	require.True(t, ok, "instances without our metadata are never touched")
	_, ok = c.Server(other.ID)
	require.True(t, ok, "other providers' instances are never touched")
}

func TestUnlockedInUseNodeIsDeleted(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	launchertest.StartChroot(t, chroot, simYAML("sim", "cloud-"+chroot[1:], 10))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	n, err := zk.GetNode(ctx, got.Nodes[0])
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeInUse, n.State)
	require.NoError(t, ns.Unlock(ctx)) // the executor died
	require.Eventually(t, func() bool {
		_, err := zk.GetNode(ctx, got.Nodes[0])
		return err != nil
	}, 20*time.Second, 50*time.Millisecond)
}

func TestCancelledRequestFreesItsReadyNodes(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	launchertest.StartChroot(t, chroot, sprintf(`
labels:
  - name: small
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    boot-time: 0.3
    pools:
      - name: main
        labels:
          - name: small
`, cloud))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(simcloud.Get(cloud).Instances()) == 1 }, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, req.Cancel(ctx))
	require.Eventually(t, func() bool {
		nodes, _ := zk.Nodes(ctx, nil)
		return len(nodes) == 1 && nodes[0].State == zkclient.NodeReady && nodes[0].AllocatedTo == ""
	}, 20*time.Second, 50*time.Millisecond, "the node becomes a reusable ready node")
	// A new request reuses it instead of launching.
	req2, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req2.Wait(ctx)
	require.NoError(t, err)
	nodes, _ := zk.Nodes(ctx, nil)
	require.Len(t, nodes, 1)
	require.Equal(t, nodes[0].ID, got.Nodes[0])
	require.Equal(t, 1, simcloud.Get(cloud).Counters().Creates)
}
