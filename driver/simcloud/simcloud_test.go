package simcloud

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/drivertest"
	"github.com/nodepool-go/nodepool/quota"
)

var cloudSeq atomic.Int64

// uniqueName returns a cloud/provider name no other test uses.
func uniqueName(t testing.TB) string {
	return fmt.Sprintf("sim-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), cloudSeq.Add(1))
}

// parse parses one provider entry.
func parse(t testing.TB, src string) (*driver.ProviderConfig, *driver.Problems) {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &doc))
	probs := &driver.Problems{File: "nodepool.yaml", Strict: true}
	s := driver.NewSection(doc.Content[0], "providers[0]", probs)
	return Driver().ParseProvider(s), probs
}

// mustParse parses a provider entry that must be valid.
func mustParse(t testing.TB, src string) *driver.ProviderConfig {
	t.Helper()
	p, probs := parse(t, src)
	require.NoError(t, probs.Err())
	return p
}

// open parses and opens a provider on a fresh cloud.
func open(t testing.TB, extra string) (*Adapter, *driver.ProviderConfig) {
	t.Helper()
	name := uniqueName(t)
	src := "name: " + name + "\ndriver: simcloud\n" + extra
	if !strings.Contains(extra, "pools:") {
		src += "pools:\n  - name: main\n    labels:\n      - name: small\n"
	}
	cfg := mustParse(t, src)
	ad, err := Driver().Open(context.Background(), cfg, driver.Env{})
	require.NoError(t, err)
	t.Cleanup(func() { Forget(cfg.Settings.(*Settings).Cloud) })
	return ad.(*Adapter), cfg
}

func spec(cfg *driver.ProviderConfig, nodeID string) driver.CreateSpec {
	pool := cfg.Pools[0]
	return driver.CreateSpec{
		Hostname: "np" + nodeID,
		Label:    pool.Labels[0],
		Pool:     pool,
		Metadata: map[string]string{driver.MetaNodeID: nodeID, driver.MetaPoolName: pool.Name, driver.MetaProviderName: cfg.Name},
	}
}

func advance(t testing.TB, m driver.CreateMachine) (*driver.Instance, error) {
	t.Helper()
	return drivertest.AdvanceCreate(context.Background(), m, time.Millisecond, 10*time.Second)
}

func TestConformance(t *testing.T) {
	var cloud *Cloud
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) {
			ad, cfg := open(t, "availability-zones: [az1, az2]\nboot-time: 0.01\n")
			cloud = ad.Cloud()
			return ad, cfg
		},
		ProvokeQuota: func(t *testing.T) { cloud.SetQuota(0, -1, -1) },
		InjectLeak: func(t *testing.T, md map[string]string) string {
			return cloud.AddInstance(Server{Name: "leak", Metadata: md}).ID
		},
	})
}

func TestConformanceWithLatency(t *testing.T) {
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) {
			return open(t, "api-latency: 0.005\nboot-time: [0.005, 0.02]\n")
		},
		AZ:          "",
		Concurrency: 20,
	})
}

func TestParseDefaults(t *testing.T) {
	p := mustParse(t, `
name: sim
driver: simcloud
pools:
  - name: main
    labels:
      - name: small
`)
	require.Equal(t, "sim", p.Name)
	require.Equal(t, "simcloud", p.Driver)
	require.True(t, p.ManageImages)
	require.True(t, p.PausesAtQuota)
	require.Equal(t, "qcow2", p.ImageFormat)
	require.Equal(t, time.Hour, p.LaunchTimeout)
	require.Equal(t, 60*time.Second, p.BootTimeout)
	require.Equal(t, 3, p.LaunchRetries)
	st := p.Settings.(*Settings)
	require.Equal(t, "sim", st.Cloud)
	require.Equal(t, UnlimitedQuota(), st.Knobs.Quota)
	require.Equal(t, []Flavor{{Name: "small", Cores: 2, RAM: 2048}}, st.Flavors)
	require.Equal(t, []string{"default"}, st.Knobs.Images)
	require.Zero(t, st.Knobs.BootTimeMax)

	pool := p.Pools[0]
	require.Equal(t, driver.Unlimited, pool.MaxServers)
	require.Equal(t, driver.Unlimited, pool.MaxCores)
	require.True(t, pool.HostKeyChecking)
	l := pool.Labels[0]
	require.Equal(t, "default", l.CloudImage)
	require.Equal(t, "zuul", l.Username)
	require.Equal(t, "auto", l.PythonPath)
	require.Equal(t, "ssh", l.ConnectionType)
	require.Equal(t, 22, l.ConnectionPort)
	require.True(t, l.HostKeyChecking)
	require.Equal(t, map[string]float64{"cores": 2, "instances": 1, "ram": 2048}, l.Resources)
	require.Equal(t, quota.New(2, 1, 2048, 0, nil), l.Need())
}

