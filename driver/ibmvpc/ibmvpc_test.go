package ibmvpc

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/drivertest"
	"github.com/nodepool-go/nodepool/internal/fakeibmvpc"
	"github.com/nodepool-go/nodepool/quota"
)

func init() { SetTimings(20*time.Millisecond, 10*time.Millisecond) }

// providerYAML is a provider on the fake cloud, shaped like upstream's test
// fixture.
func providerYAML(c *fakeibmvpc.Cloud, creds, extra string) string {
	return fmt.Sprintf(`name: ibmvpc
driver: ibmvpc
rate: 1000
credentials-file: %s
object-storage:
  instance-name: '%s'
  endpoint: '%s'
  bucket-name: %s
vpc: nodepool
region: us-south
subnet: sn-nodepool
boot-timeout: 240
quota:
  cores: 200
cloud-images:
  - name: debian-by-name
    username: zuul
    keys: [testuser]
    image-name: ibm-debian-9-13-minimal-amd64-4
  - name: debian-by-filter
    username: zuul
    keys: [testuser]
    image-filter:
      operating-system:
        family: "Debian GNU/Linux"
        version: "9.x Stretch/Stable - Minimal Install"
diskimages:
  - name: fake-image
    operating-system: debian-9-amd64
  - name: drivertest
    operating-system: debian-9-amd64
pools:
  - name: private
    zone: us-south-1
    max-servers: 10
    host-key-checking: false
    labels:
      - name: debian-private
        cloud-image: debian-by-name
        profile: cx2-2x4
        user-data: "#cloud-config"
      - name: debian-filter
        cloud-image: debian-by-filter
        profile: cx2-2x4
      - name: fake-image
        diskimage: fake-image
        profile: bx2-8x32
  - name: public
    zone: us-south-1
    max-servers: 10
    public-ipv4: true
    labels:
      - name: debian-public
        cloud-image: debian-by-name
        profile: cx2-2x4
%s`, creds, fakeibmvpc.COSInstance, c.COSURL, fakeibmvpc.Bucket, extra)
}

// quiet is the environment of the tests' adapters (no log output).
var quiet = driver.Env{Logger: slog.New(slog.DiscardHandler)}

func parse(t testing.TB, src string) *driver.ProviderConfig {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &doc))
	probs := &driver.Problems{File: "nodepool.yaml"}
	p := Driver{}.ParseProvider(driver.NewSection(doc.Content[0], "providers[0]", probs))
	require.NoError(t, probs.Err())
	return p
}

// setup starts a fake cloud and opens a provider on it.
func setup(t testing.TB) (*fakeibmvpc.Cloud, *Adapter, *driver.ProviderConfig) {
	t.Helper()
	c := fakeibmvpc.New(t)
	cfg := parse(t, providerYAML(c, c.WriteCredentials(t, t.TempDir()), ""))
	ad, err := Driver{}.Open(context.Background(), cfg, quiet)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ad.Close() })
	return c, ad.(*Adapter), cfg
}

func spec(cfg *driver.ProviderConfig, pool, label, nodeID string) driver.CreateSpec {
	p := cfg.Pool(pool)
	return driver.CreateSpec{
		Hostname: "np" + nodeID,
		Label:    p.Label(label),
		Pool:     p,
		Metadata: map[string]string{driver.MetaNodeID: nodeID, driver.MetaPoolName: p.Name, driver.MetaProviderName: cfg.Name},
	}
}

func create(t testing.TB, ad *Adapter, s driver.CreateSpec) (*driver.Instance, error) {
	t.Helper()
	return drivertest.AdvanceCreate(context.Background(), ad.CreateMachine(s), 2*time.Millisecond, 20*time.Second)
}

func remove(t testing.TB, ad *Adapter, id string) error {
	t.Helper()
	return drivertest.AdvanceDelete(context.Background(), ad.DeleteMachine(id), 2*time.Millisecond, 20*time.Second)
}

