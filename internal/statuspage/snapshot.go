package statuspage

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/quota"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Row limits keep the page and its JSON small on a busy system; the full
// listings stay available from the API endpoints the page links to.
const (
	maxNodeRows    = 200
	maxRequestRows = 200
	maxImageRows   = 200
)

// Snapshot is what the page shows, computed on the server: the HTML
// template renders it and /status.json serves it to the page's script.
// Every string that comes from ZooKeeper is carried verbatim; both
// renderers escape it.
type Snapshot struct {
	Generated string          `json:"generated"` // when it was computed (RFC 3339, UTC)
	Health    Health          `json:"health"`
	States    []string        `json:"states"`    // node states in legend order
	Providers []ProviderNodes `json:"providers"` // nodes per provider, stacked by state
	Pools     []PoolQuota     `json:"pools"`
	Tenants   []TenantQuota   `json:"tenants"`
	Queue     []QueuedRequest `json:"queue"`       // waiting requests in the order launchers serve them
	QueueLen  int             `json:"queue_total"` // waiting requests before the row limit
	Nodes     []NodeRow       `json:"nodes"`       // newest first
	NodeCount int             `json:"node_total"`  // nodes before the row limit
	Builds    []BuildRow      `json:"builds"`
	Uploads   []ProviderImgs  `json:"uploads"`
	// Errors are the parts that could not be read; the rest is shown.
	Errors []string `json:"errors"`
}

// Health is the launcher's own state.
type Health struct {
	Connected   bool           `json:"connected"`    // ZooKeeper session live
	Session     string         `json:"session"`      // ZooKeeper session state
	SessionID   string         `json:"session_id"`   // hexadecimal session id
	Ready       bool           `json:"ready"`        // first start-up pass done
	LastCleanup string         `json:"last_cleanup"` // age of the last cleanup pass, "never" before one
	Launchers   []LauncherInfo `json:"launchers"`    // registered launcher components
}

// LauncherInfo is one registered launcher.
type LauncherInfo struct {
	Hostname string `json:"hostname"`
	Version  string `json:"version"`
	State    string `json:"state"`
}

// ProviderNodes is one provider's bar: its node count per state.
type ProviderNodes struct {
	Provider string    `json:"provider"`
	Total    int       `json:"total"`
	Segments []Segment `json:"segments"`
}

// Segment is one state's part of a provider bar. Start and Width are
// percentages of the longest bar, so bars compare across providers.
type Segment struct {
	State string  `json:"state"`
	Count int     `json:"count"`
	Start float64 `json:"start"`
	Width float64 `json:"width"`
}

// PoolQuota is a pool's use of its limits.
type PoolQuota struct {
	Provider string  `json:"provider"`
	Pool     string  `json:"pool"`
	Paused   bool    `json:"paused"` // waiting for quota (as its launcher reports)
	Gauges   []Gauge `json:"gauges"`
}

// TenantQuota is a tenant's use of its tenant-resource-limits.
type TenantQuota struct {
	Tenant string  `json:"tenant"`
	Gauges []Gauge `json:"gauges"`
}

