package openstack

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/drivertest"
	"github.com/nodepool-go/nodepool/internal/fakeopenstack"
	"github.com/nodepool-go/nodepool/quota"
)

const basePools = `
pools:
  - name: main
    networks: [private]
    labels:
      - name: small
        cloud-image: cirros
        min-ram: 1024
`

// parse parses one provider entry that must be valid.
func parse(t testing.TB, src string) *driver.ProviderConfig {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &doc))
	probs := &driver.Problems{File: "nodepool.yaml"}
	p := Driver{}.ParseProvider(driver.NewSection(doc.Content[0], "providers[0]", probs))
	require.NoError(t, probs.Err())
	return p
}

// open parses a provider on the "fake" cloud (rate 0 unless extra sets
// it) and opens its adapter.
func open(t testing.TB, extra string) (*Adapter, *driver.ProviderConfig) {
	t.Helper()
	src := "name: os\ncloud: fake\n"
	if !strings.Contains(extra, "cloud-images:") {
		src += "cloud-images:\n  - name: cirros\n"
	}
	if !strings.Contains(extra, "rate:") {
		src += "rate: 0\n"
	}
	src += extra
	if !strings.Contains(extra, "pools:") {
		src += basePools
	}
	cfg := parse(t, src)
	ad, err := Driver{}.Open(context.Background(), cfg, driver.Env{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ad.Close() })
	return ad.(*Adapter), cfg
}

func spec(cfg *driver.ProviderConfig, label, nodeID string) driver.CreateSpec {
	pool := cfg.Pools[0]
	return driver.CreateSpec{
		Hostname: "np" + nodeID,
		Label:    pool.Label(label),
		Pool:     pool,
		Metadata: map[string]string{driver.MetaNodeID: nodeID, driver.MetaPoolName: pool.Name, driver.MetaProviderName: cfg.Name},
		Request:  driver.RequestInfo{ID: "200-0000000001", Labels: []string{label}, Requestor: "zuul", TenantName: "tenant-one", RequestorData: []byte(`{"zuul_pipeline": "check"}`)},
	}
}

func create(t testing.TB, ad *Adapter, s driver.CreateSpec) (*driver.Instance, error) {
	t.Helper()
	return drivertest.AdvanceCreate(context.Background(), ad.CreateMachine(s), 5*time.Millisecond, 20*time.Second)
}

func remove(t testing.TB, ad *Adapter, id string) error {
	t.Helper()
	return drivertest.AdvanceDelete(context.Background(), ad.DeleteMachine(id), 5*time.Millisecond, 20*time.Second)
}

func TestConformance(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{BuildTime: 20 * time.Millisecond})
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) {
			return open(t, "")
		},
		ProvokeQuota: func(t *testing.T) { cloud.FailNextCreates(1, fakeopenstack.FailQuota) },
		InjectLeak: func(t *testing.T, md map[string]string) string {
			return cloud.AddServer(fakeopenstack.Server{Name: "leak", Metadata: md})
		},
	})
}

func TestConformanceDiskimageWithLatency(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{BuildTime: 30 * time.Millisecond, Latency: 5 * time.Millisecond})
	img := cloud.AddImage(fakeopenstack.Image{Name: "ubuntu-jammy-1700000000", Properties: map[string]string{driver.MetaProviderName: "os"}})
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) {
			return open(t, `diskimages:
  - name: ubuntu-jammy
    config-drive: true
pools:
  - name: main
    auto-floating-ip: false
    labels:
      - name: jammy
        diskimage: ubuntu-jammy
        flavor-name: m1.small
`)
		},
		ImageExternalID: img,
		AZ:              "nova",
		Concurrency:     3,
	})
}