func TestParseFull(t *testing.T) {
	p := mustParse(t, `
name: sim
driver: simcloud
cloud: shared
region: earth-1
boot-time: [1, 2.5]
api-latency: 0.25
create-failure-rate: 0.1
delete-failure-rate: 0
quota: {instances: 10, cores: 40, ram: 65536}
flavors:
  - {name: small, cores: 1, ram: 1024}
  - {name: medium, cores: 4, ram: 8192}
  - {name: large, cores: 8, ram: 16384}
cloud-images:
  - name: jammy
    username: ubuntu
  - name: win
    connection-type: winrm
    shell-type: cmd
    python-path: /usr/bin/python
diskimages:
  - name: debian
    meta: {key: value}
    pause: true
image-format: raw
availability-zones: [az1, az2]
leaked-instances: 2
foreign-instances: 3
state-file: /tmp/x.json
launch-timeout: 600
boot-timeout: 30
launch-retries: 5
max-concurrency: 4
priority: 2
pools:
  - name: main
    max-servers: 5
    max-cores: 16
    max-ram: 32768
    availability-zones: [az2]
    host-key-checking: false
    labels:
      - {name: a, cloud-image: win, flavor-name: large}
      - {name: b, diskimage: debian, min-ram: 2000}
      - {name: c, cloud-image: jammy, host-key-checking: true}
`)
	st := p.Settings.(*Settings)
	require.Equal(t, "shared", st.Cloud)
	require.Equal(t, "earth-1", st.Region)
	require.Equal(t, time.Second, st.Knobs.BootTimeMin)
	require.Equal(t, 2500*time.Millisecond, st.Knobs.BootTimeMax)
	require.Equal(t, 250*time.Millisecond, st.Knobs.APILatency)
	require.Equal(t, 0.1, st.Knobs.CreateFailureRate)
	require.Equal(t, Quota{Instances: 10, Cores: 40, RAM: 65536}, st.Knobs.Quota)
	require.Equal(t, []string{"az1", "az2"}, st.Knobs.AZs)
	require.Equal(t, []string{"jammy", "win"}, st.Knobs.Images)
	require.Equal(t, "/tmp/x.json", st.Knobs.StateFile)
	require.Equal(t, 2, st.LeakedInstances)
	require.Equal(t, 3, st.ForeignInstances)
	require.Equal(t, "raw", p.ImageFormat)
	require.Equal(t, 600*time.Second, p.LaunchTimeout)
	require.Equal(t, 30*time.Second, p.BootTimeout)
	require.Equal(t, 5, p.LaunchRetries)
	require.Equal(t, 4, p.MaxConcurrency)
	require.Equal(t, 2, *p.Priority)
	require.Equal(t, &driver.ProviderDiskimage{Name: "debian", Pause: true, ConnectionType: "ssh", ConnectionPort: 22, Meta: map[string]string{"key": "value"}}, p.Diskimage("debian"))

	pool := p.Pool("main")
	require.Equal(t, 5, pool.MaxServers)
	require.Equal(t, 16, pool.MaxCores)
	require.Equal(t, 32768, pool.MaxRAM)
	require.Equal(t, []string{"az2"}, pool.AZs)
	require.False(t, pool.HostKeyChecking)

	a := pool.Label("a")
	require.Equal(t, "win", a.CloudImage)
	require.Equal(t, "winrm", a.ConnectionType)
	require.Equal(t, 5986, a.ConnectionPort)
	require.Equal(t, "cmd", a.ShellType)
	require.Equal(t, "/usr/bin/python", a.PythonPath)
	require.False(t, a.HostKeyChecking)
	require.Equal(t, Flavor{Name: "large", Cores: 8, RAM: 16384}, a.Settings.(*LabelSettings).Flavor)

	b := pool.Label("b")
	require.Equal(t, "debian", b.Diskimage)
	require.Empty(t, b.CloudImage)
	require.Empty(t, b.Username, "left for the loader to take from the top-level diskimage")
	require.Equal(t, "medium", b.Settings.(*LabelSettings).Flavor.Name)

	c := pool.Label("c")
	require.Equal(t, "ubuntu", c.Username)
	require.True(t, c.HostKeyChecking)
	require.Equal(t, "small", c.Settings.(*LabelSettings).Flavor.Name)
}