func TestConformance(t *testing.T) {
	var c *fakeibmvpc.Cloud
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) {
			var ad *Adapter
			var cfg *driver.ProviderConfig
			c, ad, cfg = setup(t)
			return ad, cfg
		},
		ProvokeQuota: func(t *testing.T) { c.SetInstanceQuota(1); c.AddInstance("other", "Default", "cx2-2x4") },
		InjectLeak: func(t *testing.T, md map[string]string) string {
			return c.AddInstance("np"+md[driver.MetaNodeID], "np_ibmvpc_private", "cx2-2x4")
		},
		Tick: 2 * time.Millisecond,
	})
}

func TestConformancePublicPool(t *testing.T) {
	var c *fakeibmvpc.Cloud
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) {
			var ad *Adapter
			var cfg *driver.ProviderConfig
			c, ad, cfg = setup(t)
			c.SetLatency(2 * time.Millisecond)
			return ad, cfg
		},
		Pool: "public",
		InjectLeak: func(t *testing.T, md map[string]string) string {
			return c.AddInstance("np"+md[driver.MetaNodeID], "np_ibmvpc_public", "cx2-2x4")
		},
		SkipImages: true,
		Tick:       2 * time.Millisecond,
	})
}

func TestCreateMapsConfigOntoTheCloud(t *testing.T) {
	c, ad, cfg := setup(t)
	inst, err := create(t, ad, spec(cfg, "private", "debian-private", "0000000001"))
	require.NoError(t, err)
	require.Equal(t, "np0000000001", inst.ExternalID)
	require.Equal(t, "IBM", inst.Cloud)
	require.Equal(t, "us-south", inst.Region)
	require.Equal(t, "us-south-1", inst.AZ)
	require.NotEmpty(t, inst.PrivateIPv4)
	require.Equal(t, inst.PrivateIPv4, inst.InterfaceIP)
	require.Empty(t, inst.PublicIPv4)
	require.Equal(t, 2.0, inst.Resources.Get(quota.Cores))
	require.Equal(t, map[string]string{driver.MetaNodeID: "0000000001", driver.MetaPoolName: "private", driver.MetaProviderName: "ibmvpc"}, inst.Metadata)
	vms := c.Instances()
	require.Len(t, vms, 1)
	require.Equal(t, "np_ibmvpc_private", vms[0].Group)
	require.Equal(t, "#cloud-config", vms[0].UserData)
	require.Equal(t, []string{"key-1"}, vms[0].Keys)
	require.Equal(t, "cx2-2x4", vms[0].Profile)
	require.Empty(t, c.FloatingIPs())

	// Public pool: a floating IP named like the instance, attached.
	inst, err = create(t, ad, spec(cfg, "public", "debian-public", "0000000002"))
	require.NoError(t, err)
	require.NotEmpty(t, inst.PublicIPv4)
	require.Equal(t, inst.PublicIPv4, inst.InterfaceIP)
	fips := c.FloatingIPs()
	require.Len(t, fips, 1)
	require.Equal(t, "np0000000002", fips[0].Name)
	require.Equal(t, "np_ibmvpc_public", fips[0].Group)
	require.NotEmpty(t, fips[0].Target)

	// Delete removes the floating IP and the instance.
	require.NoError(t, remove(t, ad, "np0000000002"))
	require.NoError(t, remove(t, ad, "np0000000001"))
	require.Empty(t, c.FloatingIPs())
	require.Empty(t, c.Instances())
}

func TestImageFilterAndUploadedImage(t *testing.T) {
	c, ad, cfg := setup(t)
	inst, err := create(t, ad, spec(cfg, "private", "debian-filter", "0000000003"))
	require.NoError(t, err)
	require.NotNil(t, inst)
	s := spec(cfg, "private", "fake-image", "0000000004")
	s.ImageExternalID = "no-such-image"
	_, err = create(t, ad, s)
	require.ErrorContains(t, err, "image no-such-image not found")
	require.Len(t, c.Instances(), 1)
}

