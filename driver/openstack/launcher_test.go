package openstack_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver"
	_ "github.com/nodepool-go/nodepool/driver/openstack"
	"github.com/nodepool-go/nodepool/internal/fakeopenstack"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// osConfig is an OpenStack provider on the fake cloud "fake"; extra
// provider keys go in %s (before pools).
const osConfig = `
labels:
  - name: small
providers:
  - name: os
    driver: openstack
    cloud: fake
    rate: 0
    boot-timeout: 10
%s
    cloud-images:
      - name: cirros
        username: cirros
    pools:
      - name: main
        networks: [private]
        security-groups: [default]
        host-key-checking: false
        labels:
          - name: small
            cloud-image: cirros
            flavor-name: m1.small
            key-name: zuul
            userdata: "#cloud-config\nhostname: test\n"
            instance-properties: {team: infra}
`

func osYAML(extra string) string { return fmt.Sprintf(osConfig, extra) }

func TestOpenStackRequestServedEndToEnd(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{BuildTime: 200 * time.Millisecond})
	zk, chroot := zktest.Connect(t)
	launchertest.StartChroot(t, chroot, osYAML(""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	require.Len(t, got.Nodes, 1)
	n, err := zk.GetNode(ctx, got.Nodes[0])
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeReady, n.State)

	srv, ok := cloud.Server(n.ExternalID)
	require.True(t, ok, "node's external id is the server id")
	require.Equal(t, "np"+n.ID, srv.Name)
	require.Equal(t, "ACTIVE", srv.Status)
	require.Equal(t, "2", srv.FlavorID, "m1.small")
	require.Equal(t, cloud.ImageID("cirros"), srv.ImageID)
	require.Equal(t, []string{cloud.NetworkID("private")}, srv.Networks)
	require.Equal(t, []string{"default"}, srv.SecurityGroups)
	require.Equal(t, "zuul", srv.KeyName)
	require.Equal(t, "#cloud-config\nhostname: test\n", srv.UserData)
	require.Equal(t, map[string]string{
		"groups": "os,cirros,small", "team": "infra",
		driver.MetaNodeID: n.ID, driver.MetaPoolName: "main", driver.MetaProviderName: "os",
	}, srv.Metadata)

	fips := cloud.FloatingIPs()
	require.Len(t, fips, 1, "auto-floating-ip gives the server a floating IP")
	require.Equal(t, fips[0].Address, n.PublicIPv4)
	require.Equal(t, n.PublicIPv4, n.InterfaceIP)
	require.Regexp(t, `^10\.0\.`, n.PrivateIPv4)
	require.Equal(t, "fake", n.Cloud)
	require.Equal(t, "RegionOne", n.Region)
	require.Equal(t, "nova", n.AZ)
	require.Equal(t, srv.HostID, n.HostID)
	require.Equal(t, "cirros", n.Username)

	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))
	require.Eventually(t, func() bool {
		ids, _ := zk.NodeIDs(ctx)
		return len(ids) == 0
	}, 30*time.Second, 50*time.Millisecond, "the used node is deleted")
	require.Empty(t, cloud.Servers(), "its server is deleted")
	require.Empty(t, cloud.FloatingIPs(), "its floating IP is released")
}