func TestCreateMapsConfigOntoNova(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{AZs: []string{"az1", "az2"}})
	cloud.AddSecurityGroup("zuul")
	cloud.AddNetwork(fakeopenstack.Network{Name: "second"})
	ad, cfg := open(t, `pools:
  - name: main
    networks: [private, second]
    security-groups: [default, zuul]
    labels:
      - name: big
        cloud-image: cirros
        flavor-name: m1.medium
        key-name: nodepool
        userdata: "#cloud-config\npackages: [git]\n"
        boot-from-volume: true
        volume-size: 25
        instance-properties: {team: infra, groups: override}
        dynamic-instance-properties:
          pipeline: "{request.requestor_data[zuul_pipeline]}"
          tenant: "{request.tenant_name}"
          broken: "{request.nonexistent}"
        networks: [second]
`)
	s := spec(cfg, "big", "0000000042")
	s.AZ = "az2"
	inst, err := create(t, ad, s)
	require.NoError(t, err)
	srv, ok := cloud.Server(inst.ExternalID)
	require.True(t, ok)
	require.Equal(t, "np0000000042", srv.Name)
	require.Equal(t, "3", srv.FlavorID, "m1.medium")
	require.Equal(t, "nodepool", srv.KeyName)
	require.Equal(t, "#cloud-config\npackages: [git]\n", srv.UserData)
	require.Equal(t, "az2", srv.AZ)
	require.Equal(t, []string{"default", "zuul"}, srv.SecurityGroups)
	require.Equal(t, []string{cloud.NetworkID("second")}, srv.Networks, "label networks override the pool's")
	require.Empty(t, srv.ImageID, "boot from volume: no image on the server")
	require.Len(t, srv.Volumes, 1)
	vols := cloud.Volumes()
	require.Len(t, vols, 1)
	require.Equal(t, 25, vols[0].Size)
	require.True(t, vols[0].DeleteOnTermination)
	require.Equal(t, map[string]string{
		"groups": "override", "team": "infra", "pipeline": "check", "tenant": "tenant-one",
		driver.MetaNodeID: "0000000042", driver.MetaPoolName: "main", driver.MetaProviderName: "os",
	}, srv.Metadata)
	require.Equal(t, srv.Metadata, inst.Metadata)
	require.Equal(t, "az2", inst.AZ)
	require.Equal(t, "fake", inst.Cloud)
	require.NotEmpty(t, inst.HostID)
	// A private address only plus an external network: a floating IP.
	require.True(t, strings.HasPrefix(inst.PublicIPv4, "172.24."), inst.PublicIPv4)
	require.Equal(t, inst.PublicIPv4, inst.InterfaceIP)
	require.True(t, strings.HasPrefix(inst.PrivateIPv4, "10."), inst.PrivateIPv4)
	fips := cloud.FloatingIPs()
	require.Len(t, fips, 1)
	require.Equal(t, inst.PublicIPv4, fips[0].Address)
	require.ElementsMatch(t, []string{"nodepool_node_id=0000000042", "nodepool_pool_name=main", "nodepool_provider_name=os"}, fips[0].Tags)

	// Deleting releases the floating IP and the volume.
	require.NoError(t, remove(t, ad, inst.ExternalID))
	_, ok = cloud.Server(inst.ExternalID)
	require.False(t, ok)
	require.Empty(t, cloud.FloatingIPs())
	require.Empty(t, cloud.Volumes())
	require.NoError(t, func() error {
		err := remove(t, ad, inst.ExternalID)
		if driver.IsNotFound(err) {
			return nil
		}
		return err
	}())
}

func TestCreateCloudImageGroupsAndNoFloatingIP(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{})
	ad, cfg := open(t, `pools:
  - name: main
    networks: [public]
    labels:
      - name: small
        cloud-image: cirros
        min-ram: 1024
`)
	inst, err := create(t, ad, spec(cfg, "small", "0000000001"))
	require.NoError(t, err)
	srv, _ := cloud.Server(inst.ExternalID)
	require.Equal(t, "os,cirros,small", srv.Metadata["groups"])
	require.Equal(t, "2", srv.FlavorID, "smallest flavor with at least 1024 MB")
	require.Equal(t, cloud.ImageID("cirros"), srv.ImageID)
	require.Empty(t, srv.UserData)
	require.Empty(t, cloud.FloatingIPs(), "a server on the external network needs no floating IP")
	require.Equal(t, inst.PublicIPv4, inst.PrivateIPv4, "no private address: private_ipv4 is the public one")
	require.Equal(t, inst.PublicIPv4, inst.InterfaceIP)
}

