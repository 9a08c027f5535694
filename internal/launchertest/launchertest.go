// Package launchertest starts launchers for tests: a nodepool.Launcher on
// a configuration given as YAML text, against the test ZooKeeper, stopped
// (and checked to stop) when the test ends. Driver packages use it for
// their end-to-end tests through ZooKeeper.
package launchertest

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/builder"
	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Start writes yaml to a file, loads it, runs a launcher on zk with opts
// until the test ends, and returns it once it is ready. The launcher's
// hostname is derived from the test's name.
func Start(t testing.TB, zk *zkclient.Client, yaml string, opts ...nodepool.Option) *nodepool.Launcher {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	cfg, err := config.Load(path, "")
	require.NoError(t, err)
	opts = append([]nodepool.Option{nodepool.WithZooKeeper(zk), nodepool.WithHostname("test-" + strings.ReplaceAll(t.Name(), "/", "-"))}, opts...)
	l, err := nodepool.NewLauncher(cfg, opts...)
	require.NoError(t, err)
	Run(t, l)
	return l
}

// StartChroot is Start with a connection of its own to the test
// ZooKeeper's chroot.
func StartChroot(t testing.TB, chroot, yaml string, opts ...nodepool.Option) *nodepool.Launcher {
	t.Helper()
	return Start(t, zktest.ConnectChroot(t, chroot), yaml, opts...)
}

// StartChrootStop is StartChroot for tests that stop the launcher
// themselves (to restart it): it returns the stop function.
func StartChrootStop(t testing.TB, chroot, yaml string, opts ...nodepool.Option) (stop func()) {
	t.Helper()
	return StartStop(t, zktest.ConnectChroot(t, chroot), yaml, opts...)
}

// StartStop is Start for tests that stop the launcher themselves: it
// returns the stop function.
func StartStop(t testing.TB, zk *zkclient.Client, yaml string, opts ...nodepool.Option) (stop func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	cfg, err := config.Load(path, "")
	require.NoError(t, err)
	opts = append([]nodepool.Option{nodepool.WithZooKeeper(zk), nodepool.WithHostname("test-" + strings.ReplaceAll(t.Name(), "/", "-"))}, opts...)
	l, err := nodepool.NewLauncher(cfg, opts...)
	require.NoError(t, err)
	return Run(t, l)
}

// Run runs l until the test ends, or until the returned stop is called,
// and waits until it is ready. Stopping fails the test if l returns an
// error or does not stop within 30 seconds; stop may be called more than
// once.
func Run(t testing.TB, l *nodepool.Launcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				buf := make([]byte, 1<<22)
				t.Errorf("launcher did not stop; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
			}
		})
	}
	t.Cleanup(stop)
	require.Eventually(t, l.Ready, 20*time.Second, 20*time.Millisecond)
	return stop
}

// Acquire submits a request for labels as Zuul does, waits for it to be
// fulfilled (failing the test otherwise) and locks its nodes.
func Acquire(t testing.TB, ctx context.Context, zk *zkclient.Client, labels []string, opts zuulsim.Options) *zuulsim.NodeSet {
	t.Helper()
	req, err := zuulsim.Submit(ctx, zk, labels, opts)
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	return ns
}

// Explanation returns the first published explanation of a request, if
// any.
func Explanation(ctx context.Context, zk *zkclient.Client, id string) (zkclient.Explanation, bool) {
	ex, err := zk.Explanations(ctx)
	if err != nil || len(ex[id]) == 0 {
		return zkclient.Explanation{}, false
	}
	return ex[id][0], true
}

// StartBuilder runs a builder in-process on the configuration file at
// path, in the ZooKeeper chroot, with short build and upload intervals, no
// cleanup worker and no free-space check; it is stopped (and checked to
// stop) when the test ends.
func StartBuilder(t testing.TB, chroot, path string) *builder.Builder {
	t.Helper()
	b, err := builder.New(func(context.Context) (*config.Config, error) { return config.Load(path, "") },
		zktest.ConnectChroot(t, chroot),
		builder.WithIntervals(100*time.Millisecond, 100*time.Millisecond, -1),
		builder.WithHostname("nb01", "nb01.example.org"),
		builder.WithMinFreeSpace(-1),
	)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("builder did not stop")
		}
	})
	return b
}
