package launcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodepool-go/nodepool/internal/logconfig"

	"golang.org/x/sync/errgroup"

	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/version"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Launcher serves node requests from ZooKeeper with the providers of its
// configuration. It is the library form of nodepool-launcher.
type Launcher struct {
	log        *slog.Logger
	zk         *zkclient.Client
	ownZK      bool
	drivers    *driver.Registry
	configPath string
	securePath string
	hostname   string
	now        func() time.Time

	cfgMu sync.RWMutex
	cfg   *config.Config

	nodes    *zkclient.TreeCache[*zkclient.Node]
	requests *zkclient.TreeCache[*zkclient.NodeRequest]
	pools    *zkclient.TreeCache[*zkclient.Component]

	mu        sync.Mutex
	providers map[string]*provider
	// unused indexes the ready, unallocated nodes by provider and pool.
	unused *zkclient.CacheIndex[*zkclient.Node]
	// byPhase indexes the nodes the deleted-node worker looks at.
	byPhase *zkclient.CacheIndex[*zkclient.Node]
	// byTenant indexes the nodes that record resources by tenant.
	byTenant *zkclient.CacheIndex[*zkclient.Node]
	workers  map[string]*poolWorker
	// unstorable holds requests too large to be updated.
	unstorable unstorableSet

	component *zkclient.Component
	ready     atomic.Bool
	minReady  minReady
	cleanup   cleanupState
	deleteReq chan struct{}
	stats     statsd

	cleanupEvery time.Duration
	zkOpsOnce    sync.Once

	// pubZK and pubNodes publish zk and nodes, which Run sets, to the
	// accessors other goroutines call (a web server started next to Run).
	pubZK    atomic.Pointer[zkclient.Client]
	pubNodes atomic.Pointer[zkclient.TreeCache[*zkclient.Node]]
}

// Settings are the launcher's collaborators and tunables; the zero value
// of each field means its default.
type Settings struct {
	// ZooKeeper is an existing connection to use instead of connecting
	// with the configuration's zookeeper settings.
	ZooKeeper *zkclient.Client
	// Logger is the logger (default slog.Default()).
	Logger *slog.Logger
	// Drivers are the drivers providers may name, for starting providers
	// and for re-reading the configuration (default driver.Default).
	Drivers *driver.Registry
	// ConfigPath and SecurePath, when ConfigPath is set, are re-read every
	// second and changes applied, restarting only the providers that
	// changed.
	ConfigPath, SecurePath string
	// CleanupInterval is how often the cleanup tasks run (default 60 s);
	// leaked instances are deleted after two passes.
	CleanupInterval time.Duration
	// Hostname is used in component registrations (default os.Hostname).
	Hostname string
}

