package launcher

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool/quota"
	"github.com/nodepool-go/nodepool/zkclient"
	"golang.org/x/sync/errgroup"
)

// Intervals of the periodic workers.
const (
	deleteInterval  = 5 * time.Second
	cleanupInterval = 60 * time.Second
	lockCleanupAge  = 8 * time.Hour
)

// initOrphanAge is how long an unlocked init node may exist before it is
// considered abandoned (it is normally locked right after its creation).
const initOrphanAge = 60 * time.Second

// cleanupState is what the cleanup workers keep between passes.
type cleanupState struct {
	mu         sync.Mutex
	orphanInit map[string]bool // init nodes of ours whose launch failed
	lastPass   time.Time       // when the last complete cleanup pass ended
	lostWake   chan struct{}   // wakes the lost-request pass
	// orphanSeen is when each ready allocated node was first seen without
	// its request (only the deleted-node worker touches it).
	orphanSeen map[string]time.Time
	// orphanScanned is when the orphan scan last ran.
	orphanScanned time.Time
	// retries tracks quick retries of locked deletable nodes; retryArmed
	// is set while a retry wake-up is scheduled.
	retries    map[string]deleteRetry
	retryArmed bool
}

// LastCleanup returns when the last complete cleanup pass ended (zero
// before the first one).
func (l *Launcher) LastCleanup() time.Time {
	l.cleanup.mu.Lock()
	defer l.cleanup.mu.Unlock()
	return l.cleanup.lastPass
}

// lostWakeCh returns the channel that wakes the lost-request pass.
func (l *Launcher) lostWakeCh() chan struct{} {
	l.cleanup.mu.Lock()
	defer l.cleanup.mu.Unlock()
	if l.cleanup.lostWake == nil {
		l.cleanup.lostWake = make(chan struct{}, 1)
	}
	return l.cleanup.lostWake
}

// wakeLostRequests runs the lost-request pass soon, outside the cleanup
// interval: a request whose fulfilment could not be stored, or whose lock
// went with a lost session, is requeued as soon as ZooKeeper allows.
func (l *Launcher) wakeLostRequests() {
	select {
	case l.lostWakeCh() <- struct{}{}:
	default:
	}
}

// orphanGrace is how long a ready node must stay allocated to a request
// that no longer exists before its allocation is cleared: Zuul deletes a
// fulfilled request before it marks the nodes in-use, so a node without
// its request is normal for a moment and checking it at once would cost a
// read (and a lock attempt) per request.
const orphanGrace = 3 * time.Second

// orphanScanEvery is how often passes driven by changes scan for orphans.
const orphanScanEvery = time.Second

// heldGrace is how long a node stays in-use or building before the
// deleted-node worker checks whether its holder still holds it: one that
// changed state moments ago is held (Zuul marks a node in-use under its
// lock), and checking it costs a request.
const heldGrace = 8 * time.Second

// orphanInit remembers an init node this launcher created but could not
// take further, so the deleted-node worker removes it.
func (l *Launcher) orphanInit(id string) {
	l.cleanup.mu.Lock()
	if l.cleanup.orphanInit == nil {
		l.cleanup.orphanInit = map[string]bool{}
	}
	l.cleanup.orphanInit[id] = true
	l.cleanup.mu.Unlock()
	// The cache took the record when we created it and set no watch.
	l.nodes.Refresh(id)
	l.wakeDeleter()
}

