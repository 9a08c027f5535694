package placement

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// base is a pool "p1" of provider "sim" at priority 5 with labels small
// and large, serving a request for [small].
func base() Facts {
	return Facts{
		PoolID: "p1", Provider: "sim", Priority: 5,
		PoolLabels: []string{"small", "large"}, MaxServers: 10, MaxConcurrency: -1,
		Registered: []Pool{{ID: "p1", Provider: "sim", Priority: 5, Labels: []string{"small", "large"}}},
		Labels:     []string{"small"},
	}
}

func short(limit string) *Shortfall {
	return &Shortfall{Limit: limit, Resource: "instances", Used: 2, Needed: 1, Max: 2}
}

func TestDecide(t *testing.T) {
	other := func(id, provider string, prio int, paused bool, labels ...string) Pool {
		return Pool{ID: id, Provider: provider, Priority: prio, Paused: paused, Labels: labels}
	}
	tests := []struct {
		name   string
		edit   func(*Facts)
		want   Decision
		assign *Decision // when Assign mode differs from Place mode
	}{
		{name: "serves", edit: func(*Facts) {}, want: Decision{Verdict: CanServeNow}},
		{name: "declined before", edit: func(f *Facts) { f.DeclinedBy = []string{"p1"} },
			want: Decision{Verdict: CannotServe, Reason: "declined by this pool", AlreadyDeclined: true}},
		{name: "closed provider", edit: func(f *Facts) { f.MaxConcurrency = 0 },
			want: Decision{Verdict: CannotServe, Reason: "provider max-concurrency is 0: it takes no requests"}},
		{name: "disabled pool", edit: func(f *Facts) { f.MaxServers = 0 },
			want: Decision{Verdict: CannotServe, Reason: "pool is disabled by max_servers"}},
		{name: "missing labels, nobody has them", edit: func(f *Facts) { f.Labels = []string{"small", "gpu", "arm"} },
			want: Decision{Verdict: CannotServe, Reason: "node type(s) [gpu, arm] not available"}},
		{name: "missing label, another pool has it", edit: func(f *Facts) {
			f.Labels = []string{"gpu"}
			f.Registered = append(f.Registered, other("p2", "other", 9, false, "gpu"))
		}, want: Decision{Verdict: CannotServe, Reason: "node type(s) [gpu] not available"},
			assign: &Decision{Verdict: MustWait, Reason: "left to pools that have every requested label", LeftTo: "left to pools that have every requested label"}},
		{name: "lower priority pool", edit: func(f *Facts) {
			f.Registered = append(f.Registered, other("p0", "other", 1, false, "small"))
		}, want: Decision{Verdict: CanServeNow, LeftTo: "left to pool p0 (priority 1 < 5)"},
			assign: &Decision{Verdict: MustWait, Reason: "left to pool p0 (priority 1 < 5)", LeftTo: "left to pool p0 (priority 1 < 5)"}},
		{name: "lower priority pool that is paused", edit: func(f *Facts) {
			f.Registered = append(f.Registered, other("p0", "other", 1, true, "small"))
		}, want: Decision{Verdict: CanServeNow}},
		{name: "lower priority pool that declined", edit: func(f *Facts) {
			f.Registered = append(f.Registered, other("p0", "other", 1, false, "small"))
			f.DeclinedBy = []string{"p0"}
		}, want: Decision{Verdict: CanServeNow}},
		{name: "preferred provider", edit: func(f *Facts) {
			f.Preferred = "other"
			f.Registered = append(f.Registered, other("p2", "other", 9, false, "small"))
		}, want: Decision{Verdict: CanServeNow, LeftTo: "left to provider other, which the request prefers"},
			assign: &Decision{Verdict: MustWait, Reason: "left to provider other, which the request prefers", LeftTo: "left to provider other, which the request prefers"}},
		{name: "preferred provider without the label", edit: func(f *Facts) {
			f.Preferred = "other"
			f.Registered = append(f.Registered, other("p2", "other", 9, false, "large"))
		}, want: Decision{Verdict: CanServeNow}},
		{name: "a pool that cannot serve leaves nothing", edit: func(f *Facts) {
			f.MaxServers = 0
			f.Registered = append(f.Registered, other("p0", "other", 1, false, "small"))
		}, want: Decision{Verdict: CannotServe, Reason: "pool is disabled by max_servers"},
			assign: &Decision{Verdict: MustWait, Reason: "left to pool p0 (priority 1 < 5)", LeftTo: "left to pool p0 (priority 1 < 5)"}},
		{name: "cloud image missing", edit: func(f *Facts) { f.Images = func() (string, string) { return "cloud image x not found", "" } },
			want: Decision{Verdict: CannotServe, Reason: "images are not available: cloud image x not found"}},
		{name: "diskimage not uploaded", edit: func(f *Facts) {
			f.Images = func() (string, string) { return "", "waiting for an upload" }
			f.ProviderQuota = func() (*Shortfall, error) { panic("provider quota is not checked while images are missing") }
		}, want: Decision{Verdict: MustWait, Reason: "waiting for an upload"}},
		{name: "never fits", edit: func(f *Facts) { f.ProviderQuota = func() (*Shortfall, error) { return short("pool max-servers"), nil } },
			want: Decision{Verdict: CannotServe, Reason: "it would exceed quota (pool max-servers: 2 used + 1 needed > 2)", Shortfall: short("pool max-servers")}},
		{name: "quota unknown", edit: func(f *Facts) { f.ProviderQuota = func() (*Shortfall, error) { return nil, errors.New("cloud down") } },
			want: Decision{Verdict: CannotServe, Reason: "error computing quota: cloud down"}},
		{name: "registered hosts all in use", edit: func(f *Facts) { f.ShortLabel = func() string { return "small" } },
			want: Decision{Verdict: MustWait, Reason: "no ready node with label small"}},
		{name: "tenant limit", edit: func(f *Facts) { f.Tenant = func() *Shortfall { return short("tenant t max-servers") } },
			want: Decision{Verdict: MustWait, Reason: "tenant limit reached: tenant t max-servers: 2 used + 1 needed > 2", Shortfall: short("tenant t max-servers")}},
		{name: "decline beats tenant limit", edit: func(f *Facts) {
			f.MaxServers = 0
			f.Tenant = func() *Shortfall { panic("tenant is not checked for a pool that declines") }
		}, want: Decision{Verdict: CannotServe, Reason: "pool is disabled by max_servers"}},
		{name: "static pool would launch", edit: func(f *Facts) { f.LaunchesOnRegistrar = true },
			want: Decision{Verdict: MustWait, Reason: "no ready node (static hosts are not launched)"}},
		{name: "paused pool", edit: func(f *Facts) { f.PausedRequests = 3 },
			want: Decision{Verdict: MustWait, Reason: "pool is paused at quota; queued behind its 3 paused request(s)", Queued: true}},
		{name: "paused pool, and the request does not fit either", edit: func(f *Facts) {
			f.PausedRequests = 1
			f.Remaining = func() (*Shortfall, error) { return short("cloud instances"), nil }
		}, want: Decision{Verdict: MustWait, Reason: "pool is paused at quota; queued behind its 1 paused request(s)", Shortfall: short("cloud instances"), Queued: true},
			assign: &Decision{Verdict: MustWait, Reason: "pool is paused at quota; queued behind its 1 paused request(s)", Queued: true}},
		{name: "max-concurrency reached", edit: func(f *Facts) { f.MaxConcurrency = 2; f.Active = func() int { return 2 } },
			want: Decision{Verdict: MustWait, Reason: "provider max-concurrency 2 reached"}},
		{name: "max-concurrency not reached", edit: func(f *Facts) { f.MaxConcurrency = 2; f.Active = func() int { return 1 } },
			want: Decision{Verdict: CanServeNow}},
		{name: "waiting for quota", edit: func(f *Facts) { f.Remaining = func() (*Shortfall, error) { return short("pool max-servers"), nil } },
			want:   Decision{Verdict: MustWait, Reason: "waiting for quota: pool max-servers: 2 used + 1 needed > 2", Shortfall: short("pool max-servers")},
			assign: &Decision{Verdict: CanServeNow}},
		{name: "remaining quota unknown", edit: func(f *Facts) { f.Remaining = func() (*Shortfall, error) { return nil, errors.New("boom") } },
			want: Decision{Verdict: MustWait, Reason: "error computing quota: boom"}, assign: &Decision{Verdict: CanServeNow}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []Mode{Place, Assign} {
				f := base()
				tt.edit(&f)
				f.Mode = mode
				want := tt.want
				if mode == Assign && tt.assign != nil {
					want = *tt.assign
				}
				require.Equal(t, want, Decide(f), "mode %d", mode)
			}
		})
	}
}

func TestChecksAreMadeOnlyWhenReached(t *testing.T) {
	calls := map[string]int{}
	f := base()
	f.Images = func() (string, string) { calls["images"]++; return "", "" }
	f.ProviderQuota = func() (*Shortfall, error) { calls["quota"]++; return nil, nil }
	f.Tenant = func() *Shortfall { calls["tenant"]++; return nil }
	f.Registered = append(f.Registered, Pool{ID: "p0", Provider: "x", Priority: 1, Labels: []string{"small"}})
	f.Mode = Assign
	require.Equal(t, MustWait, Decide(f).Verdict)
	require.Empty(t, calls, "a deferred request costs no image, quota or tenant check")
	f.Mode = Place
	require.Equal(t, CanServeNow, Decide(f).Verdict)
	require.Equal(t, map[string]int{"images": 1, "quota": 1, "tenant": 1}, calls)
}

func TestShortfallString(t *testing.T) {
	require.Equal(t, "cloud cores: 6.5 used + 2 needed > 8", Shortfall{Limit: "cloud cores", Used: 6.5, Needed: 2, Max: 8}.String())
}
