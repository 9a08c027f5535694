package launcher

import (
	"context"
	"errors"

	"github.com/nodepool-go/nodepool/internal/placement"
	"github.com/nodepool-go/nodepool/zkclient"
)

// facts gathers what placement.Decide needs about the handler's request
// in this pool; the checks that cost cloud or cache lookups are made
// only when the decision reaches them.
func (w *poolWorker) facts(ctx context.Context, h *handler, registered []placement.Pool, mode placement.Mode) placement.Facts {
	p, r := w.provider, h.req
	return placement.Facts{
		Mode:           mode,
		PoolID:         w.id,
		Provider:       p.cfg.Name,
		Priority:       p.cfg.EffectivePriority(w.pool),
		PoolLabels:     w.pool.LabelNames(),
		MaxServers:     w.pool.MaxServers,
		MaxConcurrency: p.cfg.MaxConcurrency,
		Active:         func() int { return w.l.activeHandlers(p.cfg.Name) },
		Registered:     registered,
		Labels:         r.NodeTypes,
		Preferred:      r.Provider,
		DeclinedBy:     r.DeclinedBy,
		Images: func() (string, string) {
			err := w.imagesAvailable(ctx, r.NodeTypes)
			var wait *errWait
			switch {
			case err == nil:
				return "", ""
			case errors.As(err, &wait):
				return "", wait.msg
			}
			return err.Error(), ""
		},
		ProviderQuota: func() (*placement.Shortfall, error) {
			v, err := p.hasProviderQuota(ctx, w.pool, r.NodeTypes)
			return v.shortfall(), err
		},
		Tenant: func() *placement.Shortfall { return w.tenantVerdict(ctx, r).shortfall() },
	}
}

// registered converts pool components for placement.Decide.
func (w *poolWorker) registered(cs []*zkclient.Component) []placement.Pool {
	out := make([]placement.Pool, len(cs))
	for i, c := range cs {
		out[i] = placement.Pool{ID: c.ID, Provider: c.ProviderName, Priority: c.Priority, Paused: c.Paused, Labels: c.SupportedLabels}
	}
	return out
}

// declineReason returns why this pool cannot serve the handler's request
// ("" when it can), or an *errWait when that cannot be decided now (an
// image not uploaded yet). It is the decision without the checks that
// only defer a request, for a handler that already holds the request.
func (h *handler) declineReason(ctx context.Context) (string, error) {
	f := h.pw.facts(ctx, h, nil, placement.Assign)
	f.DeclinedBy, f.MaxConcurrency, f.Tenant = nil, -1, nil
	d := placement.Decide(f)
	switch d.Verdict {
	case placement.CannotServe:
		return d.Reason, nil
	case placement.MustWait:
		return "", &errWait{d.Reason}
	}
	return "", nil
}

// shortfall returns the verdict's limit, or nil when it holds.
func (v verdict) shortfall() *placement.Shortfall {
	if v.ok {
		return nil
	}
	return &placement.Shortfall{Limit: v.limit, Resource: v.resource, Used: v.used, Needed: v.needed, Max: v.max}
}

// explainShortfall records a status and reason, with the numbers of the
// limit behind it when there is one.
func (w *poolWorker) explainShortfall(req, status, reason string, s *placement.Shortfall) {
	e := zkclient.Explanation{Request: req, Status: status, Reason: reason}
	if s != nil {
		e.Limit, e.Resource, e.Used, e.Needed, e.Max = s.Limit, s.Resource, s.Used, s.Needed, s.Max
	}
	w.setExplanation(e)
}
