package nodepool_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver/simcloud"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/status"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// acquire submits a request, waits for it and takes its nodes in use.

func TestPoolLimitPausesAndResumes(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	launchertest.StartChroot(t, chroot, simYAML("sim", "cloud-"+chroot[1:], 2))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := launchertest.Acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{})
	launchertest.Acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{})

	waiting, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	var e zkclient.Explanation
	require.Eventually(t, func() bool {
		var ok bool
		e, ok = launchertest.Explanation(ctx, zk, waiting.ID)
		return ok && e.Status == zkclient.ExplainPaused
	}, 20*time.Second, 20*time.Millisecond, "the request pauses at the pool limit")
	require.Equal(t, "pool max-servers", e.Limit)
	require.Equal(t, float64(2), e.Used)
	require.Equal(t, float64(1), e.Needed)
	require.Equal(t, float64(2), e.Max)
	r, err := zk.GetRequest(ctx, waiting.ID)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestPending, r.State)
	comps, err := zk.Components(ctx, zkclient.KindPool)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		comps, _ = zk.Components(ctx, zkclient.KindPool)
		return len(comps) == 1 && comps[0].Paused
	}, 30*time.Second, 20*time.Millisecond, "the pool advertises paused")

	// The CLI's explanation names the limit and the numbers.
	tbl, err := (&status.Source{ZK: zk}).RequestExplain(ctx, waiting.ID)
	require.NoError(t, err)
	text := tbl.Text()
	require.Contains(t, text, "pool max-servers: 2 used + 1 needed > 2")
	require.True(t, strings.Contains(text, "paused"))

	require.NoError(t, a.Return(ctx))
	got, err := waiting.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State, "the request resumes once a node is freed")
}

func TestRequestThatNeverFitsIsDeclined(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	launchertest.StartChroot(t, chroot, simYAML("sim", "cloud-"+chroot[1:], 2))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := zuulsim.Submit(ctx, zk, []string{"small", "small", "small"}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.ErrorIs(t, err, zuulsim.ErrRequestFailed)
	require.Equal(t, zkclient.RequestFailed, got.State)
}

func TestTenantAtItsLimitWaitsWhileAnotherIsServed(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	launchertest.StartChroot(t, chroot, sprintf(`
labels:
  - name: small
tenant-resource-limits:
  - tenant-name: busy
    max-servers: 1
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    pools:
      - name: main
        max-servers: 10
        labels:
          - name: small
`, "cloud-"+chroot[1:]))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first := launchertest.Acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{Tenant: "busy"})
	blocked, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{Tenant: "busy"})
	require.NoError(t, err)
	launchertest.Acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{Tenant: "other"})
	var e zkclient.Explanation
	require.Eventually(t, func() bool {
		var ok bool
		e, ok = launchertest.Explanation(ctx, zk, blocked.ID)
		return ok && e.Status == zkclient.ExplainDeferred
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, "tenant busy max-servers", e.Limit)
	r, err := zk.GetRequest(ctx, blocked.ID)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestRequested, r.State, "a tenant wait leaves the request untouched")
	require.NoError(t, first.Return(ctx))
	got, err := blocked.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
}

func TestCloudLimitPauses(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	launchertest.StartChroot(t, chroot, sprintf(`
labels:
  - name: small
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    quota:
      instances: 1
    pools:
      - name: main
        labels:
          - name: small
`, cloud))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	held := launchertest.Acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{})
	waiting, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		e, ok := launchertest.Explanation(ctx, zk, waiting.ID)
		return ok && e.Status == zkclient.ExplainPaused && e.Limit == "cloud instances"
	}, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, 1, len(simcloud.Get(cloud).Instances()))
	require.NoError(t, held.Return(ctx))
	got, err := waiting.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
}

func TestIdleReadyNodeFreedBeforePausing(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	launchertest.StartChroot(t, chroot, sprintf(`
labels:
  - name: small
  - name: large
    min-ready: 1
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    pools:
      - name: main
        max-servers: 1
        labels:
          - name: small
          - name: large
`, "cloud-"+chroot[1:]))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var idle string
	require.Eventually(t, func() bool {
		nodes, _ := zk.Nodes(ctx, nil)
		for _, n := range nodes {
			if n.State == zkclient.NodeReady && n.AllocatedTo == "" && n.HasLabel("large") {
				idle = n.ID
				return true
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond, "min-ready fills the only slot")
	req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State, "the idle node was deleted to make room")
	_, err = zk.GetNode(ctx, idle)
	require.Error(t, err)
}

func TestMinReadyRequestDeclinedInsteadOfPausing(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	launchertest.StartChroot(t, chroot, sprintf(`
labels:
  - name: small
    min-ready: 3
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    pools:
      - name: main
        max-servers: 2
        labels:
          - name: small
`, "cloud-"+chroot[1:]))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.Eventually(t, func() bool {
		nodes, _ := zk.Nodes(ctx, nil)
		ready := 0
		for _, n := range nodes {
			if n.State == zkclient.NodeReady {
				ready++
			}
		}
		return ready == 2
	}, 20*time.Second, 20*time.Millisecond)
	// The pool never pauses for min-ready, so a demand request is served by
	// reusing a ready node right away.
	for i := 0; i < 20; i++ {
		comps, err := zk.Components(ctx, zkclient.KindPool)
		require.NoError(t, err)
		require.Len(t, comps, 1)
		require.False(t, comps[0].Paused, "a min-ready request at quota is declined, not paused")
		time.Sleep(50 * time.Millisecond)
	}
	got := launchertest.Acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, got.Return(ctx))
}
