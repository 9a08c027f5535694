package launcher

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodepool-go/nodepool/internal/logconfig"

	"github.com/google/uuid"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/version"
	"github.com/nodepool-go/nodepool/zkclient"
)

// poolWorker selects requests for one provider pool and runs a handler
// for each request it accepts.
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
		log:  l.log.With(logconfig.LoggerKey, "nodepool.PoolWorker."+p.cfg.Name+"-"+pool.Name),
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
		Release: version.String(), ID: w.id, ProviderName: w.provider.cfg.Name,
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
	w.updateComponent(inPhase(ctx, phaseStatus))
	w.processPaused(inPhase(ctx, phasePaused))
	w.assign(ctx)
	w.poll(inPhase(ctx, phaseFulfil))
	w.pausedNow.Store(int32(len(w.pausedRequests())))
	w.publishExplanations(inPhase(ctx, phaseStatus), false)
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
