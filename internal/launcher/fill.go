package launcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"

	"golang.org/x/sync/errgroup"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/zkclient"
)

// fillLabels reuses ready nodes or creates node records for each needed
// label; the created ones wait in toLock.
func (h *handler) fillLabels(ctx context.Context) {
	pw := h.pw
	l := pw.l
	p := pw.provider
	for _, label := range h.needed() {
		if h.req.Reuse && h.reuse(ctx, label) {
			h.paused = false
			continue
		}
		var atQuota verdict
		var created *zkclient.Node
		coordinate := p.coordinate
		if h.deferLocks {
			coordinate = func(_ context.Context, fn func() error) error { return fn() } // the caller coordinates
		}
		err := coordinate(ctx, func() error {
			// Checking quota and creating the node record are serialized
			// per provider; locking the new node happens outside.
			p.launchMu.Lock()
			defer p.launchMu.Unlock()
			v, err := p.hasRemainingQuota(ctx, pw.pool, label)
			if err != nil {
				return err
			}
			if !v.ok {
				atQuota = v
				return nil
			}
			if h.deferLocks {
				// Hold the quota now; the caller creates a batch's nodes
				// together (see createReserved).
				n := h.newNode(ctx, label)
				h.toCreate = append(h.toCreate, reservedNode{n: n, label: label, key: p.pending.reserve(n)})
				return nil
			}
			created, err = h.createNode(ctx, label)
			return err
		})
		if err == nil && created != nil {
			h.toLock = append(h.toLock, pendingLock{created, label})
		}
		if err != nil {
			h.launchFailed(ctx, fmt.Errorf("label %s: %w", label, err))
			return
		}
		if atQuota.limit != "" {
			if h.req.Requestor == zkclient.RequestorMinReady {
				h.decline(ctx, "pool is at quota")
				return
			}
			l.deleteOldestUnused(ctx, p, pw.pool)
			if p.cfg.PausesAtQuota {
				if !h.paused {
					h.log.Info("pausing request handling: at quota", "limit", atQuota.String())
				}
				h.paused = true
				pw.explainQuota(h.req.ID, zkclient.ExplainPaused, "waiting for quota", atQuota)
				return
			}
			h.releaseAll(ctx, false)
			return
		}
		h.paused = false
		pw.explainf(h.req.ID, zkclient.ExplainHandling, "accepted; launching or reusing nodes")
	}
}

// reuse takes a ready unallocated node of this pool for label.
func (h *handler) reuse(ctx context.Context, label string) bool {
	pw := h.pw
	l := pw.l
	var cands []*zkclient.Node
	for _, n := range l.unused.Lookup(poolKey(pw.provider.cfg.Name, pw.pool.Name)) {
		if n.HasLabel(label) && (h.az == "" || n.AZ == "" || n.AZ == h.az) {
			cands = append(cands, n)
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].StateTime < cands[j].StateTime })
	for _, c := range cands {
		// Lock it checking, in the same transaction, that it is still the
		// ready unallocated version the cache showed.
		lock := l.zk.NodeLock(c.ID, zkclient.DirLikely())
		got, err := lock.TryAcquireWith(ctx, zkclient.CheckOp{Path: zkclient.NodePath(c.ID), Version: c.Version})
		if err != nil || !got {
			continue
		}
		n := c.Clone()
		if !pw.provider.staticAlive(ctx, n) {
			n.State = zkclient.NodeDeleting
			n.StateTime = unixNow(l.now())
			_ = l.zk.StoreNode(ctx, n, lock)
			_ = lock.Release(ctx)
			l.wakeDeleter()
			continue
		}
		n.AllocatedTo, n.TenantName, n.Requestor = h.req.ID, h.req.TenantName, h.req.Requestor
		if err := l.zk.StoreNode(ctx, n, lock); err != nil {
			_ = lock.Release(ctx)
			continue
		}
		if h.az == "" && n.AZ != "" {
			h.az = n.AZ
		}
		h.nodes = append(h.nodes, &handlerNode{node: n, lock: lock, label: label})
		return true
	}
	return false
}