// watchStates records every state any node passes through.
func watchStates(ctx context.Context, zk *zkclient.Client) func() map[zkclient.NodeState]int {
	var mu sync.Mutex
	seen := map[string]map[zkclient.NodeState]bool{}
	go func() {
		for ctx.Err() == nil {
			ids, _ := zk.NodeIDs(ctx)
			for _, id := range ids {
				if n, err := zk.GetNode(ctx, id); err == nil {
					mu.Lock()
					if seen[id] == nil {
						seen[id] = map[zkclient.NodeState]bool{}
					}
					seen[id][n.State] = true
					mu.Unlock()
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() map[zkclient.NodeState]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[zkclient.NodeState]int{}
		for _, states := range seen {
			for s := range states {
				out[s]++
			}
		}
		return out
	}
}

func TestOpenStackOverQuotaAbortsWithoutUsingARetry(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{})
	zk, chroot := zktest.Connect(t)
	// One attempt only: a quota answer that used up a retry would fail
	// the request.
	l := launchertest.StartChroot(t, chroot, osYAML("    launch-retries: 1"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	states := watchStates(ctx, zk)
	cloud.FailNextCreates(2, fakeopenstack.FailQuota)

	req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State, "fulfilled once Nova accepts again")
	require.Empty(t, got.DeclinedBy)
	c := cloud.Counters()
	require.Equal(t, 2, c.QuotaRejections)
	require.Equal(t, 1, c.ServerCreates)
	// Each refusal aborted its node (result error.quota) instead of failing
	// it. An aborted node is deleted at once, so the metric, not a sample
	// of the node states, is the record of the aborts.
	aborted := regexp.MustCompile(`nodepool_launch_total\{[^}]*provider="os"[^}]*result="error\.quota"\} 2\n`)
	require.Eventually(t, func() bool {
		rec := httptest.NewRecorder()
		l.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return aborted.MatchString(rec.Body.String())
	}, 30*time.Second, 10*time.Millisecond, "each over-quota launch aborted its node")
	t.Logf("node states seen: %v", states())
	require.Zero(t, states()[zkclient.NodeFailed])
}

func TestOpenStackQuotaLimitsRespected(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{})
	cloud.SetLimits(fakeopenstack.Limits{Instances: 3, Cores: 20, RAM: -1, Volumes: -1, VolumeGB: -1})
	cloud.AddServer(fakeopenstack.Server{Name: "someone-elses"}) // unmanaged usage: 1 instance
	zk, chroot := zktest.Connect(t)
	launchertest.StartChroot(t, chroot, osYAML(""))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var reqs []*zuulsim.Request
	for i := 0; i < 3; i++ {
		r, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
		require.NoError(t, err)
		reqs = append(reqs, r)
	}
	state := func(r *zuulsim.Request) zkclient.RequestState {
		got, err := zk.GetRequest(ctx, r.ID)
		require.NoError(t, err)
		return got.State
	}
	require.Eventually(t, func() bool {
		return state(reqs[0]) == zkclient.RequestFulfilled && state(reqs[1]) == zkclient.RequestFulfilled
	}, 30*time.Second, 50*time.Millisecond)
	time.Sleep(2 * time.Second)
	require.NotEqual(t, zkclient.RequestFulfilled, state(reqs[2]), "a third server would exceed the cloud's 3 instances (one is foreign)")
	require.Zero(t, cloud.Counters().QuotaRejections, "the launcher never asked Nova beyond the limits")
	require.Len(t, cloud.Servers(), 3)

	_, err := reqs[0].Wait(ctx)
	require.NoError(t, err)
	ns, err := reqs[0].Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))
	got, err := reqs[2].Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State, "served once a node was deleted")
	require.Zero(t, cloud.Counters().QuotaRejections)
}

