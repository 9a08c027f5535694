package gce_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/gce"
	"github.com/nodepool-go/nodepool/internal/fakegce"
	"github.com/nodepool-go/nodepool/quota"
)

func TestCreateMapsConfigOntoComputeEngine(t *testing.T) {
	cloud := setup(t, fakegce.Options{ListDelay: 30 * time.Millisecond})
	ad, cfg := open(t, cloud, "")
	inst, err := create(t, ad, spec(cfg, "small", "0000000042"))
	require.NoError(t, err)

	got, ok := cloud.Instance("np0000000042")
	require.True(t, ok)
	require.Equal(t, "RUNNING", got.Status)
	require.Equal(t, "e2-small", got.MachineType)
	require.Equal(t, "projects/debian-cloud/global/images/debian-12-bookworm-v20260101", got.SourceImage, "newest image of the family")
	require.Equal(t, "pd-ssd", got.DiskType)
	require.EqualValues(t, 20, got.DiskSizeGB)
	require.Equal(t, map[string]string{
		driver.MetaNodeID: "0000000042", driver.MetaPoolName: "main", driver.MetaProviderName: "gce",
		"ssh-keys": "zuul:ssh-ed25519 AAAAC3Nza zuul@example",
	}, got.Metadata)

	require.Equal(t, "np0000000042", inst.ExternalID)
	require.Equal(t, "Google", inst.Cloud)
	require.Equal(t, "us-central1", inst.Region)
	require.Equal(t, "us-central1-a", inst.AZ)
	require.Equal(t, got.IP, inst.PrivateIPv4)
	require.Equal(t, got.NatIP, inst.PublicIPv4)
	require.NotEmpty(t, inst.PublicIPv4)
	require.Equal(t, inst.PublicIPv4, inst.InterfaceIP, "the external address is the interface ip")
	require.Equal(t, got.Metadata, inst.Metadata)
	require.Equal(t, quota.New(2, 1, 2048, 0, nil).Map(), inst.Resources.Map())

	require.NoError(t, remove(t, ad, inst.ExternalID))
	_, ok = cloud.Instance("np0000000042")
	require.False(t, ok)
	calls := cloud.Calls()
	require.Equal(t, 1, calls["compute.images.getFromFamily"])
	require.Equal(t, 1, calls["compute.machineTypes.get"])
}

func TestImageIDAndNoKey(t *testing.T) {
	cloud := setup(t, fakegce.Options{})
	cloud.AddImage("my-project", "golden-1", "")
	ad, cfg := open(t, cloud, "cloud-images:\n  - name: debian\n    image-id: projects/my-project/global/images/golden-1\n")
	inst, err := create(t, ad, spec(cfg, "small", "0000000001"))
	require.NoError(t, err)
	got, _ := cloud.Instance(inst.ExternalID)
	require.Equal(t, "projects/my-project/global/images/golden-1", got.SourceImage)
	require.NotContains(t, got.Metadata, "ssh-keys")
	require.Zero(t, cloud.Calls()["compute.images.getFromFamily"])
}

func TestCreateFailures(t *testing.T) {
	cloud := setup(t, fakegce.Options{})
	ad, cfg := open(t, cloud, "")
	tests := []struct {
		fault fakegce.Fault
		kind  driver.Kind
		msg   string
	}{
		{fakegce.FaultQuota, driver.KindQuota, "quotaExceeded"},
		{fakegce.FaultQuotaOperation, driver.KindQuota, "QUOTA_EXCEEDED"},
		{fakegce.FaultCapacity, driver.KindCapacity, "ZONE_RESOURCE_POOL_EXHAUSTED"},
		{fakegce.FaultOperationError, driver.KindUnknown, "UNSUPPORTED_OPERATION: Injected operation failure"},
		{fakegce.FaultRateLimit, driver.KindTransient, "Rate Limit Exceeded"},
		{fakegce.FaultTooManyRequests, driver.KindTransient, "rateLimitExceeded"},
		{fakegce.FaultServer, driver.KindTransient, "Backend Error"},
	}
	for i, tt := range tests {
		cloud.FailNextInserts(1, tt.fault)
		_, err := create(t, ad, spec(cfg, "small", "000000010"+string(rune('0'+i))))
		require.Error(t, err, tt.msg)
		require.Equal(t, tt.kind, driver.KindOf(err), "%v", err)
		require.Contains(t, err.Error(), tt.msg)
	}
	require.Empty(t, cloud.Instances(), "no failure left an instance")
	require.Equal(t, "error.capacity", driver.MetricOf(driver.CapacityError("x")))
}

