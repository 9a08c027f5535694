package launcher

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/zkclient"
)

// poll reports whether the handler is finished.
func (h *handler) poll(ctx context.Context) bool {
	if h.done {
		return true
	}
	if h.paused {
		return false
	}
	for _, hn := range h.nodes {
		if hn.launch != nil && !hn.launch.finished.Load() {
			return false
		}
	}
	l := h.pw.l
	var failed, aborted bool
	var keep []*handlerNode
	for _, hn := range h.nodes {
		switch hn.node.State {
		case zkclient.NodeReady:
			keep = append(keep, hn)
		case zkclient.NodeAborted:
			aborted = true
			_ = hn.lock.Release(ctx)
		default:
			failed = true
			keep = append(keep, hn)
		}
	}
	h.nodes = keep
	if _, ok := l.requests.Get(h.req.ID); !ok {
		// The cache says it is gone; confirm before giving the nodes back.
		if ok, _, err := l.zk.Exists(ctx, zkclient.RequestPath(h.req.ID)); err == nil && !ok {
			h.requestGone(ctx)
			return true
		}
	}
	if aborted && !failed {
		h.paused = true
		h.pw.explainf(h.req.ID, zkclient.ExplainPaused, "the cloud refused a node for quota; relaunching when quota allows")
		return false
	}
	if failed {
		h.markDeclined()
	} else {
		h.req.Nodes = nil
		used := make([]bool, len(h.nodes))
		for _, t := range h.req.NodeTypes {
			for i, hn := range h.nodes {
				if !used[i] && hn.label == t {
					used[i] = true
					h.req.Nodes = append(h.req.Nodes, hn.node.ID)
					break
				}
			}
		}
		h.req.State = zkclient.RequestFulfilled
		h.req.StateTime = unixNow(l.now())
	}
	// Unlock the nodes (keeping their allocation), write the request and
	// unlock it, in one transaction.
	locks := make([]*zkclient.Lock, 0, len(h.nodes)+1)
	for _, hn := range h.nodes {
		locks = append(locks, hn.lock)
	}
	locks = append(locks, h.lock)
	err := l.zk.ReleaseWith(ctx, locks, zkclient.RequestSet(h.req, -1))
	switch {
	case err == nil:
		h.nodes = nil
	case zkclient.IsConnectionError(err) || ctx.Err() != nil ||
		(errors.Is(err, zkclient.ErrNoNode) && !l.zk.Connected()):
		// Retried by the next pass once connected; a lost session drops
		// the handler and the request is requeued on reconnection.
		h.log.Warn("storing request failed; retrying once ZooKeeper is back", "error", err)
		return false
	default:
		fresh, xerr := l.zk.GetRequest(ctx, h.req.ID)
		if errors.Is(xerr, zkclient.ErrNoNode) {
			h.requestGone(ctx)
			return true
		}
		if xerr == nil && fresh.State == h.req.State && slices.Equal(fresh.Nodes, h.req.Nodes) {
			// The transaction was applied although its reply was lost.
			for _, hn := range h.nodes {
				hn.lock.Forget()
			}
			h.nodes = nil
			h.lock.Forget()
			break
		}
		// Fall back to the step-by-step order of upstream.
		h.releaseNodes(ctx, false)
		if err := l.zk.StoreRequest(ctx, h.req, h.lock); err != nil {
			// Not stored: the request is still pending in ZooKeeper.
			// Unlocked, it is requeued by the lost-request pass, woken
			// now (or on reconnection) rather than at the next cleanup.
			h.log.Warn("storing request failed; it will be requeued", "state", h.req.State, "error", err)
			if zkclient.IsTooLarge(err) {
				h.pw.l.unstorable.add(h.req.ID, h.req.Version)
			}
			dropLock(ctx, h.lock)
			h.pw.l.wakeLostRequests()
			h.done = true
			return true
		}
		_ = h.lock.Release(ctx)
	}
	if h.req.State == zkclient.RequestFulfilled {
		h.log.Info("fulfilled request", "nodes", strings.Join(h.req.Nodes, ","))
	}
	h.done = true
	return true
}

// requestGone gives the nodes back after the requestor deleted the request
// (Zuul cancelled it): they become reusable ready nodes.
func (h *handler) requestGone(ctx context.Context) {
	h.log.Info("request disappeared while being handled; releasing its nodes")
	h.releaseNodes(ctx, true)
	_ = h.lock.Release(ctx)
	h.done = true
}

// markDeclined adds our id to declined_by and sets requested or failed.
func (h *handler) markDeclined() {
	if !h.req.DeclinedByID(h.pw.id) {
		h.req.DeclinedBy = append(h.req.DeclinedBy, h.pw.id)
	}
	all := true
	for _, c := range h.pw.l.registeredPools() {
		if !h.req.DeclinedByID(c.ID) {
			all = false
			break
		}
	}
	if all {
		h.req.State = zkclient.RequestFailed
	} else {
		h.req.State = zkclient.RequestRequested
	}
	h.req.StateTime = unixNow(h.pw.l.now())
}

