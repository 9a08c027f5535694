package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/aws"
	"github.com/nodepool-go/nodepool/driver/metastatic"
	"github.com/nodepool-go/nodepool/driver/openstack"
	"github.com/nodepool-go/nodepool/driver/static"
	_ "github.com/nodepool-go/nodepool/driver/stock"
)

func testdata(name string) string { return filepath.Join("testdata", "config", name) }

// writeConfig writes text to a temporary file and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

func messages(errs []*driver.ConfigError) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Error()
	}
	return out
}

func TestValidateExamples(t *testing.T) {
	t.Setenv("NODEPOOL_WEB_PORT", "8080")
	tests := []struct {
		file string
		step int    // 0 = valid
		msg  string // substring of one error's Error()
	}{
		{"minimal.yaml", 0, ""},
		{"multi-provider.yaml", 0, ""},
		{"drivers.yaml", 0, ""},
		{"inheritance.yaml", 0, ""},
		{"nothandled.yaml", driver.StepSchema, "nothandled: extra keys not allowed"},
		{"diskimage-noname.yaml", driver.StepSchema, "diskimages[0].name: required key not provided"},
		{"duplicate-diskimage.yaml", driver.StepReferences, "diskimage trusty already defined"},
		{"missing-parent.yaml", driver.StepReferences, "diskimage trusty has non-existant parent: this_does_not_exist"},
		{"missing-diskimage.yaml", driver.StepReferences, "diskimage wrong in provider cloud1 is not defined in the main diskimages list"},
		{"missing-label.yaml", driver.StepReferences, "label trusty in provider static not in top-level labels"},
		{"bad-indent.yaml", driver.StepParse, "YAML parsing failed"},
		{"static-cloud.yaml", driver.StepSchema, "providers[0].cloud: extra keys not allowed"},
		{"bad-types.yaml", driver.StepSchema, "labels[0].min-ready: expected int"},
		{"bad-types.yaml", driver.StepSchema, "zookeeper-timeout: expected float"},
		{"does-not-exist.yaml", driver.StepParse, "YAML parsing failed"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			if tt.file == "does-not-exist.yaml" {
				defer setFastRetry()()
			}
			p := Validate(testdata(tt.file))
			if tt.step == 0 {
				require.Empty(t, p.Errors, "%v", messages(p.Errors))
				require.Zero(t, p.Step)
				return
			}
			require.Equal(t, tt.step, p.Step, "%v", messages(p.Errors))
			require.NotEmpty(t, p.Errors)
			found := false
			for _, m := range messages(p.Errors) {
				found = found || strings.Contains(m, tt.msg)
			}
			require.True(t, found, "want %q in %v", tt.msg, messages(p.Errors))
		})
	}
}

func setFastRetry() func() {
	old := sleep
	sleep = func(time.Duration) {}
	return func() { sleep = old }
}

func TestValidateMessagesAreExact(t *testing.T) {
	p := Validate(testdata("missing-parent.yaml"))
	require.Len(t, p.Errors, 1)
	require.Equal(t, "diskimage trusty has non-existant parent: this_does_not_exist", p.Errors[0].Msg)
	require.Equal(t, 2, p.Errors[0].Line)

	p = Validate(testdata("duplicate-diskimage.yaml"))
	require.Len(t, p.Errors, 1)
	require.Equal(t, "diskimage trusty already defined", p.Errors[0].Msg)

	p = Validate(testdata("bad-indent.yaml"))
	require.Len(t, p.Errors, 1)
	require.True(t, strings.HasPrefix(p.Errors[0].Msg, "YAML parsing failed:"), p.Errors[0].Msg)
	require.Positive(t, p.Errors[0].Line) // yaml.v3 names the start of the block

	p = Validate(testdata("bad-types.yaml"))
	require.Contains(t, messages(p.Errors), testdata("bad-types.yaml")+":3: labels[0].min-ready: expected int, got str \"lots\"")
}

