package gce_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/gce"
)

func errorsOf(p *driver.Problems) string {
	var b strings.Builder
	for _, e := range p.Errors {
		b.WriteString(e.Error())
		b.WriteString("\n")
	}
	return b.String()
}

// TestValidateUpstreamFixtures gives upstream's verdict on its GCE
// fixture: refused, because the fixture's zookeeper-servers entry holds
// nulls where the top-level schema wants a string host, an int port and a
// string chroot (upstream's tests fill them in before loading the file).
// With the server filled in, as those tests do, the file is valid.
func TestValidateUpstreamFixtures(t *testing.T) {
	p := nodepool.ValidateConfig(filepath.Join("testdata", "upstream-gce.yaml"))
	require.Equal(t, driver.StepSchema, p.Step, errorsOf(p))
	msgs := errorsOf(p)
	require.Contains(t, msgs, "zookeeper-servers[0].host: expected str, got null")
	require.Contains(t, msgs, "zookeeper-servers[0].port: expected int, got null")
	require.Contains(t, msgs, "zookeeper-servers[0].chroot: expected str, got null")
	require.NotContains(t, msgs, "providers", "the GCE provider itself is valid")

	for _, f := range []string{"upstream-gce-zk.yaml", "docs-example.yaml"} {
		p = nodepool.ValidateConfig(filepath.Join("testdata", f))
		require.Empty(t, p.Errors, "%s: %s", f, errorsOf(p))
		cfg, err := nodepool.LoadConfig(filepath.Join("testdata", f), "")
		require.NoError(t, err, f)
		require.Len(t, cfg.Providers, 1)
	}
}

func TestLoadUpstreamFixture(t *testing.T) {
	cfg, err := nodepool.LoadConfig(filepath.Join("testdata", "upstream-gce-zk.yaml"), "")
	require.NoError(t, err)
	pc := cfg.Providers[0]
	require.Equal(t, "gce", pc.Driver)
	require.False(t, pc.ManageImages, "no diskimage upload")
	require.Equal(t, 3, pc.LaunchRetries)
	require.Equal(t, time.Hour, pc.LaunchTimeout)
	require.Equal(t, 60*time.Second, pc.BootTimeout)
	st := pc.Settings.(*gce.ProviderSettings)
	require.Equal(t, "gcloud-project", st.Project)
	require.Equal(t, "us-central1", st.Region)
	require.Equal(t, "us-central1-a", st.Zone)
	require.Equal(t, 2.0, st.RequestsPerSecond())
	require.Equal(t, []*gce.CloudImage{{
		Name: "debian-stretch", ImageProject: "debian-cloud", ImageFamily: "debian-9",
		Username: "zuul", Key: "ssh-rsa something zuul", PythonPath: "auto",
		ConnectionType: "ssh", ConnectionPort: 22,
	}}, st.CloudImages)
	pool := pc.Pools[0]
	require.Equal(t, "main", pool.Name)
	require.Equal(t, 8, pool.MaxServers)
	require.True(t, pool.UseInternalIP)
	require.True(t, pool.HostKeyChecking)
	require.Equal(t, map[string]any{"key1": "value1", "key2": "value2"}, pool.NodeAttributes)
	l := pool.Labels[0]
	require.Equal(t, "debian-stretch-f1-micro", l.Name)
	require.Equal(t, "debian-stretch", l.CloudImage)
	require.Equal(t, "zuul", l.Username)
	require.Equal(t, "auto", l.PythonPath)
	require.Equal(t, "ssh", l.ConnectionType)
	require.Equal(t, 22, l.ConnectionPort)
	require.True(t, l.HostKeyChecking)
	require.Equal(t, &gce.LabelSettings{InstanceType: "f1-micro", VolumeType: "standard", VolumeSize: 10}, l.Settings)
}

// provider is a valid GCE configuration; %s is replaced by the lines
// under test, which override or extend the entry they are indented for.
const provider = `labels:
  - name: small
providers:
  - name: gce
    driver: gce
    project: p
    region: us-central1
    zone: us-central1-a
%s`

const images = `    cloud-images:
      - name: debian
        image-id: projects/debian-cloud/global/images/debian-12
`

const pools = `    pools:
      - name: main
        labels:
          - name: small
            instance-type: e2-small
            cloud-image: debian
`

// writeConfig writes the provider with body; a first line "-key" drops
// that key of the provider.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	doc := provider
	if drop, rest, ok := strings.Cut(body, "\n"); ok && strings.HasPrefix(drop, "-") {
		var kept []string
		for _, line := range strings.Split(doc, "\n") {
			if !strings.HasPrefix(line, "    "+drop[1:]+":") {
				kept = append(kept, line)
			}
		}
		doc, body = strings.Join(kept, "\n"), rest
	}
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(doc, "%s", body, 1)), 0o600))
	return path
}

