package launcher

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool/internal/logconfig"

	"golang.org/x/sync/errgroup"

	"github.com/nodepool-go/nodepool/internal/placement"
	"github.com/nodepool-go/nodepool/zkclient"
)

// assign runs the request-selection pass.
func (w *poolWorker) assign(ctx context.Context) {
	cfg := w.provider.cfg
	if cfg.MaxConcurrency == 0 {
		return
	}
	poolLabels := map[string]bool{}
	for _, lb := range w.pool.Labels {
		poolLabels[lb.Name] = true
	}
	active := w.activeIDs()
	// Only waiting requests are candidates: sorting the ones already
	// pending or fulfilled would make each pass cost the whole tree.
	reqs := slices.DeleteFunc(w.l.requests.List(), func(r *zkclient.NodeRequest) bool {
		return r.State != zkclient.RequestRequested || active[r.ID]
	})
	sortRequests(reqs, poolLabels)
	registered := w.registered(w.l.registeredPools())
	labelQuota := w.provider.labelQuota()
	start := time.Now()
	var g errgroup.Group
	g.SetLimit(32)
	var taken []*takenSlot
	paused := len(w.pausedRequests())
	w.l.pruneUnstorable()
	for _, r := range reqs {
		if ctx.Err() != nil {
			return
		}
		if len(taken) >= maxTakePerPass {
			// Fulfil what this pass took before taking more, so a large
			// burst streams through instead of waiting for its tail.
			w.kick()
			break
		}
		if time.Since(start) > 15*time.Second {
			w.poll(inPhase(ctx, phaseFulfil))
			w.processPaused(inPhase(ctx, phasePaused))
			start = time.Now()
			active, paused = w.activeIDs(), len(w.pausedRequests())
		}
		if r.State != zkclient.RequestRequested || active[r.ID] || w.refuseOversized(ctx, r) {
			continue
		}
		h := &handler{pw: w, req: r.Clone(), log: w.log.With(logconfig.LoggerKey, "nodepool.driver.NodeRequestHandler["+w.id+"]", logconfig.EventKey, r.EventID, logconfig.RequestKey, r.ID)}
		f := w.facts(ctx, h, registered, placement.Assign)
		f.PausedRequests = paused
		f.ShortLabel = func() string { return shortLabel(labelQuota, r.NodeTypes) }
		d := placement.Decide(f)
		reason := ""
		switch {
		case d.AlreadyDeclined:
			if !w.hasExplanation(r.ID) {
				w.explainf(r.ID, zkclient.ExplainDeclined, d.Reason)
			}
			continue
		case d.Queued:
			w.explainBehind(r.ID, d.Reason, w.pausedRequests())
			continue
		case d.Verdict == placement.MustWait:
			w.explainShortfall(r.ID, zkclient.ExplainDeferred, d.Reason, d.Shortfall)
			continue
		case d.Verdict == placement.CannotServe:
			reason = d.Reason
		}
		if labelQuota != nil {
			// Registered hosts: accept one at a time, keeping the quota exact.
			w.accept(inPhase(ctx, phaseAccept), r, h, reason)
			for _, hn := range h.nodes {
				for _, t := range hn.node.Type {
					if _, ok := labelQuota[t]; ok {
						labelQuota[t]--
					}
				}
			}
			continue
		}
		// Taking requests costs round trips to ZooKeeper: overlap them,
		// then fill the accepted ones in priority order (below).
		slot := &takenSlot{}
		taken = append(taken, slot)
		g.Go(func() error {
			if w.take(inPhase(ctx, phaseAccept), r, h, reason) {
				slot.h = h // read after g.Wait
			}
			return nil
		})
	}
	_ = g.Wait()
	// Fill in priority order, a batch at a time: reuse ready nodes, reserve
	// quota and create the batch's node records (under one coordination
	// lock when another launcher serves the provider), then lock the new
	// nodes concurrently (so no node stays in init for long).
	shared := w.provider.shared()
	for i := 0; i < len(taken); i += fillBatch {
		var batch []*handler
		for _, slot := range taken[i:min(i+fillBatch, len(taken))] {
			if slot.h != nil {
				batch = append(batch, slot.h)
			}
		}
		reuseConcurrently(inPhase(ctx, phaseReuse), batch)
		fillAll := func() error {
			ctx := inPhase(ctx, phaseCreate)
			for _, h := range batch {
				h.deferLocks = true
				h.fill(ctx)
				h.deferLocks = false
			}
			createReserved(ctx, batch)
			return nil
		}
		if !shared {
			_ = fillAll()
		} else if err := w.provider.coordinate(ctx, fillAll); err != nil {
			// Not filled at all: retried as paused handlers.
			w.log.Warn("quota coordination unavailable; will retry", "error", err)
			for _, h := range batch {
				h.paused = true
				w.explainf(h.req.ID, zkclient.ExplainPaused, "quota coordination unavailable; retrying")
			}
		}
		var lg errgroup.Group
		lg.SetLimit(32)
		for _, h := range batch {
			lg.Go(func() error {
				h.lockCreated(inPhase(ctx, phaseLockNode))
				return nil
			})
		}
		_ = lg.Wait()
		w.mu.Lock()
		w.active = append(w.active, batch...)
		w.mu.Unlock()
	}
}