func TestParseErrors(t *testing.T) {
	_, probs := parse(t, `
name: sim
driver: simcloud
boot-time: [3, 1]
api-latency: -1
create-failure-rate: 2
leaked-instances: -1
quota: {instances: many, bogus: 1}
flavors:
  - {cores: 2}
cloud-images:
  - {name: a}
  - {name: a}
unknown-key: 1
pools:
  - name: main
    labels:
      - {name: x, cloud-image: nope}
      - {name: y, flavor-name: nope}
      - {name: z, min-ram: 999999}
      - {name: w, diskimage: nope}
      - {name: v, cloud-image: a, diskimage: nope}
      - {name: u, flavor-name: small, min-ram: 1}
      - {name: u}
  - name: main
`)
	var msgs []string
	for _, e := range probs.Errors {
		msgs = append(msgs, e.Path+": "+e.Msg)
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{
		"providers[0].boot-time: min 3 is greater than max 1",
		"providers[0].api-latency: must be a non-negative number of seconds",
		"providers[0].create-failure-rate: must be between 0 and 1",
		"providers[0].leaked-instances: must not be negative",
		"providers[0].quota.instances: expected int",
		"providers[0].quota.bogus: extra keys not allowed",
		"providers[0].flavors[0].name: required key not provided",
		"providers[0].cloud-images[1].name: duplicate cloud image \"a\"",
		"providers[0].unknown-key: extra keys not allowed",
		"providers[0].pools[0].labels[0].cloud-image: cloud image \"nope\" is not in the provider's cloud-images",
		"providers[0].pools[0].labels[1].flavor-name: flavor \"nope\" is not in the provider's flavors",
		"providers[0].pools[0].labels[2].min-ram: no flavor has at least 999999 MiB of ram",
		"providers[0].pools[0].labels[3].diskimage: diskimage \"nope\" is not in the provider's diskimages",
		"providers[0].pools[0].labels[4].diskimage: cloud-image and diskimage are mutually exclusive",
		"providers[0].pools[0].labels[5].min-ram: flavor-name and min-ram are mutually exclusive",
		"providers[0].pools[0].labels[6].name: duplicate label \"u\"",
		"providers[0].pools[1].name: duplicate pool \"main\"",
	} {
		require.Contains(t, all, want)
	}
	for _, e := range probs.Errors {
		require.Positive(t, e.Line, "error without a line: %v", e)
	}
	require.Len(t, probs.Errors, 17, all)

	_, probs = parse(t, "name: sim\ndriver: simcloud\nboot-time: fast\n")
	require.ErrorContains(t, probs.Err(), "providers[0].boot-time: expected a number or a list [min, max]")
	_, probs = parse(t, "name: sim\ndriver: simcloud\nboot-time: [1, 2, 3]\n")
	require.ErrorContains(t, probs.Err(), "got a list of 3")
}

func TestCreateInstanceFields(t *testing.T) {
	ad, cfg := open(t, "region: r1\navailability-zones: [az1]\n")
	inst, err := advance(t, ad.CreateMachine(spec(cfg, "0000000001")))
	require.NoError(t, err)
	require.Equal(t, cfg.Settings.(*Settings).Cloud, inst.Cloud)
	require.Equal(t, "r1", inst.Region)
	require.Equal(t, "az1", inst.AZ)
	require.True(t, strings.HasPrefix(inst.InterfaceIP, "203.0.113."), inst.InterfaceIP)
	require.Equal(t, inst.InterfaceIP, inst.PublicIPv4)
	require.True(t, strings.HasPrefix(inst.PrivateIPv4, "10."), inst.PrivateIPv4)
	require.True(t, strings.HasPrefix(inst.PublicIPv6, "2001:db8::"), inst.PublicIPv6)
	require.Len(t, inst.HostID, 56)
	require.Equal(t, "0000000001", inst.Metadata[driver.MetaNodeID])
	require.Equal(t, quota.New(2, 1, 2048, 0, nil), *inst.Resources)

	// The host key is a real ed25519 key in authorized_keys form.
	require.Len(t, inst.HostKeys, 1)
	parts := strings.Fields(inst.HostKeys[0])
	require.Len(t, parts, 2)
	require.Equal(t, "ssh-ed25519", parts[0])
	raw, err := base64.StdEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	require.Equal(t, uint32(11), binary.BigEndian.Uint32(raw))
	require.Equal(t, "ssh-ed25519", string(raw[4:15]))
	require.Equal(t, uint32(ed25519.PublicKeySize), binary.BigEndian.Uint32(raw[15:]))
	require.Len(t, raw, 19+ed25519.PublicKeySize)

	srv, ok := ad.Cloud().Server(inst.ExternalID)
	require.True(t, ok)
	require.Equal(t, StatusActive, srv.Status)
	require.Equal(t, "np0000000001", srv.Name)
	require.Equal(t, "default", srv.Image)
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestBootTimeAndLatencyWithClock(t *testing.T) {
	ad, cfg := open(t, "boot-time: 10\n")
	c := ad.Cloud()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c.SetClock(clk.Now)
	ctx := context.Background()

	m := ad.CreateMachine(spec(cfg, "0000000001"))
	inst, err := m.Advance(ctx)
	require.NoError(t, err)
	require.Nil(t, inst)
	require.NotEmpty(t, m.ExternalID(), "id known after the create call")
	srv, _ := c.Server(m.ExternalID())
	require.Equal(t, StatusBuild, srv.Status)
	clk.Add(9 * time.Second)
	inst, err = m.Advance(ctx)
	require.NoError(t, err)
	require.Nil(t, inst)
	clk.Add(time.Second)
	inst, err = m.Advance(ctx)
	require.NoError(t, err)
	require.NotNil(t, inst)
	inst2, err := m.Advance(ctx)
	require.NoError(t, err)
	require.Same(t, inst, inst2, "a complete machine keeps returning its instance")

	// Latency: the answer of a call is visible only after it elapsed, and
	// Advance never blocks.
	c.SetLatency(5 * time.Second)
	c.SetBootTime(0, 0)
	m = ad.CreateMachine(spec(cfg, "0000000002"))
	start := time.Now()
	inst, err = m.Advance(ctx)
	require.Less(t, time.Since(start), 4*time.Second, "Advance does not wait out the 5 s latency")
	require.NoError(t, err)
	require.Nil(t, inst)
	require.Empty(t, m.ExternalID())
	clk.Add(5 * time.Second)
	inst, err = m.Advance(ctx)
	require.NoError(t, err)
	require.NotNil(t, inst)

	dm := ad.DeleteMachine(inst.ExternalID)
	done, err := dm.Advance(ctx)
	require.NoError(t, err)
	require.False(t, done)
	clk.Add(5 * time.Second)
	done, err = dm.Advance(ctx)
	require.NoError(t, err)
	require.True(t, done)
}

func TestBootTimeRange(t *testing.T) {
	ad, cfg := open(t, "boot-time: [10, 20]\n")
	c := ad.Cloud()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c.SetClock(clk.Now)
	for i := 0; i < 20; i++ {
		m := ad.CreateMachine(spec(cfg, fmt.Sprint(i)))
		_, err := m.Advance(context.Background())
		require.NoError(t, err)
		srv, _ := c.Server(m.ExternalID())
		boot := srv.ReadyAt.Sub(srv.Created)
		require.GreaterOrEqual(t, boot, 10*time.Second)
		require.LessOrEqual(t, boot, 20*time.Second)
	}
}

func TestFailNextCreates(t *testing.T) {
	ad, cfg := open(t, "")
	c := ad.Cloud()
	c.FailNextCreates(2)
	for i := 0; i < 2; i++ {
		m := ad.CreateMachine(spec(cfg, "1"))
		_, err := advance(t, m)
		require.ErrorContains(t, err, "injected create failure")
		require.Empty(t, m.ExternalID())
		require.Equal(t, "error.unknown", driver.MetricOf(err))
	}
	_, err := advance(t, ad.CreateMachine(spec(cfg, "1")))
	require.NoError(t, err)
	require.Equal(t, 3, c.Counters().Creates)
	require.Len(t, c.Instances(), 1)
}

func TestFailNextCreatesWithID(t *testing.T) {
	ad, cfg := open(t, "")
	c := ad.Cloud()
	c.FailNextCreatesWithID(1)
	m := ad.CreateMachine(spec(cfg, "1"))
	_, err := advance(t, m)
	require.Error(t, err)
	require.Equal(t, "error.status", driver.MetricOf(err))
	require.NotEmpty(t, m.ExternalID())
	srv, ok := c.Server(m.ExternalID())
	require.True(t, ok)
	require.Equal(t, StatusError, srv.Status)
	// The failed server is deletable (cleanup between attempts).
	require.NoError(t, drivertest.AdvanceDelete(context.Background(), ad.DeleteMachine(m.ExternalID()), time.Millisecond, time.Second))
	require.Empty(t, c.Instances())
}

func TestFailureRates(t *testing.T) {
	ad, cfg := open(t, "create-failure-rate: 1\ndelete-failure-rate: 1\n")
	c := ad.Cloud()
	m := ad.CreateMachine(spec(cfg, "1"))
	_, err := advance(t, m)
	require.Equal(t, "error.status", driver.MetricOf(err))
	err = drivertest.AdvanceDelete(context.Background(), ad.DeleteMachine(m.ExternalID()), time.Millisecond, time.Second)
	require.ErrorContains(t, err, "random delete failure")
	c.SetFailureRates(0, 0)
	require.NoError(t, drivertest.AdvanceDelete(context.Background(), ad.DeleteMachine(m.ExternalID()), time.Millisecond, time.Second))
}

func TestFailNextDeletes(t *testing.T) {
	ad, cfg := open(t, "")
	c := ad.Cloud()
	inst, err := advance(t, ad.CreateMachine(spec(cfg, "1")))
	require.NoError(t, err)
	c.FailNextDeletes(1)
	ctx := context.Background()
	err = drivertest.AdvanceDelete(ctx, ad.DeleteMachine(inst.ExternalID), time.Millisecond, time.Second)
	require.ErrorContains(t, err, "injected delete failure")
	require.False(t, driver.IsNotFound(err))
	require.Len(t, c.Instances(), 1)
	require.NoError(t, drivertest.AdvanceDelete(ctx, ad.DeleteMachine(inst.ExternalID), time.Millisecond, time.Second))
	err = drivertest.AdvanceDelete(ctx, ad.DeleteMachine(inst.ExternalID), time.Millisecond, time.Second)
	require.True(t, driver.IsNotFound(err))
	require.Equal(t, 3, c.Counters().Deletes)
}

func TestCreateHang(t *testing.T) {
	ad, cfg := open(t, "")
	c := ad.Cloud()
	c.SetCreateHang(true)
	m := ad.CreateMachine(spec(cfg, "1"))
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		inst, err := m.Advance(ctx)
		require.NoError(t, err)
		require.Nil(t, inst)
	}
	srv, _ := c.Server(m.ExternalID())
	require.Equal(t, StatusBuild, srv.Status)
	c.SetCreateHang(false)
	inst, err := m.Advance(ctx)
	require.NoError(t, err)
	require.NotNil(t, inst)
}

func TestQuota(t *testing.T) {
	ad, cfg := open(t, "quota: {instances: 2, cores: 100, ram: 100000}\n")
	c := ad.Cloud()
	ctx := context.Background()
	lim, err := ad.QuotaLimits(ctx)
	require.NoError(t, err)
	require.Equal(t, 2.0, lim.Get("instances"))
	require.Equal(t, 100.0, lim.Get("cores"))
	require.Equal(t, quota.Inf, lim.Get("volumes"))

	for i := 0; i < 2; i++ {
		_, err := advance(t, ad.CreateMachine(spec(cfg, fmt.Sprint(i))))
		require.NoError(t, err)
	}
	_, err = advance(t, ad.CreateMachine(spec(cfg, "3")))
	require.True(t, driver.IsQuota(err), "%v", err)
	require.ErrorContains(t, err, "Quota exceeded")

	c.SetQuota(10, 5, -1) // cores: 2 servers × 2 cores used, 2 more exceed 5
	_, err = advance(t, ad.CreateMachine(spec(cfg, "4")))
	require.True(t, driver.IsQuota(err))
	require.ErrorContains(t, err, "cores")

	c.SetQuota(-1, -1, 4096)
	_, err = advance(t, ad.CreateMachine(spec(cfg, "5")))
	require.True(t, driver.IsQuota(err))
	require.ErrorContains(t, err, "ram")

	c.SetQuota(-1, -1, -1)
	lim, err = ad.QuotaLimits(ctx)
	require.NoError(t, err)
	require.Equal(t, quota.Unlimited().Get("instances"), lim.Get("instances"))
	_, err = advance(t, ad.CreateMachine(spec(cfg, "6")))
	require.NoError(t, err)

	need, err := ad.QuotaForLabel(ctx, cfg.Pools[0].Labels[0])
	require.NoError(t, err)
	require.Equal(t, quota.New(2, 1, 2048, 0, nil), need)
}

func TestAZs(t *testing.T) {
	ad, cfg := open(t, "availability-zones: [az1, az2]\n")
	c := ad.Cloud()
	ctx := context.Background()
	azs, err := ad.AvailabilityZones(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"az1", "az2"}, azs)

	sp := spec(cfg, "1")
	sp.AZ = "az2"
	inst, err := advance(t, ad.CreateMachine(sp))
	require.NoError(t, err)
	require.Equal(t, "az2", inst.AZ)

	c.SetAZs("az3")
	_, err = advance(t, ad.CreateMachine(sp))
	require.True(t, driver.IsCapacity(err), "%v", err)

	c.SetAZs()
	sp.AZ = "anything"
	inst, err = advance(t, ad.CreateMachine(sp))
	require.NoError(t, err)
	require.Equal(t, "anything", inst.AZ)
}

