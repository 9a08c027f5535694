package launcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/zkclient"
)

// handler serves one request in one pool.
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
		if chk, ok := w.provider.adapter.(driver.LabelErrorChecker); ok {
			if err := chk.CheckLabel(ctx, lc); err != nil {
				if driver.KindOf(err) == driver.KindNotFound {
					return fmt.Errorf("cloud image %s of label %s not found", lc.CloudImage, t)
				}
				return fmt.Errorf("cannot look up cloud image %s of label %s: %v", lc.CloudImage, t, err)
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
