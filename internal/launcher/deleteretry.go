package launcher

import (
	"time"

	"github.com/nodepool-go/nodepool/zkclient"
)

// deleteRetries bounds the quick retries of one locked deletable node; the
// full passes keep trying it after that.
const deleteRetries = 3

// deleteRetryPause is the pause before the first quick retry (doubled for
// each further one).
const deleteRetryPause = 250 * time.Millisecond

// deleteRetry is the quick-retry state of one locked deletable node.
type deleteRetry struct {
	n  int       // attempts that found it locked
	at time.Time // no attempt before (except on full passes)
}

// retryLater reports whether a deletable node found locked recently waits
// for its retry.
func (l *Launcher) retryLater(n *zkclient.Node, full bool) bool {
	if full {
		return false
	}
	l.cleanup.mu.Lock()
	defer l.cleanup.mu.Unlock()
	r, ok := l.cleanup.retries[n.ID]
	if !ok && n.State == zkclient.NodeUsed {
		// Zuul writes "used" and then unlocks: the first attempt waits a
		// moment instead of costing a request that finds it locked.
		if l.cleanup.retries == nil {
			l.cleanup.retries = map[string]deleteRetry{}
		}
		l.cleanup.retries[n.ID] = deleteRetry{at: l.now().Add(usedPause)}
		return true
	}
	return ok && l.now().Before(r.at)
}

// usedPause is how long after it first sees a node "used" the
// deleted-node worker waits before locking it.
const usedPause = 100 * time.Millisecond

// retryDeleteSoon records that a deletable node was still locked: the
// passes that node changes start leave it alone until its retry is due,
// and a wake-up is scheduled for then (armRetry).
func (l *Launcher) retryDeleteSoon(id string) {
	l.cleanup.mu.Lock()
	defer l.cleanup.mu.Unlock()
	if l.cleanup.retries == nil {
		l.cleanup.retries = map[string]deleteRetry{}
	}
	r := l.cleanup.retries[id]
	r.n++
	r.at = l.now().Add(deleteRetryPause << min(r.n-1, deleteRetries))
	l.cleanup.retries[id] = r
}

// armRetry schedules one wake-up of the deleted-node worker for the
// earliest quick retry due, unless one is scheduled already.
func (l *Launcher) armRetry() {
	l.cleanup.mu.Lock()
	defer l.cleanup.mu.Unlock()
	if l.cleanup.retryArmed {
		return
	}
	var next time.Time
	now := l.now()
	for _, r := range l.cleanup.retries {
		if r.n <= deleteRetries && r.at.After(now) && (next.IsZero() || r.at.Before(next)) {
			next = r.at
		}
	}
	if next.IsZero() {
		return
	}
	l.cleanup.retryArmed = true
	time.AfterFunc(next.Sub(now), func() {
		l.cleanup.mu.Lock()
		l.cleanup.retryArmed = false
		l.cleanup.mu.Unlock()
		l.wakeDeleter()
	})
}

// forgetRetries drops the retry counts of nodes that are no longer
// deletable candidates.
func (l *Launcher) forgetRetries(cands []*zkclient.Node) {
	l.cleanup.mu.Lock()
	defer l.cleanup.mu.Unlock()
	if len(l.cleanup.retries) == 0 {
		return
	}
	ids := make(map[string]bool, len(cands))
	for _, n := range cands {
		ids[n.ID] = true
	}
	for id := range l.cleanup.retries {
		if !ids[id] {
			delete(l.cleanup.retries, id)
		}
	}
}