func TestListInstancesAndErrors(t *testing.T) {
	ad, cfg := open(t, "foreign-instances: 2\nleaked-instances: 3\n")
	c := ad.Cloud()
	ctx := context.Background()
	_, err := advance(t, ad.CreateMachine(spec(cfg, "1")))
	require.NoError(t, err)
	list, err := ad.ListInstances(ctx)
	require.NoError(t, err)
	require.Len(t, list, 6)
	var foreign, leaked int
	for _, in := range list {
		require.NotNil(t, in.Resources)
		require.Equal(t, 2.0, in.Resources.Get("cores"))
		switch {
		case in.Metadata[driver.MetaProviderName] == "":
			foreign++
		case strings.HasPrefix(in.Metadata[driver.MetaNodeID], "leaked-"):
			leaked++
			require.Equal(t, cfg.Name, in.Metadata[driver.MetaProviderName])
			require.Equal(t, "main", in.Metadata[driver.MetaPoolName])
		}
	}
	require.Equal(t, 2, foreign)
	require.Equal(t, 3, leaked)

	// Reopening the provider does not seed again.
	_, err = Driver().Open(ctx, cfg, driver.Env{})
	require.NoError(t, err)
	require.Len(t, c.Instances(), 6)

	boom := errors.New("boom")
	c.SetListError(boom)
	_, err = ad.ListInstances(ctx)
	require.ErrorIs(t, err, boom)
	_, err = ad.ListResources(ctx)
	require.ErrorIs(t, err, boom)
	c.SetListError(nil)
	require.Equal(t, 2, c.Counters().Lists)
	require.Equal(t, 1, c.Counters().ListResources)
}

