package launcher

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool/quota"
	"github.com/nodepool-go/nodepool/zkclient"
)

// quotaCache holds a provider's cloud limits (minus unmanaged usage) and
// what one node of each label costs.
type quotaCache struct {
	mu    sync.Mutex
	limit *quota.Resources
	at    time.Time
	costs map[string]quota.Resources // by pool and label
}

// cloud returns a copy of the cached limits and when they were read.
func (c *quotaCache) cloud() (quota.Resources, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit == nil {
		return quota.Resources{}, time.Time{}, false
	}
	return c.limit.Clone(), c.at, true
}

func (c *quotaCache) setCloud(r quota.Resources, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r = r.Clone()
	c.limit, c.at = &r, at
}

func (c *quotaCache) dropCloud() {
	c.mu.Lock()
	c.limit = nil
	c.mu.Unlock()
}

// need returns a copy of a label's cached cost.
func (c *quotaCache) need(key string) (quota.Resources, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.costs[key]
	if !ok {
		return quota.Resources{}, false
	}
	return r.Clone(), true
}

func (c *quotaCache) setNeed(key string, r quota.Resources) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.costs == nil {
		c.costs = map[string]quota.Resources{}
	}
	c.costs[key] = r.Clone()
}

// pendingTTL bounds how long a created node is counted from memory: the
// cache reports it within milliseconds, and a node deleted meanwhile must
// not be counted for ever.
const pendingTTL = 10 * time.Second

type pendingNode struct {
	n        *zkclient.Node
	at       time.Time
	reserved bool // quota held for a node not created yet
}

// pendingSet holds the nodes a provider created (or reserved quota for)
// that the node cache does not show yet, so quota counts them at once.
type pendingSet struct {
	mu    sync.Mutex
	nodes map[string]pendingNode // by node id or reservation key
	keys  uint64                 // reservation keys handed out
}

func (s *pendingSet) put(key string, pn pendingNode) {
	if s.nodes == nil {
		s.nodes = map[string]pendingNode{}
	}
	s.nodes[key] = pn
}

// reserve counts a node about to be created against the quota until
// settle replaces it by the created node (or drops it); it returns the
// reservation's key.
func (s *pendingSet) reserve(n *zkclient.Node) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys++
	key := "reserved:" + strconv.FormatUint(s.keys, 10)
	s.put(key, pendingNode{n: n, at: time.Now(), reserved: true})
	return key
}

// settle ends a reservation: the node was created (created true) and is
// now counted as pending, or its creation failed.
func (s *pendingSet) settle(key string, n *zkclient.Node, created bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.nodes, key)
	if created {
		s.put(n.ID, pendingNode{n: n, at: time.Now()})
	}
}

// note remembers a just-created node until the cache has it.
func (s *pendingSet) note(n *zkclient.Node) {
	s.mu.Lock()
	s.put(n.ID, pendingNode{n: n, at: time.Now()})
	s.mu.Unlock()
}

// forget drops a node from the set (it was deleted).
func (s *pendingSet) forget(id string) {
	s.mu.Lock()
	delete(s.nodes, id)
	s.mu.Unlock()
}

// has reports whether a node id is in the set.
func (s *pendingSet) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.nodes[id]
	return ok
}

// created returns the created nodes that cached does not report yet,
// forgetting those it reports and those older than pendingTTL.
func (s *pendingSet) created(cached func(id string) bool) []*zkclient.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*zkclient.Node
	for id, pn := range s.nodes {
		if pn.reserved {
			continue
		}
		if cached(id) || time.Since(pn.at) > pendingTTL {
			delete(s.nodes, id)
			continue
		}
		out = append(out, pn.n)
	}
	return out
}