func TestValidateQuirks(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		msg  string // "" = valid
	}{
		{"timeout float", "zookeeper-timeout: 20.0\n", ""},
		{"timeout int", "zookeeper-timeout: 20\n", "zookeeper-timeout: expected float"},
		{"empty document", "", "expected a dictionary"},
		{"null list", "labels:\n", "labels: expected list, got null"},
		{"listen-address", "webapp:\n  listen-address: 1.2.3.4\n", "webapp.listen-address: extra keys not allowed"},
		{"listen_address", "webapp:\n  listen_address: 1.2.3.4\n  port: 9000\n", ""},
		{"shell-type accepted", "diskimages:\n  - name: x\n    shell-type: csh\n", ""},
		{"release int", "diskimages:\n  - name: x\n    release: 21\n", ""},
		{"release list", "diskimages:\n  - name: x\n    release: [21]\n", "diskimages[0].release: expected str or int"},
		{"env var int", "diskimages:\n  - name: x\n    env-vars:\n      A: 1\n", "diskimages[0].env-vars.A: expected str"},
		{"bool as int", "labels:\n  - name: x\n    min-ready: true\n", ""},
		{"label without name", "labels:\n  - min-ready: 1\n", ""},
		{"zk without host", "zookeeper-servers:\n  - port: 2181\n", ""},
		{"tls incomplete", "zookeeper-tls:\n  cert: a\n  key: b\n", "zookeeper-tls.ca: required key not provided"},
		{"tenant limits", "tenant-resource-limits:\n  - tenant-name: t\n    max-servers: 3\n    L-43DA4232: 448\n", ""},
		{"tenant without name", "tenant-resource-limits:\n  - max-servers: 3\n", "tenant-resource-limits[0].tenant-name: required key not provided"},
		{"tenant float", "tenant-resource-limits:\n  - tenant-name: t\n    foo: 1.5\n", "tenant-resource-limits[0].foo: expected int"},
		{"unknown driver", "providers:\n  - name: p\n    driver: nope\n", "providers[0].driver: nope: unknown driver"},
		{"images-dir-required-free", "images-dir-required-free: 10\n", "extra keys not allowed"},
		{"openstack both images", "labels: [{name: l}]\nproviders:\n  - name: p\n    cloud: c\n    cloud-images: [{name: ci}]\n    diskimages: [{name: d}]\n    pools:\n      - name: m\n        labels:\n          - {name: l, diskimage: d, cloud-image: ci, min-ram: 1}\ndiskimages: [{name: d}]\n", "exclusion"},
		{"openstack needs flavor", "labels: [{name: l}]\nproviders:\n  - name: p\n    cloud: c\n    pools:\n      - name: m\n        labels:\n          - {name: l, cloud-image: ci}\n", "one of min-ram or flavor-name"},
		{"openstack no cloud", "providers:\n  - name: p\n", "providers[0].cloud: required key not provided"},
		{"aws post-upload-hook", "providers:\n  - name: p\n    driver: aws\n    region-name: r\n    post-upload-hook: /bin/true\n    pools: []\n", "post-upload-hook: extra keys not allowed"},
		{"aws needs pools", "providers:\n  - name: p\n    driver: aws\n    region-name: r\n", "providers[0].pools: required key not provided"},
		{"metastatic needs backing", "labels: [{name: l}]\nproviders:\n  - name: p\n    driver: metastatic\n    pools:\n      - name: m\n        labels: [{name: l}]\n", "backing-label: required key not provided"},
		{"abstract in provider is fine for validate", "labels: [{name: l}]\nproviders:\n  - name: p\n    cloud: c\n    diskimages: [{name: base}]\n    pools: []\ndiskimages: [{name: base, abstract: true}]\n", ""},
		{"non-openstack labels not checked", "providers:\n  - name: p\n    driver: static\n    pools:\n      - name: m\n        nodes: [{name: h, labels: undefined}]\n", ""},
		{"merge keys", "x-anchor: &a {min-ready: 1}\n", "x-anchor: extra keys not allowed"},
		{"merge key in label", "labels:\n  - &a {name: a, min-ready: 1}\n  - <<: *a\n    name: b\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Validate(writeConfig(t, tt.yaml))
			if tt.msg == "" {
				require.Empty(t, p.Errors, "%v", messages(p.Errors))
				return
			}
			require.NotEmpty(t, p.Errors)
			require.Contains(t, strings.Join(messages(p.Errors), "\n"), tt.msg)
		})
	}
}

func TestValidateMaxConcurrencyWarning(t *testing.T) {
	p := Validate(testdata("drivers.yaml"))
	require.Empty(t, p.Errors)
	require.Len(t, p.Warnings, 1)
	require.Contains(t, p.Warnings[0].Error(), "providers[0].max-concurrency")
	require.Contains(t, p.Warnings[0].Msg, "accepts no requests")
}