// removeOrphanInits marks init nodes nobody is launching as deleting: our
// own failed creations at once, anyone's unlocked init node after
// initOrphanAge (a launcher died between creating and locking it).
func (l *Launcher) removeOrphanInits(ctx context.Context) {
	l.cleanup.mu.Lock()
	ours := make([]string, 0, len(l.cleanup.orphanInit))
	for id := range l.cleanup.orphanInit {
		ours = append(ours, id)
	}
	l.cleanup.mu.Unlock()
	now := unixNow(l.now())
	candidates := map[string]bool{}
	for _, id := range ours {
		candidates[id] = true
	}
	for _, n := range l.byPhase.Lookup(phaseInit) {
		if now-n.StateTime > initOrphanAge.Seconds() {
			candidates[n.ID] = true
		}
	}
	for id := range candidates {
		if ctx.Err() != nil || !l.zk.Connected() {
			return
		}
		n, err := l.zk.GetNode(ctx, id)
		if err != nil || n.State != zkclient.NodeInit {
			if err == nil || errors.Is(err, zkclient.ErrNoNode) {
				l.cleanup.mu.Lock()
				delete(l.cleanup.orphanInit, id)
				l.cleanup.mu.Unlock()
			}
			continue
		}
		if _, ok := l.providerNames()[n.Provider]; !ok {
			continue
		}
		l.markDeleting(ctx, id, func(x *zkclient.Node) bool { return x.State == zkclient.NodeInit })
	}
}

// Node phases the deleted-node worker looks at (the byPhase index).
const (
	phaseInit      = "init"      // may be an orphan
	phaseDeletable = "deletable" // deleted as soon as it is unlocked
	phaseHeld      = "held"      // deleted if its holder's lock vanished
	phaseAllocated = "allocated" // ready and allocated: its request may be gone
)

// nodePhase is the byPhase index key of a node.
func nodePhase(n *zkclient.Node) string {
	switch n.State {
	case zkclient.NodeInit:
		return phaseInit
	case zkclient.NodeUsed, zkclient.NodeFailed, zkclient.NodeDeleting, zkclient.NodeDeleted, zkclient.NodeAborted:
		return phaseDeletable
	case zkclient.NodeInUse, zkclient.NodeBuilding:
		return phaseHeld
	case zkclient.NodeReady:
		if n.AllocatedTo != "" {
			return phaseAllocated
		}
	}
	return ""
}

// deletedNodeLoop deletes nodes that need deleting, on node changes and
// every deleteInterval. In-use and building nodes,
// normally locked by Zuul or by a launch, are only tried on the interval.
func (l *Launcher) deletedNodeLoop(ctx context.Context) {
	ch := l.nodes.Subscribe()
	t := time.NewTicker(deleteInterval)
	defer t.Stop()
	full := true
	for {
		if l.zk.Connected() {
			l.deletePass(ctx, full)
		}
		full = false
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-l.deleteReq:
		case <-t.C:
			full = true
		}
	}
}

// deletePass starts the deletion of every unlocked node that needs it;
// full also tries in-use and building nodes.
func (l *Launcher) deletePass(ctx context.Context, full bool) {
	l.removeOrphanInits(ctx)
	// Passes follow every change of the node tree; the orphan scan costs
	// every allocated node, and its grace is seconds, so it runs at most
	// once a second.
	if full || l.now().Sub(l.cleanup.orphanScanned) >= orphanScanEvery {
		l.cleanup.orphanScanned = l.now()
		l.scanOrphans(ctx)
	}
	provs := l.providerNames()
	cands := l.byPhase.Lookup(phaseDeletable)
	l.forgetRetries(cands)
	if full {
		now := unixNow(l.now())
		for _, n := range l.byPhase.Lookup(phaseHeld) {
			if now-n.StateTime >= heldGrace.Seconds() {
				cands = append(cands, n)
			}
		}
	}
	var g errgroup.Group
	g.SetLimit(32)
	for _, n := range cands {
		if ctx.Err() != nil {
			break
		}
		p, ok := provs[n.Provider]
		if !ok || p.deleting(n.ID) || p.launching(n.ID) || l.retryLater(n, full) {
			continue
		}
		g.Go(func() error {
			l.tryDelete(inPhase(ctx, phaseDeleteLock), p, n)
			return nil
		})
	}
	_ = g.Wait()
	l.armRetry()
}