// newNode returns the init record of a new node for label.
func (h *handler) newNode(ctx context.Context, label string) *zkclient.Node {
	pw := h.pw
	if h.az == "" {
		h.az = h.chooseAZ(ctx)
	}
	var attrs []byte
	if pw.pool.NodeAttributes != nil {
		attrs, _ = marshalAttributes(pw.pool.NodeAttributes)
	}
	now := unixNow(pw.l.now())
	n := &zkclient.Node{State: zkclient.NodeInit, StateTime: now, CreatedTime: now, Provider: pw.provider.cfg.Name,
		Pool: pw.pool.Name, Type: []string{label}, Launcher: pw.id, AllocatedTo: h.req.ID,
		TenantName: h.req.TenantName, Requestor: h.req.Requestor, Attributes: attrs, AZ: h.az}
	n.SetPort(22)
	return n
}

// createNode stores a new node record in state init for label.
func (h *handler) createNode(ctx context.Context, label string) (*zkclient.Node, error) {
	n := h.newNode(ctx, label)
	if _, err := h.pw.l.zk.CreateNode(ctx, n); err != nil {
		return nil, err
	}
	h.pw.provider.pending.note(n)
	return n, nil
}

// reservedNode is a node whose quota fillLabels reserved and whose record
// is created with the rest of its batch.
type reservedNode struct {
	n     *zkclient.Node
	label string
	key   string
	err   error
}

// createReserved creates the reserved nodes of a batch of handlers
// concurrently, then hands each handler its created nodes to lock, or
// pauses or declines it as fillLabels would have.
func createReserved(ctx context.Context, batch []*handler) {
	var g errgroup.Group
	g.SetLimit(32)
	for _, h := range batch {
		if h.done {
			// Declined or forgotten while filling: nothing to create.
			for _, rn := range h.toCreate {
				h.pw.provider.pending.settle(rn.key, nil, false)
			}
			h.toCreate = nil
			continue
		}
		for i := range h.toCreate {
			rn := &h.toCreate[i]
			g.Go(func() error {
				_, rn.err = h.pw.l.zk.CreateNode(ctx, rn.n)
				h.pw.provider.pending.settle(rn.key, rn.n, rn.err == nil)
				return nil
			})
		}
	}
	_ = g.Wait()
	for _, h := range batch {
		var failed error
		for _, rn := range h.toCreate {
			if rn.err != nil {
				failed = rn.err
				continue
			}
			h.toLock = append(h.toLock, pendingLock{rn.n, rn.label})
		}
		h.toCreate = nil
		if failed != nil {
			h.launchFailed(ctx, failed)
		}
	}
}

// lockNewNode locks a new node and writes it "building", with its image
// and connection settings, in one transaction, then starts its launch.
func (h *handler) lockNewNode(ctx context.Context, n *zkclient.Node, label string) error {
	pw := h.pw
	l := pw.l
	p := pw.provider
	nl := &nodeLaunch{h: h, p: p, label: pw.pool.Label(label), az: h.az}
	building := n.Clone()
	building.State = zkclient.NodeBuilding
	building.StateTime = unixNow(l.now())
	nl.node = building
	if err := nl.fillFields(ctx); err == nil {
		nl.fieldsStored = true
	}
	lock := l.zk.NodeLock(n.ID)
	got, err := lock.TryAcquireWith(ctx, zkclient.NodeSet(building, n.Version))
	if err != nil || !got {
		l.orphanInit(n.ID)
		if err == nil {
			err = errors.New("locked by someone else")
		}
		return fmt.Errorf("locking new node %s: %w", n.ID, err)
	}
	building.Version = n.Version + 1
	nl.lock = lock
	h.nodes = append(h.nodes, &handlerNode{node: building, lock: lock, label: label, launch: nl})
	p.addLaunch(nl)
	return nil
}

func (h *handler) chooseAZ(ctx context.Context) string {
	azs := h.pw.pool.AZs
	if len(azs) == 0 {
		if al, ok := h.pw.provider.adapter.(driver.AZLister); ok {
			azs, _ = al.AvailabilityZones(ctx)
		}
	}
	if len(azs) == 0 {
		return ""
	}
	return azs[rand.IntN(len(azs))]
}
