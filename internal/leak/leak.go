// Package leak confirms leaked cloud resources over two passes: a
// resource is taken for a leak only when two consecutive cleanup passes
// found it without a record, so one created between a record's write and
// the listing is never deleted by mistake. The launcher (instances, ports,
// images of its providers) and the builder (uploaded images) use it.
package leak

import "sync"

// Tracker remembers, per scope (a provider), the leak candidates of the
// previous pass. It is safe for concurrent use; passes of one scope must
// not overlap.
type Tracker struct {
	mu   sync.Mutex
	prev map[string]map[string]bool
}

// Pass is one cleanup pass over one scope.
type Pass struct {
	t     *Tracker
	scope string
	prev  map[string]bool
	cur   map[string]bool
}

// Begin starts a pass over scope.
func (t *Tracker) Begin(scope string) *Pass {
	t.mu.Lock()
	defer t.mu.Unlock()
	return &Pass{t: t, scope: scope, prev: t.prev[scope], cur: map[string]bool{}}
}

// Leaked records that the resource key has no record in this pass and
// reports whether the previous pass found it leaked too (then it is to be
// deleted).
func (p *Pass) Leaked(key string) bool {
	p.cur[key] = true
	return p.prev[key]
}

// Retry keeps key a confirmed leak for the next pass (its deletion
// failed). Keys passed to Leaked stay candidates anyway.
func (p *Pass) Retry(key string) { p.cur[key] = true }

// End makes this pass's candidates the previous pass's for the next one.
func (p *Pass) End() {
	p.t.mu.Lock()
	defer p.t.mu.Unlock()
	if p.t.prev == nil {
		p.t.prev = map[string]map[string]bool{}
	}
	p.t.prev[p.scope] = p.cur
}