// scanOrphans frees allocated nodes whose request has been gone for
// orphanGrace.
func (l *Launcher) scanOrphans(ctx context.Context) {
	seen := map[string]time.Time{}
	for _, n := range l.byPhase.Lookup(phaseAllocated) {
		if _, ok := l.requests.Get(n.AllocatedTo); ok || ctx.Err() != nil {
			continue
		}
		first, ok := l.cleanup.orphanSeen[n.ID]
		if !ok {
			first = l.now()
		}
		seen[n.ID] = first
		if l.now().Sub(first) >= orphanGrace {
			l.freeOrphan(ctx, n)
		}
	}
	l.cleanup.orphanSeen = seen
}

// tryDelete locks an unlocked node, checking in the same transaction that
// the record is still the version the decision was made on (instead of
// re-reading it) and that nobody holds or waits for its lock (one request
// either way), and hands it to its provider's deleter.
func (l *Launcher) tryDelete(ctx context.Context, p *provider, n *zkclient.Node) {
	lock := l.zk.NodeLock(n.ID)
	got, err := lock.TryAcquireIdle(ctx, zkclient.CheckOp{Path: zkclient.NodePath(n.ID), Version: n.Version})
	if err == nil && !got && nodePhase(n) == phaseDeletable {
		// Zuul writes "used" before it unlocks: try again shortly
		// rather than on the next full pass.
		l.retryDeleteSoon(n.ID)
	}
	if errors.Is(err, zkclient.ErrPrecondition) {
		// The cached record is not the stored one: read it again.
		l.nodes.Refresh(n.ID)
	}
	if err != nil || !got {
		return
	}
	fresh := n.Clone()
	if fresh.State == zkclient.NodeDeleted || fresh.Provider == "" {
		if err := l.zk.DeleteLockedNode(ctx, fresh, lock); err != nil {
			_ = lock.Release(ctx)
		}
		return
	}
	if !p.startDelete(fresh, lock) {
		_ = lock.Release(ctx)
	}
}

// freeOrphan clears the allocation of a ready node whose request is gone.
func (l *Launcher) freeOrphan(ctx context.Context, n *zkclient.Node) {
	if _, err := l.zk.GetRequest(ctx, n.AllocatedTo); !errors.Is(err, zkclient.ErrNoNode) {
		return
	}
	lock := l.zk.NodeLock(n.ID)
	if got, err := lock.TryAcquire(ctx); err != nil || !got {
		return
	}
	defer func() { _ = lock.Release(ctx) }()
	fresh, err := l.zk.GetNode(ctx, n.ID)
	if err == nil && fresh.Version != n.Version {
		// The cached record is not the stored one: read it again.
		l.nodes.Refresh(n.ID)
	}
	if err != nil || fresh.State != zkclient.NodeReady || fresh.AllocatedTo == "" {
		return
	}
	if _, err := l.zk.GetRequest(ctx, fresh.AllocatedTo); !errors.Is(err, zkclient.ErrNoNode) {
		return
	}
	fresh.AllocatedTo = ""
	if err := l.zk.StoreNode(ctx, fresh, lock); err != nil {
		l.log.Warn("clearing orphaned allocation failed", "node", n.ID, "error", err)
	}
}

// cleanupLoop runs the periodic cleanup tasks.
func (l *Launcher) cleanupLoop(ctx context.Context) {
	t := time.NewTicker(l.cleanupEvery)
	defer t.Stop()
	wake := l.lostWakeCh()
	full := true
	for {
		if l.zk.Connected() && l.Ready() {
			if full {
				l.CleanupPass(ctx)
			} else if err := l.cleanupLostRequests(ctx); err != nil {
				l.log.Warn("cleanup task failed", "task", "lost requests", "error", err)
			}
		} else if !full {
			// Not connected yet: try again shortly.
			time.AfterFunc(time.Second, l.wakeLostRequests)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			full = true
		case <-wake:
			full = false
		}
	}
}

