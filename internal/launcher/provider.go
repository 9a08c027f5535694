package launcher

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/leak"
	"github.com/nodepool-go/nodepool/quota"
	"github.com/nodepool-go/nodepool/zkclient"
)

// maxQuotaAge is how long a provider's cloud quota estimate is cached.
const maxQuotaAge = 300 * time.Second

// tick is how often a provider advances its state machines while any run.
const tick = 20 * time.Millisecond

// provider runs one configured provider: its adapter, the create and
// delete state machines, and its quota estimate.
type provider struct {
	l       *Launcher
	cfg     *driver.ProviderConfig
	adapter driver.Adapter
	log     *slog.Logger

	mu        sync.Mutex
	launches  map[*nodeLaunch]struct{}
	launchIDs map[string]struct{}    // node ids of launches
	deletes   map[string]*nodeDelete // by node id
	wake      chan struct{}

	cancel     context.CancelFunc
	done       chan struct{}
	static     staticState
	staticDone chan struct{}
	launchMu   sync.Mutex // serializes quota check + node creation

	// Each of these owns its state and its lock.
	quota   quotaCache   // the cloud's limits and what labels cost
	uploads uploadCache  // the newest ready upload of each diskimage
	pending pendingSet   // created or reserved nodes the cache lacks
	counts  usageCounter // cached nodes per (pool, label)
	leaks   leak.Tracker // leak candidates of the last cleanup pass
}

func newProvider(l *Launcher, cfg *driver.ProviderConfig, ad driver.Adapter, log *slog.Logger) *provider {
	return &provider{
		l: l, cfg: cfg, adapter: ad, log: log,
		launches:  map[*nodeLaunch]struct{}{},
		launchIDs: map[string]struct{}{},
		deletes:   map[string]*nodeDelete{},
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
}

func (p *provider) start(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(ctx)
	go p.loop(ctx)
	if _, ok := p.registrar(); ok {
		p.static.wake = make(chan struct{}, 1)
		p.staticDone = make(chan struct{})
		go func() {
			defer close(p.staticDone)
			p.staticLoop(ctx)
		}()
	}
}

// stop stops the provider after its machines finished (bounded), then
// closes the adapter.
func (p *provider) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	<-p.done
	if p.staticDone != nil {
		<-p.staticDone
	}
	if err := p.adapter.Close(); err != nil {
		p.log.Warn("closing adapter failed", "error", err)
	}
}

func (p *provider) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// loop advances every create and delete machine.
func (p *provider) loop(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			p.drain()
			return
		case <-t.C:
		case <-p.wake:
		}
		p.advanceAll(ctx)
	}
}

// drain gives in-flight deletes a short grace period at shutdown; launches
// are left to the restart cleanup (their nodes stay building and unlocked).
func (p *provider) drain() {
	p.mu.Lock()
	for nl := range p.launches {
		nl.abandon()
	}
	p.launches = map[*nodeLaunch]struct{}{}
	p.launchIDs = map[string]struct{}{}
	dels := make([]*nodeDelete, 0, len(p.deletes))
	for _, d := range p.deletes {
		dels = append(dels, d)
	}
	p.deletes = map[string]*nodeDelete{}
	p.mu.Unlock()
	for _, d := range dels {
		d.release()
	}
}