func TestLoadMinimal(t *testing.T) {
	cfg, err := Load(testdata("minimal.yaml"), "")
	require.NoError(t, err)
	abs, _ := filepath.Abs(testdata("minimal.yaml"))
	require.Equal(t, abs, cfg.Path)
	require.Equal(t, WebAppConfig{Port: 8005, ListenAddress: "0.0.0.0"}, cfg.WebApp)
	require.Equal(t, []ZooKeeperServer{{Host: "zk.example.org", Port: 2281}}, cfg.ZooKeeperServers)
	require.Equal(t, 10*time.Second, cfg.ZooKeeperTimeout)
	require.Equal(t, "/var/log/nodepool/builds", cfg.BuildLogDir)
	require.Equal(t, 7, cfg.BuildLogRetention)
	require.Zero(t, cfg.MaxHoldAge)
	require.Empty(t, cfg.Warnings)

	d := cfg.Diskimage("debian-bookworm")
	require.NotNil(t, d)
	require.Equal(t, []string{"debian-minimal", "vm", "simple-init"}, d.Elements)
	require.Equal(t, "bookworm", d.Release)
	require.Equal(t, 24*time.Hour, d.RebuildAge)
	require.Equal(t, 8*time.Hour, d.BuildTimeout)
	require.Equal(t, "disk-image-create", d.DibCmd)
	require.Equal(t, "zuul", d.Username)
	require.Equal(t, "auto", d.PythonPath)
	require.Equal(t, []string{"qcow2"}, cfg.ImageFormats("debian-bookworm"))

	p := cfg.Provider("cloud-a")
	require.Equal(t, "openstack", p.Driver)
	require.True(t, p.ManageImages)
	require.True(t, p.PausesAtQuota)
	require.Equal(t, -1, p.MaxConcurrency)
	require.Equal(t, time.Hour, p.LaunchTimeout)
	require.Equal(t, 60*time.Second, p.BootTimeout)
	require.Equal(t, 3, p.LaunchRetries)
	st := p.Settings.(*openstack.ProviderSettings)
	require.Equal(t, "cloud-a", st.Cloud)
	require.Equal(t, "{image_name}-{timestamp}", st.ImageNameFormat)
	pool := p.Pool("main")
	require.Equal(t, 10, pool.MaxServers)
	require.Equal(t, driver.Unlimited, pool.MaxCores)
	l := pool.Label("debian-bookworm")
	require.Equal(t, "debian-bookworm", l.Diskimage)
	require.Equal(t, "zuul", l.Username)
	require.Equal(t, "auto", l.PythonPath)
	require.Equal(t, "ssh", l.ConnectionType)
	require.Equal(t, 22, l.ConnectionPort)
	require.True(t, l.HostKeyChecking)
	require.Equal(t, 4096, l.Settings.(*openstack.LabelSettings).MinRAM)

	refs := cfg.PoolsForLabel("debian-bookworm")
	require.Len(t, refs, 1)
	require.Same(t, p, refs[0].Provider)
	require.Same(t, pool, refs[0].Pool)
	require.Empty(t, cfg.PoolsForLabel("nope"))
}

