// Package placement decides whether one provider pool can serve a node
// request now, must wait, or never can. The decision takes plain values:
// the request, the pool's settings, the registered pool components, and
// the outcome of the checks that need the cloud or the launcher's caches,
// given as functions so that a check is made only when the decision
// reaches it. Request assignment and the public placement API both decide
// with Decide, so they cannot drift apart.
package placement

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nodepool-go/nodepool/quota"
)

// Verdict says whether a pool can serve a request.
type Verdict int

// Verdicts.
const (
	// CanServeNow: the pool has the labels, their images and the quota.
	CanServeNow Verdict = iota + 1
	// MustWait: the pool could serve the request once something frees up.
	MustWait
	// CannotServe: the pool never serves the request as configured; it
	// declines it.
	CannotServe
)

// Shortfall is a limit a request does not fit in, with its numbers.
type Shortfall struct {
	Limit    string  // "pool max-servers", "cloud cores", "tenant t max-cores"
	Resource string  // the quota resource that is short
	Used     float64 // in use now (0 for a request that never fits)
	Needed   float64 // what the request needs of the resource
	Max      float64 // the limit's value
}

// String formats the shortfall as "pool max-servers: 2 used + 1 needed > 2".
func (s Shortfall) String() string {
	return fmt.Sprintf("%s: %s used + %s needed > %s", s.Limit, quota.FormatNumber(s.Used),
		quota.FormatNumber(s.Needed), quota.FormatNumber(s.Max))
}

// Pool is a registered pool component as the decision sees it.
type Pool struct {
	ID       string   // the component's launcher id
	Provider string   // its provider's name
	Priority int      // its effective priority (lower is preferred)
	Paused   bool     // whether it is paused at quota
	Labels   []string // the labels it supports
}

// Mode selects what Decide assesses.
type Mode int

// Modes.
const (
	// Assign is request assignment: the decision stops as soon as the pool
	// leaves the request to another pool, and does not assess remaining
	// quota (a handler that does not fit pauses instead).
	Assign Mode = iota
	// Place is the placement API: every check is made and reported.
	Place
)

// Facts are what a decision is made from. The function fields are called
// at most once each, only when the decision reaches them; a nil function
// means the check holds.
type Facts struct {
	Mode Mode

	PoolID         string // this pool's component id
	Provider       string // this pool's provider
	Priority       int    // this pool's effective priority
	PoolLabels     []string
	MaxServers     int // the pool's max-servers; 0 or less disables it
	MaxConcurrency int // the provider's; 0 takes no requests, <0 unlimited
	// Active returns how many requests the provider handles now (asked
	// only when MaxConcurrency is positive).
	Active         func() int
	PausedRequests int // this pool's paused requests; >0 is paused
	// Registered are the pool components of every launcher, this one's
	// included.
	Registered []Pool

	Labels     []string // the request's node types
	Preferred  string   // the request's preferred provider ("" for none)
	DeclinedBy []string // pools that declined the request

	// Images returns why the labels' images rule the pool out (decline),
	// or why they are not there yet (wait).
	Images func() (decline, wait string)
	// ProviderQuota returns the limit the labels never fit in, and an
	// error when it cannot be computed.
	ProviderQuota func() (*Shortfall, error)
	// ShortLabel returns a label of a registered-hosts pool with no ready
	// node left ("" when every label has one).
	ShortLabel func() string
	// Tenant returns the tenant limit the request does not fit in.
	Tenant func() *Shortfall
	// LaunchesOnRegistrar is true when the pool registers hosts and the
	// request would need a node launched.
	LaunchesOnRegistrar bool
	// Remaining returns the limit the nodes to launch do not fit in now
	// (Place mode only).
	Remaining func() (*Shortfall, error)
}

// Decision is a pool's verdict on a request.
type Decision struct {
	Verdict Verdict
	// Reason says why the pool must wait or cannot serve, in the words of
	// the launcher's explanations ("" when it can serve now).
	Reason string
	// Shortfall is the limit behind a quota verdict.
	Shortfall *Shortfall
	// LeftTo says that the pool leaves the request to another pool. In
	// Assign mode the decision stops there (Verdict is MustWait); in Place
	// mode it accompanies any verdict but CannotServe.
	LeftTo string
	// AlreadyDeclined is true when this pool declined the request before.
	AlreadyDeclined bool
	// Queued is true when the request waits behind the pool's paused
	// requests.
	Queued bool
}

