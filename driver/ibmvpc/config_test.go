package ibmvpc_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	nodepool "github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/ibmvpc"
)

func messages(errs []*driver.ConfigError) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Path + ": " + e.Msg
	}
	return out
}

// TestValidateAgreesWithUpstream runs config-validate and the loader on
// upstream's IBM VPC fixture and on variants of it; validate gives the
// verdict of upstream's schema (which checks no cross-references and leaves
// zone, subnet and max-servers to the loader), load the loader's.
func TestValidateAgreesWithUpstream(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("testdata", "ibmvpc.yaml"))
	require.NoError(t, err)
	const (
		cloudImage = "      - name: debian-by-name\n        username: zuul\n"
		provider   = "    vpc: nodepool\n"
		pool       = "      - name: private\n        zone: us-south-1\n        max-servers: 10\n"
	)
	tests := []struct {
		name, old, new string
		validate       string // "" = valid, else a substring of an error
		load           string // "" = loads, else a substring of an error
	}{
		{name: "upstream fixture"},
		{name: "vpc required", old: provider, new: "", validate: "providers[0].vpc: required key not provided", load: "vpc: required key"},
		{name: "region required", old: "    region: us-south\n", new: "", validate: "providers[0].region: required key not provided", load: "region"},
		{name: "pools required", old: "    pools:\n", new: "    other-pools:\n", validate: "providers[0].pools: required key not provided", load: "pools"},
		{name: "image spec exclusive", old: "        image-name: ibm-debian-9-13-minimal-amd64-4\n", new: "        image-name: ibm-debian-9-13-minimal-amd64-4\n        image-id: r006-1234\n",
			validate: "two or more values in the same group of exclusion 'spec'", load: "exclusion"},
		{name: "image spec required", old: "        image-name: ibm-debian-9-13-minimal-amd64-4\n", new: "",
			validate: `Provide either "image-filter", "image-href", "image-id", or "image-name" keys`, load: "Provide either"},
		{name: "image href", old: "        image-name: ibm-debian-9-13-minimal-amd64-4\n", new: "        image-href: https://us-south.iaas.cloud.ibm.com/v1/images/r006-1\n"},
		{name: "username required", old: cloudImage, new: "      - name: debian-by-name\n", validate: "cloud-images[0].username: required key not provided", load: "username"},
		{name: "unknown filter key", old: "            family: \"Debian GNU/Linux\"\n", new: "            family: \"Debian GNU/Linux\"\n            kernel: linux\n",
			validate: "image-filter.operating-system.kernel: extra keys not allowed"},
		{name: "filter owner and status", old: "        image-filter:\n", new: "        image-filter:\n          owner-type: provider\n          status: available\n"},
		{name: "bucket required", old: "       bucket-name: np-testbucket\n", new: "", validate: "object-storage.bucket-name: required key not provided", load: "bucket-name"},
		{name: "object storage api key unknown", old: "       bucket-name: np-testbucket\n", new: "       bucket-name: np-testbucket\n       api-key: secret\n", validate: "object-storage.api-key: extra keys not allowed"},
		{name: "image-format outside the schema", old: provider, new: provider + "    image-format: raw\n", validate: "providers[0].image-format: extra keys not allowed"},
		{name: "unknown provider key", old: provider, new: provider + "    flavor: big\n", validate: "providers[0].flavor: extra keys not allowed"},
		{name: "all provider keys", old: provider, new: provider + "    zone: us-south-1\n    public-ipv4: false\n    use-internal-ip: true\n    host-key-checking: true\n    post-upload-hook: /bin/true\n    launch-timeout: 600\n    launch-retries: 5\n    credentials-file: /etc/ibm.env\n    max-concurrency: 10\n    priority: 2\n"},
		{name: "quota keys", old: "      cores: 200\n", new: "      cores: 200\n      instances: 10\n      ram: 400\n"},
		{name: "unknown quota key", old: "      cores: 200\n", new: "      cores: 200\n      gpus: 2\n", validate: "quota.gpus: extra keys not allowed"},
		{name: "rate coerced", old: "    rate: 1000\n", new: "    rate: '2.5'\n"},
		{name: "profile required", old: "            cloud-image: debian-by-filter\n            profile: cx2-2x4\n", new: "            cloud-image: debian-by-filter\n",
			validate: "labels[1].profile: required key not provided", load: "profile"},
		{name: "label user-data", old: "            cloud-image: debian-by-filter\n", new: "            cloud-image: debian-by-filter\n            user-data: '#cloud-config'\n"},
		{name: "unknown label key", old: "            cloud-image: debian-by-filter\n", new: "            cloud-image: debian-by-filter\n            flavor-name: big\n", validate: "labels[1].flavor-name: extra keys not allowed"},
		{name: "operating-system required", old: "        operating-system: 'debian-9-amd64'\n", new: "", validate: "diskimages[0].operating-system: required key not provided", load: "operating-system"},
		{name: "provider diskimage keys", old: "        operating-system: 'debian-9-amd64'\n", new: "        operating-system: 'debian-9-amd64'\n        pause: true\n        connection-type: ssh\n        connection-port: 2222\n        python-path: /usr/bin/python3\n        shell-type: bash\n"},
		{name: "provider diskimage meta unknown", old: "        operating-system: 'debian-9-amd64'\n", new: "        operating-system: 'debian-9-amd64'\n        meta: {a: b}\n", validate: "diskimages[0].meta: extra keys not allowed"},
		{name: "zone left to the loader", old: pool, new: "      - name: private\n        max-servers: 10\n", load: "Zone is required in provider or pool config"},
		{name: "subnet left to the loader", old: "    subnet: sn-nodepool\n", new: "", load: "Subnet is required in provider or pool config"},
		{name: "max-servers left to the loader", old: pool, new: "      - name: private\n        zone: us-south-1\n", load: "max-servers: required key not provided"},
		{name: "pool name starting with underscore", old: "      - name: private\n", new: "      - name: _private\n", validate: "does not match regular expression [^_]+", load: "does not match"},
		{name: "unknown pool key", old: pool, new: pool + "        networks: [a]\n", validate: "pools[0].networks: extra keys not allowed"},
		{name: "missing cloud image left to the loader", old: "            cloud-image: debian-by-filter\n", new: "            cloud-image: debian-by-nothing\n",
			load: "cloud-image debian-by-nothing does not exist in provider ibmvpc but is referenced in label debian-filter"},
		{name: "pool keys", old: pool, new: pool + "        subnet: sn-other\n        public-ipv4: false\n        use-internal-ip: true\n        node-attributes: {a: 1}\n        priority: 3\n"},
		// The common schema's name replaces the driver's stricter one in
		// the validator, so underscores pass validation; the provider
		// cannot start (tested in ibmvpc_test.go).
		{name: "underscore provider name validates", old: "  - name: ibmvpc\n", new: "  - name: ibm_vpc\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := string(base)
			if tt.old != "" {
				require.Contains(t, text, tt.old)
				text = strings.Replace(text, tt.old, tt.new, 1)
			}
			path := filepath.Join(t.TempDir(), "nodepool.yaml")
			require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
			p := nodepool.ValidateConfig(path)
			if tt.validate == "" {
				require.Empty(t, p.Errors, "%v", messages(p.Errors))
			} else {
				require.NotEmpty(t, p.Errors)
				require.Contains(t, strings.Join(messages(p.Errors), "\n"), tt.validate)
			}
			_, err := nodepool.LoadConfig(path, "")
			if tt.load == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tt.load)
			}
		})
	}
}