func TestLeakCleanup(t *testing.T) {
	ad, cfg := open(t, "leaked-instances: 1\n")
	c := ad.Cloud()
	ctx := context.Background()
	imgID, err := ad.UploadImage(ctx, driver.UploadSpec{ImageName: "img", Metadata: map[string]string{driver.MetaProviderName: cfg.Name, driver.MetaUploadID: "0000000009"}})
	require.NoError(t, err)
	res, err := ad.ListResources(ctx)
	require.NoError(t, err)
	require.Len(t, res, 2, "the public cloud image is not listed")
	for _, r := range res {
		require.NoError(t, ad.DeleteResource(ctx, r))
	}
	require.Empty(t, c.Instances())
	require.False(t, c.HasImage(imgID))
	require.True(t, driver.IsNotFound(ad.DeleteResource(ctx, res[0])))
	require.Error(t, ad.DeleteResource(ctx, driver.Resource{Type: "volume", ID: "x"}))
}

func TestImages(t *testing.T) {
	ad, cfg := open(t, "diskimages: [{name: debian}]\npools:\n  - name: main\n    labels:\n      - {name: d, diskimage: debian}\n      - {name: c}\n")
	c := ad.Cloud()
	ctx := context.Background()
	md := map[string]string{driver.MetaProviderName: cfg.Name, "SHOULD_FAIL": "true"}
	_, err := ad.UploadImage(ctx, driver.UploadSpec{ImageName: "x", Metadata: md})
	require.ErrorContains(t, err, "SHOULD_FAIL")
	c.FailNextUploads(1)
	_, err = ad.UploadImage(ctx, driver.UploadSpec{ImageName: "x"})
	require.ErrorContains(t, err, "injected upload failure")
	id, err := ad.UploadImage(ctx, driver.UploadSpec{ImageName: "debian-0000000001", Diskimage: "debian", Format: "qcow2", Metadata: map[string]string{"a": "b"}})
	require.NoError(t, err)
	var found bool
	for _, im := range c.Images() {
		if im.ID == id {
			found = true
			require.Equal(t, "debian-0000000001", im.Name)
			require.Equal(t, map[string]string{"a": "b"}, im.Metadata)
		}
	}
	require.True(t, found)

	// Diskimage labels boot from the uploaded image; an unknown one fails.
	sp := spec(cfg, "1")
	sp.Label = cfg.Pools[0].Label("d")
	sp.ImageExternalID = id
	inst, err := advance(t, ad.CreateMachine(sp))
	require.NoError(t, err)
	srv, _ := c.Server(inst.ExternalID)
	require.Equal(t, id, srv.Image)
	sp.ImageExternalID = "nope"
	_, err = advance(t, ad.CreateMachine(sp))
	require.ErrorContains(t, err, "not found")

	c.FailNextImageDeletes(1)
	require.Error(t, ad.DeleteImage(ctx, id))
	require.NoError(t, ad.DeleteImage(ctx, id))
	require.True(t, driver.IsNotFound(ad.DeleteImage(ctx, id)))
	require.Equal(t, 3, c.Counters().ImageDeletes)
	require.Equal(t, 3, c.Counters().Uploads)

	// LabelReady follows the cloud image.
	cl := cfg.Pools[0].Label("c")
	require.True(t, ad.LabelReady(ctx, cl))
	require.True(t, ad.LabelReady(ctx, sp.Label))
	require.True(t, c.RemoveImage("default"))
	require.False(t, ad.LabelReady(ctx, cl))
	sp = spec(cfg, "2")
	sp.Label = cl
	_, err = advance(t, ad.CreateMachine(sp))
	require.ErrorContains(t, err, `image "default" not found`)
	sp.Label = cfg.Pools[0].Label("d")
	_, err = advance(t, ad.CreateMachine(sp))
	require.ErrorContains(t, err, "no uploaded image")
}

