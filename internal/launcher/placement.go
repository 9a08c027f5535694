package launcher

import (
	"context"
	"errors"
	"math"

	"github.com/nodepool-go/nodepool/internal/placement"
	"github.com/nodepool-go/nodepool/quota"
	"github.com/nodepool-go/nodepool/zkclient"
)

// PoolPlacement is one provider pool's verdict on a node request.
type PoolPlacement struct {
	// Provider names the pool's provider.
	Provider string
	// Pool names the pool within its provider.
	Pool string
	// Priority is the pool's effective priority; lower is preferred.
	Priority int
	// Verdict says whether the pool can serve the request now, later or never.
	Verdict placement.Verdict
	// Reason says why the pool must wait or cannot serve ("" when it can
	// serve now), in the words of the launcher's explanations.
	Reason string
	// LeftTo, when set, says that this pool would leave the request to a
	// pool it defers to (a lower priority, the request's preferred
	// provider), whatever its verdict.
	LeftTo string
	// Reusable is how many requested nodes ready unallocated nodes of the
	// pool would provide.
	Reusable int
	// Need is what the nodes the pool would launch consume.
	Need quota.Resources
	// Remaining is what is left now, resource by resource the smallest of
	// the pool's, the cloud's and the tenant's headroom (+Inf unlimited).
	Remaining quota.Resources
	// Shortfall is the limit behind a quota verdict: the one the request
	// waits on, or the one it can never fit in; nil otherwise.
	Shortfall *placement.Shortfall
}

// ErrNotReady is returned by Placements before the launcher's first
// start-up pass has completed (see Launcher.Ready).
var ErrNotReady = errors.New("nodepool: launcher is not ready")

// Placements reports, for every provider pool in the launcher's
// configuration, whether it could serve req now, must wait, or can never
// serve it, with the quota the request needs and what is left. It applies
// the checks the pool workers make (labels, images, provider quota,
// tenant limits, pausing, max-concurrency, remaining quota, reuse of ready
// nodes) to req as it is; req need not be submitted and is not modified.
// Pools of other launchers are not assessed, but a pool of this launcher
// that would leave the request to one of them says so in LeftTo.
func (l *Launcher) Placements(ctx context.Context, req *zkclient.NodeRequest) ([]PoolPlacement, error) {
	if req == nil || len(req.NodeTypes) == 0 {
		return nil, errors.New("nodepool: Placements needs a request with node types")
	}
	if !l.Ready() {
		return nil, ErrNotReady
	}
	l.mu.Lock()
	workers := make(map[string]*poolWorker, len(l.workers))
	for k, w := range l.workers {
		workers[k] = w
	}
	l.mu.Unlock()
	// This launcher's own pools count as paused as of their last pass,
	// ahead of their components (updated on their next one).
	registered := l.registeredPools()
	for i, c := range registered {
		for _, w := range workers {
			if paused := w.pausedNow.Load() > 0; w.id == c.ID && paused != c.Paused {
				fresh := *c
				fresh.Paused = paused
				registered[i] = &fresh
			}
		}
	}
	var out []PoolPlacement
	for _, pc := range l.Config().Providers {
		for _, pool := range pc.Pools {
			w := workers[pc.Name+"-"+pool.Name]
			if w == nil || w.dead() {
				out = append(out, PoolPlacement{Provider: pc.Name, Pool: pool.Name, Priority: pc.EffectivePriority(pool),
					Verdict: placement.MustWait, Reason: "the pool is not running (its provider has not started)"})
				continue
			}
			pp, err := w.placement(ctx, req, registered)
			if err != nil {
				return nil, err
			}
			out = append(out, pp)
		}
	}
	return out, nil
}

// placement is the pool's verdict on r: the decision request assignment
// makes, with every check assessed, and what the request would take.
func (w *poolWorker) placement(ctx context.Context, r *zkclient.NodeRequest, registered []*zkclient.Component) (PoolPlacement, error) {
	p := w.provider
	pp := PoolPlacement{Provider: p.cfg.Name, Pool: w.pool.Name, Priority: p.cfg.EffectivePriority(w.pool), Need: quota.Zero()}
	f := w.facts(ctx, &handler{pw: w, req: r, log: w.log}, w.registered(registered), placement.Place)
	f.PausedRequests = int(w.pausedNow.Load())
	// What the request would take, when the pool has every label and may
	// serve it at all: ready nodes first, new nodes for the rest.
	counts := !r.DeclinedByID(w.id) && p.cfg.MaxConcurrency != 0
	for _, t := range r.NodeTypes {
		counts = counts && w.pool.Label(t) != nil
	}
	if counts {
		launch := w.toLaunch(r)
		pp.Reusable = len(r.NodeTypes) - len(launch)
		for _, t := range launch {
			pp.Need.Add(p.labelNeed(ctx, w.pool, t))
		}
		pp.Remaining = w.headroom(ctx, r.TenantName)
		if _, static := p.registrar(); static {
			f.ShortLabel = func() string { return shortLabel(p.labelQuota(), r.NodeTypes) }
			f.LaunchesOnRegistrar = len(launch) > 0
		} else if len(launch) > 0 {
			f.Remaining = func() (*placement.Shortfall, error) {
				v, err := p.remainingVerdict(ctx, w.pool, pp.Need)
				return v.shortfall(), err
			}
		}
	}
	d := placement.Decide(f)
	if err := ctx.Err(); err != nil {
		return pp, err
	}
	pp.Verdict, pp.Reason, pp.Shortfall, pp.LeftTo = d.Verdict, d.Reason, d.Shortfall, d.LeftTo
	return pp, nil
}

// toLaunch returns the labels of r that ready nodes of the pool would not
// provide (every label when r does not reuse nodes).
func (w *poolWorker) toLaunch(r *zkclient.NodeRequest) []string {
	if !r.Reuse {
		return r.NodeTypes
	}
	var launch []string
	taken := map[string]bool{}
	for _, t := range r.NodeTypes {
		found := false
		for _, n := range w.l.unused.Lookup(poolKey(w.provider.cfg.Name, w.pool.Name)) {
			if !taken[n.ID] && n.HasLabel(t) {
				taken[n.ID], found = true, true
				break
			}
		}
		if !found {
			launch = append(launch, t)
		}
	}
	return launch
}

// headroom returns what is left now of the pool's limits, the cloud's
// (unless the pool ignores them) and the tenant's, resource by resource
// the smallest.
func (w *poolWorker) headroom(ctx context.Context, tenant string) quota.Resources {
	p := w.provider
	left := w.pool.Limits()
	left.Sub(p.usage(ctx, w.pool.Name))
	if !w.pool.IgnoreProviderQuota {
		if q, err := p.cloudQuota(ctx); err == nil {
			q.Sub(p.usage(ctx, ""))
			left = smallest(left, q)
		}
	}
	if limit, used, ok := w.l.tenantUsage(tenant); ok {
		limit.Sub(used)
		left = smallest(left, limit)
	}
	return left
}

// smallest returns, resource by resource, the smaller of a and b.
func smallest(a, b quota.Resources) quota.Resources {
	out := quota.FromMap(nil, math.Min(a.Default(), b.Default()))
	for _, r := range [2]quota.Resources{a, b} {
		for _, k := range r.Names() {
			out.Set(k, math.Min(a.Get(k), b.Get(k)))
		}
	}
	return out
}
