package zkclient

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
)

// phaseKey carries the phase a request is counted under.
type phaseKey struct{}

// WithPhase returns a context whose ZooKeeper requests are counted under
// phase (see Counters.ByPhase), so a benchmark can say which step of the
// launcher's work costs how many round trips.
func WithPhase(ctx context.Context, phase string) context.Context {
	return context.WithValue(ctx, phaseKey{}, phase)
}

// PhaseOf returns the phase set by WithPhase, or "other".
func PhaseOf(ctx context.Context) string {
	if p, ok := ctx.Value(phaseKey{}).(string); ok {
		return p
	}
	return "other"
}

// phaseCounts counts requests by phase.
type phaseCounts struct{ m sync.Map } // phase → *atomic.Int64

func (p *phaseCounts) add(phase string) {
	v, ok := p.m.Load(phase)
	if !ok {
		v, _ = p.m.LoadOrStore(phase, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// ByPhase returns the number of requests sent under each phase (requests
// whose context had no phase count as "other").
func (c *Counters) ByPhase() map[string]int64 {
	out := map[string]int64{}
	c.phases.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// PhaseNames returns the phases of m in sorted order.
func PhaseNames(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// count records one request of kind under ctx's phase.
func (c *Client) count(ctx context.Context, kind *atomic.Int64) {
	kind.Add(1)
	c.ops.phases.add(PhaseOf(ctx))
}