func TestSharedCloudAndReset(t *testing.T) {
	name := uniqueName(t)
	t.Cleanup(func() { Forget(name) })
	mk := func(prov string) (*Adapter, *driver.ProviderConfig) {
		cfg := mustParse(t, "name: "+prov+"\ndriver: simcloud\ncloud: "+name+"\nquota: {instances: 3}\npools:\n  - name: p\n    labels: [{name: l}]\n")
		ad, err := Driver().Open(context.Background(), cfg, driver.Env{})
		require.NoError(t, err)
		return ad.(*Adapter), cfg
	}
	a1, c1 := mk("one")
	a2, c2 := mk("two")
	require.Same(t, a1.Cloud(), a2.Cloud())
	require.Same(t, Get(name), a1.Cloud())
	_, err := advance(t, a1.CreateMachine(spec(c1, "1")))
	require.NoError(t, err)
	list, err := a2.ListInstances(context.Background())
	require.NoError(t, err)
	require.Len(t, list, 1)

	// A knob set by a test survives a reopen with the same config.
	a1.Cloud().SetQuota(1, -1, -1)
	mk("two")
	_, err = advance(t, a2.CreateMachine(spec(c2, "2")))
	require.True(t, driver.IsQuota(err))

	a1.Cloud().Reset()
	require.Empty(t, a1.Cloud().Instances())
	require.Equal(t, Quota{Instances: 3, Cores: -1, RAM: -1}, a1.Cloud().Quota())
	require.True(t, a1.Cloud().HasImage("default"))
	require.Zero(t, a1.Cloud().Counters())
}