// fillBatch is how many taken requests are filled together.
const fillBatch = 64

// reuseConcurrently lets each handler of a group take the ready nodes it
// can reuse, concurrently: reuse costs round trips but no quota, so its
// order does not matter; the in-process lock guard keeps two handlers off
// one node. fill then creates what is still missing, in order.
func reuseConcurrently(ctx context.Context, group []*handler) {
	var g errgroup.Group
	g.SetLimit(32)
	for _, h := range group {
		if !h.req.Reuse || h.pw.l.unused.Count(poolKey(h.pw.provider.cfg.Name, h.pw.pool.Name)) == 0 {
			continue
		}
		g.Go(func() error {
			for _, label := range h.needed() {
				h.reuse(ctx, label)
			}
			return nil
		})
	}
	_ = g.Wait()
}

// takenSlot receives a request accepted by a concurrent take.
type takenSlot struct{ h *handler }

// accept locks the request and declines it (reason set) or takes it on
// and fills it.
func (w *poolWorker) accept(ctx context.Context, r *zkclient.NodeRequest, h *handler, reason string) {
	if w.take(ctx, r, h, reason) {
		w.fillAccepted(ctx, h)
	}
}

// take locks the request and declines it (reason set, false) or marks it
// pending (true).
func (w *poolWorker) take(ctx context.Context, r *zkclient.NodeRequest, h *handler, reason string) bool {
	lock := w.l.zk.RequestLock(r.ID)
	if reason != "" {
		got, err := lock.TryAcquire(ctx)
		if err != nil || !got {
			return false
		}
		fresh, err := w.l.zk.GetRequest(ctx, r.ID)
		if err != nil || fresh.State != zkclient.RequestRequested || fresh.DeclinedByID(w.id) {
			_ = lock.Release(ctx)
			return false
		}
		h.req, h.lock = fresh, lock
		h.decline(ctx, reason)
		return false
	}
	// Take the lock and write "pending" in one transaction, conditional
	// on the request being exactly the version we decided on (this
	// replaces upstream's re-read after locking).
	accepted := r.Clone()
	accepted.State = zkclient.RequestPending
	accepted.StateTime = unixNow(w.l.now())
	got, err := lock.TryAcquireWith(ctx, zkclient.RequestSet(accepted, r.Version))
	if err != nil || !got {
		return false
	}
	accepted.Version = r.Version + 1
	h.req, h.lock, h.accepted = accepted, lock, true
	w.explainf(h.req.ID, zkclient.ExplainHandling, "accepted; launching or reusing nodes")
	return true
}

// fillAccepted fills a just-accepted handler and makes it visible to
// poll and the paused retries.
func (w *poolWorker) fillAccepted(ctx context.Context, h *handler) {
	h.fill(ctx)
	w.mu.Lock()
	w.active = append(w.active, h)
	w.mu.Unlock()
}

// shortLabel returns a requested label with no ready node left in the
// label quota (only registrar providers have one), or "".
func shortLabel(q map[string]int, labels []string) string {
	if q == nil {
		return ""
	}
	need := map[string]int{}
	for _, t := range labels {
		need[t]++
		if avail, ok := q[t]; ok && avail < need[t] {
			return t
		}
	}
	return ""
}

// activeIDs returns the ids of the requests this pool is handling.
func (w *poolWorker) activeIDs() map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make(map[string]bool, len(w.active))
	for _, h := range w.active {
		ids[h.req.ID] = true
	}
	return ids
}

// maxTakePerPass bounds the requests one assignment pass takes on; the
// pass after it starts at once.
const maxTakePerPass = 256

// activeHandlers counts unfinished handlers of a provider's pools.
func (l *Launcher) activeHandlers(provider string) int {
	l.mu.Lock()
	ws := make([]*poolWorker, 0, len(l.workers))
	for _, w := range l.workers {
		if w.provider.cfg.Name == provider {
			ws = append(ws, w)
		}
	}
	l.mu.Unlock()
	n := 0
	for _, w := range ws {
		w.mu.Lock()
		n += len(w.active)
		w.mu.Unlock()
	}
	return n
}

// poll completes finished handlers.
func (w *poolWorker) poll(ctx context.Context) {
	w.mu.Lock()
	hs := append([]*handler(nil), w.active...)
	w.mu.Unlock()
	var keep []*handler
	var keepMu sync.Mutex
	var g errgroup.Group
	g.SetLimit(32)
	for _, h := range hs {
		g.Go(func() error {
			if !h.poll(ctx) {
				keepMu.Lock()
				keep = append(keep, h)
				keepMu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	seen := make(map[*handler]bool, len(hs))
	for _, h := range hs {
		seen[h] = true
	}
	w.mu.Lock()
	// Keep handlers added meanwhile.
	var added []*handler
	for _, h := range w.active {
		if !seen[h] {
			added = append(added, h)
		}
	}
	w.active = append(keep, added...)
	w.mu.Unlock()
}