// CleanupPass runs every cleanup task once; each task's failure is logged
// and the next one runs.
func (l *Launcher) CleanupPass(ctx context.Context) {
	tasks := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"request locks", l.cleanupRequestLocks},
		{"leaked resources", l.cleanupLeaked},
		{"lost requests", l.cleanupLostRequests},
		{"max-ready-age", l.cleanupMaxReadyAge},
		{"held nodes", l.cleanupHeld},
		{"empty nodes", l.cleanupEmptyNodes},
	}
	for _, t := range tasks {
		if ctx.Err() != nil {
			return
		}
		if err := t.fn(ctx); err != nil {
			l.log.Warn("cleanup task failed", "task", t.name, "error", err)
		}
	}
	l.cleanup.mu.Lock()
	l.cleanup.lastPass = l.now()
	l.cleanup.mu.Unlock()
}

func (l *Launcher) cleanupRequestLocks(ctx context.Context) error {
	ids, err := l.zk.Children(ctx, zkclient.RequestLockRoot)
	if err != nil {
		return err
	}
	now := l.now()
	for _, id := range ids {
		if _, ok := l.requests.Get(id); ok {
			continue
		}
		if ok, _, _ := l.zk.Exists(ctx, zkclient.RequestPath(id)); ok {
			continue
		}
		ok, st, err := l.zk.Exists(ctx, zkclient.RequestLockPath(id))
		if err != nil || !ok {
			continue
		}
		if now.Sub(time.UnixMilli(st.Mtime)) > lockCleanupAge {
			if err := l.zk.DeleteRecursive(ctx, zkclient.RequestLockPath(id)); err != nil {
				l.log.Warn("deleting request lock failed", "request", id, "error", err)
			}
		}
	}
	return nil
}

func (l *Launcher) cleanupLeaked(ctx context.Context) error {
	for _, p := range l.providerNames() {
		p.cleanupLeaks(ctx, l.knownUploads(ctx, p.cfg.Name))
	}
	return nil
}

// knownUploads returns "<build>/<upload>" of every upload to a provider.
func (l *Launcher) knownUploads(ctx context.Context, provider string) map[string]bool {
	out := map[string]bool{}
	images, err := l.zk.ImageNames(ctx)
	if err != nil {
		return nil
	}
	for _, img := range images {
		builds, err := l.zk.BuildIDs(ctx, img)
		if err != nil {
			return nil
		}
		for _, b := range builds {
			ids, err := l.zk.Children(ctx, zkclient.UploadsPath(img, b, provider))
			if err != nil && !errors.Is(err, zkclient.ErrNoNode) {
				return nil
			}
			for _, u := range ids {
				out[b+"/"+u] = true
			}
		}
	}
	return out
}

// cleanupLostRequests requeues pending requests nobody holds.
func (l *Launcher) cleanupLostRequests(ctx context.Context) error {
	for _, r := range l.requests.List() {
		if r.State != zkclient.RequestPending {
			continue
		}
		lock := l.zk.RequestLock(r.ID)
		got, err := lock.TryAcquire(ctx)
		if err != nil || !got {
			continue
		}
		l.resetLostRequest(ctx, r.ID, lock)
		_ = lock.Release(ctx)
	}
	return nil
}

