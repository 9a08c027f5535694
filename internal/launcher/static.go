package launcher

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Registration of pre-existing hosts: for providers whose
// adapter is a driver.Registrar the launcher keeps one ready node record
// per slot, de-registers slots that left the configuration, updates ready
// nodes whose settings changed, and re-registers a slot after its node was
// used and deleted.

// registrar returns the provider's Registrar, if its driver has one.
func (p *provider) registrar() (driver.Registrar, bool) {
	r, ok := p.adapter.(driver.Registrar)
	return r, ok
}

type staticState struct {
	mu   sync.Mutex // one sync at a time
	wake chan struct{}
}

// kickStatic asks for a registration sync soon.
func (p *provider) kickStatic() {
	if p.static.wake == nil {
		return
	}
	select {
	case p.static.wake <- struct{}{}:
	default:
	}
}

// staticLoop syncs registrations at start, when kicked, and every cleanup
// interval.
func (p *provider) staticLoop(ctx context.Context) {
	t := time.NewTicker(p.l.cleanupEvery)
	defer t.Stop()
	for {
		if p.l.zk.Connected() {
			if err := p.syncStatic(ctx); err != nil && ctx.Err() == nil {
				p.log.Warn("registering static nodes failed", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.static.wake:
		}
	}
}

func slotKey(host, user string, port, index int) string {
	return host + "|" + user + "|" + strconv.Itoa(port) + "|" + strconv.Itoa(index)
}

func nodeSlotKey(n *zkclient.Node) string {
	idx := -1
	if n.Slot != nil {
		idx = *n.Slot
	}
	return slotKey(n.ExternalID, n.Username, n.Port(), idx)
}

// syncStatic brings the provider's node records in line with its slots.
func (p *provider) syncStatic(ctx context.Context) error {
	reg, ok := p.registrar()
	if !ok {
		return nil
	}
	p.static.mu.Lock()
	defer p.static.mu.Unlock()
	slots, err := reg.Slots(ctx)
	if err != nil {
		return err
	}
	existing := map[string]*zkclient.Node{}
	for _, n := range p.l.nodes.List() {
		if n.Provider == p.cfg.Name {
			existing[nodeSlotKey(n)] = n
		}
	}
	for _, n := range p.pending.created(func(id string) bool { _, ok := p.l.nodes.Get(id); return ok }) {
		if n.Provider == p.cfg.Name {
			existing[nodeSlotKey(n)] = n
		}
	}

	byHost := map[string][]driver.Slot{}
	var hosts []string
	wanted := map[string]bool{}
	for _, s := range slots {
		k := s.HostKey()
		if _, ok := byHost[k]; !ok {
			hosts = append(hosts, k)
		}
		byHost[k] = append(byHost[k], s)
		wanted[slotKey(s.Host, s.Username, s.ConnectionPort, s.Index)] = true
	}
	sort.Strings(hosts)

	var failedMu sync.Mutex
	failed := map[string]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, hk := range hosts {
		hs := byHost[hk]
		g.Go(func() error {
			if err := p.syncHost(gctx, reg, hs, existing); err != nil {
				p.log.Warn("static host unavailable; its slots are withdrawn", "host", hs[0].Host, "error", err)
				failedMu.Lock()
				for _, s := range hs {
					failed[slotKey(s.Host, s.Username, s.ConnectionPort, s.Index)] = true
				}
				failedMu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	// De-register ready nodes of slots that are gone or whose host failed.
	for key, n := range existing {
		if wanted[key] && !failed[key] {
			continue
		}
		if n.State == zkclient.NodeReady && n.AllocatedTo == "" {
			p.l.markDeleting(ctx, n.ID, func(x *zkclient.Node) bool { return x.State == zkclient.NodeReady && x.AllocatedTo == "" })
		}
	}
	return nil
}

// syncHost registers a host's empty slots and updates its ready nodes
// whose settings changed.
func (p *provider) syncHost(ctx context.Context, reg driver.Registrar, slots []driver.Slot, existing map[string]*zkclient.Node) error {
	var missing []driver.Slot
	var stale []*zkclient.Node
	for _, s := range slots {
		n, ok := existing[slotKey(s.Host, s.Username, s.ConnectionPort, s.Index)]
		if !ok {
			missing = append(missing, s)
			continue
		}
		if n.State == zkclient.NodeReady && n.AllocatedTo == "" && !slotMatches(n, s) {
			stale = append(stale, n)
		}
	}
	if len(missing) == 0 && len(stale) == 0 {
		return nil
	}
	keys, err := reg.Check(ctx, slots[0])
	if err != nil {
		return err
	}
	for _, s := range missing {
		n := staticNode(p.cfg.Name, s, keys, unixNow(p.l.now()))
		if _, err := p.l.zk.CreateNode(ctx, n); err != nil {
			return err
		}
		p.pending.note(n)
		p.log.Info("registered static node", "node", n.ID, "host", s.Host, "slot", s.Index)
	}
	for _, n := range stale {
		p.updateStatic(ctx, n, slots, keys)
	}
	return nil
}

// slotMatches reports whether a node carries the slot's settings.
func slotMatches(n *zkclient.Node, s driver.Slot) bool {
	return slices.Equal(n.Type, s.Labels) && n.Username == s.Username && n.Port() == s.ConnectionPort &&
		n.ShellType == s.ShellType && n.ConnectionType == s.ConnectionType && n.PythonPath == s.PythonPath &&
		n.Pool == s.Pool
}

func (p *provider) updateStatic(ctx context.Context, n *zkclient.Node, slots []driver.Slot, keys []string) {
	var s driver.Slot
	for _, x := range slots {
		if n.Slot != nil && x.Index == *n.Slot {
			s = x
		}
	}
	lock := p.l.zk.NodeLock(n.ID)
	if got, err := lock.TryAcquire(ctx); err != nil || !got {
		return
	}
	defer func() { _ = lock.Release(ctx) }()
	fresh, err := p.l.zk.GetNode(ctx, n.ID)
	if err != nil || fresh.State != zkclient.NodeReady || fresh.AllocatedTo != "" {
		return
	}
	fresh.Type, fresh.Username, fresh.ShellType = s.Labels, s.Username, s.ShellType
	fresh.ConnectionType, fresh.PythonPath, fresh.Pool = s.ConnectionType, s.PythonPath, s.Pool
	fresh.SetPort(s.ConnectionPort)
	fresh.HostKeys = keys
	if err := p.l.zk.StoreNode(ctx, fresh, lock); err == nil {
		p.log.Info("updated static node", "node", n.ID, "host", s.Host)
	}
}

// staticNode returns the ready record of a registered slot.
func staticNode(provider string, s driver.Slot, keys []string, now float64) *zkclient.Node {
	idx := s.Index
	n := &zkclient.Node{State: zkclient.NodeReady, StateTime: now, CreatedTime: now, Provider: provider, Pool: s.Pool,
		Type: append([]string(nil), s.Labels...), Launcher: zkclient.StaticLauncher, ExternalID: s.Host, Hostname: s.Host,
		InterfaceIP: s.Host, PublicIPv4: s.PublicIPv4, PublicIPv6: s.PublicIPv6, Username: s.Username,
		ConnectionType: s.ConnectionType, ShellType: s.ShellType, PythonPath: s.PythonPath,
		HostKeys: append([]string{}, keys...), Slot: &idx}
	n.SetPort(s.ConnectionPort)
	if s.Attributes != nil {
		n.Attributes, _ = marshalAttributes(s.Attributes)
	}
	return n
}

// staticAlive runs the reuse liveness check for a registered node; a dead
// host's node is de-registered.
func (p *provider) staticAlive(ctx context.Context, n *zkclient.Node) bool {
	reg, ok := p.registrar()
	if !ok {
		return true
	}
	s := driver.Slot{Pool: n.Pool, Host: n.ExternalID, Username: n.Username, ConnectionPort: n.Port()}
	if n.Slot != nil {
		s.Index = *n.Slot
	}
	if err := reg.Alive(ctx, s); err != nil {
		p.log.Warn("static node failed its liveness check; de-registering it", "node", n.ID, "error", err)
		return false
	}
	return true
}

// labelQuota counts, per label, the ready unallocated nodes a registrar
// provider has (upstream's getLabelQuota); nil for other providers.
func (p *provider) labelQuota() map[string]int {
	if _, ok := p.registrar(); !ok {
		return nil
	}
	q := map[string]int{}
	for _, pool := range p.cfg.Pools {
		for _, lb := range pool.Labels {
			q[lb.Name] = 0
		}
	}
	for _, n := range p.l.nodes.List() {
		if n.Provider == p.cfg.Name && n.State == zkclient.NodeReady && n.AllocatedTo == "" {
			for _, t := range n.Type {
				q[t]++
			}
		}
	}
	return q
}
