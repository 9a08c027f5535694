package launcher

import (
	"context"
	"math"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/quota"
	"github.com/nodepool-go/nodepool/zkclient"
)

// verdict is the outcome of a quota check, with the numbers of the first
// limit that does not hold, for explanations.
type verdict struct {
	ok       bool
	limit    string // e.g. "pool max-servers", "cloud cores", "tenant t1 max-cores"
	resource string
	used     float64
	needed   float64
	max      float64
}

func (v verdict) String() string {
	if v.ok {
		return "within quota"
	}
	return v.shortfall().String()
}

var okVerdict = verdict{ok: true}

// poolLimitName names the pool option that limits a resource.
func poolLimitName(resource string) string {
	switch resource {
	case quota.Instances:
		return "pool max-servers"
	case quota.Cores:
		return "pool max-cores"
	case quota.RAM:
		return "pool max-ram"
	case quota.Volumes:
		return "pool max-volumes"
	case quota.VolumeGB:
		return "pool max-volume-gb"
	}
	return "pool max-resources " + resource
}

// check returns the verdict of limit − used − need ≥ 0.
func check(limit, used, need quota.Resources, name func(string) string) verdict {
	r := limit.Clone()
	r.Sub(used)
	r.Sub(need)
	neg := r.Negative()
	if len(neg) == 0 {
		return okVerdict
	}
	res := neg[0]
	return verdict{limit: name(res), resource: res, used: used.Get(res), needed: need.Get(res), max: limit.Get(res)}
}

// hasProviderQuota reports whether the labels could ever fit in the pool,
// ignoring current usage.
func (p *provider) hasProviderQuota(ctx context.Context, pool *driver.PoolConfig, labels []string) (verdict, error) {
	need := quota.Zero()
	for _, lb := range labels {
		need.Add(p.labelNeed(ctx, pool, lb))
	}
	if !pool.IgnoreProviderQuota {
		q, err := p.cloudQuota(ctx)
		if err != nil {
			return verdict{}, err
		}
		if v := check(q, quota.Zero(), need, func(r string) string { return "cloud " + r }); !v.ok {
			return v, nil
		}
	}
	return check(pool.Limits(), quota.Zero(), need, poolLimitName), nil
}

// hasRemainingQuota reports whether one more node of label fits now.
func (p *provider) hasRemainingQuota(ctx context.Context, pool *driver.PoolConfig, label string) (verdict, error) {
	if _, ok := p.registrar(); ok {
		// Registered hosts are only reused, never launched.
		return verdict{limit: "no ready node (static hosts are not launched)", resource: label}, nil
	}
	return p.remainingVerdict(ctx, pool, p.labelNeed(ctx, pool, label))
}

// remainingVerdict reports whether need fits in what the cloud and the
// pool have left now.
func (p *provider) remainingVerdict(ctx context.Context, pool *driver.PoolConfig, need quota.Resources) (verdict, error) {
	if !pool.IgnoreProviderQuota {
		q, err := p.cloudQuota(ctx)
		if err != nil {
			return verdict{}, err
		}
		if !unlimited(q) {
			if v := check(q, p.usage(ctx, ""), need, func(r string) string { return "cloud " + r }); !v.ok {
				return v, nil
			}
		}
	}
	lim := pool.Limits()
	if unlimited(lim) {
		return okVerdict, nil // nothing to count against
	}
	return check(lim, p.usage(ctx, pool.Name), need, poolLimitName), nil
}

// tenantVerdict applies tenant-resource-limits to a request:
// the stored resources of every node of the tenant, plus what the labels
// this pool serves would need.
func (w *poolWorker) tenantVerdict(ctx context.Context, r *zkclient.NodeRequest) verdict {
	limit, used, ok := w.l.tenantUsage(r.TenantName)
	if !ok {
		return okVerdict
	}
	need := quota.Zero()
	for _, t := range r.NodeTypes {
		if w.pool.Label(t) != nil {
			need.Add(w.provider.labelNeed(ctx, w.pool, t))
		}
	}
	return check(limit, used, need, func(res string) string {
		return "tenant " + r.TenantName + " " + tenantLimitName(res)
	})
}

// tenantUsage returns a tenant's limits and the resources its nodes use;
// ok is false when the tenant has no limits.
func (l *Launcher) tenantUsage(tenant string) (limit, used quota.Resources, ok bool) {
	if tenant == "" {
		return quota.Resources{}, quota.Resources{}, false
	}
	limits, ok := l.Config().TenantLimits[tenant]
	if !ok {
		return quota.Resources{}, quota.Resources{}, false
	}
	used = quota.Zero()
	for _, n := range l.byTenant.Lookup(tenant) {
		used.Add(resourcesOf(n))
	}
	return tenantLimit(limits), used, true
}

func tenantLimitName(resource string) string {
	switch resource {
	case quota.Instances:
		return "max-servers"
	case quota.Cores:
		return "max-cores"
	case quota.RAM:
		return "max-ram"
	case quota.Volumes:
		return "max-volumes"
	case quota.VolumeGB:
		return "max-volume-gb"
	}
	return resource
}

// unlimited reports whether a limit is infinite for every resource.
func unlimited(r quota.Resources) bool {
	if !math.IsInf(r.Default(), 1) {
		return false
	}
	for _, k := range r.Names() {
		if !math.IsInf(r.Get(k), 1) {
			return false
		}
	}
	return true
}