// Decide applies the checks in the order the launcher makes them:
// declined before, closed provider, deferral to another pool, the reasons
// to decline (disabled pool, missing labels, images, provider quota), then
// the reasons to wait (images not uploaded yet, registered hosts in use,
// tenant limits, paused pool, max-concurrency, remaining quota).
func Decide(f Facts) Decision {
	if slices.Contains(f.DeclinedBy, f.PoolID) {
		return Decision{Verdict: CannotServe, Reason: "declined by this pool", AlreadyDeclined: true}
	}
	if f.MaxConcurrency == 0 {
		return Decision{Verdict: CannotServe, Reason: "provider max-concurrency is 0: it takes no requests"}
	}
	leftTo := f.leftTo()
	if leftTo != "" && f.Mode == Assign {
		return Decision{Verdict: MustWait, Reason: leftTo, LeftTo: leftTo}
	}
	d := f.verdict()
	if d.Verdict != CannotServe {
		d.LeftTo = leftTo
	}
	return d
}

// leftTo returns the pool this one leaves the request to, in words.
func (f *Facts) leftTo() string {
	cands := f.candidates()
	if f.Preferred != "" && f.Preferred != f.Provider {
		for _, c := range cands {
			if c.Provider == f.Preferred {
				return "left to provider " + f.Preferred + ", which the request prefers"
			}
		}
	}
	for _, c := range cands {
		if c.Priority < f.Priority && !c.Paused {
			return fmt.Sprintf("left to pool %s (priority %d < %d)", c.ID, c.Priority, f.Priority)
		}
	}
	if len(f.missing()) > 0 && len(cands) > 0 {
		return "left to pools that have every requested label"
	}
	return ""
}

// candidates are the registered pools that support every requested label
// and have not declined the request.
func (f *Facts) candidates() []Pool {
	var out []Pool
	for _, c := range f.Registered {
		if slices.Contains(f.DeclinedBy, c.ID) {
			continue
		}
		ok := true
		for _, t := range f.Labels {
			if !slices.Contains(c.Labels, t) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, c)
		}
	}
	return out
}

// missing returns the requested labels this pool lacks.
func (f *Facts) missing() []string {
	var out []string
	for _, t := range f.Labels {
		if !slices.Contains(f.PoolLabels, t) {
			out = append(out, t)
		}
	}
	return out
}

func (f *Facts) verdict() Decision {
	never := func(reason string, s *Shortfall) Decision {
		return Decision{Verdict: CannotServe, Reason: reason, Shortfall: s}
	}
	wait := func(reason string, s *Shortfall) Decision {
		return Decision{Verdict: MustWait, Reason: reason, Shortfall: s}
	}
	if f.MaxServers <= 0 {
		return never("pool is disabled by max_servers", nil)
	}
	if m := f.missing(); len(m) > 0 {
		return never(fmt.Sprintf("node type(s) [%s] not available", strings.Join(m, ", ")), nil)
	}
	var imageWait string
	if f.Images != nil {
		decline, wait := f.Images()
		if decline != "" {
			return never("images are not available: "+decline, nil)
		}
		imageWait = wait
	}
	if imageWait == "" && f.ProviderQuota != nil {
		s, err := f.ProviderQuota()
		if err != nil {
			return never("error computing quota: "+err.Error(), nil)
		}
		if s != nil {
			return never("it would exceed quota ("+s.String()+")", s)
		}
	}
	if imageWait != "" {
		return wait(imageWait, nil)
	}
	if f.ShortLabel != nil {
		if short := f.ShortLabel(); short != "" {
			return wait("no ready node with label "+short, nil)
		}
	}
	if f.Tenant != nil {
		if s := f.Tenant(); s != nil {
			return wait("tenant limit reached: "+s.String(), s)
		}
	}
	if f.LaunchesOnRegistrar {
		return wait("no ready node (static hosts are not launched)", nil)
	}
	var fits *Shortfall
	if f.Mode == Place && f.Remaining != nil {
		s, err := f.Remaining()
		if err != nil {
			return wait("error computing quota: "+err.Error(), nil)
		}
		fits = s
	}
	if f.PausedRequests > 0 {
		d := wait(fmt.Sprintf("pool is paused at quota; queued behind its %d paused request(s)", f.PausedRequests), fits)
		d.Queued = true
		return d
	}
	if f.MaxConcurrency > 0 && f.Active != nil && f.Active() >= f.MaxConcurrency {
		return wait(fmt.Sprintf("provider max-concurrency %d reached", f.MaxConcurrency), fits)
	}
	if fits != nil {
		return wait("waiting for quota: "+fits.String(), fits)
	}
	return Decision{Verdict: CanServeNow}
}
