package kubernetes_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/drivertest"
	"github.com/nodepool-go/nodepool/driver/internal/kube"
	"github.com/nodepool-go/nodepool/driver/kubernetes"
	"github.com/nodepool-go/nodepool/internal/fakekube"
)

const provider = `
name: k8s
driver: kubernetes
context: fake
pools:
  - name: main
    labels:
      - name: pod-fedora
        type: pod
        image: docker.io/fedora:28
        cpu: 2
        memory: 1024
        storage: 10
        cpu-limit: 4
        gpu: 1.0
        gpu-resource: nvidia.com/gpu
        env:
          - name: FOO
            value: bar
        node-selector:
          kubernetes.io/hostname: fake-node-1
        privileged: true
        scheduler-name: myscheduler
        volumes:
          - name: scratch
            emptyDir: {}
        volume-mounts:
          - name: scratch
            mountPath: /data
        labels:
          environment: qa
        annotations:
          team: infra
      - name: ns
        type: namespace
      - name: pod-missing
        type: pod
        image: docker.io/fedora:missing
      - name: pod-nowhere
        type: pod
        image: docker.io/fedora:28
        node-selector:
          storageType: ssd
`

// parse parses one provider entry that must be valid.
func parse(t testing.TB, src string) *driver.ProviderConfig {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &doc))
	probs := &driver.Problems{File: "nodepool.yaml"}
	p := kubernetes.Driver{}.ParseProvider(driver.NewSection(doc.Content[0], "providers[0]", probs))
	require.NoError(t, probs.Err())
	return p
}

// open parses the test provider with short waits and opens its adapter.
func open(t testing.TB) (driver.Adapter, *driver.ProviderConfig) {
	t.Helper()
	cfg := parse(t, provider)
	st := cfg.Settings.(*kube.ProviderSettings)
	st.PollInterval, st.ListTTL, st.TokenTimeout, st.PodTimeout = 10*time.Millisecond, 50*time.Millisecond, 2*time.Second, time.Second
	ad, err := kubernetes.Driver{}.Open(context.Background(), cfg, driver.Env{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ad.Close() })
	return ad, cfg
}

func spec(cfg *driver.ProviderConfig, label, nodeID string) driver.CreateSpec {
	pool := cfg.Pools[0]
	return driver.CreateSpec{
		Hostname: "np" + nodeID, Label: pool.Label(label), Pool: pool,
		Metadata: map[string]string{driver.MetaNodeID: nodeID, driver.MetaPoolName: pool.Name, driver.MetaProviderName: cfg.Name},
	}
}

func create(ad driver.Adapter, s driver.CreateSpec) (driver.CreateMachine, *driver.Instance, error) {
	m := ad.CreateMachine(s)
	in, err := drivertest.AdvanceCreate(context.Background(), m, 5*time.Millisecond, 20*time.Second)
	return m, in, err
}

func remove(ad driver.Adapter, id string) error {
	return drivertest.AdvanceDelete(context.Background(), ad.DeleteMachine(id), 5*time.Millisecond, 20*time.Second)
}

func TestConformance(t *testing.T) {
	fake := fakekube.Setup(t, "fake")
	drivertest.Run(t, drivertest.Harness{
		Open:  func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) { return open(t) },
		Label: "pod-fedora",
		ProvokeQuota: func(t *testing.T) {
			fake.Inject(&fakekube.Fault{Method: "POST", Path: "/pods", Code: 403, Reason: "Forbidden", Times: 1,
				Msg: `pods "pod-fedora" is forbidden: exceeded quota: compute-resources, requested: pods=1, used: pods=10, limited: pods=10`})
		},
		InjectLeak: func(t *testing.T, md map[string]string) string {
			name := "main-" + md[driver.MetaNodeID]
			fake.AddNamespace(name, md)
			return name
		},
	})
}

// connection decodes a node's connection record.
func connection(t *testing.T, in *driver.Instance) map[string]any {
	t.Helper()
	var c map[string]any
	require.NoError(t, json.Unmarshal(in.ConnectionPortObject, &c))
	return c
}

