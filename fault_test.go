package nodepool_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/simcloud"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// burst submits n single-node requests concurrently and runs each through
// the Zuul sequence; it returns how many ended fulfilled and checks no node
// was allocated twice.
func burst(t *testing.T, ctx context.Context, zk *zkclient.Client, n int, label string) (fulfilled int) {
	t.Helper()
	return burstThen(t, ctx, zk, n, label, nil)
}

// burstThen is burst calling submitted, when set, once every request has
// been submitted.
func burstThen(t *testing.T, ctx context.Context, zk *zkclient.Client, n int, label string, submitted func()) (fulfilled int) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]string{}
	var wg, subs sync.WaitGroup
	errs := make(chan error, n)
	subs.Add(n)
	if submitted != nil {
		go func() { subs.Wait(); submitted() }()
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := zuulsim.Submit(ctx, zk, []string{label}, zuulsim.Options{})
			subs.Done()
			if err != nil {
				errs <- err
				return
			}
			got, err := req.Wait(ctx)
			if err != nil {
				errs <- fmt.Errorf("request %s: %w", req.ID, err)
				return
			}
			mu.Lock()
			for _, id := range got.Nodes {
				if prev, dup := seen[id]; dup {
					errs <- fmt.Errorf("node %s allocated to %s and %s", id, prev, req.ID)
				}
				seen[id] = req.ID
			}
			fulfilled++
			mu.Unlock()
			ns, err := req.Accept(ctx)
			if err != nil {
				errs <- fmt.Errorf("accept %s: %w", req.ID, err)
				return
			}
			if err := ns.Return(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return fulfilled
}

// noLeaks checks, after cleanup, that every instance has a node record,
// every node record has an instance, and what remains is only ready,
// unallocated nodes (spares any later request may reuse).
func noLeaks(t *testing.T, ctx context.Context, l *nodepool.Launcher, zk *zkclient.Client, cloud, provider string) {
	t.Helper()
	var last string
	ok := assertEventually(90*time.Second, func() bool {
		l.CleanupPass(ctx)
		nodes, err := zk.Nodes(ctx, nil)
		if err != nil {
			return false
		}
		byID := map[string]*zkclient.Node{}
		for _, n := range nodes {
			byID[n.ID] = n
			if n.State != zkclient.NodeReady || n.AllocatedTo != "" {
				last = fmt.Sprintf("node %s is %s (allocated to %q)", n.ID, n.State, n.AllocatedTo)
				return false
			}
		}
		insts := simcloud.Get(cloud).Instances()
		ext := map[string]bool{}
		for _, s := range insts {
			ext[s.ID] = true
			if n := byID[s.Metadata[driver.MetaNodeID]]; n == nil || n.Provider != provider {
				last = fmt.Sprintf("instance %s of node %s has no node record", s.ID, s.Metadata[driver.MetaNodeID])
				return false
			}
		}
		for _, n := range nodes {
			if !ext[n.ExternalID] {
				last = fmt.Sprintf("node %s has no instance %s", n.ID, n.ExternalID)
				return false
			}
		}
		return true
	})
	require.True(t, ok, "cleanup did not converge: %s", last)
}

func assertEventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// TestSessionExpiryUnderLoad cuts the launcher off ZooKeeper for longer
// than its session timeout while requests are in flight.
func TestSessionExpiryUnderLoad(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	lzk, proxy := zktest.ConnectViaProxy(t, chroot, 2*time.Second)
	cloud := "cloud-" + chroot[1:]
	l := launchertest.Start(t, lzk, sprintf(`
labels:
  - name: small
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    boot-time: [0.1, 0.5]
    pools:
      - name: main
        max-servers: 20
        labels:
          - name: small
`, cloud), nodepool.WithCleanupInterval(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	sessions := lzk.Subscribe()
	defer lzk.Unsubscribe(sessions)
	go func() {
		time.Sleep(300 * time.Millisecond)
		proxy.Pause()
		time.Sleep(4 * time.Second)
		proxy.Resume()
	}()
	const n = 100
	got := burst(t, ctx, zk, n, "small")
	require.Equal(t, n, got, "every request is fulfilled")
	lost := false
	for !lost {
		select {
		case ev := <-sessions:
			lost = ev.State == zkclient.StateLost
		default:
			t.Fatal("the launcher's session did not expire; the test proved nothing")
		}
	}
	noLeaks(t, ctx, l, zk, cloud, "sim")
	t.Logf("session expiry: %d requests submitted, %d fulfilled", n, got)
}

// TestShortOutageLosesNothing cuts the connection for less than the
// session timeout: the session survives and the work continues.
func TestShortOutageLosesNothing(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	lzk, proxy := zktest.ConnectViaProxy(t, chroot, 6*time.Second)
	cloud := "cloud-" + chroot[1:]
	l := launchertest.Start(t, lzk, simYAML("sim", cloud, 20), nodepool.WithCleanupInterval(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	go func() {
		time.Sleep(200 * time.Millisecond)
		proxy.Pause()
		time.Sleep(1500 * time.Millisecond)
		proxy.Resume()
	}()
	const n = 60
	require.Equal(t, n, burst(t, ctx, zk, n, "small"))
	noLeaks(t, ctx, l, zk, cloud, "sim")
}

// TestHostileZnodes writes broken payloads where the launcher reads; it
// must log and skip them and keep serving.
func TestHostileZnodes(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	launchertest.StartChroot(t, chroot, simYAML("sim", cloud, 10))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	many := make([]string, 10000)
	for i := range many {
		many[i] = "\"small\""
	}
	payloads := [][]byte{
		[]byte(`{"state": "requested", "node_types": ["sma`),
		[]byte(`not json at all`),
		[]byte(`{"state": 42, "node_types": "small"}`),
		[]byte(`{"state": "exploded", "node_types": ["small"]}`),
		[]byte(`{"state": "requested", "node_types": {"a": 1}}`),
		[]byte(`[]`),
		[]byte(`{"state": "requested", "state_time": Infinity, "node_types": ["small"], "relative_priority": NaN}`),
		[]byte(`{"state": "requested", "node_types": [` + strings.Join(many, ", ") + `]}`),
		[]byte(`{"state": "requested", "node_types": ["small"], "requestor_data": "` + strings.Repeat("x", 900000) + `"}`),
	}
	var hostileReqs []string
	for _, p := range payloads {
		path, err := zk.Create(ctx, zkclient.RequestRoot+"/100-", p, zkclient.Sequential, true)
		require.NoError(t, err)
		hostileReqs = append(hostileReqs, zkclient.Base(path))
	}
	for _, p := range payloads[:6] {
		_, err := zk.Create(ctx, zkclient.NodeRoot+"/", p, zkclient.Sequential, true)
		require.NoError(t, err)
	}
	_, err := zk.Create(ctx, zkclient.NodeRoot+"/", nil, zkclient.Sequential, true)
	require.NoError(t, err)
	_, err = zk.Create(ctx, zkclient.ComponentPath(zkclient.KindPool)+"/evil", []byte(`{"supported_labels": 5}`), zkclient.Persistent, true)
	require.NoError(t, err)

	// A normal request is still served.
	ns := launchertest.Acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, ns.Return(ctx))

	// The 10,000-node request is declined (it can never fit), the readable
	// Infinity/NaN one is served, the unreadable ones are left untouched.
	for i, id := range hostileReqs {
		r, err := zk.GetRequest(ctx, id)
		switch i {
		case 6:
			require.Eventually(t, func() bool {
				r, err := zk.GetRequest(ctx, id)
				return err == nil && r.State == zkclient.RequestFulfilled
			}, 20*time.Second, 20*time.Millisecond, "a payload with Python's Infinity/NaN is read")
		case 7:
			require.Eventually(t, func() bool {
				r, err := zk.GetRequest(ctx, id)
				return err == nil && r.State == zkclient.RequestFailed
			}, 20*time.Second, 20*time.Millisecond, "a request naming 10,000 nodes is declined")
		case 8:
			require.Eventually(t, func() bool {
				r, err := zk.GetRequest(ctx, id)
				return err == nil && r.State == zkclient.RequestFulfilled
			}, 20*time.Second, 20*time.Millisecond, "a large but valid payload is served")
		default:
			require.Error(t, err, "payload %d stays unreadable", i)
			data, _, gerr := zk.Get(ctx, zkclient.RequestPath(id))
			require.NoError(t, gerr)
			require.Equal(t, payloads[i], data, "unreadable requests are never rewritten")
			_ = r
		}
	}
}

// TestBrokenProviderDoesNotStopOthers injects every kind of cloud fault in
// one provider while another serves normally.
func TestBrokenProviderDoesNotStopOthers(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	name := chroot[1:]
	l := launchertest.StartChroot(t, chroot, sprintf(`
labels:
  - name: small
  - name: flaky
providers:
  - name: broken
    driver: simcloud
    cloud: %[1]s-broken
    launch-retries: 2
    launch-timeout: 2
    api-latency: 0.05
    pools:
      - name: main
        labels:
          - name: flaky
  - name: healthy
    driver: simcloud
    cloud: %[1]s-healthy
    pools:
      - name: main
        labels:
          - name: small
`, name))
	broken := simcloud.Get(name + "-broken")
	broken.SetListError(errors.New("injected listing failure"))
	broken.SetCreateHang(true) // servers stay BUILD past launch-timeout
	broken.FailNextDeletes(3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	flaky, err := zuulsim.Submit(ctx, zk, []string{"flaky"}, zuulsim.Options{})
	require.NoError(t, err)
	require.Equal(t, 20, burst(t, ctx, zk, 20, "small"), "the healthy provider keeps serving")

	got, err := flaky.Wait(ctx)
	require.ErrorIs(t, err, zuulsim.ErrRequestFailed, "hung launches time out, retry, then the request is declined")
	require.Equal(t, zkclient.RequestFailed, got.State)

	// Once the cloud recovers, everything of the broken provider is removed.
	broken.SetCreateHang(false)
	broken.SetListError(nil)
	require.Eventually(t, func() bool {
		l.CleanupPass(ctx)
		nodes, _ := zk.Nodes(ctx, nil)
		return len(nodes) == 0 && len(broken.Instances()) == 0
	}, 60*time.Second, 200*time.Millisecond)
}

// TestThreeLaunchersBurst runs three launchers on one provider.
func TestThreeLaunchersBurst(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	for i := 0; i < 3; i++ {
		launchertest.StartChroot(t, chroot, simYAML("shared", cloud, 15))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	stop := make(chan struct{})
	peak := 0
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
		}
	}()
	require.Equal(t, 150, burst(t, ctx, zk, 150, "small"))
	close(stop)
	wg.Wait()
	require.LessOrEqual(t, peak, 15)
}

// TestZooKeeperRestartUnderLoad stops the ZooKeeper server process and
// starts it again while 300 requests are in flight.
func TestZooKeeperRestartUnderLoad(t *testing.T) {
	srv := zktest.StartServer(t)
	connect := func() *zkclient.Client {
		cfg := zktest.Config("/nodepool-restart")
		cfg.Hosts = []string{srv.Addr}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := zkclient.Connect(ctx, cfg)
		require.NoError(t, err)
		t.Cleanup(c.Close)
		return c
	}
	zk := connect()
	cloud := "cloud-restart-" + t.Name()
	l := launchertest.Start(t, connect(), simYAML("sim", cloud, 30), nodepool.WithCleanupInterval(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	restart := func() {
		// All 300 are in ZooKeeper; most are still being served.
		time.Sleep(50 * time.Millisecond)
		srv.Stop()
		time.Sleep(2 * time.Second)
		srv.Start(t)
	}
	const n = 300
	got := burstThen(t, ctx, zk, n, "small", restart)
	require.Equal(t, n, got, "every request is fulfilled")
	noLeaks(t, ctx, l, zk, cloud, "sim")
	t.Logf("ZooKeeper restart: %d requests submitted, %d fulfilled", n, got)
}