func TestCreateErrors(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{})
	ad, cfg := open(t, "")

	cloud.FailNextCreates(1, fakeopenstack.FailQuota)
	_, err := create(t, ad, spec(cfg, "small", "0000000001"))
	require.True(t, driver.IsQuota(err), "%v", err)
	require.Contains(t, err.Error(), "Quota exceeded for instances")

	cloud.SetLimits(fakeopenstack.Limits{Instances: 10, Cores: 0, RAM: -1, Volumes: -1, VolumeGB: -1})
	_, err = create(t, ad, spec(cfg, "small", "0000000002"))
	require.True(t, driver.IsQuota(err), "%v", err)
	cloud.SetLimits(fakeopenstack.DefaultLimits)

	cloud.FailNextCreates(1, fakeopenstack.FailError)
	m := ad.CreateMachine(spec(cfg, "small", "0000000003"))
	_, err = drivertest.AdvanceCreate(context.Background(), m, 5*time.Millisecond, 10*time.Second)
	require.Error(t, err)
	require.Equal(t, "error.status", driver.MetricOf(err))
	require.Contains(t, err.Error(), "No valid host")
	require.NotEmpty(t, m.ExternalID(), "the external id is known although the server failed")
	require.NoError(t, remove(t, ad, m.ExternalID()))

	cloud.FailNextCreates(1, fakeopenstack.FailServerError)
	_, err = create(t, ad, spec(cfg, "small", "0000000004"))
	require.Error(t, err)
	require.False(t, driver.IsQuota(err))

	// A 503 is transient and the machine resumes: the next Advance calls
	// Nova again and the server gets created.
	cloud.FailNextCreates(1, fakeopenstack.FailUnavailable)
	m = ad.CreateMachine(spec(cfg, "small", "0000000006"))
	_, err = drivertest.AdvanceCreate(context.Background(), m, 5*time.Millisecond, 10*time.Second)
	require.True(t, driver.IsTransient(err), "%v", err)
	require.Empty(t, m.ExternalID(), "nothing was created")
	inst, err := drivertest.AdvanceCreate(context.Background(), m, 5*time.Millisecond, 10*time.Second)
	require.NoError(t, err)
	require.NotEmpty(t, inst.ExternalID)
	require.NoError(t, remove(t, ad, inst.ExternalID))

	bad, badCfg := open(t, `pools:
  - name: main
    networks: [no-such-net]
    labels:
      - name: small
        cloud-image: cirros
        flavor-name: m1.nope
`)
	_, err = create(t, bad, spec(badCfg, "small", "0000000005"))
	require.ErrorContains(t, err, "unable to find flavor")

	require.True(t, driver.IsNotFound(remove(t, ad, "no-such-server")))
}

func TestFlavorSelection(t *testing.T) {
	list := []flavors.Flavor{
		{ID: "1", Name: "m1.tiny", RAM: 512},
		{ID: "2", Name: "m1.small", RAM: 2048},
		{ID: "5", Name: "gpu.small", RAM: 2048},
		{ID: "3", Name: "m1.medium", RAM: 4096},
	}
	sort := func(l []flavors.Flavor) []flavors.Flavor { return l } // already sorted by (ram, name) except gpu
	for _, tc := range []struct {
		ls   LabelSettings
		want string
	}{
		{LabelSettings{MinRAM: 1}, "1"},
		{LabelSettings{MinRAM: 1000}, "2"},
		{LabelSettings{MinRAM: 1000, FlavorName: "gpu"}, "5"},
		{LabelSettings{FlavorName: "m1.medium"}, "3"},
		{LabelSettings{FlavorName: "3"}, "3"},
		{LabelSettings{FlavorName: "m1"}, ""},
		{LabelSettings{MinRAM: 9000}, ""},
	} {
		f, err := selectFlavor(sort(list), &tc.ls)
		if tc.want == "" {
			require.Error(t, err, "%+v", tc.ls)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, f.ID, "%+v", tc.ls)
	}
}

