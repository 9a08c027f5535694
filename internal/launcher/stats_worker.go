package launcher

import (
	"context"
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/metrics"
	"github.com/nodepool-go/nodepool/zkclient"
)

// statsGaugeSleep is the pause after each node-gauge report, as upstream's
// stats worker sleeps 1 s before handling the next change.
const statsGaugeSleep = time.Second

// statsWorker reports upstream's launcher gauges until ctx ends: the
// node gauges, sent to statsd only while this launcher holds the stats
// election (and mirrored into Prometheus always, from the local cache), and
// every second the provider max_servers and tenant_limits gauges.
func (l *Launcher) statsWorker(ctx context.Context) {
	r := l.stats.reporter()
	var leader atomic.Bool
	kick := make(chan struct{}, 1)
	var wg sync.WaitGroup
	if r.StatsdEnabled() {
		// Only launchers with statsd configured take part.
		wg.Go(func() { l.statsElection(ctx, &leader, kick) })
	}
	wg.Go(func() { l.limitGaugeLoop(ctx, r) })
	l.nodeGaugeLoop(ctx, r, &leader, kick)
	wg.Wait()
}

// statsElection contends for /nodepool/elections/stats with kazoo's
// Election recipe and keeps leader set while the lock is held.
func (l *Launcher) statsElection(ctx context.Context, leader *atomic.Bool, kick chan<- struct{}) {
	id := fmt.Sprintf("%s-%d", l.hostname, os.Getpid())
	for ctx.Err() == nil {
		lk := l.zk.NewLock(zkclient.StatsElection, zkclient.WithIdentifier(id))
		if err := lk.Acquire(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			l.log.Warn("stats election failed; retrying", "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		l.log.Info("elected to report node statistics")
		leader.Store(true)
		select {
		case kick <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
		case <-lk.Lost():
			l.log.Warn("stats election lost with the ZooKeeper session")
		}
		leader.Store(false)
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = lk.Release(rctx)
		cancel()
	}
}

// nodeGaugeLoop recomputes the node gauges whenever the node or pool
// cache changes (or leadership is gained), then sleeps statsGaugeSleep.
func (l *Launcher) nodeGaugeLoop(ctx context.Context, r *metrics.Reporter, leader *atomic.Bool, kick <-chan struct{}) {
	changed := l.nodes.Subscribe()
	// Beyond upstream: pool registrations change the zero-initialised series.
	pools := l.pools.Subscribe()
	for {
		l.reportNodeGauges(r, leader.Load())
		select {
		case <-ctx.Done():
			return
		case <-time.After(statsGaugeSleep):
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-pools:
		case <-kick:
		}
	}
}

// reportNodeGauges sends the node gauges in one batch: nodes per state,
// and per state by provider, label and az.
func (l *Launcher) reportNodeGauges(r *metrics.Reporter, toStatsd bool) {
	states := map[string]int{}
	provider := map[string]map[string]int{}
	label := map[string]map[string]int{}
	for _, s := range zkclient.NodeStates {
		states[string(s)] = 0
	}
	zero := func(m map[string]map[string]int, name string) map[string]int {
		if c, ok := m[name]; ok {
			return c
		}
		c := map[string]int{}
		for _, s := range zkclient.NodeStates {
			c[string(s)] = 0
		}
		m[name] = c
		return c
	}
	for _, p := range l.pools.List() {
		zero(provider, p.ProviderName)
		for _, lb := range p.SupportedLabels {
			zero(label, lb)
		}
	}
	for _, n := range l.nodes.List() {
		st := string(n.State)
		states[st]++
		for _, lb := range n.Type {
			zero(label, lb)[st]++
		}
		zero(provider, n.Provider)[st]++
	}
	b := r.Batch(toStatsd)
	for _, st := range sortedKeys(states) {
		b.Gauge("nodepool.nodes."+st, float64(states[st]))
	}
	for _, name := range sortedKeys(provider) {
		for _, st := range sortedKeys(provider[name]) {
			b.Gauge("nodepool.provider."+name+".nodes."+st, float64(provider[name][st]))
		}
	}
	for _, name := range sortedKeys(label) {
		for _, st := range sortedKeys(label[name]) {
			b.Gauge("nodepool.label."+name+".nodes."+st, float64(label[name][st]))
		}
	}
	b.Send()
}

// limitGaugeLoop sends, every second while pool workers run, each running
// provider's max_servers and the configured tenant limits (upstream sends
// them from every pool worker's loop; the figures are the same).
func (l *Launcher) limitGaugeLoop(ctx context.Context, r *metrics.Reporter) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.reportLimitGauges(r)
	}
}

// reportLimitGauges sends the max_servers and tenant_limits gauges.
func (l *Launcher) reportLimitGauges(r *metrics.Reporter) {
	l.mu.Lock()
	providers := map[string]*driver.ProviderConfig{}
	for _, w := range l.workers {
		providers[w.provider.cfg.Name] = w.provider.cfg
	}
	l.mu.Unlock()
	if len(providers) == 0 {
		return
	}
	b := r.Batch(true)
	for _, name := range sortedKeys(providers) {
		b.Gauge("nodepool.provider."+name+".max_servers", maxServers(providers[name]))
	}
	limits := l.Config().TenantLimits
	for _, tenant := range sortedKeys(limits) {
		for _, k := range sortedKeys(limits[tenant]) {
			b.Gauge("nodepool.tenant_limits."+metrics.Normalize(tenant)+"."+metrics.Normalize(k), limits[tenant][k])
		}
	}
	b.Send()
}

// maxServers sums max-servers over the provider's pools as upstream does:
// zero values are skipped and an unset (unlimited) one makes the sum
// infinite.
func maxServers(pc *driver.ProviderConfig) float64 {
	n := 0.0
	for _, p := range pc.Pools {
		switch {
		case p.MaxServers == driver.Unlimited:
			return math.Inf(1)
		case p.MaxServers > 0:
			n += float64(p.MaxServers)
		}
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
