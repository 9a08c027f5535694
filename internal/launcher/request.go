package launcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/version"
	"github.com/nodepool-go/nodepool/zkclient"
)

// poolWorker selects requests for one provider pool and runs a handler
// for each request it accepts (launcher.md §5–§8).
type poolWorker struct {
	l        *Launcher
	provider *provider
	pool     *driver.PoolConfig
	id       string // launcher id: "<host>-PoolWorker.<provider>-<pool>-<hex>"
	log      *slog.Logger
	comp     *zkclient.Component

	// pausedNow is how many handlers were paused at the end of the last
	// pass, for readers outside the worker's goroutine (Placements).
	pausedNow atomic.Int32

	mu       sync.Mutex
	active   []*handler
	explain  explainer
	wake     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
	finished bool
}

func newPoolWorker(l *Launcher, p *provider, pool *driver.PoolConfig) *poolWorker {
	id := fmt.Sprintf("%s-PoolWorker.%s-%s-%s", l.hostname, p.cfg.Name, pool.Name, strings.ReplaceAll(uuid.NewString(), "-", ""))
	return &poolWorker{l: l, provider: p, pool: pool, id: id,
		log:  l.log.With("provider", p.cfg.Name, "pool", pool.Name),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (w *poolWorker) kick() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *poolWorker) component() *zkclient.Component {
	return &zkclient.Component{Kind: zkclient.KindPool, Hostname: w.l.hostname, State: zkclient.ComponentRunning,
		Release: version.Version, ID: w.id, ProviderName: w.provider.cfg.Name,
		SupportedLabels: w.pool.LabelNames(), Priority: w.provider.cfg.EffectivePriority(w.pool)}
}

func (w *poolWorker) start(ctx context.Context) error {
	w.comp = w.component()
	if err := w.l.zk.RegisterComponent(ctx, w.comp); err != nil {
		return err
	}
	ctx, w.cancel = context.WithCancel(ctx)
	go w.loop(ctx)
	return nil
}

func (w *poolWorker) dead() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.finished
}

// stop unregisters the pool and releases paused handlers' locks; launches
// in flight stay with the provider.
func (w *poolWorker) stop() {
	if w.cancel == nil {
		return
	}
	w.cancel()
	<-w.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = w.l.zk.UnregisterComponent(ctx, w.comp)
	_ = w.l.zk.RemovePoolStatus(ctx, w.id)
	w.mu.Lock()
	handlers := w.active
	w.active = nil
	w.mu.Unlock()
	for _, h := range handlers {
		if h.paused {
			h.releaseAll(ctx, true)
		}
	}
}

func (w *poolWorker) loop(ctx context.Context) {
	defer func() {
		w.mu.Lock()
		w.finished = true
		w.mu.Unlock()
		close(w.done)
	}()
	reqCh := w.l.requests.Subscribe()
	nodeCh := w.l.nodes.Subscribe()
	poolCh := w.l.pools.Subscribe()
	sessions := w.l.zk.Subscribe()
	defer w.l.zk.Unsubscribe(sessions)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if w.l.zk.Connected() {
			w.pass(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-reqCh:
		case <-nodeCh:
		case <-poolCh:
		case <-w.wake:
		case <-t.C:
		case ev := <-sessions:
			if ev.State == zkclient.StateLost {
				w.dropHandlers()
			}
			if ev.State == zkclient.StateConnected {
				w.reregister(ctx)
			}
		}
	}
}

// dropHandlers forgets every handler after a session loss: their locks
// are gone and other launchers may now serve their requests.
func (w *poolWorker) dropHandlers() {
	w.mu.Lock()
	var lost, keep []*handler
	for _, h := range w.active {
		// A handler that locked its request in the new session (between
		// the expiry and this notification) still holds a valid lock.
		if h.lock != nil && h.lock.Held() {
			keep = append(keep, h)
		} else {
			lost = append(lost, h)
		}
	}
	w.active = keep
	w.mu.Unlock()
	for _, h := range lost {
		h.forget()
	}
	w.log.Warn("ZooKeeper session lost; dropped request handlers", "handlers", len(lost))
}

