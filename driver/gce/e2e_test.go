package gce_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/gce"
	"github.com/nodepool-go/nodepool/internal/fakegce"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// e2eConfig is a GCE provider on the fake; %s holds extra provider keys.
// host-key-checking is off: the fake's instances run no SSH server.
const e2eConfig = `
labels:
  - name: debian-f1-micro
providers:
  - name: gcloud-provider
    driver: gce
    project: gcloud-project
    region: us-central1
    zone: us-central1-a
    rate: 0
    boot-timeout: 10
%s
    cloud-images:
      - name: debian-bookworm
        image-project: debian-cloud
        image-family: debian-12
        username: zuul
        key: ssh-rsa something zuul
    pools:
      - name: main
        max-servers: 8
        host-key-checking: false
        node-attributes:
          key1: value1
          key2: value2
        labels:
          - name: debian-f1-micro
            instance-type: f1-micro
            cloud-image: debian-bookworm
            volume-type: pd-standard
            volume-size: 10
`

// e2eSetup starts a fake cloud reached with Application Default
// Credentials (GOOGLE_APPLICATION_CREDENTIALS naming its service-account
// key) and a ZooKeeper chroot.
func e2eSetup(t *testing.T, o fakegce.Options) (*fakegce.Cloud, *zkclient.Client, string) {
	t.Helper()
	cloud, keyFile := fakegce.Setup(t, o)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", keyFile)
	t.Cleanup(gce.Override([]option.ClientOption{option.WithEndpoint(cloud.Endpoint())}, 100*time.Millisecond))
	zk, chroot := zktest.Connect(t)
	return cloud, zk, chroot
}

// launcher is a running launcher of the tests.
type launcher struct {
	zk   *zkclient.Client
	stop func()
}

// startLauncher runs a launcher on its own ZooKeeper session until the
// test ends or stop is called. This is the one place the tests build a
// launcher.
func startLauncher(t *testing.T, chroot, extra string, opts ...nodepool.Option) *launcher {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(e2eConfig, extra)), 0o600))
	cfg, err := nodepool.LoadConfig(path, "")
	require.NoError(t, err)
	zk := zktest.ConnectChroot(t, chroot)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	l, err := nodepool.NewLauncher(cfg, append([]nodepool.Option{nodepool.WithZooKeeper(zk), nodepool.WithLogger(log)}, opts...)...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("launcher did not stop")
		}
		zk.Close() // its locks go with its session
	}
	t.Cleanup(stop)
	require.Eventually(t, l.Ready, 20*time.Second, 20*time.Millisecond)
	return &launcher{zk: zk, stop: stop}
}

func fulfilled(t *testing.T, ctx context.Context, zk *zkclient.Client, r *zuulsim.Request) *zkclient.Node {
	t.Helper()
	got, err := r.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	require.Len(t, got.Nodes, 1)
	n, err := zk.GetNode(ctx, got.Nodes[0])
	require.NoError(t, err)
	return n
}

func TestEndToEndRequestServed(t *testing.T) {
	cloud, zk, chroot := e2eSetup(t, fakegce.Options{BuildTime: 200 * time.Millisecond, ListDelay: 100 * time.Millisecond})
	startLauncher(t, chroot, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	req, err := zuulsim.Submit(ctx, zk, []string{"debian-f1-micro"}, zuulsim.Options{})
	require.NoError(t, err)
	n := fulfilled(t, ctx, zk, req)
	require.Equal(t, zkclient.NodeReady, n.State)
	require.Equal(t, "np"+n.ID, n.ExternalID, "the instance name is the external id")
	inst, ok := cloud.Instance(n.ExternalID)
	require.True(t, ok)
	require.Equal(t, "RUNNING", inst.Status)
	require.Equal(t, "f1-micro", inst.MachineType)
	require.Equal(t, map[string]string{
		driver.MetaNodeID: n.ID, driver.MetaPoolName: "main", driver.MetaProviderName: "gcloud-provider",
		"ssh-keys": "zuul:ssh-rsa something zuul",
	}, inst.Metadata)

	require.Equal(t, "Google", n.Cloud)
	require.Equal(t, "us-central1", n.Region)
	require.Equal(t, "us-central1-a", n.AZ)
	require.Equal(t, inst.NatIP, n.PublicIPv4)
	require.Equal(t, inst.IP, n.PrivateIPv4)
	require.Equal(t, inst.NatIP, n.InterfaceIP)
	require.Empty(t, n.PublicIPv6)
	require.Equal(t, "ssh", n.ConnectionType)
	require.Equal(t, 22, n.Port())
	require.Equal(t, "zuul", n.Username)
	require.Equal(t, "auto", n.PythonPath)
	require.JSONEq(t, `{"key1": "value1", "key2": "value2"}`, string(n.Attributes))
	require.Equal(t, map[string]float64{"cores": 1, "instances": 1, "ram": 614}, n.Resources)

	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))
	require.Eventually(t, func() bool {
		ids, _ := zk.NodeIDs(ctx)
		return len(ids) == 0 && len(cloud.Instances()) == 0
	}, 30*time.Second, 50*time.Millisecond, "the used node and its instance are deleted")
	require.Positive(t, cloud.Calls()["oauth2.token"], "credentials came from GOOGLE_APPLICATION_CREDENTIALS")
}