// New returns a launcher for cfg.
func New(cfg *config.Config, s Settings) (*Launcher, error) {
	if cfg == nil {
		return nil, errors.New("nodepool: NewLauncher needs a configuration")
	}
	l := &Launcher{
		log:        s.Logger,
		zk:         s.ZooKeeper,
		drivers:    s.Drivers,
		configPath: s.ConfigPath,
		securePath: s.SecurePath,
		hostname:   s.Hostname,
		cfg:        cfg,
		now:        time.Now,
		providers:  map[string]*provider{},
		workers:    map[string]*poolWorker{},
		deleteReq:  make(chan struct{}, 1),

		cleanupEvery: s.CleanupInterval,
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.drivers == nil {
		l.drivers = driver.Default
	}
	if l.cleanupEvery <= 0 {
		l.cleanupEvery = cleanupInterval
	}
	if l.hostname == "" {
		l.hostname, _ = os.Hostname()
	}
	if l.zk != nil {
		l.pubZK.Store(l.zk)
	}
	return l, nil
}

// Config returns the configuration in effect.
func (l *Launcher) Config() *config.Config {
	l.cfgMu.RLock()
	defer l.cfgMu.RUnlock()
	return l.cfg
}

// ZooKeeper returns the launcher's ZooKeeper client: the one given with
// WithZooKeeper, else the one Run connects (nil until then). It is safe to
// call while Run runs.
func (l *Launcher) ZooKeeper() *zkclient.Client { return l.pubZK.Load() }

// Ready reports whether the launcher has completed its first start-up pass.
func (l *Launcher) Ready() bool { return l.ready.Load() }

// Nodes returns the launcher's cache of the node records (nil until Run
// has created it). Callers must not modify the cached nodes.
func (l *Launcher) Nodes() *zkclient.TreeCache[*zkclient.Node] { return l.pubNodes.Load() }

// Run serves requests until ctx ends, then stops gracefully.
func (l *Launcher) Run(ctx context.Context) error {
	if l.zk == nil {
		zc, err := l.Config().ZooKeeperClientConfig()
		if err != nil {
			return err
		}
		zc.Logger = l.log.With(logconfig.LoggerKey, "nodepool.zk.ZooKeeper")
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		l.zk, err = zkclient.Connect(cctx, zc)
		cancel()
		if err != nil {
			return err
		}
		l.ownZK = true
		defer l.zk.Close()
		l.pubZK.Store(l.zk)
	}
	for _, p := range []string{zkclient.RequestRoot, zkclient.NodeRoot, zkclient.RequestLockRoot,
		zkclient.ComponentPath(zkclient.KindPool), zkclient.ComponentPath(zkclient.KindLauncher), zkclient.ComponentPath(zkclient.KindBuilder)} {
		if err := l.zk.EnsurePath(ctx, p); err != nil {
			return fmt.Errorf("nodepool: preparing ZooKeeper: %w", err)
		}
	}
	l.nodes = zkclient.NewNodeCache(l.zk)
	l.unused = l.nodes.Index(unusedKey)
	l.byPhase = l.nodes.Index(nodePhase)
	l.byTenant = l.nodes.Index(func(n *zkclient.Node) string {
		if len(n.Resources) == 0 {
			return ""
		}
		return n.TenantName
	})
	l.requests = zkclient.NewRequestCache(l.zk)
	l.pools = zkclient.NewPoolComponentCache(l.zk)
	l.pubNodes.Store(l.nodes)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return l.nodes.Run(gctx) })
	g.Go(func() error { return l.requests.Run(gctx) })
	g.Go(func() error { return l.pools.Run(gctx) })
	for _, c := range []interface{ Synced() <-chan struct{} }{l.nodes, l.requests, l.pools} {
		select {
		case <-c.Synced():
		case <-gctx.Done():
			return g.Wait()
		}
	}
	l.component = &zkclient.Component{Kind: zkclient.KindLauncher, Hostname: l.hostname, State: zkclient.ComponentStopped, Release: version.String()}
	if err := l.zk.RegisterComponent(gctx, l.component); err != nil {
		return fmt.Errorf("nodepool: registering launcher: %w", err)
	}
	g.Go(func() error { l.watchSession(gctx); return nil })
	g.Go(func() error { l.mainLoop(inPhase(gctx, phaseMain)); return nil })
	g.Go(func() error { l.deletedNodeLoop(inPhase(gctx, phaseDeleteScan)); return nil })
	g.Go(func() error { l.cleanupLoop(inPhase(gctx, phaseCleanup)); return nil })
	g.Go(func() error { l.statsWorker(inPhase(gctx, phaseStats)); return nil })
	err := g.Wait()
	l.stop()
	return err
}

// watchSession re-registers the launcher component after a session loss.
func (l *Launcher) watchSession(ctx context.Context) {
	ch := l.zk.Subscribe()
	defer l.zk.Unsubscribe(ch)
	lost := false
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-ch:
			switch ev.State {
			case zkclient.StateLost:
				lost = true
			case zkclient.StateConnected:
				if lost {
					lost = false
					// The locks of this launcher's requests went with the
					// session: requeue them now, and once more when the
					// caches caught up.
					l.wakeLostRequests()
					time.AfterFunc(3*time.Second, l.wakeLostRequests)
					comp := &zkclient.Component{Kind: zkclient.KindLauncher, Hostname: l.hostname, State: zkclient.ComponentRunning, Release: version.String()}
					if err := l.zk.RegisterComponent(ctx, comp); err != nil {
						l.log.Error("re-registering launcher failed", "error", err)
					} else {
						l.mu.Lock()
						l.component = comp
						l.mu.Unlock()
					}
				}
			}
		}
	}
}