func (w *poolWorker) reregister(ctx context.Context) {
	ok, _, err := w.l.zk.Exists(ctx, zkclient.ComponentPath(zkclient.KindPool)+"/"+w.comp.Name)
	if err != nil || ok {
		return
	}
	comp := w.component()
	if err := w.l.zk.RegisterComponent(ctx, comp); err != nil {
		w.log.Error("re-registering pool failed", "error", err)
		return
	}
	w.comp = comp
}

// pass is one iteration: paused handlers, assignment, completion.
func (w *poolWorker) pass(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("pool worker pass panicked", "panic", r)
		}
	}()
	w.updateComponent(ctx)
	w.processPaused(ctx)
	w.assign(ctx)
	w.poll(ctx)
	w.pausedNow.Store(int32(len(w.pausedRequests())))
	w.publishExplanations(ctx, false)
}

func (w *poolWorker) paused() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, h := range w.active {
		if h.paused {
			return true
		}
	}
	return false
}

func (w *poolWorker) updateComponent(ctx context.Context) {
	paused := w.paused()
	labels := w.pool.LabelNames()
	prio := w.provider.cfg.EffectivePriority(w.pool)
	if w.comp.Paused == paused && w.comp.Priority == prio && slices.Equal(w.comp.SupportedLabels, labels) {
		return
	}
	w.comp.Paused, w.comp.Priority, w.comp.SupportedLabels = paused, prio, labels
	if err := w.l.zk.UpdateComponent(ctx, w.comp); err != nil {
		if cur, ok := w.l.pools.Get(w.comp.Name); ok {
			w.comp.Version = cur.Version
		}
		w.log.Debug("updating pool component failed", "error", err)
	}
}

// processPaused retries paused handlers in request-priority order.
func (w *poolWorker) processPaused(ctx context.Context) {
	w.mu.Lock()
	var paused []*handler
	for _, h := range w.active {
		if h.paused {
			paused = append(paused, h)
		}
	}
	w.mu.Unlock()
	if len(paused) == 0 {
		return
	}
	slices.SortStableFunc(paused, func(a, b *handler) int { return zkclient.CompareRequests(a.req, b.req) })
	for _, h := range paused {
		h.run(ctx)
	}
}

