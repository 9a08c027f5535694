package nodepool_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/quota"
	"github.com/nodepool-go/nodepool/zkclient"
)

// placementConfig has a pool for every kind of verdict: sim/main (two
// servers, priority 1), sim/off (disabled, priority 10), sim/warm (one ready spare
// node), backup/main (priority 5, a diskimage never built) and
// closed/main (max-concurrency 0).
const placementConfig = `
labels:
  - name: small
  - name: large
  - name: spare
    min-ready: 1
  - name: built
diskimages:
  - name: never-built
tenant-resource-limits:
  - tenant-name: capped
    max-cores: 6
providers:
  - name: sim
    driver: simcloud
    cloud: %[1]s-sim
    priority: 1
    flavors:
      - name: small
        cores: 2
        ram: 2048
      - name: large
        cores: 4
        ram: 8192
    pools:
      - name: main
        max-servers: 2
        labels:
          - name: small
            flavor-name: small
          - name: large
            flavor-name: large
      - name: off
        max-servers: 0
        priority: 10
        labels:
          - name: small
      - name: warm
        max-servers: 1
        labels:
          - name: spare
  - name: backup
    driver: simcloud
    cloud: %[1]s-backup
    priority: 5
    diskimages:
      - name: never-built
    pools:
      - name: main
        labels:
          - name: small
          - name: built
            diskimage: never-built
  - name: closed
    driver: simcloud
    cloud: %[1]s-closed
    max-concurrency: 0
    pools:
      - name: main
        labels:
          - name: small
`

// placementWant is the expected verdict of one pool; reason and leftTo are
// substrings ("" requires an empty field), short the exact shortfall.
type placementWant struct {
	verdict  nodepool.PlacementVerdict
	reason   string
	leftTo   string
	short    string
	reusable int
}

func canServe(leftTo string) placementWant {
	return placementWant{verdict: nodepool.CanServeNow, leftTo: leftTo}
}

func mustWait(reason, short string) placementWant {
	return placementWant{verdict: nodepool.MustWait, reason: reason, short: short}
}

func cannotServe(reason, short string) placementWant {
	return placementWant{verdict: nodepool.CannotServe, reason: reason, short: short}
}

var placementPools = []string{"sim/main", "sim/off", "sim/warm", "backup/main", "closed/main"}

// checkPlacements compares every pool's verdict with want (keyed
// "provider/pool"), in configuration order.
func checkPlacements(t *testing.T, got []nodepool.PoolPlacement, want map[string]placementWant) {
	t.Helper()
	var names []string
	for _, p := range got {
		names = append(names, p.Provider+"/"+p.Pool)
	}
	require.Equal(t, placementPools, names, "one placement per configured pool, in configuration order")
	for _, p := range got {
		key := p.Provider + "/" + p.Pool
		w, ok := want[key]
		require.True(t, ok, "no expectation for %s", key)
		require.Equal(t, w.verdict, p.Verdict, "%s verdict (reason %q)", key, p.Reason)
		if w.reason == "" {
			require.Empty(t, p.Reason, "%s reason", key)
		} else {
			require.Contains(t, p.Reason, w.reason, "%s reason", key)
		}
		if w.leftTo == "" {
			require.Empty(t, p.LeftTo, "%s left to", key)
		} else {
			require.Contains(t, p.LeftTo, w.leftTo, "%s left to", key)
		}
		if w.short == "" {
			require.Nil(t, p.Shortfall, "%s shortfall", key)
		} else {
			require.NotNil(t, p.Shortfall, "%s shortfall", key)
			require.Equal(t, w.short, p.Shortfall.String(), "%s shortfall", key)
		}
		require.Equal(t, w.reusable, p.Reusable, "%s reusable nodes", key)
	}
}

func request(labels ...string) *zkclient.NodeRequest {
	return &zkclient.NodeRequest{State: zkclient.RequestRequested, NodeTypes: labels, Reuse: true}
}