// TestLoadedDefaults checks upstream's defaults on the fixture.
func TestLoadedDefaults(t *testing.T) {
	cfg, err := nodepool.LoadConfig(filepath.Join("testdata", "ibmvpc.yaml"), "")
	require.NoError(t, err)
	p := cfg.Providers[0]
	require.NotNil(t, p)
	st := p.Settings.(*ibmvpc.ProviderSettings)
	require.Equal(t, 1000.0, st.Rate)
	require.Equal(t, "qcow2", p.ImageFormat)
	require.True(t, p.ManageImages)
	require.Equal(t, 3, p.LaunchRetries)
	require.Equal(t, "1h0m0s", p.LaunchTimeout.String())
	require.Equal(t, "4m0s", p.BootTimeout.String())
	require.Equal(t, 200, *st.Quota.Cores)
	require.Nil(t, st.Quota.RAM)
	require.True(t, st.HostKeyChecking)
	require.False(t, st.PublicIPv4)
	priv, pub := p.Pool("private"), p.Pool("public")
	require.False(t, priv.HostKeyChecking)
	require.True(t, pub.HostKeyChecking)
	require.True(t, pub.Settings.(*ibmvpc.PoolSettings).PublicIPv4)
	require.Equal(t, "sn-nodepool", priv.Settings.(*ibmvpc.PoolSettings).Subnet)
	require.Equal(t, []string{"us-south-1"}, priv.AZs)
	l := priv.Label("debian-private")
	require.Equal(t, "zuul", l.Username)
	require.Equal(t, "auto", l.PythonPath)
	require.Equal(t, "ssh", l.ConnectionType)
	require.Equal(t, 22, l.ConnectionPort)
	require.Equal(t, "cx2-2x4", l.Settings.(*ibmvpc.LabelSettings).Profile)
	ci := st.CloudImage("debian-by-filter")
	require.Equal(t, map[string]string{"family": "Debian GNU/Linux", "version": "9.x Stretch/Stable - Minimal Install"}, ci.ImageFilter.OperatingSystem)
	require.Equal(t, "npimage{upload_id}", st.UploadNameFormat())
}