func TestErrorsAreClassified(t *testing.T) {
	c, ad, cfg := setup(t)
	// Throttling beyond the SDK's own retries is transient; the machine
	// resumes at the failed step.
	c.Fail("POST", "/v1/instances", 429, "too_many_requests", 4)
	m := ad.CreateMachine(spec(cfg, "private", "debian-private", "0000000010"))
	_, err := drivertest.AdvanceCreate(context.Background(), m, 2*time.Millisecond, 20*time.Second)
	require.True(t, driver.IsTransient(err), "got %v", err)
	inst, err := drivertest.AdvanceCreate(context.Background(), m, 2*time.Millisecond, 20*time.Second)
	require.NoError(t, err)
	require.Equal(t, "np0000000010", inst.ExternalID)

	// Fewer faults than the SDK's retries are ridden out inside the SDK.
	c.Fail("POST", "/v1/instances", 503, "service_unavailable", 2)
	_, err = create(t, ad, spec(cfg, "private", "debian-private", "0000000011"))
	require.NoError(t, err)

	c.Fail("POST", "/v1/instances", 400, "insufficient_capacity", 1)
	_, err = create(t, ad, spec(cfg, "private", "debian-private", "0000000012"))
	require.Equal(t, driver.KindCapacity, driver.KindOf(err), "got %v", err)

	c.Fail("POST", "/v1/instances", 400, "over_quota", 1)
	_, err = create(t, ad, spec(cfg, "private", "debian-private", "0000000013"))
	require.True(t, driver.IsQuota(err), "got %v", err)

	c.Fail("POST", "/v1/instances", 400, "validation_invalid_argument", 1)
	_, err = create(t, ad, spec(cfg, "private", "debian-private", "0000000014"))
	require.Equal(t, driver.KindUnknown, driver.KindOf(err))
	require.Contains(t, err.Error(), "injected validation_invalid_argument")

	c.FailInstances(1)
	_, err = create(t, ad, spec(cfg, "private", "debian-private", "0000000015"))
	require.ErrorContains(t, err, "failed state")
	require.Equal(t, "error.status", driver.MetricOf(err))
	require.NoError(t, remove(t, ad, "np0000000015"))
}

func TestQuota(t *testing.T) {
	_, ad, cfg := setup(t)
	lim, err := ad.QuotaLimits(context.Background())
	require.NoError(t, err)
	require.Equal(t, 200.0, lim.Get(quota.Cores))
	require.Equal(t, quota.Inf, lim.Get(quota.Instances))
	require.Equal(t, quota.Inf, lim.Get(quota.RAM))
	need, err := ad.QuotaForLabel(context.Background(), cfg.Pool("private").Label("fake-image"))
	require.NoError(t, err)
	require.Equal(t, 8.0, need.Get(quota.Cores))
	require.Equal(t, 32.0*1024, need.Get(quota.RAM), "MiB")
	require.Equal(t, 1.0, need.Get(quota.Instances))
}

func TestListInstancesReportsForeignInstancesWithResources(t *testing.T) {
	c, ad, _ := setup(t)
	c.AddInstance("someone-elses", "Default", "bx2-8x32")
	list, err := ad.ListInstances(context.Background())
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Empty(t, list[0].Metadata)
	require.Equal(t, 8.0, list[0].Resources.Get(quota.Cores))
	res, err := ad.ListResources(context.Background())
	require.NoError(t, err)
	require.Empty(t, res)
}