func (p *provider) advanceAll(ctx context.Context) {
	p.mu.Lock()
	launches := make([]*nodeLaunch, 0, len(p.launches))
	for nl := range p.launches {
		launches = append(launches, nl)
	}
	dels := make([]*nodeDelete, 0, len(p.deletes))
	for _, d := range p.deletes {
		dels = append(dels, d)
	}
	p.mu.Unlock()
	if len(launches) == 0 && len(dels) == 0 {
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, nl := range launches {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if nl.step(inPhase(ctx, phaseLaunch)) {
				p.mu.Lock()
				delete(p.launches, nl)
				delete(p.launchIDs, nl.node.ID)
				p.mu.Unlock()
				nl.h.pw.kick()
			}
		}()
	}
	for _, d := range dels {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if d.step(inPhase(ctx, phaseDelete)) {
				p.mu.Lock()
				delete(p.deletes, d.node.ID)
				p.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func (p *provider) addLaunch(nl *nodeLaunch) {
	p.mu.Lock()
	p.launches[nl] = struct{}{}
	p.launchIDs[nl.node.ID] = struct{}{}
	p.mu.Unlock()
	p.kick()
}

// startDelete hands a locked node to the delete loop; false when a delete
// of it is already running.
func (p *provider) startDelete(n *zkclient.Node, lock *zkclient.Lock) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.deletes[n.ID]; ok {
		return false
	}
	p.deletes[n.ID] = &nodeDelete{p: p, node: n, lock: lock}
	p.kick()
	return true
}

func (p *provider) deleting(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.deletes[id]
	return ok
}

// launching reports whether the node is being launched here.
func (p *provider) launching(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.launchIDs[id]
	return ok
}

// labelNeed returns what one node of label costs in this provider.
func (p *provider) labelNeed(ctx context.Context, pool *driver.PoolConfig, label string) quota.Resources {
	lc := pool.Label(label)
	if lc == nil {
		return quota.New(0, 1, 0, 0, nil)
	}
	key := pool.Name + "\x00" + label
	if r, ok := p.quota.need(key); ok {
		return r
	}
	need := lc.Need()
	if qr, ok := p.adapter.(driver.QuotaReporter); ok {
		if r, err := qr.QuotaForLabel(ctx, lc); err == nil {
			need = r
		} else {
			p.log.Warn("driver could not estimate label quota; using the label config", "label", label, "error", err)
		}
	}
	p.quota.setNeed(key, need)
	return need.Clone()
}

// cloudQuota returns the cloud's limits minus unmanaged usage, cached.
func (p *provider) cloudQuota(ctx context.Context) (quota.Resources, error) {
	qr, ok := p.adapter.(driver.QuotaReporter)
	if !ok {
		return quota.Unlimited(), nil
	}
	if v, at, ok := p.quota.cloud(); ok && p.l.now().Sub(at) < maxQuotaAge {
		return v, nil
	}
	lim, err := qr.QuotaLimits(ctx)
	if err == nil {
		var insts []driver.Instance
		insts, err = p.adapter.ListInstances(ctx)
		if err == nil {
			for _, in := range insts {
				if p.managed(in.Metadata) || in.Resources == nil {
					continue
				}
				lim.Sub(*in.Resources)
			}
		}
	}
	if err != nil {
		if v, _, ok := p.quota.cloud(); ok {
			p.log.Warn("refreshing cloud quota failed; using the cached value", "error", err)
			return v, nil
		}
		return quota.Resources{}, err
	}
	p.quota.setCloud(lim, p.l.now())
	return lim.Clone(), nil
}

// invalidateQuota makes the next quota check ask the cloud again.
func (p *provider) invalidateQuota() { p.quota.dropCloud() }

// managed reports whether cloud metadata marks an instance as one of this
// provider's nodes that exists in ZooKeeper.
func (p *provider) managed(md map[string]string) bool {
	if md[driver.MetaProviderName] != p.cfg.Name {
		return false
	}
	id := md[driver.MetaNodeID]
	if id == "" {
		return false
	}
	_, ok := p.l.nodes.Get(id)
	return ok
}

// cleanupLeaks deletes cloud resources tagged for this provider whose node
// or upload is unknown on two consecutive passes.
func (p *provider) cleanupLeaks(ctx context.Context, knownUploads map[string]bool) {
	lc, ok := p.adapter.(driver.LeakCleaner)
	if !ok {
		return
	}
	res, err := lc.ListResources(ctx)
	if err != nil {
		p.log.Warn("listing resources for leak cleanup failed", "error", err)
		return
	}
	pass := p.leaks.Begin(p.cfg.Name)
	defer pass.End()
	for _, r := range res {
		if r.Metadata[driver.MetaProviderName] != p.cfg.Name {
			continue
		}
		leaked := false
		if id := r.Metadata[driver.MetaNodeID]; id != "" {
			if _, ok := p.l.nodes.Get(id); !ok {
				if _, err := p.l.zk.GetNode(ctx, id); errors.Is(err, zkclient.ErrNoNode) {
					leaked = true
				}
			}
		}
		if id := r.Metadata[driver.MetaUploadID]; id != "" && knownUploads != nil && !knownUploads[r.Metadata[driver.MetaBuildID]+"/"+id] {
			leaked = true
		}
		if !leaked {
			continue
		}
		if !pass.Leaked(r.Type + "/" + r.ID) {
			continue
		}
		if err := lc.DeleteResource(ctx, r); err != nil && !driver.IsNotFound(err) {
			p.log.Warn("deleting leaked resource failed", "type", r.Type, "id", r.ID, "error", err)
			continue
		}
		p.log.Info("deleted leaked resource", "type", r.Type, "id", r.ID)
		p.l.stats.incr("nodepool.provider." + p.cfg.Name + ".leaked." + r.PluralName())
	}
}

// quotaLockRoot holds one lock per provider, taken around "check quota,
// create node" when several launchers serve the same provider, so that
// together they never exceed its limits. It is outside upstream's schema;
// Python launchers ignore it.
const quotaLockRoot = "/nodepool/quota-locks"

// shared reports whether another launcher's pool serves this provider.
func (p *provider) shared() bool {
	mine := map[string]bool{}
	p.l.mu.Lock()
	for _, w := range p.l.workers {
		mine[w.id] = true
	}
	p.l.mu.Unlock()
	for _, c := range p.l.registeredPools() {
		if c.ProviderName == p.cfg.Name && !mine[c.ID] {
			return true
		}
	}
	return false
}

// coordinate runs fn while holding the provider's quota lock when other
// launchers share the provider, after bringing the usage view up to date
// with every node record in ZooKeeper.
func (p *provider) coordinate(ctx context.Context, fn func() error) error {
	if !p.shared() {
		return fn()
	}
	lock := p.l.zk.NewLock(quotaLockRoot + "/" + p.cfg.Name)
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := lock.Acquire(lctx)
	cancel()
	if err != nil {
		return err
	}
	defer func() { _ = lock.Release(ctx) }()
	ids, err := p.l.zk.NodeIDs(ctx)
	if err != nil {
		return err
	}
	// Count from the cache as it is now, not from a throttled snapshot.
	p.counts.invalidate()
	for _, id := range ids {
		if _, ok := p.l.nodes.Get(id); ok {
			continue
		}
		if p.pending.has(id) {
			continue
		}
		n, err := p.l.zk.GetNode(ctx, id)
		if err != nil {
			continue
		}
		p.pending.note(n)
	}
	return fn()
}
