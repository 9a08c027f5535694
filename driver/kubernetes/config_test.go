package kubernetes_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/internal/kube"
)

// The reference implementation's own test configurations that name the
// driver are valid.
func TestValidateReferenceFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	require.NoError(t, err)
	require.Len(t, files, 13)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p := nodepool.ValidateConfig(f)
			require.Empty(t, p.Errors, "%v", p.Errors)
		})
	}
}

func validate(t *testing.T, yaml string) *driver.Problems {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return nodepool.ValidateConfig(path)
}

const invalidBase = `
labels:
  - name: l
providers:
  - name: k
    driver: kubernetes
`

func TestValidateRejects(t *testing.T) {
	tests := []struct{ name, provider, msg string }{
		{"no pools", "    context: c\n", "providers[0].pools: required key not provided"},
		{"no labels", "    pools:\n      - name: main\n", "providers[0].pools[0].labels: required key not provided"},
		{"no type", "    pools:\n      - name: main\n        labels:\n          - name: l\n", "providers[0].pools[0].labels[0].type: required key not provided"},
		{"int gpu", "    pools:\n      - name: main\n        labels:\n          - name: l\n            type: pod\n            gpu: 1\n", "labels[0].gpu: expected float"},
		{"str cpu", "    pools:\n      - name: main\n        labels:\n          - name: l\n            type: pod\n            cpu: two\n", "labels[0].cpu: expected int"},
		{"env without value", "    pools:\n      - name: main\n        labels:\n          - name: l\n            type: pod\n            env:\n              - name: A\n", "labels[0].env[0].value: required key not provided"},
		{"float extra resource", "    pools:\n      - name: main\n        labels:\n          - name: l\n            type: pod\n            extra-resources:\n              gpu: 0.5\n", "extra-resources.gpu: expected int"},
		{"unknown key", "    pools:\n      - name: main\n        labels:\n          - name: l\n            type: pod\n            image-pull-secrets: []\n", "labels[0].image-pull-secrets: extra keys not allowed"},
		{"max-projects", "    max-projects: 3\n    pools:\n      - name: main\n        labels:\n          - name: l\n            type: pod\n", "providers[0].max-projects: extra keys not allowed"},
		{"launch-timeout", "    launch-timeout: 3\n    pools:\n      - name: main\n        labels:\n          - name: l\n            type: pod\n", "providers[0].launch-timeout: extra keys not allowed"},
		{"node-selector list", "    pools:\n      - name: main\n        labels:\n          - name: l\n            type: pod\n            node-selector: [a]\n", "labels[0].node-selector: expected a dictionary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validate(t, invalidBase+tt.provider)
			var msgs []string
			for _, e := range p.Errors {
				msgs = append(msgs, e.Error())
			}
			require.Contains(t, strings.Join(msgs, "\n"), tt.msg)
		})
	}
}

// Pool defaults fill a label's requests, limits fall back to the pool's
// default limits and then to the requests, and provider limits are the
// pools' defaults.
func TestParseDefaults(t *testing.T) {
	cfg := parse(t, `
name: k
context: admin
max-cores: 100
max-ram: 2048
max-resources: {mygpu: 4}
pools:
  - name: main
    max-ram: 1000
    max-resources: {other: 1}
    default-label-cpu: 2
    default-label-memory: 1024
    default-label-storage: 10
    default-label-cpu-limit: 8
    default-label-extra-resources: {mygpu: 1}
    labels:
      - name: d
        type: pod
      - name: c
        type: pod
        cpu: 3
        memory-limit: 2048
        extra-resources: {mygpu: 2}
      - name: n
        type: namespace
`)
	require.Equal(t, 3, cfg.LaunchRetries)
	pool := cfg.Pools[0]
	require.Equal(t, 100, pool.MaxCores)
	require.Equal(t, 1000, pool.MaxRAM)
	require.Equal(t, driver.Unlimited, pool.MaxServers)
	require.Equal(t, map[string]float64{"mygpu": 4, "other": 1}, pool.MaxResources)
	require.False(t, pool.HostKeyChecking)
	d := pool.Label("d").Settings.(*kube.LabelSettings)
	require.Equal(t, []int{2, 1024, 10, 8, 1024, 10}, []int{d.CPU, d.Memory, d.Storage, d.CPULimit, d.MemoryLimit, d.StorageLimit})
	require.Equal(t, "IfNotPresent", d.ImagePull)
	c := pool.Label("c").Settings.(*kube.LabelSettings)
	require.Equal(t, []int{3, 1024, 10, 8, 2048, 10}, []int{c.CPU, c.Memory, c.Storage, c.CPULimit, c.MemoryLimit, c.StorageLimit})
	require.Equal(t, map[string]float64{"instances": 1, "cores": 3, "ram": 1024, "ephemeral-storage": 10, "mygpu": 2}, pool.Label("c").Resources)
	require.Equal(t, "auto", pool.Label("n").PythonPath)
	require.Equal(t, "namespace", pool.Label("n").ConnectionType)
	require.Equal(t, "kubectl", pool.Label("c").ConnectionType)
}