func TestNamespaceNode(t *testing.T) {
	fake := fakekube.Setup(t, "fake")
	ad, cfg := open(t)
	m, in, err := create(ad, spec(cfg, "ns", "0000000007"))
	require.NoError(t, err)
	require.Equal(t, "main-0000000007", in.ExternalID)
	require.Equal(t, in.ExternalID, m.ExternalID())
	require.Empty(t, in.InterfaceIP, "a namespace node has no interface ip")
	require.Equal(t, "fake", in.Cloud)
	c := connection(t, in)
	require.Equal(t, map[string]any{
		"name": "main-0000000007", "namespace": "main-0000000007", "host": fake.URL(), "skiptls": false,
		"token": "token-main-0000000007-zuul-worker", "user": "zuul-worker",
		"ca_crt": base64.StdEncoding.EncodeToString(fake.CAData()),
	}, c)
	require.True(t, strings.HasPrefix(string(in.ConnectionPortObject), `{"name": `), "keys in upstream's order: %s", in.ConnectionPortObject)
	require.Equal(t, []string{"zuul-worker"}, fake.Names("serviceaccounts", "main-0000000007"))
	require.Equal(t, []string{"zuul"}, fake.Names("roles", "main-0000000007"))
	require.Equal(t, []string{"zuul-role"}, fake.Names("rolebindings", "main-0000000007"))
	require.Equal(t, "namespace", cfg.Pools[0].Label("ns").ConnectionType)

	require.NoError(t, remove(ad, in.ExternalID))
	require.False(t, fake.Exists("namespaces", "", in.ExternalID), "gone once the delete machine is done")
	require.NoError(t, remove(ad, in.ExternalID), "a second delete is done at once")
}

