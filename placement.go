package nodepool

import (
	"context"
	"errors"
	"fmt"

	"github.com/nodepool-go/nodepool/internal/launcher"
	"github.com/nodepool-go/nodepool/internal/placement"
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
	return placement.Shortfall(s).String()
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

// ErrLauncherNotReady is returned by Placements before the launcher's
// first start-up pass has completed (see Launcher.Ready).
var ErrLauncherNotReady = errors.New("nodepool: launcher is not ready")

// Placements reports, for every provider pool in the launcher's
// configuration, whether it could serve req now, must wait, or can never
// serve it, with the quota the request needs and what is left. It applies
// the checks the pool workers make (labels, images, provider quota,
// tenant limits, pausing, max-concurrency, remaining quota, reuse of ready
// nodes) to req as it is; req need not be submitted and is not modified.
// Pools of other launchers are not assessed, but a pool of this launcher
// that would leave the request to one of them says so in LeftTo.
func (l *Launcher) Placements(ctx context.Context, req *zkclient.NodeRequest) ([]PoolPlacement, error) {
	got, err := l.impl.Placements(ctx, req)
	if errors.Is(err, launcher.ErrNotReady) {
		return nil, ErrLauncherNotReady
	}
	if err != nil {
		return nil, err
	}
	out := make([]PoolPlacement, len(got))
	for i, p := range got {
		out[i] = PoolPlacement{Provider: p.Provider, Pool: p.Pool, Priority: p.Priority,
			Verdict: PlacementVerdict(p.Verdict), Reason: p.Reason, LeftTo: p.LeftTo,
			Reusable: p.Reusable, Need: p.Need, Remaining: p.Remaining}
		if p.Shortfall != nil {
			s := QuotaShortfall(*p.Shortfall)
			out[i].Shortfall = &s
		}
	}
	return out, nil
}
