package openshift_test

import (
	"context"
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
	"github.com/nodepool-go/nodepool/driver/openshift"
	"github.com/nodepool-go/nodepool/internal/fakekube"
)

const provider = `
name: os
driver: openshift
context: fake
max-projects: 7
pools:
  - name: main
    labels:
      - name: openshift-project
        type: project
      - name: pod-fedora
        type: pod
        image: docker.io/fedora:28
        python-path: /usr/bin/python3
        shell-type: csh
`

func parse(t testing.TB, src string) *driver.ProviderConfig {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &doc))
	probs := &driver.Problems{File: "nodepool.yaml"}
	p := openshift.Driver{}.ParseProvider(driver.NewSection(doc.Content[0], "providers[0]", probs))
	require.NoError(t, probs.Err())
	return p
}

func open(t testing.TB) (driver.Adapter, *driver.ProviderConfig) {
	t.Helper()
	cfg := parse(t, provider)
	st := cfg.Settings.(*kube.ProviderSettings)
	st.PollInterval, st.ListTTL, st.PodTimeout, st.TokenTimeout = 10*time.Millisecond, 50*time.Millisecond, time.Second, 2*time.Second
	ad, err := openshift.Driver{}.Open(context.Background(), cfg, driver.Env{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ad.Close() })
	return ad, cfg
}

func setup(t *testing.T) *fakekube.Server {
	fake := fakekube.Setup(t, "fake")
	fake.OpenShift = true
	return fake
}

func create(t *testing.T, ad driver.Adapter, cfg *driver.ProviderConfig, label, id string) (driver.CreateMachine, *driver.Instance, error) {
	pool := cfg.Pools[0]
	md := map[string]string{driver.MetaNodeID: id, driver.MetaPoolName: "main", driver.MetaProviderName: cfg.Name}
	m := ad.CreateMachine(driver.CreateSpec{Label: pool.Label(label), Pool: pool, Metadata: md})
	in, err := drivertest.AdvanceCreate(context.Background(), m, 5*time.Millisecond, 10*time.Second)
	return m, in, err
}

func TestConformance(t *testing.T) {
	fake := setup(t)
	drivertest.Run(t, drivertest.Harness{
		Open:  func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) { return open(t) },
		Label: "pod-fedora",
		ProvokeQuota: func(t *testing.T) {
			fake.Inject(&fakekube.Fault{Method: "POST", Path: "/projectrequests", Code: 403, Reason: "Forbidden", Times: 1,
				Msg: `projectrequests.project.openshift.io "main-1" is forbidden: exceeded quota: clusterquota, requested: count/projects=1`})
		},
		InjectLeak: func(t *testing.T, md map[string]string) string {
			name := "main-" + md[driver.MetaNodeID]
			fake.AddNamespace(name, md)
			return name
		},
	})
}

func TestProjectNode(t *testing.T) {
	fake := setup(t)
	ad, cfg := open(t)
	require.Equal(t, 7, cfg.Pools[0].MaxServers, "max-projects is the pools' max-servers")
	_, in, err := create(t, ad, cfg, "openshift-project", "0000000003")
	require.NoError(t, err)
	require.Equal(t, "main-0000000003", in.ExternalID)
	require.Empty(t, in.InterfaceIP)
	require.True(t, strings.HasPrefix(string(in.ConnectionPortObject), `{"namespace": "main-0000000003"`), "%s", in.ConnectionPortObject)
	var c map[string]any
	require.NoError(t, json.Unmarshal(in.ConnectionPortObject, &c))
	require.Equal(t, "token-main-0000000003-zuul-worker-token-x7k2p", c["token"], "the account's own token secret")
	require.Equal(t, "zuul-worker", c["user"])
	require.NotEmpty(t, c["ca_crt"])
	require.Equal(t, []string{"admin-0"}, fake.Names("rolebindings", "main-0000000003"))
	ns := fake.Object("namespaces", "", "main-0000000003")
	require.Equal(t, "0000000003", ns["metadata"].(map[string]any)["labels"].(map[string]any)[driver.MetaNodeID],
		"the project's namespace carries our labels for leak cleanup")
	require.Equal(t, "project", cfg.Pools[0].Label("openshift-project").ConnectionType)
	require.NoError(t, drivertest.AdvanceDelete(context.Background(), ad.DeleteMachine(in.ExternalID), 5*time.Millisecond, 10*time.Second))
	require.False(t, fake.Exists("namespaces", "", "main-0000000003"))
}

func TestPodInProject(t *testing.T) {
	fake := setup(t)
	ad, cfg := open(t)
	_, in, err := create(t, ad, cfg, "pod-fedora", "0000000004")
	require.NoError(t, err)
	require.Equal(t, "pod-fedora", in.InterfaceIP)
	require.Equal(t, []string{"pod-fedora"}, fake.Names("pods", "main-0000000004"))
	l := cfg.Pools[0].Label("pod-fedora")
	require.Equal(t, "/usr/bin/python3", l.PythonPath)
	require.Equal(t, "csh", l.ShellType)
	require.Equal(t, "kubectl", l.ConnectionType)
}

func TestTokenThatNeverComesFailsTheNode(t *testing.T) {
	fake := setup(t)
	fake.TokenDelay = time.Hour
	ad, cfg := open(t)
	m, _, err := create(t, ad, cfg, "openshift-project", "0000000009")
	require.Error(t, err)
	require.Contains(t, err.Error(), "couldn't find token for service account zuul-worker")
	require.Equal(t, "main-0000000009", m.ExternalID(), "the launcher deletes the project")
}

func TestValidateReferenceFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	require.NoError(t, err)
	require.Len(t, files, 12)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p := nodepool.ValidateConfig(f)
			require.Empty(t, p.Errors, "%v", p.Errors)
		})
	}
}

func TestValidateRejects(t *testing.T) {
	base := "labels:\n  - name: l\nproviders:\n  - name: o\n    driver: openshift\n"
	pool := "    pools:\n      - name: main\n        labels:\n          - name: l\n"
	tests := []struct{ name, provider, msg string }{
		{"no context", pool + "            type: project\n", "providers[0].context: required key not provided"},
		{"no type", "    context: c\n" + pool, "labels[0].type: required key not provided"},
		{"max-servers", "    context: c\n    max-servers: 2\n" + pool + "            type: pod\n", "providers[0].max-servers: extra keys not allowed"},
		{"max-pods", "    context: c\n    max-pods: 2\n" + pool + "            type: pod\n", "providers[0].max-pods: extra keys not allowed"},
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
}