func TestLoadMultiProvider(t *testing.T) {
	t.Setenv("NODEPOOL_WEB_PORT", "8080")
	cfg, err := Load(testdata("multi-provider.yaml"), "")
	require.NoError(t, err)
	require.Equal(t, 8080, cfg.WebApp.Port)
	require.Equal(t, "127.0.0.1", cfg.WebApp.ListenAddress)
	require.Equal(t, 30*time.Second, cfg.ZooKeeperTimeout)
	require.Equal(t, 24*time.Hour, cfg.MaxHoldAge)
	require.Equal(t, 14, cfg.BuildLogRetention)

	// Derived facts.
	require.Equal(t, []string{"qcow2", "raw"}, cfg.ImageFormats("ubuntu-jammy"))
	require.Equal(t, []string{"vm", "simple-init", "growroot", "nodepool-base", "cache-devstack", "ubuntu-minimal"}, cfg.Diskimage("ubuntu-jammy").Elements)
	require.Equal(t, []string{"qcow2", "tar"}, cfg.ImageFormats("centos-9-stream"))
	require.Empty(t, cfg.ImageFormats("windows-2022"))
	require.True(t, cfg.Diskimage("windows-2022").Pause)
	require.Nil(t, cfg.Diskimage("common"))
	require.Len(t, cfg.Diskimages, 3)
	require.Equal(t, map[string]string{"DIB_CHECKSUM": "1", "TMPDIR": "/srv/dib/tmp", "DIB_IMAGE_CACHE": "/srv/dib/cache", "DIB_APT_LOCAL_CACHE": "0"}, cfg.Diskimage("ubuntu-jammy").EnvVars)
	require.Equal(t, map[string]string{"os_distro": "ubuntu"}, cfg.Diskimage("ubuntu-jammy").Metadata)
	require.Equal(t, 12*time.Hour, cfg.Diskimage("ubuntu-jammy").RebuildAge)
	require.Equal(t, "9-stream", cfg.Diskimage("centos-9-stream").Release)
	require.Equal(t, 4*time.Hour, cfg.Diskimage("centos-9-stream").BuildTimeout)
	require.Equal(t, "/opt/win-dib/bin/disk-image-create --some-flag", cfg.Diskimage("windows-2022").DibCmd)

	require.Equal(t, -1, cfg.Label("windows-2022").MinReady)
	require.Equal(t, 2*time.Hour, cfg.Label("ubuntu-jammy").MaxReadyAge)

	os := cfg.Provider("osp-east")
	require.Equal(t, 10, os.MaxConcurrency)
	require.Equal(t, 50, os.EffectivePriority(os.Pool("main")))
	require.Equal(t, map[string]any{"site": "east"}, os.Pool("main").NodeAttributes)
	require.Equal(t, map[string]string{"hw_disk_bus": "scsi"}, os.Diskimage("ubuntu-jammy").Meta)
	st := os.Settings.(*openstack.ProviderSettings)
	require.Equal(t, "nodepool-{image_name}-{timestamp}", st.ImageNameFormat)
	require.Equal(t, "/usr/local/bin/nodepool-post-upload", st.PostUploadHook)
	require.Equal(t, "RegionOne", st.RegionName)
	require.Equal(t, "cloud-user", os.Pool("main").Label("centos-9-stream").Username)

	a := cfg.Provider("aws-us-east-2")
	require.Equal(t, "raw", a.ImageFormat)
	require.Equal(t, 180*time.Second, a.BootTimeout)
	require.Equal(t, map[string]string{"team": "ci"}, a.Diskimage("ubuntu-jammy").Meta)
	ap := a.Pool("main").Settings.(*aws.PoolSettings)
	require.Equal(t, "subnet-0123456789abcdef0", ap.SubnetID)
	require.True(t, ap.PublicIPv4)
	require.Equal(t, "t3.large", a.Pool("main").Label("ubuntu-jammy").Settings.(*aws.LabelSettings).InstanceType)
	require.Equal(t, "zuul", a.Pool("main").Label("ubuntu-jammy").Username)

	require.Len(t, cfg.PoolsForLabel("ubuntu-jammy"), 2)

	inf := math.Inf(1)
	require.Equal(t, map[string]map[string]float64{
		"openstack":    {"instances": 100, "cores": 800, "ram": inf},
		"small-tenant": {"instances": 5, "cores": inf, "ram": inf},
	}, cfg.TenantLimits)

	// The TLS files of the example do not exist here.
	_, err = cfg.ZooKeeperClientConfig()
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.Equal(t, "/etc/nodepool/tls/client.pem", cfg.ZooKeeperTLS.Cert)
	cfg.ZooKeeperTLS = nil
	zc, err := cfg.ZooKeeperClientConfig()
	require.NoError(t, err)
	require.Equal(t, []string{"zk01.ci.example.org:2281", "zk02.ci.example.org:2281", "zk03.ci.example.org:2281"}, zc.Hosts)
	require.Equal(t, "/nodepool", zc.Chroot)
	require.Equal(t, 30*time.Second, zc.SessionTimeout)
}

func TestLoadTLSFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"cert.pem", "key.pem", "ca.pem"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600))
	}
	tls := "zookeeper-tls:\n  cert: " + dir + "/cert.pem\n  key: " + dir + "/key.pem\n  ca: %s\n"
	cfg, err := Load(writeConfig(t, strings.Replace(tls, "%s", dir+"/ca.pem", 1)), "")
	require.NoError(t, err)
	zc, err := cfg.ZooKeeperClientConfig()
	require.NoError(t, err)
	require.Equal(t, dir+"/ca.pem", zc.TLS.CA)

	cfg, err = Load(writeConfig(t, strings.Replace(tls, "%s", dir+"/missing.pem", 1)), "")
	require.NoError(t, err)
	_, err = cfg.ZooKeeperClientConfig()
	require.ErrorIs(t, err, fs.ErrNotExist)

	cfg, err = Load(writeConfig(t, "zookeeper-tls:\n  cert: a\n"), "")
	require.NoError(t, err)
	_, err = cfg.ZooKeeperClientConfig()
	require.ErrorContains(t, err, "missing key, ca")

	cfg, err = Load(writeConfig(t, "zookeeper-servers: [{host: zk}]\n"), "")
	require.NoError(t, err)
	zc, err = cfg.ZooKeeperClientConfig()
	require.NoError(t, err)
	require.Nil(t, zc.TLS)
}

