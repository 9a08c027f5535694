package kubernetes_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/fakekube"
	"github.com/nodepool-go/nodepool/internal/fakekube/kubee2e"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

const e2eConfig = `
labels:
  - name: ns
  - name: pod
  - name: pod-bad
providers:
  - name: k8s
    driver: kubernetes
    context: fake
    pools:
      - name: main
        max-cores: 4
        node-attributes:
          team: infra
        labels:
          - name: ns
            type: namespace
          - name: pod
            type: pod
            image: docker.io/fedora:28
            cpu: 2
            memory: 512
          - name: pod-bad
            type: pod
            image: docker.io/fedora:missing
`

func port(t *testing.T, n *zkclient.Node) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(n.ConnectionPort, &m), "connection_port %s", n.ConnectionPort)
	return m
}

func TestEndToEnd(t *testing.T) {
	fake := fakekube.Setup(t, "fake")
	zk, _ := zktest.Connect(t)
	kubee2e.StartLauncher(t, zk, e2eConfig, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// A namespace label.
	req, nodes := kubee2e.Serve(t, ctx, zk, "ns")
	n := nodes[0]
	require.Equal(t, "namespace", n.ConnectionType)
	require.Equal(t, "main-"+n.ID, n.ExternalID)
	require.Equal(t, "fake", n.Cloud)
	require.Empty(t, n.InterfaceIP)
	require.Equal(t, "auto", n.PythonPath)
	require.Equal(t, map[string]float64{"cores": 0, "instances": 1, "ram": 0}, n.Resources)
	require.JSONEq(t, `{"team": "infra"}`, string(n.Attributes))
	p := port(t, n)
	require.Equal(t, n.ExternalID, p["namespace"])
	require.Equal(t, fake.URL(), p["host"])
	require.NotEmpty(t, p["token"])
	require.NotEmpty(t, p["ca_crt"])
	require.True(t, fake.Exists("namespaces", "", n.ExternalID))
	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))

	// A pod label.
	req, nodes = kubee2e.Serve(t, ctx, zk, "pod")
	n = nodes[0]
	require.Equal(t, "kubectl", n.ConnectionType)
	require.Equal(t, "pod", n.InterfaceIP)
	require.Equal(t, "fake-node-1", n.HostID)
	require.Equal(t, map[string]float64{"cores": 2, "instances": 1, "ram": 512}, n.Resources)
	require.Equal(t, "pod", port(t, n)["pod"])
	ns, err = req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))

	// Both in one request.
	req, nodes = kubee2e.Serve(t, ctx, zk, "ns", "pod")
	require.Equal(t, "namespace", nodes[0].ConnectionType)
	require.Equal(t, "kubectl", nodes[1].ConnectionType)
	ns, err = req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))

	// A pod whose image cannot be pulled fails its node (after the
	// launch retries) and the request; every namespace is cleaned up and
	// the provider goes on serving.
	bad, err := zuulsim.Submit(ctx, zk, []string{"pod-bad"}, zuulsim.Options{})
	require.NoError(t, err)
	_, err = bad.Wait(ctx)
	require.ErrorContains(t, err, "node request failed")
	req, _ = kubee2e.Serve(t, ctx, zk, "ns")
	ns, err = req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))

	require.Eventually(t, func() bool {
		ids, _ := zk.NodeIDs(ctx)
		return len(ids) == 0 && len(fake.Names("namespaces", "")) == 0
	}, 60*time.Second, 50*time.Millisecond, "used and failed nodes and their namespaces are deleted")
}

func TestEndToEndQuotaPauseAndFaults(t *testing.T) {
	fake := fakekube.Setup(t, "fake")
	zk, _ := zktest.Connect(t)
	kubee2e.StartLauncher(t, zk, e2eConfig, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Faults the launch rides out: an API server error on one step and a
	// throttled call.
	fake.Inject(&fakekube.Fault{Method: "POST", Path: "/serviceaccounts", Code: 503, Reason: "ServiceUnavailable", Msg: "the server is currently unable to handle the request", Times: 1})
	fake.Inject(&fakekube.Fault{Method: "POST", Path: "/roles", Code: 429, Reason: "TooManyRequests", Msg: "too many requests", Times: 1})

	// Two pods use max-cores (4); the third waits for one to go.
	var reqs []*zuulsim.Request
	for i := 0; i < 3; i++ {
		r, err := zuulsim.Submit(ctx, zk, []string{"pod"}, zuulsim.Options{})
		require.NoError(t, err)
		reqs = append(reqs, r)
	}
	state := func(r *zuulsim.Request) zkclient.RequestState {
		got, err := zk.GetRequest(ctx, r.ID)
		require.NoError(t, err)
		return got.State
	}
	fulfilled := func() (n int, waiting *zuulsim.Request) {
		for _, r := range reqs {
			if state(r) == zkclient.RequestFulfilled {
				n++
			} else {
				waiting = r
			}
		}
		return n, waiting
	}
	require.Eventually(t, func() bool { n, _ := fulfilled(); return n == 2 }, 60*time.Second, 50*time.Millisecond)
	time.Sleep(time.Second)
	n, waiting := fulfilled()
	require.Equal(t, 2, n, "a third pod would exceed max-cores")
	got, err := zk.GetRequest(ctx, waiting.ID)
	require.NoError(t, err)
	require.Empty(t, got.DeclinedBy, "the pool waits at its quota; it does not decline")
	require.Len(t, fake.Names("namespaces", ""), 2)

	for _, r := range reqs {
		if r == waiting {
			continue
		}
		_, err := r.Wait(ctx)
		require.NoError(t, err)
		ns, err := r.Accept(ctx)
		require.NoError(t, err)
		require.NoError(t, ns.Return(ctx))
		break
	}
	got, err = waiting.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State, "served once a pod was deleted")
}

func TestEndToEndLeakCleanupAfterRestart(t *testing.T) {
	fake := fakekube.Setup(t, "fake")
	zk, _ := zktest.Connect(t)
	stop := kubee2e.StartLauncher(t, zk, e2eConfig, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, nodes := kubee2e.Serve(t, ctx, zk, "ns")
	live := nodes[0].ExternalID
	stop()

	// While no launcher runs: a namespace whose node record is gone (a
	// crash between create and store), one of another provider and one
	// that is not nodepool's.
	own := func(provider, id string) map[string]string {
		return map[string]string{driver.MetaNodeID: id, driver.MetaPoolName: "main", driver.MetaProviderName: provider}
	}
	fake.AddNamespace("main-0000099999", own("k8s", "0000099999"))
	fake.AddNamespace("main-0000088888", own("another", "0000088888"))
	fake.AddNamespace("kube-system", nil)

	kubee2e.StartLauncher(t, zk, e2eConfig, 200*time.Millisecond)
	require.Eventually(t, func() bool { return !fake.Exists("namespaces", "", "main-0000099999") },
		30*time.Second, 50*time.Millisecond, "the leaked namespace is deleted after the restart")
	require.True(t, fake.Exists("namespaces", "", live), "a node's namespace stays")
	require.True(t, fake.Exists("namespaces", "", "main-0000088888"), "another provider's namespace stays")
	require.True(t, fake.Exists("namespaces", "", "kube-system"), "a namespace without our labels stays")
}
