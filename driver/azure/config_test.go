package azure_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/azure"
)

func messages(errs []*driver.ConfigError) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Error()
	}
	return out
}

// The upstream fixture configurations of the Azure driver (with their
// test placeholders filled in) are valid.
func TestValidateUpstreamFixtures(t *testing.T) {
	for _, f := range []string{"azure.yaml", "azure-diskimage.yaml", "azure-external-image.yaml", "azure-min-ready.yaml"} {
		t.Run(f, func(t *testing.T) {
			p := nodepool.ValidateConfig(filepath.Join("testdata", f))
			require.Empty(t, p.Errors, "%v", messages(p.Errors))
		})
	}
}

const base = `
labels: [{name: bionic}]
diskimages: [{name: img}]
providers:
  - name: az
    driver: azure
%s
`

const provider = `    location: centralus
    resource-group: nodepool
    resource-group-location: centralus
    auth-path: /etc/azure.json
`

const cloudImages = `    cloud-images:
      - name: bionic
        username: zuul
        image-reference: {sku: s, publisher: p, version: latest, offer: o}
`

const pools = `    pools:
      - name: main
        max-servers: 10
        labels:
          - name: bionic
            cloud-image: bionic
            hardware-profile: {vm-size: Standard_B1ls}
`

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(p, []byte(strings.ReplaceAll(base, "%s", body)), 0o644))
	return p
}

// Verdicts of upstream's schema on variations of a provider.
func TestValidateSchema(t *testing.T) {
	tests := []struct {
		name string
		body string
		msg  string // "" = valid
	}{
		{"minimal", provider + cloudImages + pools, ""},
		{"no pools", provider + cloudImages, "providers[0].pools: required key not provided"},
		{"no location", strings.Replace(provider, "    location: centralus\n", "", 1) + cloudImages + pools, "providers[0].location: required key not provided"},
		{"no resource group", strings.Replace(provider, "    resource-group: nodepool\n", "", 1) + cloudImages + pools, "providers[0].resource-group: required key not provided"},
		{"no rg location", strings.Replace(provider, "    resource-group-location: centralus\n", "", 1) + cloudImages + pools, "resource-group-location: required key not provided"},
		{"no auth-path", strings.Replace(provider, "    auth-path: /etc/azure.json\n", "", 1) + cloudImages + pools, "providers[0].auth-path: required key not provided"},
		{"network by name", provider + "    network: NodePool\n" + cloudImages + pools, ""},
		{"network dict", provider + "    network: {resource-group: net, network: NodePool, subnet: sub}\n" + cloudImages + pools, ""},
		{"network dict extra", provider + "    network: {name: NodePool}\n" + cloudImages + pools, "providers[0].network.name: extra keys not allowed"},
		{"rate string", provider + "    rate: '2.5'\n" + cloudImages + pools, ""},
		{"rate word", provider + "    rate: fast\n" + cloudImages + pools, "providers[0].rate: expected float"},
		{"ip flags", provider + "    ipv4: true\n    ipv6: true\n    public-ipv4: false\n    public-ipv6: true\n    use-internal-ip: true\n    host-key-checking: false\n" + cloudImages + pools, ""},
		{"unknown provider key", provider + "    region: centralus\n" + cloudImages + pools, "providers[0].region: extra keys not allowed"},
		{"image id and reference", provider + cloudImages + "        image-id: /x\n" + pools, "two or more values in the same group of exclusion 'spec'"},
		{"no image", provider + "    cloud-images:\n      - {name: bionic, username: zuul}\n" + pools, `Provide either "image-reference", "image-filter", or "image-id" keys`},
		{"cloud image without username", provider + "    cloud-images:\n      - {name: bionic, image-id: /x}\n" + pools, "cloud-images[0].username: required key not provided"},
		{"reference incomplete", provider + "    cloud-images:\n      - {name: bionic, username: zuul, image-reference: {sku: s}}\n" + pools, "image-reference.publisher: required key not provided"},
		{"image filter", provider + "    cloud-images:\n      - {name: bionic, username: zuul, image-filter: {name: n, location: l, tags: {a: b}}}\n" + pools, ""},
		{"cloud image keys", provider + "    cloud-images:\n      - {name: bionic, username: zuul, image-id: /x, password: p, generate-password: true, key: k, connection-type: winrm, connection-port: 5986, python-path: /usr/bin/python3, shell-type: sh}\n" + pools, ""},
		{"no hardware profile", provider + cloudImages + "    pools:\n      - name: main\n        labels:\n          - {name: bionic, cloud-image: bionic}\n", "labels[0].hardware-profile: required key not provided"},
		{"no vm-size", provider + cloudImages + "    pools:\n      - name: main\n        labels:\n          - {name: bionic, cloud-image: bionic, hardware-profile: {}}\n", "hardware-profile.vm-size: required key not provided"},
		{"pool without labels", provider + "    pools:\n      - name: main\n", "providers[0].pools[0].labels: required key not provided"},
		{"pool max-cores", provider + "    pools:\n      - name: main\n        max-cores: 4\n        labels: []\n", "max-cores: extra keys not allowed"},
		{"label keys", provider + cloudImages + "    pools:\n      - name: main\n        node-attributes: {a: 1}\n        priority: 2\n        labels:\n          - name: bionic\n            cloud-image: bionic\n            hardware-profile: {vm-size: x}\n            tags: {a: 1}\n            dynamic-tags: {b: '{request.id}'}\n            user-data: u\n            custom-data: c\n", ""},
		{"label host-key-checking", provider + cloudImages + "    pools:\n      - name: main\n        labels:\n          - {name: bionic, cloud-image: bionic, hardware-profile: {vm-size: x}, host-key-checking: false}\n", "host-key-checking: extra keys not allowed"},
		{"diskimage keys", provider + "    diskimages:\n      - {name: img, username: u, key: k, pause: true, connection-type: ssh, connection-port: 22, python-path: p, shell-type: sh, tags: {a: b}}\n" + pools, ""},
		{"diskimage password", provider + "    diskimages:\n      - {name: img, password: secret}\n" + pools, "diskimages[0].password: extra keys not allowed"},
		{"zuul-public-key", provider + "    zuul-public-key: ssh-rsa AAAA\n    post-upload-hook: /bin/true\n    boot-timeout: 1\n    launch-timeout: 2\n    launch-retries: 3\n" + cloudImages + pools, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := nodepool.ValidateConfig(writeConfig(t, tt.body))
			if tt.msg == "" {
				require.Empty(t, p.Errors, "%v", messages(p.Errors))
				return
			}
			require.NotEmpty(t, p.Errors)
			require.Contains(t, strings.Join(messages(p.Errors), "\n"), tt.msg)
		})
	}
}

