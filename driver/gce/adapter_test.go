package gce_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/drivertest"
	"github.com/nodepool-go/nodepool/driver/gce"
	"github.com/nodepool-go/nodepool/internal/fakegce"
)

// testTTL is the listings' TTL in these tests.
const testTTL = 20 * time.Millisecond

const basePools = `
pools:
  - name: main
    node-attributes: {key1: value1}
    labels:
      - name: small
        cloud-image: debian
        instance-type: e2-small
        volume-type: pd-ssd
        volume-size: 20
`

// parse parses one provider entry that must be valid.
func parse(t testing.TB, src string) *driver.ProviderConfig {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &doc))
	probs := &driver.Problems{File: "nodepool.yaml"}
	p := gce.Driver{}.ParseProvider(driver.NewSection(doc.Content[0], "providers[0]", probs))
	require.NoError(t, probs.Err())
	return p
}

// setup starts a fake cloud that needs no credentials and points the
// driver at it.
func setup(t testing.TB, o fakegce.Options) *fakegce.Cloud {
	t.Helper()
	o.NoAuth = true
	cloud, _ := fakegce.Setup(t, o)
	t.Cleanup(gce.Override(cloud.ClientOptions(), testTTL))
	return cloud
}

// open parses a provider on the fake (rate 0 unless extra sets it) and
// opens its adapter.
func open(t testing.TB, cloud *fakegce.Cloud, extra string) (driver.Adapter, *driver.ProviderConfig) {
	t.Helper()
	src := "name: gce\ndriver: gce\nproject: " + cloud.Project() + "\nregion: " + cloud.Region() + "\nzone: " + cloud.Zone() + "\n"
	if !strings.Contains(extra, "cloud-images:") {
		src += "cloud-images:\n  - name: debian\n    image-project: debian-cloud\n    image-family: debian-12\n    username: zuul\n    key: ssh-ed25519 AAAAC3Nza zuul@example\n"
	}
	if !strings.Contains(extra, "rate:") {
		src += "rate: 0\n"
	}
	src += extra
	if !strings.Contains(extra, "pools:") {
		src += basePools
	}
	cfg := parse(t, src)
	ad, err := gce.Driver{}.Open(context.Background(), cfg, driver.Env{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ad.Close() })
	return ad, cfg
}

func spec(cfg *driver.ProviderConfig, label, nodeID string) driver.CreateSpec {
	pool := cfg.Pools[0]
	return driver.CreateSpec{
		Hostname: "np" + nodeID,
		Label:    pool.Label(label),
		Pool:     pool,
		Metadata: map[string]string{driver.MetaNodeID: nodeID, driver.MetaPoolName: pool.Name, driver.MetaProviderName: cfg.Name},
		Request:  driver.RequestInfo{ID: "200-0000000001", Labels: []string{label}, Requestor: "zuul"},
	}
}

func create(t testing.TB, ad driver.Adapter, s driver.CreateSpec) (*driver.Instance, error) {
	t.Helper()
	return drivertest.AdvanceCreate(context.Background(), ad.CreateMachine(s), 2*time.Millisecond, 20*time.Second)
}

func remove(t testing.TB, ad driver.Adapter, id string) error {
	t.Helper()
	return drivertest.AdvanceDelete(context.Background(), ad.DeleteMachine(id), 2*time.Millisecond, 20*time.Second)
}

func TestConformance(t *testing.T) {
	cloud := setup(t, fakegce.Options{BuildTime: 20 * time.Millisecond, ListDelay: 10 * time.Millisecond, PageSize: 2})
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) {
			return open(t, cloud, "")
		},
		ProvokeQuota: func(t *testing.T) { cloud.FailNextInserts(1, fakegce.FaultQuotaOperation) },
		InjectLeak: func(t *testing.T, md map[string]string) string {
			return cloud.AddInstance("np"+md[driver.MetaNodeID], "", md)
		},
		Tick: 2 * time.Millisecond,
	})
}

func TestConformanceWithLatencyAndSynchronousQuota(t *testing.T) {
	cloud := setup(t, fakegce.Options{BuildTime: 30 * time.Millisecond, DeleteTime: 30 * time.Millisecond, Latency: 3 * time.Millisecond})
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) {
			return open(t, cloud, "")
		},
		ProvokeQuota: func(t *testing.T) { cloud.FailNextInserts(1, fakegce.FaultQuota) },
		Concurrency:  8,
		Tick:         2 * time.Millisecond,
	})
}