func TestZooKeeperChroot(t *testing.T) {
	tests := []struct {
		name    string
		servers []ZooKeeperServer
		hosts   []string
		chroot  string
		err     string
	}{
		{"none", []ZooKeeperServer{{Host: "a", Port: 2281}}, []string{"a:2281"}, "", ""},
		{"last only", []ZooKeeperServer{{Host: "a", Port: 2281}, {Host: "b", Port: 2181, Chroot: "/np"}}, []string{"a:2281", "b:2181"}, "/np", ""},
		{"first only", []ZooKeeperServer{{Host: "a", Port: 2281, Chroot: "/np"}, {Host: "b", Port: 2281}}, []string{"a:2281", "b:2281"}, "/np", ""},
		{"repeated", []ZooKeeperServer{{Host: "a", Port: 1, Chroot: "/np"}, {Host: "b", Port: 2, Chroot: "/np"}}, []string{"a:1", "b:2"}, "/np", ""},
		{"conflict", []ZooKeeperServer{{Host: "a", Port: 1, Chroot: "/x"}, {Host: "b", Port: 2, Chroot: "/y"}}, nil, "", "conflicting chroots"},
		{"ipv6", []ZooKeeperServer{{Host: "::1", Port: 2281}, {Host: "fe80::1", Port: 0}, {Host: "10.0.0.1", Port: 2281}}, []string{"[::1]:2281", "[fe80::1]:2281", "10.0.0.1:2281"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &Config{ZooKeeperServers: tt.servers}
			zc, err := cfg.ZooKeeperClientConfig()
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.hosts, zc.Hosts)
			require.Equal(t, tt.chroot, zc.Chroot)
			require.Equal(t, 10*time.Second, zc.SessionTimeout)
		})
	}

	cfg, err := Load(testdata("drivers.yaml"), "")
	require.NoError(t, err)
	zc, err := cfg.ZooKeeperClientConfig()
	require.NoError(t, err)
	require.Equal(t, []string{"zk1:2281", "[::1]:2182"}, zc.Hosts)
	require.Equal(t, "/np", zc.Chroot)
}

func TestEnvSubstitution(t *testing.T) {
	t.Setenv("NODEPOOL_PORT", "8005")
	t.Setenv("NODEPOOL_DIR", "/srv/images")
	t.Setenv("OTHER_DIR", "/nope")
	path := writeConfig(t, "webapp:\n  port: %(NODEPOOL_PORT)\nimages-dir: %(NODEPOOL_DIR)\nelements-dir: '%(OTHER_DIR)'\nbuild-log-dir: '%(NODEPOOL_UNSET)'\n")
	cfg, err := Load(path, "")
	require.NoError(t, err)
	require.Equal(t, 8005, cfg.WebApp.Port)
	require.Equal(t, "/srv/images", cfg.ImagesDir)
	require.Equal(t, "%(OTHER_DIR)", cfg.ElementsDir)
	require.Equal(t, "%(NODEPOOL_UNSET)", cfg.BuildLogDir)

	require.Equal(t, "a: x %(NODEPOOL_Bs) %(Y)", string(substituteEnv([]byte("a: %(NODEPOOL_A) %(NODEPOOL_Bs) %(Y)"), []string{"NODEPOOL_A=x", "Y=z", "NODEPOOL_B"})))
	// The validator substitutes too.
	require.Empty(t, Validate(path).Errors)
}

func TestLoadSecure(t *testing.T) {
	main := writeConfig(t, `
zookeeper-servers:
  - host: public-zk
zookeeper-tls:
  cert: /main/cert
  key: /main/key
  ca: /main/ca
diskimages:
  - name: base
    abstract: true
    env-vars: {A: base}
  - name: ubuntu-jammy
    parent: base
    env-vars: {B: main, C: main}
  - name: other
    env-vars: {A: other}
`)
	dir := t.TempDir()
	secure := filepath.Join(dir, "secure.yaml")
	write := func(text string) {
		require.NoError(t, os.WriteFile(secure, []byte(text), 0o600))
	}

	// The secure file: TLS replaced (all three), env-vars merged (secure wins).
	data, err := os.ReadFile(testdata("secure.yaml"))
	require.NoError(t, err)
	write(string(data) + "      C: secure\nzookeeper-servers: []\nunknown-key: ignored\n")
	cfg, err := Load(main, secure)
	require.NoError(t, err)
	require.Equal(t, secure, cfg.SecurePath)
	require.Equal(t, "/etc/nodepool/secure/client.pem", cfg.ZooKeeperTLS.Cert)
	require.Equal(t, "/etc/nodepool/secure/ca.pem", cfg.ZooKeeperTLS.CA)
	require.Equal(t, map[string]string{"A": "base", "B": "main", "C": "secure", "REGISTRY_PASSWORD": "s3cret"}, cfg.Diskimage("ubuntu-jammy").EnvVars)
	require.Equal(t, map[string]string{"A": "other"}, cfg.Diskimage("other").EnvVars)
	require.Equal(t, "public-zk", cfg.ZooKeeperServers[0].Host, "an empty secure server list does not replace")
	require.Empty(t, cfg.Warnings, "unknown secure keys are ignored silently")

	// Servers replaced; a TLS key missing in the secure file becomes unset.
	write("zookeeper-servers:\n  - host: secret-zk\n    port: 1234\nzookeeper-tls:\n  cert: /s/cert\n")
	cfg, err = Load(main, secure)
	require.NoError(t, err)
	require.Equal(t, []ZooKeeperServer{{Host: "secret-zk", Port: 1234}}, cfg.ZooKeeperServers)
	require.Equal(t, "/s/cert", cfg.ZooKeeperTLS.Cert)
	require.Empty(t, cfg.ZooKeeperTLS.Key)

	// Empty secure file: no-op.
	write("")
	cfg, err = Load(main, secure)
	require.NoError(t, err)
	require.Equal(t, "/main/cert", cfg.ZooKeeperTLS.Cert)

	// Abstract or unknown diskimages are errors naming the secure file.
	for _, name := range []string{"base", "nope"} {
		write("diskimages:\n  - name: " + name + "\n    env-vars: {X: y}\n")
		_, err = Load(main, secure)
		require.ErrorContains(t, err, secure+":2: unknown diskimage "+name)
	}
	write("diskimages:\n  - name: other\n")
	_, err = Load(main, secure)
	require.ErrorContains(t, err, "diskimages[0].env-vars: required key not provided")

	// Substitution applies to the secure file.
	t.Setenv("NODEPOOL_SECRET", "hunter2")
	write("diskimages:\n  - name: other\n    env-vars: {PW: '%(NODEPOOL_SECRET)'}\n")
	cfg, err = Load(main, secure)
	require.NoError(t, err)
	require.Equal(t, "hunter2", cfg.Diskimage("other").EnvVars["PW"])
}