func (l *Launcher) resetLostRequest(ctx context.Context, id string, lock *zkclient.Lock) {
	req, err := l.zk.GetRequest(ctx, id)
	if err != nil || req.State != zkclient.RequestPending {
		return
	}
	for _, n := range l.nodes.List() {
		if n.AllocatedTo != id {
			continue
		}
		nlock := l.zk.NodeLock(n.ID)
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := nlock.Acquire(lctx)
		cancel()
		if err != nil {
			l.log.Warn("lost request: cannot lock its node; leaving it for the next pass", "request", id, "node", n.ID, "error", err)
			return
		}
		fresh, err := l.zk.GetNode(ctx, n.ID)
		if err == nil && fresh.AllocatedTo == id {
			if fresh.State == zkclient.NodeInit {
				fresh.State = zkclient.NodeDeleting
				fresh.StateTime = unixNow(l.now())
			}
			fresh.AllocatedTo = ""
			_ = l.zk.StoreNode(ctx, fresh, nlock)
		}
		_ = nlock.Release(ctx)
	}
	req.State = zkclient.RequestRequested
	req.StateTime = unixNow(l.now())
	req.Nodes = nil
	if err := l.zk.StoreRequest(ctx, req, lock); err != nil {
		l.log.Warn("resetting lost request failed", "request", id, "error", err)
		return
	}
	l.log.Info("reset lost request", "request", id)
}

// markDeleting locks a node and moves it to deleting if check still holds.
func (l *Launcher) markDeleting(ctx context.Context, id string, check func(*zkclient.Node) bool) {
	lock := l.zk.NodeLock(id)
	if got, err := lock.TryAcquire(ctx); err != nil || !got {
		return
	}
	defer func() { _ = lock.Release(ctx) }()
	n, err := l.zk.GetNode(ctx, id)
	if err != nil || !check(n) {
		return
	}
	n.State = zkclient.NodeDeleting
	n.StateTime = unixNow(l.now())
	if err := l.zk.StoreNode(ctx, n, lock); err == nil {
		l.wakeDeleter()
	}
}

func (l *Launcher) cleanupMaxReadyAge(ctx context.Context) error {
	cfg := l.Config()
	provs := l.providerNames()
	now := unixNow(l.now())
	for _, n := range l.nodes.List() {
		if n.State != zkclient.NodeReady || n.AllocatedTo != "" {
			continue
		}
		if _, ok := provs[n.Provider]; !ok {
			continue
		}
		for _, t := range n.Type {
			lc := cfg.Label(t)
			if lc == nil || lc.MaxReadyAge <= 0 {
				continue
			}
			if now-n.StateTime >= lc.MaxReadyAge.Seconds() {
				l.markDeleting(ctx, n.ID, func(x *zkclient.Node) bool { return x.State == zkclient.NodeReady && x.AllocatedTo == "" })
				break
			}
		}
	}
	return nil
}

func (l *Launcher) cleanupHeld(ctx context.Context) error {
	cfg := l.Config()
	provs := l.providerNames()
	now := unixNow(l.now())
	for _, n := range l.nodes.List() {
		if n.State != zkclient.NodeHold {
			continue
		}
		if _, ok := provs[n.Provider]; !ok {
			continue
		}
		limit := quota.Inf
		if n.HoldExpiration != nil && *n.HoldExpiration > 0 {
			limit = float64(*n.HoldExpiration)
		}
		if cfg.MaxHoldAge > 0 && cfg.MaxHoldAge.Seconds() < limit {
			limit = cfg.MaxHoldAge.Seconds()
		}
		if now-n.StateTime >= limit {
			l.markDeleting(ctx, n.ID, func(x *zkclient.Node) bool { return x.State == zkclient.NodeHold })
		}
	}
	return nil
}

// cleanupEmptyNodes removes node znodes with empty data (left by locks on
// deleted nodes). Unreadable non-empty records are logged, not deleted:
// they may describe a real instance.
func (l *Launcher) cleanupEmptyNodes(ctx context.Context) error {
	ids, err := l.zk.NodeIDs(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, ok := l.nodes.Get(id); ok {
			continue
		}
		data, _, err := l.zk.Get(ctx, zkclient.NodePath(id))
		if err != nil {
			continue
		}
		if len(data) == 0 {
			if err := l.zk.DeleteRecursive(ctx, zkclient.NodePath(id)); err == nil {
				l.log.Info("removed empty node znode", "node", id)
			}
		}
	}
	return nil
}