// Loading checks the references the validator does not, and reads every
// key with upstream's defaults.
func TestLoad(t *testing.T) {
	t.Setenv(azure.AuthLocationEnv, "/from/env.json")
	_, err := nodepool.LoadConfig(writeConfig(t, provider+pools), "")
	require.ErrorContains(t, err, "cloud-image bionic does not exist in provider az but is referenced in label bionic")

	_, err = nodepool.LoadConfig(writeConfig(t, provider+cloudImages+"    pools:\n      - name: main\n        labels: []\n"), "")
	require.ErrorContains(t, err, "providers[0].pools[0].max-servers: required key not provided")

	cfg, err := nodepool.LoadConfig(filepath.Join("testdata", "azure.yaml"), "")
	require.NoError(t, err)
	p := cfg.Providers[0]
	require.Equal(t, "vhd", p.ImageFormat)
	require.True(t, p.ManageImages)
	require.Equal(t, 120, int(p.BootTimeout.Seconds()))
	require.Equal(t, 3600, int(p.LaunchTimeout.Seconds()))
	require.Equal(t, 3, p.LaunchRetries)
	st := p.Settings.(*azure.ProviderSettings)
	require.Equal(t, "/etc/nodepool/azure.json", st.AuthPath)
	require.Equal(t, 1.0, st.Rate)
	require.Contains(t, st.SubnetID, "/subnets/default")
	ci := st.CloudImage("windows-generate")
	require.True(t, ci.GeneratePassword)
	require.Equal(t, "foobar", ci.Username)
	require.Equal(t, st.ZuulPublicKey, ci.Key, "zuul-public-key is the default key")
	require.Equal(t, "reallybadpassword123", st.CloudImage("windows-password").Password)
	require.Equal(t, "test1", st.CloudImage("image-by-name").ImageFilter.Name)
	require.Equal(t, map[string]string{"foo": "bar"}, st.CloudImage("image-by-tag").ImageFilter.Tags)

	pool := p.Pools[0]
	require.Equal(t, 10, pool.MaxServers)
	require.True(t, pool.HostKeyChecking)
	require.False(t, pool.UseInternalIP)
	require.Equal(t, &azure.PoolSettings{IPv4: true, PublicIPv4: true}, pool.Settings)
	l := pool.Label("bionic")
	require.Equal(t, "zuul", l.Username)
	require.Equal(t, "sh", l.ShellType)
	require.Equal(t, "auto", l.PythonPath)
	require.Equal(t, "ssh", l.ConnectionType)
	require.Equal(t, 22, l.ConnectionPort)
	ls := l.Settings.(*azure.LabelSettings)
	require.Equal(t, "Standard_B1ls", ls.VMSize)
	require.Equal(t, map[string]string{"department": "R&D", "team": "DevOps", "systemPurpose": "CI"}, ls.Tags)
	require.Equal(t, map[string]string{"dynamic-tenant": "Tenant is {request.tenant_name}"}, ls.DynamicTags)
	require.Equal(t, base64.StdEncoding.EncodeToString([]byte("This is the user data")), ls.UserData)
	require.Equal(t, base64.StdEncoding.EncodeToString([]byte("This is the custom data")), ls.CustomData)

	// Diskimage labels take the provider diskimage's settings, the auth
	// path falls back to the environment.
	cfg, err = nodepool.LoadConfig(writeConfig(t, strings.Replace(provider, "    auth-path: /etc/azure.json\n", "", 1)+
		"    public-ipv6: true\n    diskimages:\n      - {name: img, connection-type: winrm, tags: {a: b}, password: pw}\n"+
		"    pools:\n      - name: main\n        max-servers: 1\n        public-ipv4: false\n        labels:\n          - {name: bionic, diskimage: img, hardware-profile: {vm-size: x}}\n"), "")
	require.NoError(t, err)
	p = cfg.Providers[0]
	require.Equal(t, "/from/env.json", p.Settings.(*azure.ProviderSettings).AuthPath)
	require.Equal(t, &azure.PoolSettings{IPv6: true, PublicIPv6: true}, p.Pools[0].Settings)
	d := p.Diskimage("img")
	require.Equal(t, map[string]string{"a": "b"}, d.Meta)
	require.Equal(t, "pw", d.Settings.(*azure.DiskimageSettings).Password)
	l = p.Pools[0].Labels[0]
	require.Equal(t, "winrm", l.ConnectionType)
	require.Equal(t, 5986, l.ConnectionPort)
	require.Equal(t, "zuul", l.Username, "the top-level diskimage's default")
}