func TestStateFile(t *testing.T) {
	name := uniqueName(t)
	t.Cleanup(func() { Forget(name) })
	path := filepath.Join(t.TempDir(), "state", "cloud.json")
	src := "name: " + name + "\ndriver: simcloud\nstate-file: " + path + "\nleaked-instances: 1\npools:\n  - name: p\n    labels: [{name: l}]\n"
	cfg := mustParse(t, src)
	ctx := context.Background()
	ad, err := Driver().Open(ctx, cfg, driver.Env{})
	require.NoError(t, err)
	inst, err := advance(t, ad.CreateMachine(spec(cfg, "0000000001")))
	require.NoError(t, err)
	imgID, err := ad.(*Adapter).UploadImage(ctx, driver.UploadSpec{ImageName: "img", Metadata: map[string]string{"k": "v"}})
	require.NoError(t, err)
	require.NoError(t, Get(name).SaveError())

	// A new process: a fresh cloud loads the file.
	Forget(name)
	ad2, err := Driver().Open(ctx, mustParse(t, src), driver.Env{})
	require.NoError(t, err)
	require.NotSame(t, ad.(*Adapter).Cloud(), ad2.(*Adapter).Cloud())
	c2 := ad2.(*Adapter).Cloud()
	list := c2.Instances()
	require.Len(t, list, 2, "created + leaked; leaked not seeded twice")
	srv, ok := c2.Server(inst.ExternalID)
	require.True(t, ok)
	require.Equal(t, "0000000001", srv.Metadata[driver.MetaNodeID])
	require.Equal(t, inst.HostKeys[0], srv.HostKey)
	require.True(t, c2.HasImage(imgID))

	// Deleting through the new cloud persists too.
	require.NoError(t, drivertest.AdvanceDelete(ctx, ad2.DeleteMachine(inst.ExternalID), time.Millisecond, time.Second))
	c3 := NewCloud("other")
	require.NoError(t, c3.Configure(Knobs{StateFile: path, Quota: UnlimitedQuota()}))
	require.Len(t, c3.Instances(), 1)
	// New servers of a restarted cloud get fresh addresses.
	require.NotEqual(t, srv.PrivateIPv4, c3.AddInstance(Server{}).PrivateIPv4)
}

