package launcher

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool/zkclient"
)

// explainer keeps, for one pool worker, why each request it saw waits, and
// publishes it to ZooKeeper (zkclient.PoolStatusRoot) so `nodepool
// request-explain` and the web API can answer "why is my request waiting?".
type explainer struct {
	mu        sync.Mutex
	m         map[string]zkclient.Explanation
	published map[string]zkclient.Explanation
	paused    bool
	lastPub   time.Time
}

// maxReason bounds the bytes of an explanation's reason.
const maxReason = 1024

func (w *poolWorker) setExplanation(e zkclient.Explanation) {
	x := &w.explain
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil {
		x.m = map[string]zkclient.Explanation{}
	}
	e.PoolID, e.Provider, e.Pool = w.id, w.provider.cfg.Name, w.pool.Name
	if len(e.Reason) > maxReason {
		// Reasons may quote a cloud's error text: keep them short.
		e.Reason = strings.ToValidUTF8(e.Reason[:maxReason], "") + "..."
	}
	if old, ok := x.m[e.Request]; ok && old.Status == e.Status && old.Reason == e.Reason && old.Limit == e.Limit {
		e.Since = old.Since
	} else {
		e.Since = unixNow(w.l.now())
	}
	x.m[e.Request] = e
}

// explainf records a status and reason for a request.
func (w *poolWorker) explainf(req, status, reason string) {
	w.setExplanation(zkclient.Explanation{Request: req, Status: status, Reason: reason})
}

// explainQuota records a wait on a limit, with its numbers.
func (w *poolWorker) explainQuota(req, status, reason string, v verdict) {
	w.setExplanation(zkclient.Explanation{Request: req, Status: status, Reason: reason + ": " + v.String(),
		Limit: v.limit, Resource: v.resource, Used: v.used, Needed: v.needed, Max: v.max})
}

// explainBehind records that a request is queued behind others.
func (w *poolWorker) explainBehind(req, reason string, behind []string) {
	w.setExplanation(zkclient.Explanation{Request: req, Status: zkclient.ExplainDeferred, Reason: reason, Behind: behind})
}

func (w *poolWorker) hasExplanation(req string) bool {
	w.explain.mu.Lock()
	defer w.explain.mu.Unlock()
	_, ok := w.explain.m[req]
	return ok
}

// pausedRequests returns the ids of the worker's paused requests in order.
func (w *poolWorker) pausedRequests() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, h := range w.active {
		if h.paused {
			out = append(out, h.req.ID)
		}
	}
	sort.Strings(out)
	return out
}

// publishExplanations drops explanations of vanished or finished
// requests and writes the pool's status when it changed (at most every
// 250 ms).
func (w *poolWorker) publishExplanations(ctx context.Context, force bool) {
	x := &w.explain
	x.mu.Lock()
	for id, e := range x.m {
		r, ok := w.l.requests.Get(id)
		if !ok || r.State == zkclient.RequestFulfilled || (r.State == zkclient.RequestFailed && e.Status != zkclient.ExplainDeclined) {
			delete(x.m, id)
		}
	}
	paused := w.paused()
	changed := paused != x.paused || !reflect.DeepEqual(x.m, x.published)
	if !changed || (!force && time.Since(x.lastPub) < 250*time.Millisecond) {
		x.mu.Unlock()
		return
	}
	st := &zkclient.PoolStatus{PoolID: w.id, Provider: w.provider.cfg.Name, Pool: w.pool.Name, Paused: paused}
	snapshot := make(map[string]zkclient.Explanation, len(x.m))
	for id, e := range x.m {
		snapshot[id] = e
		st.Requests = append(st.Requests, e)
	}
	sort.Slice(st.Requests, func(i, j int) bool { return st.Requests[i].Request < st.Requests[j].Request })
	x.mu.Unlock()
	err := w.l.zk.PublishPoolStatus(ctx, st)
	for zkclient.IsTooLarge(err) && len(st.Requests) > 1 {
		// Too many explanations for one record: publish those of the
		// requests served first.
		st.Requests = st.Requests[:len(st.Requests)/2]
		err = w.l.zk.PublishPoolStatus(ctx, st)
	}
	if err != nil {
		w.log.Debug("publishing pool status failed", "error", err)
		return
	}
	x.mu.Lock()
	x.published, x.paused, x.lastPub = snapshot, paused, time.Now()
	x.mu.Unlock()
}