func TestPlacements(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	l := launchertest.StartChroot(t, chroot, sprintf(placementConfig, chroot[1:]))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The pools register; min-ready makes the spare node ready.
	var simMainID string
	require.Eventually(t, func() bool {
		comps, _ := zk.Components(ctx, zkclient.KindPool)
		for _, c := range comps {
			if c.ProviderName == "sim" && strings.Contains(c.ID, "-PoolWorker.sim-main-") {
				simMainID = c.ID
			}
		}
		return len(comps) == len(placementPools)
	}, 20*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		for _, n := range l.Nodes().List() {
			if n.State == zkclient.NodeReady && n.HasLabel("spare") && n.AllocatedTo == "" {
				return true
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond, "min-ready launches the spare node")

	closed := cannotServe("max-concurrency is 0", "")
	off := cannotServe("pool is disabled by max_servers", "")
	missing := func(labels string) placementWant { return cannotServe("node type(s) ["+labels+"] not available", "") }
	declined := request("small")
	declined.DeclinedBy = []string{simMainID}
	capped := request("large", "large")
	capped.TenantName = "capped"
	prefersSim := request("small")
	prefersSim.Provider = "sim"
	noReuse := request("spare")
	noReuse.Reuse = false

	idle := []struct {
		name string
		req  *zkclient.NodeRequest
		want map[string]placementWant
	}{
		{"one small node", request("small"), map[string]placementWant{
			"sim/main": canServe(""), "sim/off": off, "sim/warm": missing("small"),
			"backup/main": canServe("priority 1 < 5"), "closed/main": closed,
		}},
		{"more nodes than max-servers", request("small", "small", "small"), map[string]placementWant{
			"sim/main":    cannotServe("it would exceed quota", "pool max-servers: 0 used + 3 needed > 2"),
			"sim/off":     off,
			"sim/warm":    missing("small, small, small"),
			"backup/main": canServe("priority 1 < 5"),
			"closed/main": closed,
		}},
		{"a label no pool has", request("gpu"), map[string]placementWant{
			"sim/main": missing("gpu"), "sim/off": off, "sim/warm": missing("gpu"),
			"backup/main": missing("gpu"), "closed/main": closed,
		}},
		{"an image not uploaded yet", request("built"), map[string]placementWant{
			"sim/main": missing("built"), "sim/off": off, "sim/warm": missing("built"),
			"backup/main": mustWait("waiting for an upload of diskimage never-built to backup", ""),
			"closed/main": closed,
		}},
		{"a tenant over its limit", capped, map[string]placementWant{
			"sim/main":    mustWait("tenant limit reached", "tenant capped max-cores: 0 used + 8 needed > 6"),
			"sim/off":     off,
			"sim/warm":    missing("large, large"),
			"backup/main": missing("large, large"),
			"closed/main": closed,
		}},
		{"a preferred provider", prefersSim, map[string]placementWant{
			"sim/main": canServe(""), "sim/off": off, "sim/warm": missing("small"),
			"backup/main": canServe("left to provider sim"), "closed/main": closed,
		}},
		{"already declined", declined, map[string]placementWant{
			"sim/main": cannotServe("declined by this pool", ""), "sim/off": off, "sim/warm": missing("small"),
			"backup/main": canServe(""), "closed/main": closed,
		}},
		{"a ready node to reuse", request("spare"), map[string]placementWant{
			"sim/main": missing("spare"), "sim/off": off,
			"sim/warm":    {verdict: nodepool.CanServeNow, reusable: 1},
			"backup/main": missing("spare"), "closed/main": closed,
		}},
		{"no reuse and the pool is full", noReuse, map[string]placementWant{
			"sim/main": missing("spare"), "sim/off": off,
			"sim/warm":    mustWait("waiting for quota", "pool max-servers: 1 used + 1 needed > 1"),
			"backup/main": missing("spare"), "closed/main": closed,
		}},
	}
	for _, tc := range idle {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.Placements(ctx, tc.req)
			require.NoError(t, err)
			checkPlacements(t, got, tc.want)
		})
	}

	// Quota numbers: one large node needs 4 cores of unlimited ones and
	// one of the pool's two servers.
	got, err := l.Placements(ctx, request("large"))
	require.NoError(t, err)
	require.Equal(t, 4.0, got[0].Need.Get(quota.Cores))
	require.Equal(t, 1.0, got[0].Need.Get(quota.Instances))
	require.Equal(t, 2.0, got[0].Remaining.Get(quota.Instances))
	require.True(t, math.IsInf(got[0].Remaining.Get(quota.Cores), 1))
	require.Equal(t, 0.0, got[2].Remaining.Get(quota.Instances), "the warm pool's one server is its spare node")

	// Fill sim/main: a small node now waits for its quota there, and the
	// launcher agrees once the request is submitted.
	launchertest.Acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{})
	launchertest.Acquire(t, ctx, zk, []string{"large"}, zuulsim.Options{})
	got, err = l.Placements(ctx, request("small"))
	require.NoError(t, err)
	checkPlacements(t, got, map[string]placementWant{
		"sim/main":    mustWait("waiting for quota", "pool max-servers: 2 used + 1 needed > 2"),
		"sim/off":     off,
		"sim/warm":    missing("small"),
		"backup/main": canServe("priority 1 < 5"),
		"closed/main": closed,
	})
	require.Equal(t, 0.0, got[0].Remaining.Get(quota.Instances))
	capped = request("small")
	capped.TenantName = "capped"
	got, err = l.Placements(ctx, capped)
	require.NoError(t, err)
	require.Equal(t, 6.0, got[0].Remaining.Get(quota.Cores), "tenant capped has 6 cores and its nodes use none")

	waiting, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, err)
	var e zkclient.Explanation
	require.Eventually(t, func() bool {
		ex, err := zk.Explanations(ctx)
		if err != nil {
			return false
		}
		for _, x := range ex[waiting.ID] {
			if x.Provider == "sim" && x.Pool == "main" && x.Status == zkclient.ExplainPaused {
				e = x
				return true
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond, "the launcher pauses the request where Placements said it must wait")
	require.Equal(t, "pool max-servers", e.Limit)

	// Now that sim/main is paused, it no longer holds back backup/main,
	// and says what it is queued behind.
	got, err = l.Placements(ctx, request("small"))
	require.NoError(t, err)
	checkPlacements(t, got, map[string]placementWant{
		"sim/main":    mustWait("pool is paused at quota; queued behind its 1 paused request(s)", "pool max-servers: 2 used + 1 needed > 2"),
		"sim/off":     off,
		"sim/warm":    missing("small"),
		"backup/main": canServe(""),
		"closed/main": closed,
	})
}

func TestPlacementsBeforeRun(t *testing.T) {
	cfg := &config.Config{}
	l, err := nodepool.NewLauncher(cfg)
	require.NoError(t, err)
	_, err = l.Placements(context.Background(), request("small"))
	require.ErrorIs(t, err, nodepool.ErrLauncherNotReady)
	_, err = l.Placements(context.Background(), request())
	require.Error(t, err, "a request without labels")
}

func TestPlacementVerdictString(t *testing.T) {
	for v, s := range map[nodepool.PlacementVerdict]string{
		nodepool.CanServeNow: "can serve now", nodepool.MustWait: "must wait",
		nodepool.CannotServe: "cannot serve", 0: "PlacementVerdict(0)",
	} {
		require.Equal(t, s, v.String())
	}
}

// brokenDriver parses nothing and fails to open: its provider never starts.
type brokenDriver struct{}

func (brokenDriver) ParseProvider(*driver.Section) *driver.ProviderConfig { return nil }

func (brokenDriver) Open(context.Context, *driver.ProviderConfig, driver.Env) (driver.Adapter, error) {
	return nil, errors.New("the cloud is unreachable")
}

func TestPlacementsOfAProviderThatDidNotStart(t *testing.T) {
	zk, _ := zktest.Connect(t)
	cfg := &config.Config{
		Labels: []*config.LabelConfig{{Name: "small"}},
		Providers: []*driver.ProviderConfig{{Name: "broken", Driver: "broken", MaxConcurrency: -1, Pools: []*driver.PoolConfig{{
			Name: "main", MaxServers: 1, MaxCores: driver.Unlimited, MaxRAM: driver.Unlimited,
			MaxVolumes: driver.Unlimited, MaxVolumeGB: driver.Unlimited, Labels: []*driver.LabelConfig{{Name: "small"}},
		}}}},
	}
	l, err := nodepool.NewLauncher(cfg, nodepool.WithZooKeeper(zk), nodepool.WithDriver("broken", brokenDriver{}),
		nodepool.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	require.Eventually(t, l.Ready, 20*time.Second, 20*time.Millisecond)
	got, err := l.Placements(ctx, request("small"))
	require.NoError(t, err)
	require.Equal(t, []nodepool.PoolPlacement{{Provider: "broken", Pool: "main", Priority: 100,
		Verdict: nodepool.MustWait, Reason: "the pool is not running (its provider has not started)"}}, got)
}