// assign runs the request-selection pass (launcher.md §6).
func (w *poolWorker) assign(ctx context.Context) {
	cfg := w.provider.cfg
	if cfg.MaxConcurrency == 0 {
		return
	}
	poolLabels := map[string]bool{}
	for _, lb := range w.pool.Labels {
		poolLabels[lb.Name] = true
	}
	reqs := w.l.requests.List()
	sortRequests(reqs, poolLabels)
	registered := w.l.registeredPools()
	myPrio := cfg.EffectivePriority(w.pool)
	labelQuota := w.provider.labelQuota()
	start := time.Now()
	var g errgroup.Group
	g.SetLimit(32)
	var taken []*takenSlot
	active := w.activeIDs()
	paused := w.paused()
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
			w.poll(ctx)
			w.processPaused(ctx)
			start = time.Now()
			active, paused = w.activeIDs(), w.paused()
		}
		if r.DeclinedByID(w.id) {
			if !w.hasExplanation(r.ID) {
				w.explainf(r.ID, zkclient.ExplainDeclined, "declined by this pool")
			}
			continue
		}
		if r.State != zkclient.RequestRequested {
			continue
		}
		if active[r.ID] {
			continue
		}
		candidates := candidatePools(registered, r)
		if r.Provider != "" && r.Provider != cfg.Name {
			if hasProvider(candidates, r.Provider) {
				w.explainf(r.ID, zkclient.ExplainDeferred, "left to provider "+r.Provider+", which the request prefers")
				continue
			}
		}
		if c := lowerPriority(candidates, myPrio); c != nil {
			w.explainf(r.ID, zkclient.ExplainDeferred, fmt.Sprintf("left to pool %s (priority %d < %d)", c.ID, c.Priority, myPrio))
			continue
		}
		missing := false
		for _, t := range r.NodeTypes {
			if !poolLabels[t] {
				missing = true
			}
		}
		if missing && len(candidates) > 0 {
			w.explainf(r.ID, zkclient.ExplainDeferred, "left to pools that have every requested label")
			continue
		}
		if short := shortLabel(labelQuota, r.NodeTypes); short != "" {
			w.explainf(r.ID, zkclient.ExplainDeferred, "no ready node with label "+short)
			continue
		}
		if v := w.tenantVerdict(ctx, r); !v.ok {
			w.explainQuota(r.ID, zkclient.ExplainDeferred, "tenant limit reached", v)
			continue
		}
		h := &handler{pw: w, req: r.Clone(), log: w.log.With("request", r.ID)}
		reason, err := h.declineReason(ctx)
		if err != nil {
			w.explainf(r.ID, zkclient.ExplainDeferred, err.Error())
			continue
		}
		if reason == "" && paused {
			w.explainBehind(r.ID, "pool is paused at quota; queued behind its paused requests", w.pausedRequests())
			continue
		}
		if reason == "" && cfg.MaxConcurrency > 0 && w.l.activeHandlers(cfg.Name) >= cfg.MaxConcurrency {
			w.explainf(r.ID, zkclient.ExplainDeferred, fmt.Sprintf("provider max-concurrency %d reached", cfg.MaxConcurrency))
			continue
		}
		if labelQuota != nil {
			// Registered hosts: accept one at a time, keeping the quota exact.
			w.accept(ctx, r, h, reason)
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
			if w.take(ctx, r, h, reason) {
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
		reuseConcurrently(ctx, batch)
		fillAll := func() error {
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
				h.lockCreated(ctx)
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
	got, err := lock.TryAcquireWith(ctx, zkclient.SetOp{Path: zkclient.RequestPath(r.ID), Data: accepted.AppendJSON(nil), Version: r.Version})
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

// poll completes finished handlers (launcher.md §7.6).
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
	w.mu.Lock()
	// Keep handlers added meanwhile.
	var added []*handler
	for _, h := range w.active {
		found := false
		for _, x := range hs {
			if x == h {
				found = true
				break
			}
		}
		if !found {
			added = append(added, h)
		}
	}
	w.active = append(keep, added...)
	w.mu.Unlock()
}

func candidatePools(registered []*zkclient.Component, r *zkclient.NodeRequest) []*zkclient.Component {
	var out []*zkclient.Component
	for _, c := range registered {
		if r.DeclinedByID(c.ID) {
			continue
		}
		labels := map[string]bool{}
		for _, l := range c.SupportedLabels {
			labels[l] = true
		}
		ok := true
		for _, t := range r.NodeTypes {
			if !labels[t] {
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

func hasProvider(cs []*zkclient.Component, provider string) bool {
	for _, c := range cs {
		if c.ProviderName == provider {
			return true
		}
	}
	return false
}

func lowerPriority(cs []*zkclient.Component, mine int) *zkclient.Component {
	for _, c := range cs {
		if c.Priority < mine && !c.Paused {
			return c
		}
	}
	return nil
}

// handler serves one request in one pool (launcher.md §7).
type handler struct {
	pw     *poolWorker
	req    *zkclient.NodeRequest
	lock   *zkclient.Lock
	log    *slog.Logger
	nodes  []*handlerNode
	paused bool
	done   bool
	az     string
	// accepted is set when the request was already stored as pending.
	accepted bool
	// toLock holds created nodes not locked yet; deferLocks leaves locking
	// them to the caller.
	toLock     []pendingLock
	deferLocks bool
	// toCreate holds nodes whose quota is reserved, created by the caller
	// (deferLocks only).
	toCreate []reservedNode
}

type handlerNode struct {
	node   *zkclient.Node
	lock   *zkclient.Lock
	label  string
	launch *nodeLaunch
}

func (h *handler) requestInfo() driver.RequestInfo {
	return driver.RequestInfo{ID: h.req.ID, Labels: h.req.NodeTypes, Requestor: h.req.Requestor,
		RelativePriority: h.req.RelativePriority, EventID: h.req.EventID, TenantName: h.req.TenantName,
		RequestorData: h.req.RequestorData}
}

// errWait marks a request that this pool may serve later but not now (an
// image not uploaded yet, ZooKeeper unreachable): it is deferred, never
// declined.
type errWait struct{ msg string }

func (e *errWait) Error() string { return e.msg }

// declineReason returns why this pool cannot serve the request ("" when it
// can), or an *errWait when that cannot be decided now.
func (h *handler) declineReason(ctx context.Context) (string, error) {
	reason, _, err := h.declineVerdict(ctx)
	return reason, err
}

// declineVerdict is declineReason with the provider-quota verdict that
// is the reason, when it is (okVerdict otherwise).
func (h *handler) declineVerdict(ctx context.Context) (string, verdict, error) {
	pool := h.pw.pool
	if pool.MaxServers <= 0 {
		return "pool is disabled by max_servers", okVerdict, nil
	}
	var missing []string
	for _, t := range h.req.NodeTypes {
		if pool.Label(t) == nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("node type(s) [%s] not available", strings.Join(missing, ", ")), okVerdict, nil
	}
	if err := h.pw.imagesAvailable(ctx, h.req.NodeTypes); err != nil {
		var w *errWait
		if errors.As(err, &w) {
			return "", okVerdict, err
		}
		return "images are not available: " + err.Error(), okVerdict, nil
	}
	v, err := h.pw.provider.hasProviderQuota(ctx, pool, h.req.NodeTypes)
	if err != nil {
		return "error computing quota: " + err.Error(), okVerdict, nil
	}
	if !v.ok {
		return "it would exceed quota (" + v.String() + ")", v, nil
	}
	return "", okVerdict, nil
}

// imagesAvailable checks every label's image: a missing cloud image is an
// error (decline); a diskimage without a ready upload in this provider,
// or ZooKeeper being unreachable, is an *errWait (the request waits — a
// deliberate difference: upstream declines).
func (w *poolWorker) imagesAvailable(ctx context.Context, labels []string) error {
	for _, t := range labels {
		lc := w.pool.Label(t)
		if lc == nil {
			return fmt.Errorf("label %s not in pool", t)
		}
		if lc.Diskimage != "" {
			up, err := w.provider.recentUpload(ctx, lc.Diskimage)
			if err != nil {
				return &errWait{"cannot read image uploads: " + err.Error()}
			}
			if up == nil {
				return &errWait{fmt.Sprintf("waiting for an upload of diskimage %s to %s", lc.Diskimage, w.provider.cfg.Name)}
			}
			continue
		}
		if chk, ok := w.provider.adapter.(driver.LabelChecker); ok && !chk.LabelReady(ctx, lc) {
			return fmt.Errorf("cloud image %s of label %s not found", lc.CloudImage, t)
		}
	}
	return nil
}

// run accepts (or retries) the request and fills its node set.
func (h *handler) run(ctx context.Context) {
	if h.done {
		return
	}
	reason, err := h.declineReason(ctx)
	if err != nil {
		h.pw.explainf(h.req.ID, zkclient.ExplainPaused, err.Error())
		return // a paused handler retries; a new one was checked in assign
	}
	if reason != "" {
		h.decline(ctx, reason)
		return
	}
	if !h.paused {
		h.pw.explainf(h.req.ID, zkclient.ExplainHandling, "accepted; launching or reusing nodes")
	}
	if !h.paused && !h.accepted {
		h.accepted = true
		h.req.State = zkclient.RequestPending
		h.req.StateTime = unixNow(h.pw.l.now())
		if err := h.pw.l.zk.StoreRequest(ctx, h.req, h.lock); err != nil {
			h.log.Warn("accepting request failed", "error", err)
			if errors.Is(err, zkclient.ErrLockLost) {
				h.forget()
			} else {
				h.releaseAll(ctx, true)
			}
			return
		}
	}
	h.fill(ctx)
}

// needed returns the labels still to satisfy, in request order.
func (h *handler) needed() []string {
	have := map[string]int{}
	for _, n := range h.nodes {
		have[n.label]++
	}
	for _, pl := range h.toLock {
		have[pl.label]++
	}
	for _, rn := range h.toCreate {
		have[rn.label]++
	}
	var out []string
	for _, t := range h.req.NodeTypes {
		if have[t] > 0 {
			have[t]--
			continue
		}
		out = append(out, t)
	}
	return out
}

// fill reuses ready nodes or launches new ones for each needed label.
// fill reuses or launches nodes for every needed label, then locks the
// new nodes (unless the caller locks them, for several handlers at once).
func (h *handler) fill(ctx context.Context) {
	h.fillLabels(ctx)
	if !h.deferLocks {
		h.lockCreated(ctx)
	}
}

type pendingLock struct {
	n     *zkclient.Node
	label string
}

// lockCreated locks the nodes created by fillLabels and starts their
// launches; new nodes of a handler that gave up meanwhile are orphaned
// (deleted by the cleanup).
func (h *handler) lockCreated(ctx context.Context) {
	pending := h.toLock
	h.toLock = nil
	for i, pl := range pending {
		if h.done {
			h.pw.l.orphanInit(pl.n.ID)
			continue
		}
		err := h.lockNewNode(ctx, pl.n, pl.label)
		if err == nil {
			continue
		}
		for _, rest := range pending[i+1:] {
			h.pw.l.orphanInit(rest.n.ID)
		}
		h.launchFailed(ctx, err)
		return
	}
}

// launchFailed handles an error creating or locking a new node: a lost
// request lock forgets the request, ZooKeeper trouble pauses it for a
// retry, anything else declines it.
func (h *handler) launchFailed(ctx context.Context, err error) {
	switch {
	case errors.Is(err, zkclient.ErrLockLost):
		h.forget()
	case zkclient.IsConnectionError(err) || ctx.Err() != nil:
		h.log.Warn("ZooKeeper unavailable while launching; will retry", "error", err)
		h.paused = true
		h.pw.explainf(h.req.ID, zkclient.ExplainPaused, "ZooKeeper unavailable; retrying")
	default:
		h.log.Error("launching node failed", "error", err)
		h.decline(ctx, "error launching node: "+err.Error())
	}
}

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
				h.toCreate = append(h.toCreate, reservedNode{n: n, label: label, key: p.reserve(n)})
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
	h.pw.provider.notePending(n)
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
				h.pw.provider.settle(rn.key, nil, false)
			}
			h.toCreate = nil
			continue
		}
		for i := range h.toCreate {
			rn := &h.toCreate[i]
			g.Go(func() error {
				_, rn.err = h.pw.l.zk.CreateNode(ctx, rn.n)
				h.pw.provider.settle(rn.key, rn.n, rn.err == nil)
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
	got, err := lock.TryAcquireWith(ctx, zkclient.SetOp{Path: zkclient.NodePath(n.ID), Data: building.AppendJSON(nil), Version: n.Version})
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

// poll reports whether the handler is finished (launcher.md §7.6).
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
	err := l.zk.ReleaseWith(ctx, locks, zkclient.SetOp{Path: zkclient.RequestPath(h.req.ID), Data: h.req.AppendJSON(nil), Version: -1})
	switch {
	case err == nil:
		h.nodes = nil
	case errors.Is(err, zkclient.ErrNoNode) && !l.zk.Connected():
		return false // retry once connected
	default:
		if ok, _, xerr := l.zk.Exists(ctx, zkclient.RequestPath(h.req.ID)); xerr == nil && !ok {
			h.requestGone(ctx)
			return true
		}
		// Fall back to the step-by-step order of upstream.
		h.releaseNodes(ctx, false)
		if err := l.zk.StoreRequest(ctx, h.req, h.lock); err != nil {
			h.log.Warn("storing request failed", "error", err)
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
		h.log.Warn("storing declined request failed", "error", err)
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
// so an at-quota pool cannot wedge (launcher.md §7.4).
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