func TestPodNode(t *testing.T) {
	fake := fakekube.Setup(t, "fake")
	ad, cfg := open(t)
	_, in, err := create(ad, spec(cfg, "pod-fedora", "0000000008"))
	require.NoError(t, err)
	require.Equal(t, "pod-fedora", in.InterfaceIP)
	require.Equal(t, "fake-node-1", in.HostID)
	c := connection(t, in)
	require.Equal(t, "pod-fedora", c["pod"])
	require.Equal(t, []string{"zuul-restricted"}, fake.Names("roles", "main-0000000008"))
	require.Equal(t, []string{"pod-fedora"}, fake.Names("pods", "main-0000000008"))

	pod := fake.Object("pods", "main-0000000008", "pod-fedora")
	ctr := pod["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	require.Equal(t, "docker.io/fedora:28", ctr["image"])
	require.Equal(t, "IfNotPresent", ctr["imagePullPolicy"])
	require.Equal(t, map[string]any{
		"requests": map[string]any{"cpu": "2", "memory": "1Gi", "ephemeral-storage": "10M", "nvidia.com/gpu": "1"},
		"limits":   map[string]any{"cpu": "4", "memory": "1Gi", "ephemeral-storage": "10M", "nvidia.com/gpu": "1"},
	}, ctr["resources"])
	require.Equal(t, []any{map[string]any{"name": "FOO", "value": "bar"}}, ctr["env"])
	require.Equal(t, map[string]any{"privileged": true}, ctr["securityContext"])
	require.Equal(t, []any{map[string]any{"name": "scratch", "mountPath": "/data"}}, ctr["volumeMounts"])
	ps := pod["spec"].(map[string]any)
	require.Equal(t, "myscheduler", ps["schedulerName"])
	require.Equal(t, []any{map[string]any{"name": "scratch", "emptyDir": map[string]any{}}}, ps["volumes"])
	md := pod["metadata"].(map[string]any)
	require.Equal(t, "qa", md["labels"].(map[string]any)["environment"])
	require.Equal(t, "pod-fedora", md["labels"].(map[string]any)[kube.LabelNodeLabel])
	require.Equal(t, map[string]any{"team": "infra"}, md["annotations"])

	need := cfg.Pools[0].Label("pod-fedora").Need()
	require.Equal(t, map[string]float64{"cores": 2, "instances": 1, "ram": 1024, "ephemeral-storage": 10, "nvidia.com/gpu": 1}, need.Map())
	require.NoError(t, remove(ad, in.ExternalID))
}

func TestPodThatCannotStartFailsTheNode(t *testing.T) {
	fake := fakekube.Setup(t, "fake")
	ad, cfg := open(t)

	m, _, err := create(ad, spec(cfg, "pod-missing", "0000000011"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "ImagePullBackOff")
	require.Equal(t, driver.KindUnknown, driver.KindOf(err))
	require.Equal(t, "main-0000000011", m.ExternalID(), "the namespace is known, so the launcher deletes it")
	require.NoError(t, remove(ad, m.ExternalID()))
	require.False(t, fake.Exists("namespaces", "", "main-0000000011"))

	m, _, err = create(ad, spec(cfg, "pod-nowhere", "0000000012"))
	require.Error(t, err)
	require.True(t, driver.IsCapacity(err), "never scheduled: %v", err)
	require.Contains(t, err.Error(), "didn't match Pod's node affinity/selector")
	require.NoError(t, remove(ad, m.ExternalID()))
}

func TestForbiddenFailsOneNode(t *testing.T) {
	fake := fakekube.Setup(t, "fake")
	ad, cfg := open(t)
	fake.Inject(&fakekube.Fault{Method: "POST", Path: "/pods", Code: 403, Reason: "Forbidden", Times: 1,
		Msg: `admission webhook "policy.example.org" denied the request: privileged pods are not allowed`})
	m, _, err := create(ad, spec(cfg, "pod-fedora", "0000000013"))
	require.Error(t, err)
	require.Equal(t, driver.KindUnknown, driver.KindOf(err))
	require.Contains(t, err.Error(), "privileged pods are not allowed")
	require.NoError(t, remove(ad, m.ExternalID()))
	_, _, err = create(ad, spec(cfg, "pod-fedora", "0000000014"))
	require.NoError(t, err, "the provider goes on")
}

func TestFaultsAreRiddenOut(t *testing.T) {
	fake := fakekube.Setup(t, "fake")
	ad, cfg := open(t)
	// A 500 on a step: the machine reports a transient error and resumes
	// from that step on the next Advance.
	fake.Inject(&fakekube.Fault{Method: "POST", Path: "/serviceaccounts", Code: 500, Reason: "InternalError", Msg: "etcdserver: request timed out", Times: 1})
	m := ad.CreateMachine(spec(cfg, "ns", "0000000021"))
	var transient int
	ctx := context.Background()
	for i := 0; i < 10000; i++ {
		in, err := m.Advance(ctx)
		if err != nil {
			require.True(t, driver.IsTransient(err), "%v", err)
			transient++
			continue
		}
		if in != nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	require.Equal(t, 1, transient)
	require.Equal(t, []string{"zuul-worker"}, fake.Names("serviceaccounts", "main-0000000021"))

	// A POST that succeeded but whose answer was lost (the fault answers
	// after the fact is simulated by creating the namespace first): the
	// machine adopts its own namespace.
	fake.AddNamespace("main-0000000022", map[string]string{driver.MetaNodeID: "0000000022"})
	_, in, err := create(ad, spec(cfg, "ns", "0000000022"))
	require.NoError(t, err)
	require.Equal(t, "main-0000000022", in.ExternalID)

	// 429 with Retry-After and slow answers are absorbed by client-go.
	throttle := &fakekube.Fault{Method: "POST", Path: "/namespaces", Code: http.StatusTooManyRequests, Reason: "TooManyRequests", Msg: "slow down", Times: 1}
	fake.Inject(throttle)
	fake.Inject(&fakekube.Fault{Method: "POST", Path: "/rolebindings", Delay: 300 * time.Millisecond, Times: 1})
	_, _, err = create(ad, spec(cfg, "ns", "0000000023"))
	require.NoError(t, err)
	require.Equal(t, 1, throttle.Hits(fake), "the throttled call was made again by client-go")
}

func TestListingsAreSharedAcrossMachines(t *testing.T) {
	fake := fakekube.Setup(t, "fake")
	fake.PodStartDelay = time.Hour
	cfg := parse(t, provider)
	st := cfg.Settings.(*kube.ProviderSettings)
	st.PollInterval, st.ListTTL, st.QPS, st.Burst = time.Millisecond, time.Hour, 1000, 1000
	ad, err := kubernetes.Driver{}.Open(context.Background(), cfg, driver.Env{})
	require.NoError(t, err)
	ctx := context.Background()
	const n = 50
	machines := make([]driver.CreateMachine, n)
	for i := range machines {
		machines[i] = ad.CreateMachine(spec(cfg, "pod-fedora", "00000001"+twoDigits(i)))
	}
	// Each machine reaches its pod wait (7 calls each), then waits.
	for round := 0; round < 200; round++ {
		for _, m := range machines {
			_, err := m.Advance(ctx)
			require.NoError(t, err)
		}
	}
	calls := fake.CallsBy()
	require.Equal(t, n, calls["POST pods"])
	require.LessOrEqual(t, calls["GET pods"], 2, "waiting machines share one pod listing: %v", calls)
}

func twoDigits(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

// A pod node costs one write per object (namespace, account, token
// secret, role, binding, pod) and one delete call; reads are the token
// polls and shared listings.
func TestCallsPerNode(t *testing.T) {
	fake := fakekube.Setup(t, "fake")
	ad, cfg := open(t)
	_, in, err := create(ad, spec(cfg, "pod-fedora", "0000000031"))
	require.NoError(t, err)
	require.NoError(t, remove(ad, in.ExternalID))
	writes := 0
	for k, v := range fake.CallsBy() {
		if !strings.HasPrefix(k, "GET ") {
			writes += v
		}
	}
	require.Equal(t, 7, writes, "%v", fake.CallsBy())
	require.Equal(t, 1, fake.CallsBy()["DELETE namespaces"])
}
