package launcher

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/nodepool-go/nodepool/quota"
	"github.com/nodepool-go/nodepool/zkclient"
)

// PlacementVerdict says whether a provider pool can serve a node request.
type PlacementVerdict int

// Placement verdicts.
const (
	// CanServeNow means the pool would serve the request now: it has the
	// labels, their images and the quota.
	CanServeNow PlacementVerdict = iota + 1
	// MustWait means the pool could serve the request once something frees
	// up: quota, a paused pool, an image upload, a max-concurrency slot.
	MustWait
	// CannotServe means the pool never serves the request as configured:
	// it would decline it.
	CannotServe
)

// String returns "can serve now", "must wait" or "cannot serve".
func (v PlacementVerdict) String() string {
	switch v {
	case CanServeNow:
		return "can serve now"
	case MustWait:
		return "must wait"
	case CannotServe:
		return "cannot serve"
	}
	return fmt.Sprintf("PlacementVerdict(%d)", int(v))
}

// QuotaShortfall is a limit a request does not fit in, with its numbers.
type QuotaShortfall struct {
	// Limit names the limit: "pool max-servers", "cloud cores",
	// "tenant acme max-cores".
	Limit string
	// Resource is the quota resource that is short (quota.Instances, ...).
	Resource string
	// Used is what is in use now (0 for a request that never fits).
	Used float64
	// Needed is what the request needs of the resource.
	Needed float64
	// Max is the limit's value.
	Max float64
}

// String formats the shortfall as "pool max-servers: 2 used + 1 needed > 2".
func (s QuotaShortfall) String() string {
	return verdict{limit: s.Limit, resource: s.Resource, used: s.Used, needed: s.Needed, max: s.Max}.String()
}

// shortfall returns the verdict's limit, or nil when it holds.
func (v verdict) shortfall() *QuotaShortfall {
	if v.ok {
		return nil
	}
	return &QuotaShortfall{Limit: v.limit, Resource: v.resource, Used: v.used, Needed: v.needed, Max: v.max}
}

// PoolPlacement is one provider pool's verdict on a node request.
type PoolPlacement struct {
	// Provider names the pool's provider.
	Provider string
	// Pool names the pool within its provider.
	Pool string
	// Priority is the pool's effective priority; lower is preferred.
	Priority int
	// Verdict says whether the pool can serve the request now, later or never.
	Verdict PlacementVerdict
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
	Shortfall *QuotaShortfall
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
					Verdict: MustWait, Reason: "the pool is not running (its provider has not started)"})
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

// placement is the pool's verdict on r: the checks of assign, then what
// fillLabels would find (launcher.md §6–§7).
func (w *poolWorker) placement(ctx context.Context, r *zkclient.NodeRequest, registered []*zkclient.Component) (PoolPlacement, error) {
	p := w.provider
	pp := PoolPlacement{Provider: p.cfg.Name, Pool: w.pool.Name, Priority: p.cfg.EffectivePriority(w.pool), Need: quota.Zero()}
	never := func(reason string) (PoolPlacement, error) {
		pp.Verdict, pp.Reason = CannotServe, reason
		return pp, nil
	}
	wait := func(reason string, short *QuotaShortfall) (PoolPlacement, error) {
		pp.Verdict, pp.Reason, pp.Shortfall = MustWait, reason, short
		return pp, nil
	}
	if r.DeclinedByID(w.id) {
		return never("declined by this pool")
	}
	if p.cfg.MaxConcurrency == 0 {
		return never("provider max-concurrency is 0: it takes no requests")
	}
	h := &handler{pw: w, req: r, log: w.log}
	reason, neverFits, waitErr := h.declineVerdict(ctx)
	if err := ctx.Err(); err != nil {
		return pp, err
	}
	for _, t := range r.NodeTypes {
		if w.pool.Label(t) == nil {
			return never(reason) // a missing label: nothing to count
		}
	}

	// What the request would take: ready nodes first, new nodes for the rest.
	var launch []string
	if r.Reuse {
		taken := map[string]bool{}
		for _, t := range r.NodeTypes {
			found := false
			for _, n := range w.l.unused.Lookup(poolKey(p.cfg.Name, w.pool.Name)) {
				if !taken[n.ID] && n.HasLabel(t) {
					taken[n.ID], found = true, true
					break
				}
			}
			if !found {
				launch = append(launch, t)
			}
		}
	} else {
		launch = r.NodeTypes
	}
	pp.Reusable = len(r.NodeTypes) - len(launch)
	for _, t := range launch {
		pp.Need.Add(p.labelNeed(ctx, w.pool, t))
	}
	pp.Remaining = w.headroom(ctx, r.TenantName)

	if reason != "" {
		pp.Shortfall = neverFits.shortfall()
		return never(reason)
	}
	candidates := candidatePools(registered, r)
	myPrio := p.cfg.EffectivePriority(w.pool)
	if r.Provider != "" && r.Provider != p.cfg.Name && hasProvider(candidates, r.Provider) {
		pp.LeftTo = "left to provider " + r.Provider + ", which the request prefers"
	} else if c := lowerPriority(candidates, myPrio); c != nil {
		pp.LeftTo = fmt.Sprintf("left to pool %s (priority %d < %d)", c.ID, c.Priority, myPrio)
	}
	if waitErr != nil {
		return wait(waitErr.Error(), nil)
	}
	_, static := p.registrar()
	if static {
		if short := shortLabel(p.labelQuota(), r.NodeTypes); short != "" {
			return wait("no ready node with label "+short, nil)
		}
	}
	if v := w.tenantVerdict(ctx, r); !v.ok {
		return wait("tenant limit reached: "+v.String(), v.shortfall())
	}
	fits := okVerdict
	if len(launch) > 0 {
		if static {
			return wait("no ready node (static hosts are not launched)", nil)
		}
		v, err := p.remainingVerdict(ctx, w.pool, pp.Need)
		if err != nil {
			return wait("error computing quota: "+err.Error(), nil)
		}
		fits = v
	}
	if n := w.pausedNow.Load(); n > 0 {
		return wait(fmt.Sprintf("pool is paused at quota; queued behind its %d paused request(s)", n), fits.shortfall())
	}
	if most := p.cfg.MaxConcurrency; most > 0 && w.l.activeHandlers(p.cfg.Name) >= most {
		return wait(fmt.Sprintf("provider max-concurrency %d reached", most), fits.shortfall())
	}
	if !fits.ok {
		return wait("waiting for quota: "+fits.String(), fits.shortfall())
	}
	pp.Verdict = CanServeNow
	return pp, nil
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