func TestTransientInsertIsResumed(t *testing.T) {
	cloud := setup(t, fakegce.Options{})
	ad, cfg := open(t, cloud, "")
	cloud.FailNextInserts(1, fakegce.FaultServer)
	m := ad.CreateMachine(spec(cfg, "small", "0000000007"))
	ctx := context.Background()
	var err error
	for err == nil {
		_, err = m.Advance(ctx)
	}
	require.True(t, driver.IsTransient(err), "%v", err)
	// The launcher advances the machine again: it inserts again.
	for {
		inst, err := m.Advance(ctx)
		require.NoError(t, err)
		if inst != nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	require.Equal(t, 2, cloud.Calls()["compute.instances.insert"])
}

func TestInsertThatGotThroughIsAdopted(t *testing.T) {
	cloud := setup(t, fakegce.Options{})
	ad, cfg := open(t, cloud, "")
	s := spec(cfg, "small", "0000000008")
	// An earlier request created the instance, its answer was lost.
	cloud.AddInstance(s.Hostname, "e2-small", s.Metadata)
	inst, err := create(t, ad, s)
	require.NoError(t, err)
	require.Equal(t, s.Hostname, inst.ExternalID)

	other := spec(cfg, "small", "0000000009")
	cloud.AddInstance(other.Hostname, "e2-small", map[string]string{driver.MetaNodeID: "1"})
	_, err = create(t, ad, other)
	require.ErrorContains(t, err, "belongs to another node")
}

func TestStuckInstanceDoesNotComplete(t *testing.T) {
	cloud := setup(t, fakegce.Options{})
	ad, cfg := open(t, cloud, "")
	cloud.FailNextInserts(1, fakegce.FaultStuck)
	m := ad.CreateMachine(spec(cfg, "small", "0000000011"))
	for i := 0; i < 50; i++ {
		inst, err := m.Advance(context.Background())
		require.NoError(t, err)
		require.Nil(t, inst)
		time.Sleep(2 * time.Millisecond)
	}
	require.Equal(t, "np0000000011", m.ExternalID(), "the id is known for the cleanup")
	got, _ := cloud.Instance("np0000000011")
	require.Equal(t, "PROVISIONING", got.Status)
	require.NoError(t, remove(t, ad, "np0000000011"))
	require.Empty(t, cloud.Instances())
}

func TestMissingMachineTypeFailsTheLaunch(t *testing.T) {
	cloud := setup(t, fakegce.Options{})
	ad, cfg := open(t, cloud, strings.Replace(basePools, "e2-small", "x9-huge", 1))
	_, err := create(t, ad, spec(cfg, "small", "0000000012"))
	require.ErrorContains(t, err, "machineTypes/x9-huge' was not found")
	require.Equal(t, driver.KindUnknown, driver.KindOf(err))
}

func TestQuotaAndListings(t *testing.T) {
	cloud := setup(t, fakegce.Options{PageSize: 2})
	cloud.SetQuota("CPUS", 8)
	cloud.SetQuota("INSTANCES", 5)
	for _, n := range []string{"pet-a", "pet-b", "pet-c"} {
		cloud.AddInstance(n, "n1-standard-2", nil)
	}
	leaked := cloud.AddInstance("np0000000099", "f1-micro", map[string]string{driver.MetaNodeID: "0000000099", driver.MetaProviderName: "gce", driver.MetaPoolName: "main"})
	cloud.AddInstance("pet-d", "custom-unknown", nil)
	ad, cfg := open(t, cloud, "")
	qr := ad.(driver.QuotaReporter)
	lim, err := qr.QuotaLimits(context.Background())
	require.NoError(t, err)
	require.Equal(t, 8.0, lim.Get(quota.Cores))
	require.Equal(t, 5.0, lim.Get(quota.Instances))
	require.Equal(t, quota.Inf, lim.Get(quota.RAM))
	need, err := qr.QuotaForLabel(context.Background(), cfg.Pools[0].Labels[0])
	require.NoError(t, err)
	require.Equal(t, quota.New(2, 1, 2048, 0, nil).Map(), need.Map())

	list, err := ad.ListInstances(context.Background())
	require.NoError(t, err)
	require.Len(t, list, 5, "every page")
	byName := map[string]driver.Instance{}
	for _, in := range list {
		byName[in.ExternalID] = in
	}
	require.Equal(t, quota.New(2, 1, 7680, 0, nil).Map(), byName["pet-a"].Resources.Map())
	require.Equal(t, quota.New(0, 1, 0, 0, nil).Map(), byName["pet-d"].Resources.Map(), "unknown type: one instance")

	lc := ad.(driver.LeakCleaner)
	res, err := lc.ListResources(context.Background())
	require.NoError(t, err)
	require.Len(t, res, 5)
	for _, r := range res {
		if r.ID == leaked {
			require.Equal(t, "0000000099", r.Metadata[driver.MetaNodeID])
			require.NoError(t, lc.DeleteResource(context.Background(), r))
			require.NoError(t, lc.DeleteResource(context.Background(), r), "a deletion under way is done")
		}
	}
	require.Eventually(t, func() bool { _, ok := cloud.Instance(leaked); return !ok }, 5*time.Second, 5*time.Millisecond)
	err = lc.DeleteResource(context.Background(), driver.Resource{Type: gce.TypeInstance, ID: leaked})
	require.True(t, driver.IsNotFound(err), "%v", err)
}

// TestApplicationDefaultCredentials opens the provider with nothing but
// GOOGLE_APPLICATION_CREDENTIALS naming a service-account key file: the
// client library signs a token request, the fake checks it and the API
// calls carry the token.
func TestApplicationDefaultCredentials(t *testing.T) {
	cloud, keyFile := fakegce.Setup(t, fakegce.Options{})
	t.Cleanup(gce.Override([]option.ClientOption{option.WithEndpoint(cloud.Endpoint())}, testTTL))
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", keyFile)
	ad, cfg := open(t, cloud, "")
	inst, err := create(t, ad, spec(cfg, "small", "0000000013"))
	require.NoError(t, err)
	require.NoError(t, remove(t, ad, inst.ExternalID))
	require.GreaterOrEqual(t, cloud.Calls()["oauth2.token"], 1)

	// A key the cloud does not know is refused, and the error carries no
	// part of the key.
	other, otherKey := fakegce.Setup(t, fakegce.Options{})
	_ = other
	data, err := os.ReadFile(otherKey)
	require.NoError(t, err)
	wrong := filepath.Join(t.TempDir(), "wrong.json")
	require.NoError(t, os.WriteFile(wrong, []byte(strings.Replace(string(data), other.Endpoint()[:len(other.Endpoint())-len("/compute/v1/")], cloudBase(cloud), 1)), 0o600))
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", wrong)
	ad, cfg = open(t, cloud, "")
	_, err = create(t, ad, spec(cfg, "small", "0000000014"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "Invalid JWT Signature")
	require.Equal(t, driver.KindUnknown, driver.KindOf(err), "refused credentials are no transient failure")
	require.NotContains(t, err.Error(), "PRIVATE KEY")
	require.Empty(t, cloud.Instances())
}

func cloudBase(c *fakegce.Cloud) string { return strings.TrimSuffix(c.Endpoint(), "/compute/v1/") }