// decline gives the request back (or fails it when every pool declined).
func (h *handler) decline(ctx context.Context, reason string) {
	h.log.Info("declining request", "reason", reason)
	h.pw.explainf(h.req.ID, zkclient.ExplainDeclined, reason)
	h.markDeclined()
	h.releaseNodes(ctx, true)
	h.paused = false
	if err := h.pw.l.zk.StoreRequest(ctx, h.req, h.lock); err != nil {
		if zkclient.IsTooLarge(err) {
			// Nothing smaller can be written without dropping someone
			// else's data: leave it as it is and stop retrying it.
			h.log.Error("declined request cannot be stored: it is too large; ignoring it until it changes", "error", err)
			h.pw.l.unstorable.add(h.req.ID, h.req.Version)
		} else {
			h.log.Warn("storing declined request failed", "error", err)
		}
	}
	_ = h.lock.Release(ctx)
	h.done = true
}

// releaseAll gives everything back without declining (static pools and
// shutdown) and requeues the request.
func (h *handler) releaseAll(ctx context.Context, clear bool) {
	h.releaseNodes(ctx, clear)
	h.paused = false
	if h.req.State == zkclient.RequestPending && h.lock.Held() {
		// Requeue at once (upstream leaves it pending for the lost-request
		// cleanup, up to a minute later).
		h.req.State = zkclient.RequestRequested
		h.req.StateTime = unixNow(h.pw.l.now())
		h.req.Nodes = nil
		if err := h.pw.l.zk.StoreRequest(ctx, h.req, h.lock); err != nil {
			h.log.Warn("requeueing request failed; the lost-request cleanup will", "error", err)
		}
	}
	_ = h.lock.Release(ctx)
	h.done = true
}

// releaseNodes unlocks the node set, clearing allocations when asked.
func (h *handler) releaseNodes(ctx context.Context, clear bool) {
	l := h.pw.l
	for _, hn := range h.nodes {
		if clear && hn.node.State == zkclient.NodeReady {
			hn.node.AllocatedTo = ""
			if err := l.zk.StoreNode(ctx, hn.node, hn.lock); err != nil {
				h.log.Warn("clearing allocation failed", "node", hn.node.ID, "error", err)
			}
		}
		_ = hn.lock.Release(ctx)
	}
	h.nodes = nil
}

// forget drops the handler after its request lock was lost. Locks it
// still holds (taken in a newer session) are released, lost ones are only
// forgotten; the lost-request cleanup then requeues the request.
func (h *handler) forget() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, hn := range h.nodes {
		if hn.launch != nil {
			hn.launch.abandon()
		}
		dropLock(ctx, hn.lock)
	}
	h.nodes = nil
	if h.lock != nil {
		dropLock(ctx, h.lock)
	}
	h.done = true
}

// dropLock releases a lock that is still held and forgets a lost one.
func dropLock(ctx context.Context, l *zkclient.Lock) {
	if l.Held() {
		_ = l.Release(ctx)
		return
	}
	l.Forget()
}

// deleteOldestUnused marks the oldest idle ready node of the pool deleting
// so an at-quota pool cannot wedge.
func (l *Launcher) deleteOldestUnused(ctx context.Context, p *provider, pool *driver.PoolConfig) bool {
	if l.unused.Count(poolKey(p.cfg.Name, pool.Name)) == 0 {
		return false
	}
	var cands []*zkclient.Node
	now := unixNow(l.now())
	for _, n := range l.nodes.List() {
		if n.Provider != p.cfg.Name || n.Pool != pool.Name {
			continue
		}
		if n.State == zkclient.NodeDeleting && now-n.StateTime < 300 {
			return false
		}
		if n.State == zkclient.NodeReady && n.AllocatedTo == "" {
			cands = append(cands, n)
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].StateTime < cands[j].StateTime })
	for _, c := range cands {
		lock := l.zk.NodeLock(c.ID)
		if got, err := lock.TryAcquire(ctx); err != nil || !got {
			continue
		}
		n, err := l.zk.GetNode(ctx, c.ID)
		if err == nil && n.State == zkclient.NodeReady && n.AllocatedTo == "" {
			n.State = zkclient.NodeDeleting
			n.StateTime = unixNow(l.now())
			err = l.zk.StoreNode(ctx, n, lock)
			_ = lock.Release(ctx)
			if err == nil {
				l.log.Info("marked oldest unused node for deletion to free quota", "node", n.ID, "provider", p.cfg.Name)
				l.wakeDeleter()
				return true
			}
			continue
		}
		_ = lock.Release(ctx)
	}
	return false
}
