package statuspage_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	_ "github.com/nodepool-go/nodepool/driver/simcloud"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/statuspage"
	"github.com/nodepool-go/nodepool/internal/webapp"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// hostileLabel, hostileComment and hostileRequestor would run script in
// the page if any of them reached it as markup.
const (
	hostileLabel     = `<script>window.pwned=1</script>`
	hostileComment   = `<img src=x onerror="window.pwned=2">`
	hostileRequestor = `"><svg onload="window.pwned=3">`
)

// fixture is a launcher on simcloud with a real ZooKeeper, served with the
// status page the way nodepool-launcher serves it: a pool at its
// max-servers with one node in use, a request waiting on that limit, two
// ready nodes elsewhere, a held node of another launcher whose label,
// comment and a waiting request's requestor are hostile markup, cleanup
// passes every second, and an image build with uploads.
type fixture struct {
	zk      *zkclient.Client
	srv     *httptest.Server
	inUse   *zuulsim.NodeSet // the node that fills the full pool
	waiting *zuulsim.Request // the request paused on pool max-servers
	held    *zkclient.Node   // the held node with the hostile label
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	zk, chroot := zktest.Connect(t)
	cloud := "statuspage-" + chroot[1:]
	l := launchertest.StartChroot(t, chroot, fmt.Sprintf(`
labels:
  - name: small
  - name: large
    min-ready: 2
tenant-resource-limits:
  - tenant-name: tenant-one
    max-servers: 10
    max-cores: 40
providers:
  - name: sim-west
    driver: simcloud
    cloud: %[1]s-west
    pools:
      - name: main
        max-servers: 1
        labels:
          - name: small
  - name: sim-east
    driver: simcloud
    cloud: %[1]s-east
    pools:
      - name: big
        max-servers: 6
        max-cores: 16
        labels:
          - name: large
`, cloud), nodepool.WithCleanupInterval(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := &fixture{zk: zk}
	f.inUse = launchertest.Acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{})
	var err error
	f.waiting, err = zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ex, err := zk.Explanations(ctx)
		for _, e := range ex[f.waiting.ID] {
			if err == nil && e.Limit == "pool max-servers" {
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "the second request waits on the pool's max-servers")
	require.Eventually(t, func() bool {
		nodes, err := zk.Nodes(ctx, nil)
		ready := 0
		for _, n := range nodes {
			if err == nil && n.State == zkclient.NodeReady && n.Provider == "sim-east" {
				ready++
			}
		}
		return ready == 2
	}, 30*time.Second, 20*time.Millisecond, "min-ready launches two large nodes")

	f.held = &zkclient.Node{State: zkclient.NodeHold, StateTime: float64(time.Now().Unix() - 3600),
		Provider: "other-launcher", Pool: "p", Type: []string{hostileLabel}, Comment: hostileComment,
		AllocatedTo: "", TenantName: "tenant-one", Resources: map[string]float64{"instances": 1, "cores": 4, "ram": 4096}}
	_, err = zk.CreateNode(ctx, f.held)
	require.NoError(t, err)
	_, err = zk.SubmitRequest(ctx, &zkclient.NodeRequest{State: zkclient.RequestRequested, NodeTypes: []string{"small"},
		Requestor: hostileRequestor, TenantName: "tenant-one", StateTime: float64(time.Now().Unix())}, "300", false)
	require.NoError(t, err)

	build := &zkclient.ImageBuild{ImageName: "debian-bookworm", ID: zkclient.NewBuildID(), State: zkclient.ImageReady,
		StateTime: float64(time.Now().Unix() - 7200), Builder: "builder-1", Formats: []string{"qcow2", "raw"}}
	require.NoError(t, zk.CreateBuild(ctx, build))
	for _, p := range []string{"sim-east", "sim-west"} {
		require.NoError(t, zk.CreateUpload(ctx, &zkclient.ImageUpload{ImageName: build.ImageName, BuildID: build.ID,
			ProviderName: p, State: zkclient.ImageReady, StateTime: float64(time.Now().Unix() - 5400),
			ExternalID: "img-" + p, ExternalName: "debian-bookworm-" + build.ID[:8]}))
	}

	f.srv = httptest.NewServer(webapp.New(l.ZooKeeper(), l.Ready, webapp.WithMetrics(l.MetricsHandler()), webapp.WithPage(statuspage.New(l))))
	t.Cleanup(f.srv.Close)
	return f
}

// inUseNode returns the id of the node that fills the full pool.
func (f *fixture) inUseNode() string { return f.inUse.Nodes[0].ID }
