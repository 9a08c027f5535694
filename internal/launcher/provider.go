package launcher

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool/driver"
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

	quotaMu   sync.Mutex
	cloudQ    *quota.Resources
	cloudQAt  time.Time
	needCache map[string]quota.Resources
	uploads   map[string]cachedUpload

	leakMu       sync.Mutex
	leakPrev     map[string]bool
	cancel       context.CancelFunc
	done         chan struct{}
	pendingMu    sync.Mutex
	pendingNew   map[string]pendingNode // created nodes not yet seen by the cache
	reservations uint64                 // reservation keys handed out
	static       staticState
	staticDone   chan struct{}
	launchMu     sync.Mutex // serializes quota check + node creation

	usageMu      sync.Mutex
	usageGen     uint64
	usageAt      time.Time
	usageCounts  map[usageKey]int
	usageIDs     map[string]bool
	usageUnknown int
}

func newProvider(l *Launcher, cfg *driver.ProviderConfig, ad driver.Adapter, log *slog.Logger) *provider {
	return &provider{
		l: l, cfg: cfg, adapter: ad, log: log,
		launches:   map[*nodeLaunch]struct{}{},
		launchIDs:  map[string]struct{}{},
		deletes:    map[string]*nodeDelete{},
		wake:       make(chan struct{}, 1),
		needCache:  map[string]quota.Resources{},
		leakPrev:   map[string]bool{},
		pendingNew: map[string]pendingNode{},
		done:       make(chan struct{}),
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
			if nl.step(ctx) {
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
			if d.step(ctx) {
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

// labelNeed returns what one node of label costs in this provider.
func (p *provider) labelNeed(ctx context.Context, pool *driver.PoolConfig, label string) quota.Resources {
	lc := pool.Label(label)
	if lc == nil {
		return quota.New(0, 1, 0, 0, nil)
	}
	key := pool.Name + "\x00" + label
	p.quotaMu.Lock()
	if r, ok := p.needCache[key]; ok {
		p.quotaMu.Unlock()
		return r.Clone()
	}
	p.quotaMu.Unlock()
	need := lc.Need()
	if qr, ok := p.adapter.(driver.QuotaReporter); ok {
		if r, err := qr.QuotaForLabel(ctx, lc); err == nil {
			need = r
		} else {
			p.log.Warn("driver could not estimate label quota; using the label config", "label", label, "error", err)
		}
	}
	p.quotaMu.Lock()
	p.needCache[key] = need
	p.quotaMu.Unlock()
	return need.Clone()
}

// cloudQuota returns the cloud's limits minus unmanaged usage, cached.
func (p *provider) cloudQuota(ctx context.Context) (quota.Resources, error) {
	qr, ok := p.adapter.(driver.QuotaReporter)
	if !ok {
		return quota.Unlimited(), nil
	}
	p.quotaMu.Lock()
	if p.cloudQ != nil && p.l.now().Sub(p.cloudQAt) < maxQuotaAge {
		v := p.cloudQ.Clone()
		p.quotaMu.Unlock()
		return v, nil
	}
	p.quotaMu.Unlock()
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
	p.quotaMu.Lock()
	defer p.quotaMu.Unlock()
	if err != nil {
		if p.cloudQ != nil {
			p.log.Warn("refreshing cloud quota failed; using the cached value", "error", err)
			return p.cloudQ.Clone(), nil
		}
		return quota.Resources{}, err
	}
	p.cloudQ = &lim
	p.cloudQAt = p.l.now()
	return lim.Clone(), nil
}

func (p *provider) invalidateQuota() {
	p.quotaMu.Lock()
	p.cloudQ = nil
	p.quotaMu.Unlock()
}

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

// pendingTTL bounds how long a created node is counted from memory: the
// cache reports it within milliseconds, and a node deleted meanwhile must
// not be counted for ever.
const pendingTTL = 10 * time.Second

type pendingNode struct {
	n        *zkclient.Node
	at       time.Time
	reserved bool // quota held for a node not created yet
}

// reserve counts a node about to be created against the quota until
// settle replaces it by the created node (or drops it); it returns the
// reservation's key.
func (p *provider) reserve(n *zkclient.Node) string {
	p.pendingMu.Lock()
	defer p.pendingMu.Unlock()
	p.reservations++
	key := "reserved:" + strconv.FormatUint(p.reservations, 10)
	p.pendingNew[key] = pendingNode{n: n, at: time.Now(), reserved: true}
	return key
}

// settle ends a reservation: the node was created (created true) and is
// now counted as pending, or its creation failed.
func (p *provider) settle(key string, n *zkclient.Node, created bool) {
	p.pendingMu.Lock()
	defer p.pendingMu.Unlock()
	delete(p.pendingNew, key)
	if created {
		p.pendingNew[n.ID] = pendingNode{n: n, at: time.Now()}
	}
}

// notePending remembers a just-created node until the cache has it.
func (p *provider) notePending(n *zkclient.Node) {
	p.pendingMu.Lock()
	p.pendingNew[n.ID] = pendingNode{n: n, at: time.Now()}
	p.pendingMu.Unlock()
}

// forgetPending drops a node from the pending set (it was deleted).
func (p *provider) forgetPending(id string) {
	p.pendingMu.Lock()
	delete(p.pendingNew, id)
	p.pendingMu.Unlock()
}

// pendingNodes returns the created nodes the cache does not show yet,
// forgetting those it shows and those older than pendingTTL.
func (p *provider) pendingNodes() []*zkclient.Node {
	p.pendingMu.Lock()
	defer p.pendingMu.Unlock()
	var out []*zkclient.Node
	for id, pn := range p.pendingNew {
		if pn.reserved {
			continue
		}
		if _, ok := p.l.nodes.Get(id); ok || time.Since(pn.at) > pendingTTL {
			delete(p.pendingNew, id)
			continue
		}
		out = append(out, pn.n)
	}
	return out
}

// usageKey identifies what a node of a pool and label costs.
type usageKey struct{ pool, label string }

// countsMaxAge bounds how stale the per-label node counts may be: they are
// recomputed from the cache at most this often during bursts; nodes this
// launcher created meanwhile are counted from the pending set instead.
const countsMaxAge = 250 * time.Millisecond

// cachedCounts counts the cached nodes of the provider per (pool, label).
func (p *provider) cachedCounts() (map[usageKey]int, map[string]bool, int) {
	gen := p.l.nodes.Generation()
	p.usageMu.Lock()
	defer p.usageMu.Unlock()
	if p.usageCounts != nil && (p.usageGen == gen || time.Since(p.usageAt) < countsMaxAge) {
		return p.usageCounts, p.usageIDs, p.usageUnknown
	}
	counts := map[usageKey]int{}
	ids := map[string]bool{}
	unknown := 0
	for _, n := range p.l.nodes.List() {
		if n.Provider != p.cfg.Name || len(n.Type) == 0 {
			continue
		}
		ids[n.ID] = true
		pc := p.cfg.Pool(n.Pool)
		if pc == nil || pc.Label(n.Type[0]) == nil {
			unknown++
			continue
		}
		counts[usageKey{n.Pool, n.Type[0]}]++
	}
	p.usageCounts, p.usageIDs, p.usageUnknown, p.usageGen, p.usageAt = counts, ids, unknown, gen, time.Now()
	return counts, ids, unknown
}

// usage sums the needs of every node of this provider (and pool, when
// given) in any state: the cached nodes (counted per label) plus the nodes
// this launcher created that the counts do not include yet.
func (p *provider) usage(ctx context.Context, pool string) quota.Resources {
	counts, ids, unknown := p.cachedCounts()
	extra := map[usageKey]int{}
	p.pendingMu.Lock()
	for id, pn := range p.pendingNew {
		if ids[id] || time.Since(pn.at) > pendingTTL {
			delete(p.pendingNew, id) // counted by the snapshot, or long gone
			continue
		}
		if len(pn.n.Type) > 0 {
			extra[usageKey{pn.n.Pool, pn.n.Type[0]}]++
		}
	}
	p.pendingMu.Unlock()
	total := quota.Zero()
	for _, m := range []map[usageKey]int{counts, extra} {
		for k, c := range m {
			if pool != "" && k.pool != pool {
				continue
			}
			total.AddN(p.labelNeed(ctx, p.cfg.Pool(k.pool), k.label), float64(c))
		}
	}
	if pool == "" {
		total.AddN(quota.New(0, 1, 0, 0, nil), float64(unknown))
	}
	return total
}

// cleanupLeaks deletes cloud resources tagged for this provider whose node
// or upload is unknown on two consecutive passes (launcher.md §11.2).
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
	candidates := map[string]bool{}
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
		key := r.Type + "/" + r.ID
		candidates[key] = true
		p.leakMu.Lock()
		seenBefore := p.leakPrev[key]
		p.leakMu.Unlock()
		if !seenBefore {
			continue
		}
		if err := lc.DeleteResource(ctx, r); err != nil && !driver.IsNotFound(err) {
			p.log.Warn("deleting leaked resource failed", "type", r.Type, "id", r.ID, "error", err)
			continue
		}
		p.log.Info("deleted leaked resource", "type", r.Type, "id", r.ID)
		p.l.stats.incr("nodepool.provider." + p.cfg.Name + ".leaked." + r.PluralName())
	}
	p.leakMu.Lock()
	p.leakPrev = candidates
	p.leakMu.Unlock()
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
	p.usageMu.Lock()
	p.usageCounts = nil
	p.usageMu.Unlock()
	for _, id := range ids {
		if _, ok := p.l.nodes.Get(id); ok {
			continue
		}
		p.pendingMu.Lock()
		_, known := p.pendingNew[id]
		p.pendingMu.Unlock()
		if known {
			continue
		}
		n, err := p.l.zk.GetNode(ctx, id)
		if err != nil {
			continue
		}
		p.notePending(n)
	}
	return fn()
}

// uploadTTL is how long the newest ready upload of a diskimage is cached;
// a new upload is picked up within this time.
const uploadTTL = 3 * time.Second

type cachedUpload struct {
	up *zkclient.ImageUpload
	at time.Time
}

// recentUpload returns the newest ready upload of a diskimage to this
// provider (nil when there is none), from a short-lived cache so request
// handling does not walk the image tree for every request.
func (p *provider) recentUpload(ctx context.Context, image string) (*zkclient.ImageUpload, error) {
	p.quotaMu.Lock()
	if c, ok := p.uploads[image]; ok && time.Since(c.at) < uploadTTL {
		p.quotaMu.Unlock()
		return c.up, nil
	}
	p.quotaMu.Unlock()
	up, err := p.l.zk.MostRecentUpload(ctx, image, p.cfg.Name, zkclient.ImageReady)
	if err != nil {
		return nil, err
	}
	p.quotaMu.Lock()
	if p.uploads == nil {
		p.uploads = map[string]cachedUpload{}
	}
	p.uploads[image] = cachedUpload{up, time.Now()}
	p.quotaMu.Unlock()
	return up, nil
}