// Gauge is one resource's use against its limit.
type Gauge struct {
	Name    string  `json:"name"` // servers, cores, ram, or another resource
	Used    float64 `json:"used"`
	Max     float64 `json:"max"`     // 0 when Limited is false
	Limited bool    `json:"limited"` // whether a limit is configured
	Text    string  `json:"text"`    // "3 of 10", "3 (no limit)"
	Level   string  `json:"level"`   // ok, high (≥ 80 %) or full
	// Low and High are the meter's colour thresholds: above Low is
	// high, above High is full.
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// QueuedRequest is a waiting node request with what each pool says.
type QueuedRequest struct {
	ID        string        `json:"id"`
	State     string        `json:"state"`
	Priority  string        `json:"priority"`
	Relative  int           `json:"relative_priority"`
	Requestor string        `json:"requestor"`
	Labels    []string      `json:"labels"`
	Age       string        `json:"age"`
	Explain   []Explanation `json:"explain"` // none: no pool has looked at it yet
}

// Explanation is one pool's word on a request.
type Explanation struct {
	Pool   string   `json:"pool"`   // provider/pool
	Status string   `json:"status"` // handling, paused, deferred, declined
	Reason string   `json:"reason"`
	Limit  string   `json:"limit"` // the limit it waits on, if any
	Behind []string `json:"behind"`
	Since  string   `json:"since"` // age of the status
}

// NodeRow is one node of the node table.
type NodeRow struct {
	ID          string   `json:"id"`
	Provider    string   `json:"provider"`
	Pool        string   `json:"pool"`
	Labels      []string `json:"labels"`
	State       string   `json:"state"`
	Age         string   `json:"age"`
	AllocatedTo string   `json:"allocated_to"`
	Comment     string   `json:"comment"`
}

// BuildRow is one image build.
type BuildRow struct {
	Image   string   `json:"image"`
	ID      string   `json:"id"`
	State   string   `json:"state"`
	Age     string   `json:"age"`
	Builder string   `json:"builder"`
	Formats []string `json:"formats"`
}

// ProviderImgs are the image uploads to one provider.
type ProviderImgs struct {
	Provider string      `json:"provider"`
	Uploads  []UploadRow `json:"uploads"`
}

// UploadRow is one upload of a build to a provider.
type UploadRow struct {
	Image        string `json:"image"`
	Build        string `json:"build"`
	ID           string `json:"id"`
	State        string `json:"state"`
	Age          string `json:"age"`
	ExternalName string `json:"external_name"`
}

// collect computes a snapshot. A part that cannot be read is reported in
// Errors and left empty.
func collect(ctx context.Context, src Source, now time.Time) *Snapshot {
	s := &Snapshot{Generated: now.UTC().Format(time.RFC3339)}
	zk := src.ZooKeeper()
	cfg := src.Config()
	s.Health = health(ctx, src, zk, now)
	if zk == nil {
		s.Errors = append(s.Errors, "not connected to ZooKeeper yet")
		return s
	}
	fail := func(what string, err error) {
		s.Errors = append(s.Errors, fmt.Sprintf("reading %s: %v", what, err))
	}
	nodes, err := listNodes(ctx, src, zk)
	if err != nil {
		fail("nodes", err)
	}
	s.States, s.Providers = nodeBars(nodes)
	s.NodeCount = len(nodes)
	s.Nodes = nodeRows(nodes, now)
	statuses, err := zk.PoolStatuses(ctx)
	if err != nil {
		fail("pool statuses", err)
	}
	if cfg != nil {
		s.Pools = poolQuotas(cfg, nodes, statuses)
		s.Tenants = tenantQuotas(cfg, nodes)
	}
	reqs, err := zk.Requests(ctx, nil)
	if err != nil {
		fail("requests", err)
	}
	s.Queue, s.QueueLen = queue(reqs, statuses, now)
	if err := images(ctx, zk, s, now); err != nil {
		fail("images", err)
	}
	return s
}

func health(ctx context.Context, src Source, zk *zkclient.Client, now time.Time) Health {
	h := Health{Ready: src.Ready(), LastCleanup: "never", Session: "not started"}
	if t := src.LastCleanup(); !t.IsZero() {
		h.LastCleanup = ago(now, float64(t.UnixNano())/1e9)
	}
	if zk == nil {
		return h
	}
	h.Connected = zk.Connected()
	h.Session = zk.State().String()
	h.SessionID = "0x" + strconv.FormatInt(zk.SessionID(), 16)
	if comps, err := zk.Components(ctx, zkclient.KindLauncher); err == nil {
		for _, c := range comps {
			h.Launchers = append(h.Launchers, LauncherInfo{Hostname: c.Hostname, Version: c.Release, State: c.State})
		}
		sort.Slice(h.Launchers, func(i, j int) bool { return h.Launchers[i].Hostname < h.Launchers[j].Hostname })
	}
	return h
}

// listNodes reads the launcher's node cache, or ZooKeeper when the cache
// does not exist yet.
func listNodes(ctx context.Context, src Source, zk *zkclient.Client) ([]*zkclient.Node, error) {
	var nodes []*zkclient.Node
	if c := src.Nodes(); c != nil {
		nodes = c.List()
	} else {
		var err error
		if nodes, err = zk.Nodes(ctx, nil); err != nil {
			return nil, err
		}
	}
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b *zkclient.Node) int { return compareIDs(b.ID, a.ID) })
	return nodes, nil
}