func TestOpenStackLeakedResourcesCleanedUp(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{})
	_, chroot := zktest.Connect(t)
	l := launchertest.StartChroot(t, chroot, osYAML("    port-cleanup-interval: 1"), nodepool.WithCleanupInterval(200*time.Millisecond))

	ours := map[string]string{driver.MetaNodeID: "0000099999", driver.MetaPoolName: "main", driver.MetaProviderName: "os"}
	other := map[string]string{driver.MetaNodeID: "0000099999", driver.MetaPoolName: "main", driver.MetaProviderName: "another"}
	leakedServer := cloud.AddServer(fakeopenstack.Server{Name: "np0000099999", Metadata: ours})
	foreignServer := cloud.AddServer(fakeopenstack.Server{Name: "pet"})
	otherProvider := cloud.AddServer(fakeopenstack.Server{Name: "np0000099999", Metadata: other})
	leakedImage := cloud.AddImage(fakeopenstack.Image{Name: "ubuntu-jammy-1", Properties: map[string]string{
		driver.MetaProviderName: "os", driver.MetaBuildID: "0123456789abcdef0123456789abcdef", driver.MetaUploadID: "0000000001"}})
	foreignImage := cloud.AddImage(fakeopenstack.Image{Name: "my-snapshot"})
	leakedFIP := cloud.AddFloatingIP(fakeopenstack.FloatingIP{Tags: []string{
		"nodepool_node_id=0000099999", "nodepool_pool_name=main", "nodepool_provider_name=os"}})
	foreignFIP := cloud.AddFloatingIP(fakeopenstack.FloatingIP{})
	downPort := cloud.AddPort(fakeopenstack.Port{DeviceOwner: "compute:nova"})
	routerPort := cloud.AddPort(fakeopenstack.Port{DeviceOwner: "network:router_interface"})

	// Leaks are deleted on the second cleanup pass that finds them; the
	// DOWN port once port-cleanup-interval has passed.
	gone := func(list func() []string, id string) func() bool {
		return func() bool { return !slices.Contains(list(), id) }
	}
	serverIDs := func() (out []string) {
		for _, s := range cloud.Servers() {
			out = append(out, s.ID)
		}
		return out
	}
	fipIDs := func() (out []string) {
		for _, f := range cloud.FloatingIPs() {
			out = append(out, f.ID)
		}
		return out
	}
	portIDs := func() (out []string) {
		for _, p := range cloud.Ports() {
			out = append(out, p.ID)
		}
		return out
	}
	require.Eventually(t, gone(serverIDs, leakedServer), 30*time.Second, 50*time.Millisecond, "leaked server deleted")
	require.Eventually(t, func() bool { _, ok := cloud.Image(leakedImage); return !ok }, 30*time.Second, 50*time.Millisecond, "leaked image deleted")
	require.Eventually(t, gone(fipIDs, leakedFIP), 30*time.Second, 50*time.Millisecond, "leaked floating IP deleted")
	require.Eventually(t, gone(portIDs, downPort), 30*time.Second, 50*time.Millisecond, "DOWN compute port deleted")

	servers := map[string]bool{}
	for _, s := range cloud.Servers() {
		servers[s.ID] = true
	}
	require.True(t, servers[foreignServer], "server without metadata untouched")
	require.True(t, servers[otherProvider], "another provider's server untouched")
	_, ok := cloud.Image(foreignImage)
	require.True(t, ok, "image without metadata untouched")
	_, ok = cloud.Image(cloud.ImageID("cirros"))
	require.True(t, ok)
	fips := map[string]bool{}
	for _, f := range cloud.FloatingIPs() {
		fips[f.ID] = true
	}
	require.True(t, fips[foreignFIP], "untagged floating IP untouched (clean-floating-ips is off)")
	ports := map[string]bool{}
	for _, p := range cloud.Ports() {
		ports[p.ID] = true
	}
	require.True(t, ports[routerPort], "router port untouched")

	// The driver counts the port it removed itself through the launcher's
	// services (nodepool.provider.os.leaked.ports).
	rec := httptest.NewRecorder()
	l.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.True(t, strings.Contains(rec.Body.String(), `nodepool_provider_leaked_total{kind="ports",provider="os"} 1`),
		"leaked port counted:\n%s", rec.Body.String())
}

func TestOpenStackServerStuckInBuildIsReplaced(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{})
	zk, chroot := zktest.Connect(t)
	// The stuck attempt times out; the replacement needs about 2 s (BUILD
	// → ACTIVE and the floating IP, each seen in a listing at most 1 s old).
	launchertest.StartChroot(t, chroot, osYAML("    launch-timeout: 4"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cloud.FailNextCreates(1, fakeopenstack.FailStuck)

	req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	require.Equal(t, 2, cloud.Counters().ServerCreates, "the stuck attempt was retried")
	n, err := zk.GetNode(ctx, got.Nodes[0])
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		list := cloud.Servers()
		return len(list) == 1 && list[0].ID == n.ExternalID && list[0].Status == "ACTIVE"
	}, 30*time.Second, 20*time.Millisecond, "the stuck server was deleted")
}

// TestLabelHostKeyCheckingOverridesPool: a label's host-key-checking wins
// over its pool's both ways. With it on (pool off) the launcher scans the
// fake server's unreachable address and the launch fails; with it off
// (pool on) the node goes ready unscanned.
func TestLabelHostKeyCheckingOverridesPool(t *testing.T) {
	fakeopenstack.Setup(t, fakeopenstack.Options{})
	for _, tc := range []struct {
		pool, label string
		want        zkclient.RequestState
	}{
		{"false", "true", zkclient.RequestFailed},
		{"true", "false", zkclient.RequestFulfilled},
	} {
		t.Run("label="+tc.label, func(t *testing.T) {
			zk, chroot := zktest.Connect(t)
			yaml := strings.Replace(osYAML(""), "boot-timeout: 10", "boot-timeout: 1\n    launch-retries: 1", 1)
			yaml = strings.Replace(yaml, "        host-key-checking: false\n", "        host-key-checking: "+tc.pool+"\n", 1)
			yaml = strings.Replace(yaml, "            flavor-name: m1.small\n", "            flavor-name: m1.small\n            host-key-checking: "+tc.label+"\n", 1)
			launchertest.StartChroot(t, chroot, yaml, nodepool.WithHostname("hkc-"+tc.label))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
			require.NoError(t, err)
			got, err := req.Wait(ctx)
			if tc.want == zkclient.RequestFailed {
				require.ErrorContains(t, err, "node request failed")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got.State)
		})
	}
}