// mainLoop reloads the configuration, reconciles providers and pool
// workers and runs min-ready, once a second.
func (l *Launcher) mainLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	first := true
	for {
		if l.zk.Connected() {
			l.reloadConfig()
			l.reconcile(ctx)
			if first {
				l.mu.Lock()
				comp := l.component
				l.mu.Unlock()
				comp.State = zkclient.ComponentRunning
				if err := l.zk.UpdateComponent(ctx, comp); err != nil {
					l.log.Warn("updating launcher component failed", "error", err)
				}
				first = false
				l.ready.Store(true)
			}
			l.runMinReady(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (l *Launcher) reloadConfig() {
	if l.configPath == "" {
		return
	}
	cfg, err := config.Load(l.configPath, l.securePath, config.WithRegistry(l.drivers))
	if err != nil {
		l.log.Error("reloading configuration failed; keeping the previous one", "error", err)
		return
	}
	l.cfgMu.Lock()
	l.cfg = cfg
	l.cfgMu.Unlock()
}

// reconcile starts, restarts and stops providers and pool workers to
// match the configuration. Only the main loop calls it; l.mu guards the
// maps but is never held while a worker or provider winds down, since
// their goroutines take it too.
func (l *Launcher) reconcile(ctx context.Context) {
	cfg := l.Config()
	want := map[string]*driver.ProviderConfig{}
	for _, pc := range cfg.Providers {
		want[pc.Name] = pc
	}
	// Providers: keep unchanged ones, restart changed ones, stop removed.
	var stopWorkers []*poolWorker
	var stopProviders []*provider
	l.mu.Lock()
	for name, p := range l.providers {
		pc, ok := want[name]
		if ok && reflect.DeepEqual(pc, p.cfg) {
			continue
		}
		if ok {
			l.log.Info("provider configuration changed; restarting it", "provider", name)
		} else {
			l.log.Info("provider removed from configuration; stopping it", "provider", name)
		}
		for key, w := range l.workers {
			if w.provider == p {
				stopWorkers = append(stopWorkers, w)
				delete(l.workers, key)
			}
		}
		stopProviders = append(stopProviders, p)
		delete(l.providers, name)
	}
	l.mu.Unlock()
	for _, w := range stopWorkers {
		w.stop()
	}
	for _, p := range stopProviders {
		p.stop()
	}
	for _, pc := range cfg.Providers {
		if l.provider(pc.Name) != nil {
			continue
		}
		p, err := l.startProvider(ctx, pc)
		if err != nil {
			l.log.Error("starting provider failed", "provider", pc.Name, "error", err)
			continue
		}
		l.mu.Lock()
		l.providers[pc.Name] = p
		l.mu.Unlock()
	}
	// Pool workers.
	wantPools := map[string]bool{}
	for _, p := range l.providerNames() {
		for _, pool := range p.cfg.Pools {
			key := p.cfg.Name + "-" + pool.Name
			wantPools[key] = true
			l.mu.Lock()
			w, ok := l.workers[key]
			l.mu.Unlock()
			if ok && !w.dead() {
				continue
			}
			w = newPoolWorker(l, p, pool)
			if err := w.start(ctx); err != nil {
				l.log.Error("starting pool worker failed", "provider", p.cfg.Name, "pool", pool.Name, "error", err)
				continue
			}
			l.mu.Lock()
			l.workers[key] = w
			l.mu.Unlock()
		}
	}
	stopWorkers = stopWorkers[:0]
	l.mu.Lock()
	for key, w := range l.workers {
		if !wantPools[key] {
			stopWorkers = append(stopWorkers, w)
			delete(l.workers, key)
		}
	}
	l.mu.Unlock()
	for _, w := range stopWorkers {
		w.stop()
	}
}

func (l *Launcher) startProvider(ctx context.Context, pc *driver.ProviderConfig) (*provider, error) {
	log := l.log.With(logconfig.LoggerKey, "nodepool.StateMachineProvider."+pc.Name)
	octx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	ad, err := l.drivers.Open(octx, pc, driver.Env{Logger: log, Services: services{zk: l.zk, stats: &l.stats}})
	if err != nil {
		return nil, err
	}
	p := newProvider(l, pc, ad, log)
	p.start(ctx)
	return p, nil
}

// stop ends every worker and provider (graceful stop).
func (l *Launcher) stop() {
	l.mu.Lock()
	workers, providers := l.workers, l.providers
	l.workers, l.providers = map[string]*poolWorker{}, map[string]*provider{}
	comp := l.component
	l.mu.Unlock()
	for _, w := range workers {
		w.stop()
	}
	for _, p := range providers {
		p.stop()
	}
	if comp != nil && l.zk.Connected() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = l.zk.UnregisterComponent(ctx, comp)
		cancel()
	}
}

// provider returns the running provider manager by name.
func (l *Launcher) provider(name string) *provider {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.providers[name]
}

// registeredPools returns every registered pool component.
func (l *Launcher) registeredPools() []*zkclient.Component { return l.pools.List() }

// providerNames returns the names of the running providers.
func (l *Launcher) providerNames() map[string]*provider {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]*provider, len(l.providers))
	for k, v := range l.providers {
		out[k] = v
	}
	return out
}

// wakeDeleter asks the deleted-node worker for an immediate pass.
func (l *Launcher) wakeDeleter() {
	select {
	case l.deleteReq <- struct{}{}:
	default:
	}
}

// sortRequests orders requests as upstream's pool workers take them: those
// asking for the fewest labels this pool lacks first, then by priority,
// relative priority and sequence. Each request's key is computed once.
func sortRequests(reqs []*zkclient.NodeRequest, poolLabels map[string]bool) {
	type keyed struct {
		missing int
		r       *zkclient.NodeRequest
	}
	ks := make([]keyed, len(reqs))
	for i, r := range reqs {
		n := 0
		for _, t := range r.NodeTypes {
			if !poolLabels[t] {
				n++
			}
		}
		ks[i] = keyed{n, r}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		if c := cmp.Compare(a.missing, b.missing); c != 0 {
			return c
		}
		return zkclient.CompareRequests(a.r, b.r)
	})
	for i, k := range ks {
		reqs[i] = k.r
	}
}

// unusedKey is the unused-node index key of a ready, unallocated node.
func unusedKey(n *zkclient.Node) string {
	if n.State != zkclient.NodeReady || n.AllocatedTo != "" {
		return ""
	}
	return poolKey(n.Provider, n.Pool)
}

func poolKey(provider, pool string) string { return provider + "\x00" + pool }