func TestInheritance(t *testing.T) {
	cfg, err := Load(testdata("inheritance.yaml"), "")
	require.NoError(t, err)
	require.Len(t, cfg.Diskimages, 2)
	d := cfg.Diskimage("img")
	require.Equal(t, []string{"fedora", "extra", "vm"}, d.Elements)
	require.Equal(t, map[string]string{"A": "3", "B": "2", "C": "4"}, d.EnvVars)
	require.Empty(t, d.Metadata, "metadata is not inherited")
	require.True(t, d.Pause, "a falsy pause does not override")
	require.Equal(t, time.Hour, d.RebuildAge, "rebuild-age 0 does not override")
	require.Equal(t, "37", d.Release, "empty release does not override")
	require.Equal(t, "fedora", d.Username)
	require.Equal(t, []string{"vhd"}, d.Formats, "formats replace")
	require.Equal(t, "mid", d.Parent)

	plain := cfg.Diskimage("plain")
	require.Equal(t, []string{}, plain.Elements)
	require.Nil(t, plain.Formats)
	require.False(t, plain.Pause)
	require.Equal(t, map[string]string{}, plain.Metadata)

	// An empty formats list in the middle keeps the root's formats.
	cfg, err = Load(writeConfig(t, "diskimages:\n  - {name: a, abstract: true, formats: [raw]}\n  - {name: b, parent: a, formats: []}\n"), "")
	require.NoError(t, err)
	require.Equal(t, []string{"raw"}, cfg.Diskimage("b").Formats)
	require.Equal(t, []string{"raw"}, cfg.ImageFormats("b"))
}