func TestUploadImageThroughObjectStorage(t *testing.T) {
	c, ad, _ := setup(t)
	file := filepath.Join(t.TempDir(), "fake-image.qcow2")
	require.NoError(t, os.WriteFile(file, []byte("qcow2 image"), 0o644))
	build := "0123456789abcdef0123456789abcdef"
	up := driver.UploadSpec{ImageName: "npimage0000000007", Diskimage: "fake-image", Filename: file, Format: "qcow2",
		Metadata: map[string]string{driver.MetaBuildID: build, driver.MetaUploadID: "0000000007", driver.MetaProviderName: "ibmvpc"}}
	id, err := ad.UploadImage(context.Background(), up)
	require.NoError(t, err)
	ims := c.Images()
	require.Len(t, ims, 1)
	require.Equal(t, "npimage0000000007-"+build, ims[0].Name)
	require.Equal(t, "npimages_ibmvpc", ims[0].Group)
	require.Equal(t, "cos://us-south/np-testbucket/npimage0000000007-"+build+".qcow2", ims[0].Image)
	require.Equal(t, "available", ims[0].Status)
	require.Empty(t, c.Objects(), "the staged object is removed after the import")

	// A leaked staged object and the image are listed with their ids.
	c.PutObject("npimage0000000008-"+build+".qcow2", []byte("x"))
	res, err := ad.ListResources(context.Background())
	require.NoError(t, err)
	got := map[string]map[string]string{}
	for _, r := range res {
		got[r.Type+" "+r.ID] = r.Metadata
	}
	require.Equal(t, map[string]string{driver.MetaProviderName: "ibmvpc", driver.MetaUploadID: "0000000007", driver.MetaBuildID: build}, got["image "+id])
	require.Equal(t, map[string]string{driver.MetaProviderName: "ibmvpc", driver.MetaUploadID: "0000000008", driver.MetaBuildID: build}, got["object npimage0000000008-"+build+".qcow2"])
	require.NoError(t, ad.DeleteResource(context.Background(), driver.Resource{Type: TypeObject, ID: "npimage0000000008-" + build + ".qcow2"}))
	require.Empty(t, c.Objects())

	require.NoError(t, ad.DeleteImage(context.Background(), id))
	require.True(t, c.Images()[0].Deleting)
	require.Eventually(t, func() bool { return len(c.Images()) == 0 }, 10*time.Second, time.Millisecond)
	err = ad.DeleteImage(context.Background(), id)
	require.True(t, driver.IsNotFound(err), "got %v", err)

	// An import that fails.
	cfgFail := parse(t, strings.Replace(providerYAML(c, c.WriteCredentials(t, t.TempDir()), ""), "operating-system: debian-9-amd64\n  - name: drivertest", "operating-system: "+fakeibmvpc.FailingOS+"\n  - name: drivertest", 1))
	adf, err := Driver{}.Open(context.Background(), cfgFail, quiet)
	require.NoError(t, err)
	up.Metadata[driver.MetaUploadID] = "0000000009"
	_, err = adf.(*Adapter).UploadImage(context.Background(), up)
	require.ErrorContains(t, err, "image status of npimage0000000009-"+build+" is failed")
}

func TestNoSecretInErrors(t *testing.T) {
	c := fakeibmvpc.New(t)
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds.env")
	require.NoError(t, os.WriteFile(creds, []byte("VPC_AUTH_TYPE=iam\nVPC_APIKEY=wrong-secret-key\nVPC_AUTH_URL="+c.URL+"\nVPC_URL="+c.URL+"/v1\nRESOURCE_MANAGER_URL="+c.URL+"\n"), 0o600))
	cfg := parse(t, providerYAML(c, creds, ""))
	ad, err := Driver{}.Open(context.Background(), cfg, quiet)
	require.NoError(t, err)
	_, err = create(t, ad.(*Adapter), spec(cfg, "private", "debian-private", "0000000001"))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "wrong-secret-key")
}

func TestOpenErrors(t *testing.T) {
	c := fakeibmvpc.New(t)
	_, err := Driver{}.Open(context.Background(), parse(t, providerYAML(c, filepath.Join(t.TempDir(), "missing.env"), "")), quiet)
	require.ErrorContains(t, err, "credentials-file")
	cfg := parse(t, strings.Replace(providerYAML(c, c.WriteCredentials(t, t.TempDir()), ""), "name: ibmvpc\n", "name: ibm_vpc\n", 1))
	_, err = Driver{}.Open(context.Background(), cfg, quiet)
	require.ErrorContains(t, err, "underscores")
	// A pool whose subnet is in another zone fails every machine.
	cfg = parse(t, strings.Replace(providerYAML(c, c.WriteCredentials(t, t.TempDir()), ""), "zone: us-south-1\n    max-servers: 10\n    host-key", "zone: us-south-2\n    max-servers: 10\n    host-key", 1))
	ad, err := Driver{}.Open(context.Background(), cfg, quiet)
	require.NoError(t, err)
	_, err = create(t, ad.(*Adapter), spec(cfg, "public", "debian-public", "0000000001"))
	require.ErrorContains(t, err, "does not match pool zone us-south-2")
}

