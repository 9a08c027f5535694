package openshiftpods_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/drivertest"
	"github.com/nodepool-go/nodepool/driver/internal/kube"
	"github.com/nodepool-go/nodepool/driver/openshiftpods"
	"github.com/nodepool-go/nodepool/internal/fakekube"
)

const provider = `
name: osp
driver: openshiftpods
context: fake
pools:
  - name: main
    labels:
      - name: pod-fedora
        image: docker.io/fedora:28
        image-pull-secrets:
          - name: registry-secret
        gpu: "0.5"
        gpu-resource: nvidia.com/gpu
        memory: 512
`

func parse(t testing.TB, src string) *driver.ProviderConfig {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &doc))
	probs := &driver.Problems{File: "nodepool.yaml"}
	p := openshiftpods.Driver{}.ParseProvider(driver.NewSection(doc.Content[0], "providers[0]", probs))
	require.NoError(t, probs.Err())
	return p
}

func open(t testing.TB) (driver.Adapter, *driver.ProviderConfig) {
	t.Helper()
	cfg := parse(t, provider)
	st := cfg.Settings.(*kube.ProviderSettings)
	st.PollInterval, st.ListTTL, st.PodTimeout = 10*time.Millisecond, 50*time.Millisecond, time.Second
	ad, err := openshiftpods.Driver{}.Open(context.Background(), cfg, driver.Env{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ad.Close() })
	return ad, cfg
}

// setup starts the fake with the pool's project.
func setup(t *testing.T) *fakekube.Server {
	fake := fakekube.Setup(t, "fake")
	fake.AddNamespace("main", nil)
	return fake
}

func TestConformance(t *testing.T) {
	fake := setup(t)
	drivertest.Run(t, drivertest.Harness{
		Open:         func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) { return open(t) },
		ProvokeQuota: func(t *testing.T) { fake.SetPodQuota("main", 0) },
		InjectLeak: func(t *testing.T, md map[string]string) string {
			fake.SetPodQuota("main", 1000)
			ad, cfg := open(t)
			pool := cfg.Pools[0]
			m := ad.CreateMachine(driver.CreateSpec{Label: pool.Labels[0], Pool: pool, Metadata: md})
			_, err := drivertest.AdvanceCreate(context.Background(), m, 5*time.Millisecond, 10*time.Second)
			require.NoError(t, err)
			return m.ExternalID()
		},
	})
}

func TestPodNode(t *testing.T) {
	fake := setup(t)
	ad, cfg := open(t)
	pool := cfg.Pools[0]
	md := map[string]string{driver.MetaNodeID: "0000000005", driver.MetaPoolName: "main", driver.MetaProviderName: "osp"}
	m := ad.CreateMachine(driver.CreateSpec{Label: pool.Labels[0], Pool: pool, Metadata: md})
	in, err := drivertest.AdvanceCreate(context.Background(), m, 5*time.Millisecond, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, "main-pod-fedora-0000000005", in.ExternalID)
	require.Equal(t, "pod-fedora-0000000005", in.InterfaceIP)
	require.Equal(t, "fake-node-1", in.HostID)
	require.True(t, strings.HasPrefix(string(in.ConnectionPortObject), `{"pod": "pod-fedora-0000000005", "namespace": "main"`), "%s", in.ConnectionPortObject)
	var c map[string]any
	require.NoError(t, json.Unmarshal(in.ConnectionPortObject, &c))
	require.Equal(t, map[string]any{
		"pod": "pod-fedora-0000000005", "namespace": "main", "host": fake.URL(),
		"ca_crt":  base64.StdEncoding.EncodeToString(fake.CAData()),
		"skiptls": false, "token": fakekube.Token, "user": "zuul-worker",
	}, c)
	require.Empty(t, fake.Names("serviceaccounts", "main"), "no account per node")
	pod := fake.Object("pods", "main", "pod-fedora-0000000005")
	spec := pod["spec"].(map[string]any)
	require.Equal(t, []any{map[string]any{"name": "registry-secret"}}, spec["imagePullSecrets"])
	res := spec["containers"].([]any)[0].(map[string]any)["resources"].(map[string]any)
	require.Equal(t, "500m", res["requests"].(map[string]any)["nvidia.com/gpu"])
	require.Equal(t, map[string]float64{"instances": 1, "ram": 512, "nvidia.com/gpu": 0.5}, pool.Labels[0].Resources)
	require.Equal(t, "kubectl", pool.Labels[0].ConnectionType)

	require.NoError(t, drivertest.AdvanceDelete(context.Background(), ad.DeleteMachine(in.ExternalID), 5*time.Millisecond, 10*time.Second))
	require.Empty(t, fake.Names("pods", "main"))
}

func TestProjectQuotaPausesTheNode(t *testing.T) {
	fake := setup(t)
	fake.SetPodQuota("main", 1)
	ad, cfg := open(t)
	pool := cfg.Pools[0]
	mk := func(id string) (driver.CreateMachine, error) {
		md := map[string]string{driver.MetaNodeID: id, driver.MetaPoolName: "main", driver.MetaProviderName: "osp"}
		m := ad.CreateMachine(driver.CreateSpec{Label: pool.Labels[0], Pool: pool, Metadata: md})
		_, err := drivertest.AdvanceCreate(context.Background(), m, 5*time.Millisecond, 10*time.Second)
		return m, err
	}
	_, err := mk("0000000001")
	require.NoError(t, err)
	m, err := mk("0000000002")
	require.True(t, driver.IsQuota(err), "%v", err)
	require.Contains(t, err.Error(), "exceeded quota")
	require.Empty(t, m.ExternalID(), "nothing was created")
}

func TestValidateReferenceFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	require.NoError(t, err)
	require.Len(t, files, 10)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p := nodepool.ValidateConfig(f)
			require.Empty(t, p.Errors, "%v", p.Errors)
		})
	}
}

func TestValidateRejects(t *testing.T) {
	base := "labels:\n  - name: l\nproviders:\n  - name: o\n    driver: openshiftpods\n"
	pool := "    pools:\n      - name: main\n        labels:\n          - name: l\n"
	tests := []struct{ name, provider, msg string }{
		{"no context", pool + "            image: i\n", "providers[0].context: required key not provided"},
		{"no image", "    context: c\n" + pool, "labels[0].image: required key not provided"},
		{"type", "    context: c\n" + pool + "            image: i\n            type: pod\n", "labels[0].type: extra keys not allowed"},
		{"max-projects", "    context: c\n    max-projects: 2\n" + pool + "            image: i\n", "providers[0].max-projects: extra keys not allowed"},
		{"float gpu", "    context: c\n" + pool + "            image: i\n            gpu: 0.5\n", "labels[0].gpu: expected str"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "nodepool.yaml")
			require.NoError(t, os.WriteFile(path, []byte(base+tt.provider), 0o600))
			var msgs []string
			for _, e := range nodepool.ValidateConfig(path).Errors {
				msgs = append(msgs, e.Error())
			}
			require.Contains(t, strings.Join(msgs, "\n"), tt.msg)
		})
	}
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(base+"    context: c\n    max-pods: 3\n"+pool+"            image: i\n"), 0o600))
	require.Empty(t, nodepool.ValidateConfig(path).Errors, "max-pods is accepted")
}