// TestValidateAndLoadAgreeWithUpstream checks each key against upstream:
// "validate" is config-validate's verdict (upstream's schema), "load" the
// launcher's (upstream's loader, which reads a few keys its schema
// refuses and requires a few its schema does not).
func TestValidateAndLoadAgreeWithUpstream(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		validate string // "" = valid, else a substring of an error
		load     string // "" = loads, else a substring of the error
	}{
		{"minimal", images + pools, "", ""},
		{"all keys", `    max-concurrency: 10
    priority: 2
    boot-timeout: 120
    launch-retries: 5
    rate-limit: 4
    cloud-images:
      - name: debian
        image-project: debian-cloud
        image-family: debian-12
        username: zuul
        key: ssh-ed25519 AAAA zuul
        python-path: /usr/bin/python3
        shell-type: sh
        connection-type: ssh
        connection-port: 2222
      - name: win
        image-id: projects/windows-cloud/global/images/windows-2022
        connection-type: winrm
    pools:
      - name: main
        max-servers: 4
        priority: 1
        node-attributes: {a: b}
        use-internal-ip: true
        labels:
          - name: small
            instance-type: e2-small
            cloud-image: debian
            volume-type: pd-ssd
            volume-size: 20
`, "", ""},
		{"no project", "-project\n" + images + pools, "providers[0].project: required key not provided", "providers[0].project: required key not provided"},
		{"no region", "-region\n" + images + pools, "providers[0].region: required key not provided", "providers[0].region: required key not provided"},
		{"no zone", "-zone\n" + images + pools, "providers[0].zone: required key not provided", "providers[0].zone: required key not provided"},
		{"no pools", images, "providers[0].pools: required key not provided", ""},
		{"pool without labels", images + "    pools:\n      - name: main\n", "providers[0].pools[0].labels: required key not provided", ""},
		{"rate outside the schema", "    rate: 10\n" + images + pools, "providers[0].rate: extra keys not allowed", ""},
		{"launch-timeout outside the schema", "    launch-timeout: 600\n" + images + pools, "providers[0].launch-timeout: extra keys not allowed", ""},
		{"pool host-key-checking outside the schema", images + strings.Replace(pools, "        labels:", "        host-key-checking: false\n        labels:", 1),
			"providers[0].pools[0].host-key-checking: extra keys not allowed", ""},
		{"pool max-cores unknown", images + strings.Replace(pools, "        labels:", "        max-cores: 8\n        labels:", 1),
			"providers[0].pools[0].max-cores: extra keys not allowed", ""},
		{"rate-limit int", "    rate-limit: 1.5\n" + images + pools, "providers[0].rate-limit: expected int", "rate-limit: expected int"},
		{"volume-size int", images + pools + "            volume-size: \"10\"\n", "volume-size: expected int, got str", "volume-size: expected int"},
		{"label needs cloud-image", images + strings.Replace(pools, "            cloud-image: debian\n", "", 1),
			"providers[0].pools[0].labels[0].cloud-image: required key not provided", "cloud-image: required key not provided"},
		{"label needs instance-type", images + strings.Replace(pools, "            instance-type: e2-small\n", "", 1),
			"labels[0].instance-type: required key not provided", "instance-type: required key not provided"},
		{"label host-key-checking unknown", images + pools + "            host-key-checking: false\n",
			"labels[0].host-key-checking: extra keys not allowed", ""},
		{"unknown cloud image", strings.Replace(images, "name: debian", "name: other", 1) + pools,
			"", "cloud-image debian does not exist in provider gce but is referenced in label small"},
		{"cloud image without name", "    cloud-images:\n      - image-id: x\n" + strings.Replace(pools, "            cloud-image: debian\n", "            cloud-image: debian\n", 1),
			"", "cloud-images[0].name: required key not provided"},
		{"cloud image unknown key", strings.Replace(images, "        image-id:", "        image-name: x\n        image-id:", 1) + pools,
			"providers[0].cloud-images[0].image-name: extra keys not allowed", ""},
		{"connection-port int", strings.Replace(images, "        image-id:", "        connection-port: ssh\n        image-id:", 1) + pools,
			"connection-port: expected int", "connection-port: expected int"},
		{"use-internal-ip bool", images + strings.Replace(pools, "        labels:", "        use-internal-ip: sometimes\n        labels:", 1),
			"use-internal-ip: expected bool", "use-internal-ip: expected bool"},
		{"pool label not top-level", images + strings.Replace(pools, "name: small", "name: large", 1),
			"", "large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.body)
			p := nodepool.ValidateConfig(path)
			if tt.validate == "" {
				require.Empty(t, p.Errors, errorsOf(p))
			} else {
				require.Contains(t, errorsOf(p), tt.validate)
			}
			_, err := nodepool.LoadConfig(path, "")
			if tt.load == "" {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
				require.Contains(t, err.Error(), tt.load)
			}
		})
	}
}

func TestLoadReadsKeysOutsideTheSchema(t *testing.T) {
	path := writeConfig(t, "    rate: 0\n    rate-limit: 7\n    launch-timeout: 600\n"+images+
		strings.Replace(pools, "        labels:", "        host-key-checking: false\n        labels:", 1))
	cfg, err := nodepool.LoadConfig(path, "")
	require.NoError(t, err)
	pc := cfg.Providers[0]
	st := pc.Settings.(*gce.ProviderSettings)
	require.Equal(t, 0.0, st.RequestsPerSecond(), "rate wins over rate-limit; 0 is unlimited")
	require.Equal(t, 10*time.Minute, pc.LaunchTimeout)
	require.False(t, pc.Pools[0].HostKeyChecking)
	require.False(t, pc.Pools[0].Labels[0].HostKeyChecking, "labels follow the pool")
	ls := pc.Pools[0].Labels[0].Settings.(*gce.LabelSettings)
	require.Equal(t, &gce.LabelSettings{InstanceType: "e2-small", VolumeType: "pd-standard", VolumeSize: 10}, ls, "defaults")

	path = writeConfig(t, "    rate-limit: 7\n"+images+pools)
	cfg, err = nodepool.LoadConfig(path, "")
	require.NoError(t, err)
	require.Equal(t, 7.0, cfg.Providers[0].Settings.(*gce.ProviderSettings).RequestsPerSecond())
}