func TestMachinesHonourContext(t *testing.T) {
	ad, cfg := open(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := ad.CreateMachine(spec(cfg, "1")).Advance(ctx)
	require.ErrorIs(t, err, context.Canceled)
	_, err = ad.DeleteMachine("x").Advance(ctx)
	require.ErrorIs(t, err, context.Canceled)
	ad.Cloud().SetLatency(time.Hour)
	_, err = ad.ListInstances(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

func TestNewProviderConfigAndNilSettings(t *testing.T) {
	name := uniqueName(t)
	t.Cleanup(func() { Forget(name) })
	cfg, err := NewProviderConfig(name, "a", "b")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, cfg.Pool("main").LabelNames())
	require.Equal(t, DefaultSettings(name), cfg.Settings)

	cfg.Settings = nil
	ad, err := Driver().Open(context.Background(), cfg, driver.Env{})
	require.NoError(t, err)
	require.True(t, ad.(*Adapter).Cloud().HasImage("default"))
	_, err = NewProviderConfig("")
	require.Error(t, err)
}

func TestRegistered(t *testing.T) {
	d, ok := driver.Lookup("simcloud")
	require.True(t, ok)
	require.NotNil(t, d)
}

func TestConcurrentUse(t *testing.T) {
	ad, cfg := open(t, "quota: {instances: 50}\n")
	c := ad.Cloud()
	var wg sync.WaitGroup
	var quotaErrs atomic.Int64
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := ad.CreateMachine(spec(cfg, fmt.Sprint(i)))
			inst, err := advance(t, m)
			if driver.IsQuota(err) {
				quotaErrs.Add(1)
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = ad.ListInstances(context.Background())
			if err := drivertest.AdvanceDelete(context.Background(), ad.DeleteMachine(inst.ExternalID), time.Millisecond, time.Second); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	require.Empty(t, c.Instances())
	require.Equal(t, 100, c.Counters().Creates)
	t.Logf("quota errors: %d", quotaErrs.Load())
}

func BenchmarkCreateDelete(b *testing.B) {
	ad, cfg := open(b, "")
	ctx := context.Background()
	sp := spec(cfg, "0000000001")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := ad.CreateMachine(sp)
		inst, err := m.Advance(ctx)
		if err != nil || inst == nil {
			b.Fatalf("create: %v %v", inst, err)
		}
		done, err := ad.DeleteMachine(inst.ExternalID).Advance(ctx)
		if err != nil || !done {
			b.Fatalf("delete: %v %v", done, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

func BenchmarkCreateDeleteParallel(b *testing.B) {
	ad, cfg := open(b, "")
	ctx := context.Background()
	sp := spec(cfg, "0000000001")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := ad.CreateMachine(sp)
			inst, err := m.Advance(ctx)
			if err != nil || inst == nil {
				b.Errorf("create: %v %v", inst, err)
				return
			}
			if done, err := ad.DeleteMachine(inst.ExternalID).Advance(ctx); err != nil || !done {
				b.Errorf("delete: %v %v", done, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

// BenchmarkAdvanceBuilding measures polling many machines in BUILD, as the
// launcher's runner does every tick.
func BenchmarkAdvanceBuilding(b *testing.B) {
	ad, cfg := open(b, "boot-time: 3600\n")
	ctx := context.Background()
	ms := make([]driver.CreateMachine, 1000)
	for i := range ms {
		ms[i] = ad.CreateMachine(spec(cfg, fmt.Sprint(i)))
		if _, err := ms[i].Advance(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ms[i%len(ms)].Advance(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseProvider(f *testing.F) {
	f.Add("name: sim\ndriver: simcloud\nboot-time: [1, 2]\npools:\n  - name: main\n    labels:\n      - {name: a, min-ram: 100}\n")
	f.Add("name: sim\nquota: {instances: 1}\nflavors: [{name: x}]\ncloud-images: [{name: y}]\n")
	f.Add("name: sim\nboot-time: {a: 1}\npools: 3\n")
	f.Fuzz(func(t *testing.T, src string) {
		var doc yaml.Node
		if yaml.Unmarshal([]byte(src), &doc) != nil || len(doc.Content) == 0 {
			return
		}
		probs := &driver.Problems{}
		p := Driver().ParseProvider(driver.NewSection(doc.Content[0], "providers[0]", probs))
		require.NotNil(t, p)
		require.IsType(t, &Settings{}, p.Settings)
	})
}

// TestStateFileSharedByTwoProcesses: two clouds on one state file (as two
// launcher processes) see each other's servers and lose none of them.
func TestStateFileSharedByTwoProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cloud.json")
	k := Knobs{StateFile: path, Quota: UnlimitedQuota()}
	a, b := NewCloud("a"), NewCloud("b")
	require.NoError(t, a.Configure(k))
	require.NoError(t, b.Configure(k))
	s1 := a.AddInstance(Server{Name: "one"})
	s2 := b.AddInstance(Server{Name: "two"})
	require.Len(t, a.Instances(), 2, "a sees b's server")
	require.Len(t, b.Instances(), 2, "b kept a's server")
	require.NotEqual(t, s1.PrivateIPv4, s2.PrivateIPv4, "addresses stay unique across processes")
	require.NoError(t, b.deleteServer(s1.ID))
	_, ok := a.Server(s1.ID)
	require.False(t, ok, "a sees b's delete")
	c := NewCloud("c")
	require.NoError(t, c.Configure(k))
	require.Len(t, c.Instances(), 1)
}