func TestRateSpacesCalls(t *testing.T) {
	rt := newRateTransport(nil, time.Hour)
	require.NoError(t, rt.wait(context.Background()), "the first call is immediate")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, rt.wait(ctx), context.Canceled, "the second call must wait for its turn")
	require.Equal(t, int64(2), rt.Calls())
	// Further pages of a listing are not spaced.
	rt.base = roundTripFunc(func(*http.Request) (*http.Response, error) { return &http.Response{StatusCode: 200}, nil })
	r, err := http.NewRequestWithContext(ctx, "GET", "http://vpc/v1/instances?limit=100&start=abc", nil)
	require.NoError(t, err)
	_, err = rt.RoundTrip(r)
	require.NoError(t, err)
	r, err = http.NewRequestWithContext(ctx, "GET", "http://vpc/v1/instances?limit=100", nil)
	require.NoError(t, err)
	_, err = rt.RoundTrip(r)
	require.ErrorIs(t, err, context.Canceled)
	none := newRateTransport(nil, 0)
	for i := 0; i < 3; i++ {
		require.NoError(t, none.wait(ctx), "rate 0 is unlimited")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestListingsArePaginatedAndShared(t *testing.T) {
	c, ad, _ := setup(t)
	for i := 0; i < 250; i++ {
		c.AddInstance(fmt.Sprintf("foreign-%03d", i), "Default", "cx2-2x4")
	}
	list, err := ad.ListInstances(context.Background())
	require.NoError(t, err)
	require.Len(t, list, 250)
	calls := c.Calls()
	require.Equal(t, 3, calls["GET /v1/instances"], "three pages of 100")
	require.Equal(t, 1, calls["LIST /v1/instances"])
	// Within the TTL the listing is served from the cache.
	SetTimings(time.Hour, 10*time.Millisecond)
	defer SetTimings(20*time.Millisecond, 10*time.Millisecond)
	c2, ad2, _ := setup(t)
	for i := 0; i < 5; i++ {
		_, err := ad2.ListInstances(context.Background())
		require.NoError(t, err)
	}
	require.Equal(t, 1, c2.Calls()["LIST /v1/instances"])
}

func TestDeleteBeforeListed(t *testing.T) {
	c, ad, cfg := setup(t)
	c.SetListDelay(time.Hour) // nothing new is listed
	s := spec(cfg, "private", "debian-private", "0000000020")
	m := ad.CreateMachine(s)
	for m.(*createMachine).state != cVMWait {
		_, err := m.Advance(context.Background())
		require.NoError(t, err)
		time.Sleep(time.Millisecond)
	}
	require.Len(t, c.Instances(), 1)
	// The instance is not listed yet; the adapter remembers its id.
	require.NoError(t, remove(t, ad, s.Hostname))
	require.Equal(t, 1, c.Calls()["DELETE /v1/instances/{id}"])
	for _, v := range c.Instances() {
		require.True(t, v.Deleting)
	}
}

func TestFailedCreateLeavesNothingAfterDelete(t *testing.T) {
	c, ad, cfg := setup(t)
	c.Fail("POST", "/v1/instances", 400, "validation_invalid_argument", 1)
	s := spec(cfg, "public", "debian-public", "0000000030")
	m := ad.CreateMachine(s)
	_, err := drivertest.AdvanceCreate(context.Background(), m, 2*time.Millisecond, 20*time.Second)
	require.Error(t, err)
	require.Len(t, c.FloatingIPs(), 1, "the floating IP was made first")
	require.Empty(t, c.Instances())
	// The launcher deletes the failed attempt by its external id.
	require.NoError(t, remove(t, ad, m.ExternalID()))
	for _, f := range c.FloatingIPs() {
		require.True(t, f.Deleting)
	}
	require.Equal(t, 1, c.Calls()["DELETE /v1/floating_ips/{id}"])
}