func TestParentErrors(t *testing.T) {
	_, err := Load(testdata("parent-cycle.yaml"), "")
	require.Error(t, err)
	var list *driver.ErrorList
	require.True(t, errors.As(err, &list))
	require.Len(t, list.Errors, 3)
	require.Contains(t, err.Error(), "diskimage a: parent cycle a -> c -> b -> a")

	_, err = Load(testdata("missing-parent.yaml"), "")
	require.ErrorContains(t, err, "diskimages[0]: diskimage trusty has non-existant parent: this_does_not_exist")
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		msg  string
	}{
		{"bad int", "labels:\n  - name: a\n    min-ready: lots\n", ":3: labels[0].min-ready: expected int"},
		{"label without name", "labels:\n  - min-ready: 1\n", ":2: labels[0].name: required key not provided"},
		{"zk without host", "zookeeper-servers:\n  - port: 1\n", "zookeeper-servers[0].host: required key not provided"},
		{"unknown driver", "providers:\n  - name: p\n    driver: nosuchcloud\n", "providers[0].driver: nosuchcloud: unknown driver"},
		{"pool label not top-level", "providers:\n  - name: p\n    cloud: c\n    cloud-images: [{name: ci}]\n    pools:\n      - name: m\n        labels:\n          - {name: l, cloud-image: ci, min-ram: 1}\n", ":8: providers[0].pools[0].labels[0]: label l in provider p not in top-level labels"},
		{"abstract diskimage label", "labels: [{name: l}]\nproviders:\n  - name: p\n    cloud: c\n    pools:\n      - name: m\n        labels:\n          - name: l\n            diskimage: base\n            min-ram: 1\ndiskimages: [{name: base, abstract: true}]\n", "providers[0].pools[0].labels[0].diskimage: label l in provider p uses diskimage base which is not defined in the main diskimages list (it is abstract)"},
		{"abstract provider diskimage", "providers:\n  - name: p\n    cloud: c\n    diskimages: [{name: base}]\ndiskimages: [{name: base, abstract: true}]\n", "providers[0].diskimages[0]: diskimage base in provider p is not defined"},
		{"unknown cloud image", "labels: [{name: l}]\nproviders:\n  - name: p\n    cloud: c\n    pools:\n      - name: m\n        labels: [{name: l, cloud-image: nope, min-ram: 1}]\n", "cloud-image nope does not exist in provider p"},
		{"label without image", "labels: [{name: l}]\nproviders:\n  - name: p\n    cloud: c\n    pools:\n      - name: m\n        labels: [{name: l, min-ram: 1}]\n", "one of diskimage or cloud-image is required"},
		{"static duplicate host", "labels: [{name: l}]\nproviders:\n  - name: p\n    driver: static\n    pools:\n      - name: m\n        nodes: [{name: h, labels: l}, {name: h, labels: [l]}]\n", "static node h (username zuul, port 22) is defined more than once"},
		{"metastatic inconsistent", "labels: [{name: a}, {name: b}]\nproviders:\n  - name: p\n    driver: metastatic\n    pools:\n      - name: m\n        labels: [{name: a, backing-label: x}, {name: b, backing-label: x, grace-time: 5}]\n", "must have the same max-parallel-jobs and grace-time"},
		{"not a mapping", "- a\n- b\n", "expected a dictionary"},
		{"yaml error", "a: [\n", "YAML parsing failed"},
		{"aws bad format", "providers:\n  - {name: p, driver: aws, region-name: r, image-format: qcow2, pools: []}\n", "not a valid value: qcow2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tt.yaml), "")
			require.Error(t, err)
			var list *driver.ErrorList
			require.True(t, errors.As(err, &list), "%T", err)
			require.Contains(t, err.Error(), tt.msg)
			require.Contains(t, err.Error(), "nodepool.yaml")
		})
	}
}

func TestLoadLenient(t *testing.T) {
	path := writeConfig(t, `
nothandled: element
images-dir-required-free: 5
webapp:
  listen-address: 1.2.3.4
labels:
diskimages:
zookeeper-timeout: 20
max-hold-age: -5
providers:
  - name: p
    cloud: c
    fancy-new-key: 1
    use-internal-ip: true
    pools:
`)
	cfg, err := Load(path, "")
	require.NoError(t, err)
	require.Equal(t, 20*time.Second, cfg.ZooKeeperTimeout)
	require.Zero(t, cfg.MaxHoldAge)
	require.Equal(t, "0.0.0.0", cfg.WebApp.ListenAddress)
	var paths []string
	for _, w := range cfg.Warnings {
		require.Equal(t, "unknown key ignored", w.Msg)
		paths = append(paths, w.Path)
	}
	require.ElementsMatch(t, []string{"nothandled", "images-dir-required-free", "webapp.listen-address", "providers[0].fancy-new-key", "providers[0].use-internal-ip"}, paths)

	// An empty file loads with defaults.
	cfg, err = Load(writeConfig(t, ""), "")
	require.NoError(t, err)
	require.Equal(t, 8005, cfg.WebApp.Port)
	require.Empty(t, cfg.Providers)
}

func TestLoadDuplicatesLastWins(t *testing.T) {
	cfg, err := Load(writeConfig(t, `
labels:
  - {name: a, min-ready: 1}
  - {name: b}
  - {name: a, min-ready: 2}
diskimages:
  - {name: x, elements: [one]}
  - {name: x, elements: [two]}
tenant-resource-limits:
  - {tenant-name: t, max-servers: 1}
  - {tenant-name: t, max-servers: 2, max-volumes: 3, max-volume-gb: 4, L-1: 5}
`), "")
	require.NoError(t, err)
	require.Len(t, cfg.Labels, 2)
	require.Equal(t, 2, cfg.Label("a").MinReady)
	require.Equal(t, []string{"two"}, cfg.Diskimage("x").Elements)
	inf := math.Inf(1)
	require.Equal(t, map[string]float64{"instances": 2, "cores": inf, "ram": inf, "volumes": 3, "volume-gb": 4, "L-1": 5}, cfg.TenantLimits["t"])
}