func TestQuota(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{})
	cloud.SetLimits(fakeopenstack.Limits{Instances: 7, Cores: -1, RAM: 4096, Volumes: 3, VolumeGB: 100})
	ad, cfg := open(t, `pools:
  - name: main
    labels:
      - name: small
        cloud-image: cirros
        flavor-name: m1.medium
      - name: bfv
        cloud-image: cirros
        flavor-name: m1.small
        boot-from-volume: true
        volume-size: 30
`)
	ctx := context.Background()
	lim, err := ad.QuotaLimits(ctx)
	require.NoError(t, err)
	require.Equal(t, 7.0, lim.Get(quota.Instances))
	require.Equal(t, quota.Inf, lim.Get(quota.Cores))
	require.Equal(t, 4096.0, lim.Get(quota.RAM))
	require.Equal(t, 3.0, lim.Get(quota.Volumes))
	require.Equal(t, 100.0, lim.Get(quota.VolumeGB))
	require.Equal(t, 0.0, lim.Get("gpus"), "unreported resources are limited to 0")

	need, err := ad.QuotaForLabel(ctx, cfg.Pools[0].Label("small"))
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"cores": 2, "instances": 1, "ram": 4096}, need.Map())
	need, err = ad.QuotaForLabel(ctx, cfg.Pools[0].Label("bfv"))
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"cores": 1, "instances": 1, "ram": 2048, "volumes": 1, "volume-gb": 30}, need.Map())

	// Unmanaged usage: instances report their flavor and volumes.
	inst, err := create(t, ad, spec(cfg, "bfv", "0000000001"))
	require.NoError(t, err)
	cloud.AddServer(fakeopenstack.Server{Name: "foreign", FlavorID: "4"})
	require.Eventually(t, func() bool {
		list, err := ad.ListInstances(ctx)
		require.NoError(t, err)
		return len(list) == 2
	}, 30*time.Second, 20*time.Millisecond)
	list, err := ad.ListInstances(ctx)
	require.NoError(t, err)
	byID := map[string]driver.Instance{}
	for _, in := range list {
		byID[in.ExternalID] = in
	}
	require.Equal(t, map[string]float64{"cores": 1, "instances": 1, "ram": 2048, "volumes": 1, "volume-gb": 30}, byID[inst.ExternalID].Resources.Map())
	for id, in := range byID {
		if id != inst.ExternalID {
			require.Equal(t, map[string]float64{"cores": 4, "instances": 1, "ram": 8192}, in.Resources.Map())
			require.Empty(t, in.Metadata)
		}
	}
}

func TestNoVolumeServiceMeansNoVolumeQuota(t *testing.T) {
	fakeopenstack.Setup(t, fakeopenstack.Options{NoVolumeService: true})
	ad, _ := open(t, "")
	lim, err := ad.QuotaLimits(context.Background())
	require.NoError(t, err)
	require.False(t, lim.Has(quota.Volumes))
	require.Equal(t, 0.0, lim.Get(quota.Volumes))
}

func TestAvailabilityZonesAndLabelReady(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{AZs: []string{"b", "a"}})
	ad, cfg := open(t, `cloud-images:
  - name: cirros
  - name: missing
  - name: by-id
    image-id: 0c3f0e1e-0000-0000-0000-000000000000
pools:
  - name: main
    labels:
      - name: small
        cloud-image: cirros
        min-ram: 512
      - name: gone
        cloud-image: missing
        min-ram: 512
      - name: byid
        cloud-image: by-id
        min-ram: 512
`)
	_ = cloud
	ctx := context.Background()
	azs, err := ad.AvailabilityZones(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, azs)
	p := cfg.Pools[0]
	require.True(t, ad.LabelReady(ctx, p.Label("small")))
	require.False(t, ad.LabelReady(ctx, p.Label("gone")))
	require.True(t, ad.LabelReady(ctx, p.Label("byid")), "image-id is not looked up")
}