func TestEndToEndQuotaPause(t *testing.T) {
	cloud, zk, chroot := e2eSetup(t, fakegce.Options{})
	cloud.SetQuota("INSTANCES", 1) // as upstream's test: one node at a time
	startLauncher(t, chroot, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	first, err := zuulsim.Submit(ctx, zk, []string{"debian-f1-micro"}, zuulsim.Options{})
	require.NoError(t, err)
	fulfilled(t, ctx, zk, first)
	second, err := zuulsim.Submit(ctx, zk, []string{"debian-f1-micro"}, zuulsim.Options{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, err := zk.GetRequest(ctx, second.ID)
		return err == nil && got.State == zkclient.RequestPending
	}, 20*time.Second, 20*time.Millisecond, "the pool takes the request and pauses")
	time.Sleep(time.Second)
	got, err := zk.GetRequest(ctx, second.ID)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestPending, got.State, "paused at the region's INSTANCES quota")
	require.Len(t, cloud.Instances(), 1)

	ns, err := first.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))
	fulfilled(t, ctx, zk, second)
	require.Len(t, cloud.Instances(), 1)
}

// TestEndToEndCloudFaultsRiddenOut: throttled and failing inserts are
// retried within the attempt, a zone out of capacity costs one attempt,
// a throttled listing is retried; the request is served.
func TestEndToEndCloudFaultsRiddenOut(t *testing.T) {
	cloud, zk, chroot := e2eSetup(t, fakegce.Options{})
	startLauncher(t, chroot, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cloud.FailNext(2, "POST", "/instances", fakegce.FaultTooManyRequests)
	cloud.FailNextInserts(1, fakegce.FaultServer)
	cloud.FailNextInserts(1, fakegce.FaultCapacity)
	cloud.FailNext(1, "GET", "/operations", fakegce.FaultRateLimit)

	req, err := zuulsim.Submit(ctx, zk, []string{"debian-f1-micro"}, zuulsim.Options{})
	require.NoError(t, err)
	n := fulfilled(t, ctx, zk, req)
	require.Equal(t, zkclient.NodeReady, n.State)
	calls := cloud.Calls()
	require.Equal(t, 3, calls["compute.instances.insert"], "503, out of capacity, created")
	require.Equal(t, 3, calls["injected"], "two throttled inserts and a throttled listing")
	require.Len(t, cloud.Instances(), 1)
}

func TestEndToEndLeakCleanupAfterRestart(t *testing.T) {
	cloud, zk, chroot := e2eSetup(t, fakegce.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The first launcher dies while its instance is still provisioning.
	cloud.FailNextInserts(1, fakegce.FaultStuck)
	first := startLauncher(t, chroot, "")
	req, err := zuulsim.Submit(ctx, zk, []string{"debian-f1-micro"}, zuulsim.Options{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(cloud.Instances()) == 1 }, 20*time.Second, 10*time.Millisecond)
	first.stop()
	require.Len(t, cloud.Instances(), 1, "the dead launcher left its instance")

	// Instances carrying this provider's metadata without a node, another
	// provider's, and someone else's.
	ours := map[string]string{driver.MetaNodeID: "0000099999", driver.MetaPoolName: "main", driver.MetaProviderName: "gcloud-provider"}
	theirs := map[string]string{driver.MetaNodeID: "0000099999", driver.MetaPoolName: "main", driver.MetaProviderName: "another"}
	leaked := cloud.AddInstance("np0000099999", "", ours)
	other := cloud.AddInstance("np0000099999-other", "", theirs)
	pet := cloud.AddInstance("pet", "", nil)

	startLauncher(t, chroot, "", nodepool.WithCleanupInterval(200*time.Millisecond))
	n := fulfilled(t, ctx, zk, req)
	require.Equal(t, zkclient.NodeReady, n.State, "the request is served by the new launcher")
	require.Eventually(t, func() bool {
		names := map[string]bool{}
		for _, in := range cloud.Instances() {
			names[in.Name] = true
		}
		return !names[leaked] && len(names) == 3 && names[other] && names[pet] && names[n.ExternalID]
	}, 30*time.Second, 20*time.Millisecond, "the stuck and the leaked instance are deleted: %v", cloud.Instances())
	require.True(t, strings.HasPrefix(n.ExternalID, "np"))
}