func TestLoadDrivers(t *testing.T) {
	cfg, err := Load(testdata("drivers.yaml"), "")
	require.NoError(t, err)
	require.Len(t, cfg.Warnings, 1, "max-concurrency: 0")

	st := cfg.Provider("static-provider")
	require.Equal(t, "static", st.Driver)
	require.False(t, st.PausesAtQuota)
	require.False(t, st.ManageImages)
	require.Zero(t, st.MaxConcurrency)
	sp := st.Pool("main")
	require.Equal(t, 2, sp.MaxServers)
	require.Equal(t, []string{"small", "other-small"}, sp.LabelNames())
	nodes := sp.Settings.(*static.PoolSettings).Nodes
	require.Len(t, nodes, 2)
	require.Equal(t, static.Node{Name: "host1.example.org", Labels: []string{"small", "other-small"}, Username: "zuul", Timeout: 5 * time.Second,
		HostKeyChecking: true, HostKeys: []string{"ssh-rsa AAAA"}, ConnectionType: "ssh", ConnectionPort: 2022, PythonPath: "auto", MaxParallelJobs: 2}, *nodes[0])
	require.Equal(t, "winrm", nodes[1].ConnectionType)
	require.Equal(t, 22, nodes[1].ConnectionPort, "static keeps 22 for winrm")
	require.Len(t, cfg.PoolsForLabel("small"), 2)

	ms := cfg.Provider("meta-provider")
	require.Equal(t, 120*time.Second, ms.BootTimeout)
	ml := ms.Pool("main").Label("meta")
	require.Equal(t, &metastatic.LabelSettings{BackingLabel: "small", MaxParallelJobs: 4, GraceTime: time.Minute}, ml.Settings)
	require.Equal(t, "unknown", ml.Username)
	require.False(t, ms.Pool("main").HostKeyChecking)

	os := cfg.Provider("os")
	win := os.Pool("p1").Label("win")
	require.Equal(t, "winrm", win.ConnectionType)
	require.Equal(t, 5986, win.ConnectionPort)
	require.Equal(t, "Administrator", win.Username)
	require.Equal(t, "C:/python.exe", win.PythonPath)
	require.Equal(t, "powershell", win.ShellType)
	require.True(t, *os.Diskimage("windows").Settings.(*openstack.DiskimageSettings).ConfigDrive)
	small := os.Pool("p1").Label("small")
	require.Equal(t, "cirros", small.CloudImage)
	require.Equal(t, "cirros", small.Username)
	require.Equal(t, "auto", small.PythonPath)
	require.False(t, small.HostKeyChecking)
	require.True(t, win.HostKeyChecking)
	require.Equal(t, 100, os.Pool("p1").MaxCores)
	ps := os.Pool("p1").Settings.(*openstack.PoolSettings)
	require.Equal(t, []string{"public"}, ps.Networks)
	require.False(t, ps.AutoFloatingIP)

	ec2 := cfg.Provider("ec2")
	ap := ec2.Pool("main")
	require.Equal(t, 64, ap.MaxCores, "provider-level pool default")
	require.False(t, ap.Settings.(*aws.PoolSettings).PublicIPv4)
	al := ap.Label("aws-label")
	require.Equal(t, "ec2-user", al.Username, "provider diskimage overrides")
	require.Equal(t, "C:/python.exe", al.PythonPath, "top-level fills the rest")

	require.Equal(t, []string{"qcow2", "raw"}, cfg.ImageFormats("windows"))
}

func TestMetastaticOpenWithoutZooKeeper(t *testing.T) {
	d, ok := driver.Lookup("metastatic")
	require.True(t, ok)
	_, err := d.Open(t.Context(), &driver.ProviderConfig{Name: "x"}, driver.Env{})
	require.ErrorIs(t, err, metastatic.ErrNoZooKeeper)
}

func TestReadRetry(t *testing.T) {
	var sleeps int
	old := sleep
	sleep = func(d time.Duration) {
		require.Equal(t, 500*time.Millisecond, d)
		sleeps++
	}
	defer func() { sleep = old }()
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), "")
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.Equal(t, 2, sleeps, "3 attempts in total")

	// The file appearing between attempts is picked up.
	path := filepath.Join(t.TempDir(), "late.yaml")
	sleeps = 0
	sleep = func(time.Duration) {
		sleeps++
		require.NoError(t, os.WriteFile(path, []byte("images-dir: /x\n"), 0o600))
	}
	cfg, err := Load(path, "")
	require.NoError(t, err)
	require.Equal(t, "/x", cfg.ImagesDir)
	require.Equal(t, 1, sleeps)
}

// TestValidateDataAgreesWithValidate: validating text gives the verdict and
// the messages of validating the same text as a file.
func TestValidateDataAgreesWithValidate(t *testing.T) {
	for _, name := range []string{"minimal.yaml", "missing-label.yaml", "bad-types.yaml", "parent-cycle.yaml", "drivers.yaml"} {
		path := testdata(name)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		want := Validate(path)
		got := ValidateData(path, data)
		require.Equal(t, want.Step, got.Step, name)
		require.Equal(t, fmt.Sprint(want.Err()), fmt.Sprint(got.Err()), name)
		require.Equal(t, len(want.Errors), len(got.Errors), name)
	}
}