func TestUploadImage(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{})
	ad, _ := open(t, "")
	data := []byte("qcow2 image bytes")
	file := filepath.Join(t.TempDir(), "img.qcow2")
	require.NoError(t, os.WriteFile(file, data, 0o644))
	sum := md5.Sum(data)
	id, err := ad.UploadImage(context.Background(), driver.UploadSpec{
		ImageName: "ubuntu-jammy-1700000000", Diskimage: "ubuntu-jammy", Filename: file, Format: "qcow2",
		Metadata: map[string]string{driver.MetaProviderName: "os", driver.MetaBuildID: "abc", driver.MetaUploadID: "0000000001", "distro": "ubuntu"},
		MD5:      hex.EncodeToString(sum[:]),
	})
	require.NoError(t, err)
	im, ok := cloud.Image(id)
	require.True(t, ok)
	require.Equal(t, "active", im.Status)
	require.Equal(t, "private", im.Visibility)
	require.Equal(t, "ubuntu-jammy-1700000000", im.Name)
	require.Equal(t, int64(len(data)), im.Size)
	require.Equal(t, hex.EncodeToString(sum[:]), im.Checksum)
	require.Equal(t, "ubuntu", im.Properties["distro"])
	require.Equal(t, "0000000001", im.Properties[driver.MetaUploadID])
	require.Equal(t, hex.EncodeToString(sum[:]), im.Properties["owner_specified.openstack.md5"])

	// A label with this diskimage boots the uploaded image.
	ad2, cfg := open(t, `diskimages:
  - name: ubuntu-jammy
pools:
  - name: main
    labels:
      - name: jammy
        diskimage: ubuntu-jammy
        min-ram: 512
`)
	s := spec(cfg, "jammy", "0000000009")
	s.ImageExternalID = id
	inst, err := create(t, ad2, s)
	require.NoError(t, err)
	srv, _ := cloud.Server(inst.ExternalID)
	require.Equal(t, id, srv.ImageID)
	require.Equal(t, "os,ubuntu-jammy,jammy", srv.Metadata["groups"])

	require.NoError(t, ad.DeleteImage(context.Background(), id))
	require.True(t, driver.IsNotFound(ad.DeleteImage(context.Background(), id)))
	_, ok = cloud.Image(id)
	require.False(t, ok)
}

type counter struct {
	mu    sync.Mutex
	m     map[string]int
	tasks map[string]int
}

func (c *counter) Incr(key string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] += n
}

