package launcher

import (
	"context"
	"fmt"
	"sync"

	"github.com/nodepool-go/nodepool/zkclient"
)

// unstorableSet remembers requests whose own update ZooKeeper cannot hold
// (zkclient.ErrTooLarge), by id and the data version seen, so the
// launcher neither retries nor re-logs them until they change.
type unstorableSet struct {
	mu sync.Mutex
	m  map[string]int32
}

func (s *unstorableSet) add(id string, version int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]int32{}
	}
	s.m[id] = version
}

func (s *unstorableSet) has(id string, version int32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	return ok && v == version
}

// prune forgets the requests for which exists reports false.
func (s *unstorableSet) prune(exists func(id string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.m {
		if !exists(id) {
			delete(s.m, id)
		}
	}
}

// refuseOversized declines a request larger than zkclient.MaxRequestSize
// (so it fails once every pool declined it) and reports whether r was
// such a request. The size is checked before anything is launched for
// it: the node records copy parts of the request and would not fit.
func (w *poolWorker) refuseOversized(ctx context.Context, r *zkclient.NodeRequest) bool {
	if r.Size <= zkclient.MaxRequestSize {
		return false
	}
	if r.State != zkclient.RequestRequested || r.DeclinedByID(w.id) || w.l.unstorable.has(r.ID, r.Version) {
		return true
	}
	reason := fmt.Sprintf("request too large: %d bytes, the limit is %d", r.Size, zkclient.MaxRequestSize)
	h := &handler{pw: w, req: r.Clone(), log: w.log.With("request", r.ID)}
	w.take(ctx, r, h, reason)
	return true
}

// pruneUnstorable forgets unstorable requests that are gone.
func (l *Launcher) pruneUnstorable() {
	l.unstorable.prune(func(id string) bool {
		_, ok := l.requests.Get(id)
		return ok
	})
}
