package nodepool_test

import (
	"context"
	"sync"
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

const simConfig = `
labels:
  - name: small
  - name: large
providers:
  - name: %s
    driver: simcloud
    cloud: %s
    pools:
      - name: main
        max-servers: %d
        labels:
          - name: small
          - name: large
`

func simYAML(provider, cloud string, maxServers int) string {
	return sprintf(simConfig, provider, cloud, maxServers)
}

func TestRequestsFulfilledInOrderAndDeletedAfterUse(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	launchertest.StartChroot(t, chroot, simYAML("sim", cloud, 10))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	req, err := zuulsim.Submit(ctx, zk, []string{"large", "small", "large"}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	require.Len(t, got.Nodes, 3)
	for i, id := range got.Nodes {
		n, err := zk.GetNode(ctx, id)
		require.NoError(t, err)
		require.Equal(t, zkclient.NodeReady, n.State)
		require.Equal(t, []string{got.NodeTypes[i]}, n.Type, "nodes follow node_types order")
		require.Equal(t, req.ID, n.AllocatedTo)
		require.NotEmpty(t, n.HostKeys)
		require.NotEmpty(t, n.ExternalID)
	}
	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))
	require.Eventually(t, func() bool {
		ids, _ := zk.NodeIDs(ctx)
		return len(ids) == 0
	}, 30*time.Second, 50*time.Millisecond, "used nodes are deleted")
	require.Eventually(t, func() bool { return len(simcloud.Get(cloud).Instances()) == 0 }, 30*time.Second, 50*time.Millisecond)
}

func TestUnknownLabelFailsAfterEveryPoolDeclined(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	launchertest.StartChroot(t, chroot, simYAML("sim", "cloud-"+chroot[1:], 10))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := zuulsim.Submit(ctx, zk, []string{"no-such-label"}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.ErrorIs(t, err, zuulsim.ErrRequestFailed)
	require.Equal(t, zkclient.RequestFailed, got.State)
	require.Len(t, got.DeclinedBy, 1)
}

func TestTwoLaunchersDifferentProviders(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	launchertest.StartChroot(t, chroot, sprintf(`
labels:
  - name: small
providers:
  - name: first
    driver: simcloud
    cloud: %s-a
    pools:
      - name: main
        labels:
          - name: small
`, chroot[1:]))
	launchertest.StartChroot(t, chroot, sprintf(`
labels:
  - name: special
providers:
  - name: second
    driver: simcloud
    cloud: %s-b
    pools:
      - name: main
        labels:
          - name: special
`, chroot[1:]))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.Eventually(t, func() bool {
		cs, _ := zk.Components(ctx, zkclient.KindPool)
		return len(cs) == 2
	}, 30*time.Second, 20*time.Millisecond)
	req, err := zuulsim.Submit(ctx, zk, []string{"special"}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	n, err := zk.GetNode(ctx, got.Nodes[0])
	require.NoError(t, err)
	require.Equal(t, "second", n.Provider)
}

func TestTwoLaunchersShareProviderWithinMaxServers(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	const maxServers = 20
	launchertest.StartChroot(t, chroot, simYAML("shared", cloud, maxServers))
	launchertest.StartChroot(t, chroot, simYAML("shared", cloud, maxServers))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	require.Eventually(t, func() bool {
		cs, _ := zk.Components(ctx, zkclient.KindPool)
		return len(cs) == 2
	}, 30*time.Second, 20*time.Millisecond)

	// Sample the provider's instances and node records throughout.
	sampler := zktest.ConnectChroot(t, chroot)
	stop := make(chan struct{})
	var peak, peakZK int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if n := len(simcloud.Get(cloud).Instances()); n > peak {
				peak = n
			}
			if ids, err := sampler.NodeIDs(ctx); err == nil && len(ids) > peakZK {
				peakZK = len(ids)
			}
		}
	}()

	const total = 300
	allocated := map[string]string{}
	var mu sync.Mutex
	var cwg sync.WaitGroup
	errs := make(chan error, total)
	for i := 0; i < total; i++ {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
			if err != nil {
				errs <- err
				return
			}
			got, err := req.Wait(ctx)
			if err != nil {
				errs <- err
				return
			}
			if got.State != zkclient.RequestFulfilled {
				errs <- errorf("request %s ended %s", req.ID, got.State)
				return
			}
			mu.Lock()
			for _, id := range got.Nodes {
				if prev, dup := allocated[id]; dup {
					errs <- errorf("node %s allocated to %s and %s", id, prev, req.ID)
				}
				allocated[id] = req.ID
			}
			mu.Unlock()
			ns, err := req.Accept(ctx)
			if err != nil {
				errs <- err
				return
			}
			if err := ns.Return(ctx); err != nil {
				errs <- err
			}
		}()
	}
	cwg.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, allocated, total)
	require.LessOrEqual(t, peak, maxServers, "instances in the cloud never exceed max-servers")
	require.LessOrEqual(t, peakZK, maxServers, "node records never exceed max-servers")
	t.Logf("peak instances %d, peak node records %d, max-servers %d", peak, peakZK, maxServers)
}

func TestMinReadyRefills(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	launchertest.StartChroot(t, chroot, sprintf(`
labels:
  - name: small
    min-ready: 2
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    pools:
      - name: main
        max-servers: 5
        labels:
          - name: small
`, "cloud-"+chroot[1:]))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	readyUnallocated := func() int {
		nodes, _ := zk.Nodes(ctx, nil)
		c := 0
		for _, n := range nodes {
			if n.State == zkclient.NodeReady && n.AllocatedTo == "" {
				c++
			}
		}
		return c
	}
	require.Eventually(t, func() bool { return readyUnallocated() == 2 }, 20*time.Second, 50*time.Millisecond)
	req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))
	require.Eventually(t, func() bool { return readyUnallocated() == 2 }, 20*time.Second, 50*time.Millisecond, "min-ready refills")
}

func TestLaunchRetriesThenDecline(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	launchertest.StartChroot(t, chroot, simYAML("sim", cloud, 10))
	simcloud.Get(cloud).FailNextCreates(3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.ErrorIs(t, err, zuulsim.ErrRequestFailed)
	require.Equal(t, zkclient.RequestFailed, got.State, "three failed attempts decline the request; the only pool declined")
	require.Eventually(t, func() bool {
		ids, _ := zk.NodeIDs(ctx)
		return len(ids) == 0
	}, 30*time.Second, 50*time.Millisecond, "failed node is deleted")
}

func TestTransientCreateErrorsAreRiddenOut(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	launchertest.StartChroot(t, chroot, simYAML("sim", cloud, 10))
	// Three generic failures decline the request (TestLaunchRetriesThenDecline);
	// three transient ones are retried within one attempt.
	simcloud.Get(cloud).FailNextCreatesWith(3, driver.TransientError("simcloud: API busy"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	require.Len(t, got.Nodes, 1)
	require.Equal(t, 4, simcloud.Get(cloud).Counters().Creates, "three refused calls, then the one that created the server")
	require.Len(t, simcloud.Get(cloud).Instances(), 1, "no server left from the refused calls")
}