// countNotIn counts the set's nodes (reserved ones included) per (pool,
// label), leaving out, and forgetting, those in counted and the stale ones.
func (s *pendingSet) countNotIn(counted map[string]bool) map[usageKey]int {
	out := map[usageKey]int{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, pn := range s.nodes {
		if counted[id] || time.Since(pn.at) > pendingTTL {
			delete(s.nodes, id) // counted by the snapshot, or long gone
			continue
		}
		if len(pn.n.Type) > 0 {
			out[usageKey{pn.n.Pool, pn.n.Type[0]}]++
		}
	}
	return out
}

// usageKey identifies what a node of a pool and label costs.
type usageKey struct{ pool, label string }

// countsMaxAge bounds how stale the per-label node counts may be: they are
// recomputed from the cache at most this often during bursts; nodes this
// launcher created meanwhile are counted from the pending set instead.
const countsMaxAge = 250 * time.Millisecond

// usageCounter is a snapshot of a provider's cached nodes counted per
// (pool, label), recomputed when the cache changed and the snapshot is
// older than countsMaxAge.
type usageCounter struct {
	mu      sync.Mutex
	gen     uint64
	at      time.Time
	counts  map[usageKey]int
	ids     map[string]bool
	unknown int // nodes whose pool or label is no longer configured
}

func (u *usageCounter) invalidate() {
	u.mu.Lock()
	u.counts = nil
	u.mu.Unlock()
}

// cachedCounts counts the cached nodes of the provider per (pool, label).
func (p *provider) cachedCounts() (map[usageKey]int, map[string]bool, int) {
	gen := p.l.nodes.Generation()
	u := &p.counts
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.counts != nil && (u.gen == gen || time.Since(u.at) < countsMaxAge) {
		return u.counts, u.ids, u.unknown
	}
	counts := map[usageKey]int{}
	ids := map[string]bool{}
	unknown := 0
	for _, n := range p.l.nodes.List() {
		if n.Provider != p.cfg.Name || len(n.Type) == 0 {
			continue
		}
		ids[n.ID] = true
		pc := p.cfg.Pool(n.Pool)
		if pc == nil || pc.Label(n.Type[0]) == nil {
			unknown++
			continue
		}
		counts[usageKey{n.Pool, n.Type[0]}]++
	}
	u.counts, u.ids, u.unknown, u.gen, u.at = counts, ids, unknown, gen, time.Now()
	return counts, ids, unknown
}

// usage sums the needs of every node of this provider (and pool, when
// given) in any state: the cached nodes (counted per label) plus the nodes
// this launcher created that the counts do not include yet.
func (p *provider) usage(ctx context.Context, pool string) quota.Resources {
	counts, ids, unknown := p.cachedCounts()
	extra := p.pending.countNotIn(ids)
	total := quota.Zero()
	for _, m := range []map[usageKey]int{counts, extra} {
		for k, c := range m {
			if pool != "" && k.pool != pool {
				continue
			}
			total.AddN(p.labelNeed(ctx, p.cfg.Pool(k.pool), k.label), float64(c))
		}
	}
	if pool == "" {
		total.AddN(quota.New(0, 1, 0, 0, nil), float64(unknown))
	}
	return total
}

// uploadTTL is how long the newest ready upload of a diskimage is cached;
// a new upload is picked up within this time.
const uploadTTL = 3 * time.Second

type cachedUpload struct {
	up *zkclient.ImageUpload
	at time.Time
}

// uploadCache holds the newest ready upload of each diskimage to a
// provider for uploadTTL, so request handling does not walk the image
// tree for every request.
type uploadCache struct {
	mu sync.Mutex
	m  map[string]cachedUpload
}

// recentUpload returns the newest ready upload of a diskimage to this
// provider (nil when there is none).
func (p *provider) recentUpload(ctx context.Context, image string) (*zkclient.ImageUpload, error) {
	c := &p.uploads
	c.mu.Lock()
	if e, ok := c.m[image]; ok && time.Since(e.at) < uploadTTL {
		c.mu.Unlock()
		return e.up, nil
	}
	c.mu.Unlock()
	up, err := p.l.zk.MostRecentUpload(ctx, image, p.cfg.Name, zkclient.ImageReady)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cachedUpload{}
	}
	c.m[image] = cachedUpload{up, time.Now()}
	c.mu.Unlock()
	return up, nil
}