func TestListResourcesAndHousekeeping(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{})
	cfg := parse(t, "name: os\ncloud: fake\nrate: 0\nport-cleanup-interval: 1\nclean-floating-ips: true\ncloud-images: [{name: cirros}]\n"+basePools)
	cnt := &counter{m: map[string]int{}}
	a, err := Driver{}.Open(context.Background(), cfg, driver.Env{Services: cnt})
	require.NoError(t, err)
	ad := a.(*Adapter)
	md := map[string]string{driver.MetaNodeID: "0000000077", driver.MetaPoolName: "main", driver.MetaProviderName: "os"}
	srv := cloud.AddServer(fakeopenstack.Server{Name: "np0000000077", Metadata: md})
	foreignSrv := cloud.AddServer(fakeopenstack.Server{Name: "foreign"})
	img := cloud.AddImage(fakeopenstack.Image{Name: "x", Properties: map[string]string{driver.MetaProviderName: "os", driver.MetaUploadID: "0000000003", driver.MetaBuildID: "b"}})
	down := cloud.AddPort(fakeopenstack.Port{DeviceOwner: "compute:nova"})
	downDHCP := cloud.AddPort(fakeopenstack.Port{DeviceOwner: "network:dhcp"})
	unattached := cloud.AddFloatingIP(fakeopenstack.FloatingIP{})

	ctx := context.Background()
	res, err := ad.ListResources(ctx)
	require.NoError(t, err)
	byID := map[string]driver.Resource{}
	for _, r := range res {
		byID[r.ID] = r
	}
	require.Equal(t, TypeInstance, byID[srv].Type)
	require.Equal(t, md, byID[srv].Metadata)
	require.Contains(t, byID, foreignSrv)
	require.Equal(t, TypeImage, byID[img].Type)
	require.Equal(t, "0000000003", byID[img].Metadata[driver.MetaUploadID])
	for _, r := range res {
		require.NotEqual(t, "cirros", r.Metadata["name"], "public images are not listed")
	}
	hasFIP := func(id string) bool {
		for _, f := range cloud.FloatingIPs() {
			if f.ID == id {
				return true
			}
		}
		return false
	}
	hasPort := func(id string) bool {
		for _, p := range cloud.Ports() {
			if p.ID == id {
				return true
			}
		}
		return false
	}
	require.False(t, hasFIP(unattached), "clean-floating-ips deletes unattached floating IPs")
	require.True(t, hasPort(down), "a DOWN port is only deleted on a later check")

	time.Sleep(1100 * time.Millisecond)
	_, err = ad.ListResources(ctx)
	require.NoError(t, err)
	require.False(t, hasPort(down), "DOWN twice, port-cleanup-interval apart")
	require.True(t, hasPort(downDHCP), "non-compute ports are never touched")
	require.Equal(t, map[string]int{"nodepool.provider.os.leaked.ports": 1, "nodepool.provider.os.leaked.floatingips": 1}, cnt.m)

	require.NoError(t, ad.DeleteResource(ctx, byID[srv]))
	require.NoError(t, ad.DeleteResource(ctx, byID[img]))
	_, ok := cloud.Server(srv)
	require.False(t, ok)
	_, ok = cloud.Image(img)
	require.False(t, ok)
	require.True(t, driver.IsNotFound(ad.DeleteResource(ctx, byID[img])))
}

func TestServerListingIsShared(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{BuildTime: 300 * time.Millisecond})
	cloud.SetLimits(fakeopenstack.Limits{Instances: -1, Cores: -1, RAM: -1, Volumes: -1, VolumeGB: -1})
	ad, cfg := open(t, `pools:
  - name: main
    auto-floating-ip: false
    labels:
      - name: small
        cloud-image: cirros
        min-ram: 512
`)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := create(t, ad, spec(cfg, "small", "00000001"+string(rune('a'+i%26))+string(rune('a'+i/26))))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	c := cloud.Counters()
	require.Equal(t, n, c.ServerCreates)
	require.Less(t, c.ServerLists, 10, "machines share one cached listing (%d lists for %d machines)", c.ServerLists, n)
	require.Zero(t, c.ServerGets)
}

func TestRateLimitSpacesCallsPerService(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{})
	ad, _ := open(t, "rate: 0.1\n")
	ctx := context.Background()
	_, err := ad.clients(ctx) // authentication and discovery
	require.NoError(t, err)
	start := time.Now()
	for i := 0; i < 4; i++ {
		_, err := ad.QuotaLimits(ctx) // one compute and one volume call each
		require.NoError(t, err)
	}
	el := time.Since(start)
	require.GreaterOrEqual(t, el, 300*time.Millisecond, "4 compute calls 0.1 s apart")
	_ = cloud
}

func TestReauthenticatesWhenTokenExpires(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{})
	ad, _ := open(t, "")
	ctx := context.Background()
	_, err := ad.QuotaLimits(ctx)
	require.NoError(t, err)
	cloud.ExpireTokens()
	_, err = ad.QuotaLimits(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, cloud.Counters().Auths)
}

func TestOpenUnknownCloud(t *testing.T) {
	fakeopenstack.Setup(t, fakeopenstack.Options{})
	cfg := parse(t, "name: os\ncloud: nope\ncloud-images: [{name: cirros}]\n"+basePools)
	_, err := Driver{}.Open(context.Background(), cfg, driver.Env{})
	require.ErrorContains(t, err, `cloud "nope"`)
}
