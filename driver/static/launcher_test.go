package static_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/sshdtest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

const staticConfig = `
labels:
  - name: static-a
providers:
  - name: static
    driver: static
    pools:
      - name: main
        nodes:
%s`

func staticHost(name string, port, jobs int) string {
	return fmt.Sprintf(`          - name: %s
            labels: [static-a]
            connection-port: %d
            max-parallel-jobs: %d
            timeout: 2
`, name, port, jobs)
}

// startStatic runs a launcher whose config file can be rewritten.
func startStatic(t *testing.T, chroot, yaml string) (write func(string)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	write = func(s string) {
		tmp := path + ".tmp"
		require.NoError(t, os.WriteFile(tmp, []byte(s), 0o600))
		require.NoError(t, os.Rename(tmp, path))
	}
	write(yaml)
	cfg, err := nodepool.LoadConfig(path, "")
	require.NoError(t, err)
	l, err := nodepool.NewLauncher(cfg, nodepool.WithZooKeeper(zktest.ConnectChroot(t, chroot)),
		nodepool.WithConfigFile(path, ""), nodepool.WithCleanupInterval(time.Second))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, l.Ready, 20*time.Second, 20*time.Millisecond)
	return write
}

func staticNodes(ctx context.Context, zk *zkclient.Client) []*zkclient.Node {
	nodes, _ := zk.Nodes(ctx, nil)
	var out []*zkclient.Node
	for _, n := range nodes {
		if n.Provider == "static" {
			out = append(out, n)
		}
	}
	return out
}

func TestStaticNodesCarryTheServersHostKeys(t *testing.T) {
	srv := sshdtest.Start(t)
	zk, chroot := zktest.Connect(t)
	startStatic(t, chroot, fmt.Sprintf(staticConfig, staticHost(srv.Host, srv.Port, 2)))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.Eventually(t, func() bool { return len(staticNodes(ctx, zk)) == 2 }, 20*time.Second, 50*time.Millisecond)
	want := append([]string(nil), srv.HostKeys...)
	sort.Strings(want)
	slots := map[int]bool{}
	for _, n := range staticNodes(ctx, zk) {
		require.Equal(t, zkclient.NodeReady, n.State)
		require.Equal(t, zkclient.StaticLauncher, n.Launcher)
		require.Equal(t, srv.Host, n.ExternalID)
		require.Equal(t, srv.Host, n.Hostname)
		require.Equal(t, srv.Port, n.Port())
		require.Empty(t, n.AllocatedTo)
		got := append([]string(nil), n.HostKeys...)
		sort.Strings(got)
		require.Equal(t, want, got, "recorded host keys are the server's")
		require.NotNil(t, n.Slot)
		slots[*n.Slot] = true
	}
	require.Equal(t, map[int]bool{0: true, 1: true}, slots)
}

func TestStaticMaxParallelJobs(t *testing.T) {
	srv := sshdtest.Start(t)
	zk, chroot := zktest.Connect(t)
	startStatic(t, chroot, fmt.Sprintf(staticConfig, staticHost(srv.Host, srv.Port, 2)))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.Eventually(t, func() bool { return len(staticNodes(ctx, zk)) == 2 }, 20*time.Second, 50*time.Millisecond)
	first := launchertest.Acquire(t, ctx, zk, []string{"static-a"}, zuulsim.Options{})
	launchertest.Acquire(t, ctx, zk, []string{"static-a"}, zuulsim.Options{})
	third, err := zuulsim.Submit(ctx, zk, []string{"static-a"}, zuulsim.Options{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		e, ok := launchertest.Explanation(ctx, zk, third.ID)
		return ok && e.Status == zkclient.ExplainDeferred
	}, 30*time.Second, 20*time.Millisecond)
	for i := 0; i < 10; i++ {
		r, err := zk.GetRequest(ctx, third.ID)
		require.NoError(t, err)
		require.Equal(t, zkclient.RequestRequested, r.State, "the third request waits undeclined")
		require.Empty(t, r.DeclinedBy)
		inUse := 0
		for _, n := range staticNodes(ctx, zk) {
			if n.State == zkclient.NodeInUse {
				inUse++
			}
		}
		require.Equal(t, 2, inUse, "never three allocations of one host")
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, first.Return(ctx))
	got, err := third.Wait(ctx)
	require.NoError(t, err, "the returned slot is re-registered and serves the third request")
	require.Equal(t, zkclient.RequestFulfilled, got.State)
}

func TestStaticHostWhoseScanFailsIsRetried(t *testing.T) {
	srv := sshdtest.Start(t)
	srv.Stop()
	zk, chroot := zktest.Connect(t)
	startStatic(t, chroot, fmt.Sprintf(staticConfig, staticHost(srv.Host, srv.Port, 1)))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	time.Sleep(3 * time.Second)
	require.Empty(t, staticNodes(ctx, zk), "an unreachable host is not offered")
	srv.Restart(t)
	require.Eventually(t, func() bool { return len(staticNodes(ctx, zk)) == 1 }, 30*time.Second, 100*time.Millisecond,
		"the host is registered once it answers")
}

func TestStaticHostRemovedWhileInUse(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	write := startStatic(t, chroot, fmt.Sprintf(staticConfig, staticHost("fake-host-1", 22, 1)+staticHost("fake-host-2", 22, 1)))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.Eventually(t, func() bool { return len(staticNodes(ctx, zk)) == 2 }, 20*time.Second, 50*time.Millisecond)
	held := launchertest.Acquire(t, ctx, zk, []string{"static-a"}, zuulsim.Options{})
	usedHost := held.Nodes[0].Data.ExternalID
	other := "fake-host-1"
	if usedHost == other {
		other = "fake-host-2"
	}
	// Remove both hosts: the idle one goes at once, the used one stays.
	write(fmt.Sprintf(staticConfig, staticHost("fake-host-3", 22, 1)))
	require.Eventually(t, func() bool {
		hosts := map[string]zkclient.NodeState{}
		for _, n := range staticNodes(ctx, zk) {
			hosts[n.ExternalID] = n.State
		}
		_, otherThere := hosts[other]
		return !otherThere && hosts[usedHost] == zkclient.NodeInUse && hosts["fake-host-3"] == zkclient.NodeReady
	}, 20*time.Second, 50*time.Millisecond)
	require.NoError(t, held.Return(ctx))
	require.Eventually(t, func() bool {
		for _, n := range staticNodes(ctx, zk) {
			if n.ExternalID == usedHost {
				return false
			}
		}
		return true
	}, 20*time.Second, 50*time.Millisecond, "the removed host disappears once returned")
	time.Sleep(1500 * time.Millisecond)
	for _, n := range staticNodes(ctx, zk) {
		require.NotEqual(t, usedHost, n.ExternalID, "a removed host is not re-registered")
	}
}