// compareIDs orders numeric ids numerically, others as text.
func compareIDs(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// stateOrder is the legend order: the life of a node.
var stateOrder = []zkclient.NodeState{zkclient.NodeInit, zkclient.NodeBuilding, zkclient.NodeTesting,
	zkclient.NodeReady, zkclient.NodeInUse, zkclient.NodeUsed, zkclient.NodeHold,
	zkclient.NodeDeleting, zkclient.NodeFailed, zkclient.NodeAborted, zkclient.NodeDeleted}

func nodeBars(nodes []*zkclient.Node) ([]string, []ProviderNodes) {
	counts := map[string]map[string]int{}
	seen := map[string]bool{}
	for _, n := range nodes {
		p := n.Provider
		if counts[p] == nil {
			counts[p] = map[string]int{}
		}
		counts[p][string(n.State)]++
		seen[string(n.State)] = true
	}
	var states []string
	for _, st := range stateOrder {
		if seen[string(st)] {
			states = append(states, string(st))
			delete(seen, string(st))
		}
	}
	var other []string
	for st := range seen {
		other = append(other, st)
	}
	sort.Strings(other)
	states = append(states, other...)
	longest := 0
	for _, c := range counts {
		total := 0
		for _, v := range c {
			total += v
		}
		longest = max(longest, total)
	}
	var bars []ProviderNodes
	for p, c := range counts {
		b := ProviderNodes{Provider: p}
		for _, st := range states {
			if c[st] == 0 {
				continue
			}
			w := 100 * float64(c[st]) / float64(longest)
			b.Segments = append(b.Segments, Segment{State: st, Count: c[st], Start: pct(float64(b.Total) * 100 / float64(longest)), Width: pct(w)})
			b.Total += c[st]
		}
		bars = append(bars, b)
	}
	sort.Slice(bars, func(i, j int) bool { return bars[i].Provider < bars[j].Provider })
	return states, bars
}

// pct rounds a percentage to two decimals.
func pct(v float64) float64 { return math.Round(v*100) / 100 }

func nodeRows(nodes []*zkclient.Node, now time.Time) []NodeRow {
	out := make([]NodeRow, 0, min(len(nodes), maxNodeRows))
	for _, n := range nodes[:min(len(nodes), maxNodeRows)] {
		out = append(out, NodeRow{ID: n.ID, Provider: n.Provider, Pool: n.Pool, Labels: nonNil(n.Type),
			State: string(n.State), Age: Age(now, n.StateTime), AllocatedTo: n.AllocatedTo, Comment: n.Comment})
	}
	return out
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// resources is what a node counts against limits: its recorded
// resources, or one instance when it recorded none.
func resources(n *zkclient.Node) quota.Resources {
	if len(n.Resources) == 0 {
		return quota.New(0, 1, 0, 0, nil)
	}
	return quota.FromMap(n.Resources, 0)
}

// gaugeNames are the resources every pool and tenant shows, with their
// display names.
var gaugeNames = []struct{ resource, name string }{
	{quota.Instances, "servers"}, {quota.Cores, "cores"}, {quota.RAM, "ram"},
}

func gauges(limit, used quota.Resources) []Gauge {
	var out []Gauge
	names := slices.Clone(gaugeNames)
	for _, k := range limit.Names() {
		if k != quota.Instances && k != quota.Cores && k != quota.RAM && !math.IsInf(limit.Get(k), 1) {
			names = append(names, struct{ resource, name string }{k, k})
		}
	}
	for _, n := range names {
		out = append(out, gauge(n.name, used.Get(n.resource), limit.Get(n.resource)))
	}
	return out
}

func gauge(name string, used, limit float64) Gauge {
	g := Gauge{Name: name, Used: used, Level: "ok"}
	if math.IsInf(limit, 1) || math.IsNaN(limit) {
		g.Text = quota.FormatNumber(used) + " (no limit)"
		return g
	}
	g.Limited, g.Max = true, limit
	g.Low, g.High = pct(0.8*limit), limit-0.5
	g.Text = quota.FormatNumber(used) + " of " + quota.FormatNumber(limit)
	switch {
	case used >= limit:
		g.Level = "full"
	case used >= g.Low:
		g.Level = "high"
	}
	return g
}

func poolQuotas(cfg *config.Config, nodes []*zkclient.Node, statuses []*zkclient.PoolStatus) []PoolQuota {
	paused := map[[2]string]bool{}
	for _, st := range statuses {
		if st.Paused {
			paused[[2]string{st.Provider, st.Pool}] = true
		}
	}
	used := map[[2]string]quota.Resources{}
	for _, n := range nodes {
		k := [2]string{n.Provider, n.Pool}
		u, ok := used[k]
		if !ok {
			u = quota.Zero()
		}
		u.Add(resources(n))
		used[k] = u
	}
	var out []PoolQuota
	for _, p := range cfg.Providers {
		for _, pool := range p.Pools {
			k := [2]string{p.Name, pool.Name}
			u, ok := used[k]
			if !ok {
				u = quota.Zero()
			}
			out = append(out, PoolQuota{Provider: p.Name, Pool: pool.Name, Paused: paused[k], Gauges: gauges(pool.Limits(), u)})
		}
	}
	return out
}

func tenantQuotas(cfg *config.Config, nodes []*zkclient.Node) []TenantQuota {
	tenants := make([]string, 0, len(cfg.TenantLimits))
	for t := range cfg.TenantLimits {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	var out []TenantQuota
	for _, t := range tenants {
		limit := quota.New(quota.Inf, quota.Inf, quota.Inf, quota.Inf, nil)
		for k, v := range cfg.TenantLimits[t] {
			limit.Set(k, v)
		}
		used := quota.Zero()
		for _, n := range nodes {
			if n.TenantName == t {
				used.Add(resources(n))
			}
		}
		out = append(out, TenantQuota{Tenant: t, Gauges: gauges(limit, used)})
	}
	return out
}

func queue(reqs []*zkclient.NodeRequest, statuses []*zkclient.PoolStatus, now time.Time) ([]QueuedRequest, int) {
	var waiting []*zkclient.NodeRequest
	for _, r := range reqs {
		if r.State == zkclient.RequestRequested || r.State == zkclient.RequestPending {
			waiting = append(waiting, r)
		}
	}
	slices.SortFunc(waiting, zkclient.CompareRequests)
	expl := map[string][]zkclient.Explanation{}
	for _, st := range statuses {
		for _, e := range st.Requests {
			expl[e.Request] = append(expl[e.Request], e)
		}
	}
	out := make([]QueuedRequest, 0, min(len(waiting), maxRequestRows))
	for _, r := range waiting[:min(len(waiting), maxRequestRows)] {
		q := QueuedRequest{ID: r.ID, State: string(r.State), Priority: r.Priority(), Relative: r.RelativePriority,
			Requestor: r.Requestor, Labels: nonNil(r.NodeTypes), Age: Age(now, r.StateTime)}
		q.Explain = explanations(expl[r.ID], now)
		out = append(out, q)
	}
	return out, len(waiting)
}

// statusRank orders a request's explanations: pools working on it first,
// pools that declined it last.
var statusRank = map[string]int{zkclient.ExplainHandling: 0, zkclient.ExplainPaused: 1, zkclient.ExplainDeferred: 2, zkclient.ExplainDeclined: 4}

func explanations(es []zkclient.Explanation, now time.Time) []Explanation {
	es = slices.Clone(es)
	rank := func(s string) int {
		if r, ok := statusRank[s]; ok {
			return r
		}
		return 3
	}
	sort.Slice(es, func(i, j int) bool {
		if ri, rj := rank(es[i].Status), rank(es[j].Status); ri != rj {
			return ri < rj
		}
		return es[i].PoolID < es[j].PoolID
	})
	out := []Explanation{}
	for _, e := range es {
		out = append(out, Explanation{Pool: e.Provider + "/" + e.Pool, Status: e.Status,
			Reason: e.Reason, Limit: e.Limit, Behind: nonNil(e.Behind), Since: Age(now, e.Since)})
	}
	return out
}

func images(ctx context.Context, zk *zkclient.Client, s *Snapshot, now time.Time) error {
	names, err := zk.ImageNames(ctx)
	if err != nil {
		return err
	}
	byProvider := map[string][]UploadRow{}
	for _, img := range names {
		paused, err := zk.ImagePaused(ctx, img)
		if err != nil {
			return err
		}
		builds, err := zk.Builds(ctx, img)
		if err != nil {
			return err
		}
		sort.Slice(builds, func(i, j int) bool { return builds[i].StateTime > builds[j].StateTime })
		for _, b := range builds {
			state := string(b.State)
			if paused {
				state += " (paused)"
			}
			if len(s.Builds) < maxImageRows {
				s.Builds = append(s.Builds, BuildRow{Image: img, ID: b.ID, State: state, Age: Age(now, b.StateTime),
					Builder: b.Builder, Formats: nonNil(b.Formats)})
			}
			provs, err := zk.BuildProviders(ctx, img, b.ID)
			if err != nil {
				return err
			}
			for _, p := range provs {
				ups, err := zk.Uploads(ctx, img, b.ID, p)
				if err != nil {
					return err
				}
				for _, u := range ups {
					if len(byProvider[p]) < maxImageRows {
						byProvider[p] = append(byProvider[p], UploadRow{Image: img, Build: b.ID, ID: u.ID,
							State: string(u.State), Age: Age(now, u.StateTime), ExternalName: u.ExternalName})
					}
				}
			}
		}
	}
	for p, ups := range byProvider {
		s.Uploads = append(s.Uploads, ProviderImgs{Provider: p, Uploads: ups})
	}
	sort.Slice(s.Uploads, func(i, j int) bool { return s.Uploads[i].Provider < s.Uploads[j].Provider })
	return nil
}

// Age formats the time since a Unix timestamp compactly: "42s", "5m 3s",
// "3h 12m", "2d 4h"; "-" for no timestamp.
func Age(now time.Time, unix float64) string {
	if unix <= 0 {
		return "-"
	}
	d := now.Sub(time.Unix(0, int64(unix*1e9)))
	if d < 0 {
		d = 0
	}
	sec := int64(d / time.Second)
	switch {
	case sec < 60:
		return fmt.Sprintf("%ds", sec)
	case sec < 3600:
		return fmt.Sprintf("%dm %ds", sec/60, sec%60)
	case sec < 86400:
		return fmt.Sprintf("%dh %dm", sec/3600, sec%3600/60)
	}
	return fmt.Sprintf("%dd %dh", sec/86400, sec%86400/3600)
}
