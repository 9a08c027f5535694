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

// oversized returns why a request is too large to serve, or "": larger
// than zkclient.MaxRequestSize, or with a requestor or tenant longer than
// zkclient.MaxCopiedField (both are copied into every node record).
func oversized(r *zkclient.NodeRequest) string {
	switch {
	case r.Size > zkclient.MaxRequestSize:
		return fmt.Sprintf("request too large: %d bytes, the limit is %d", r.Size, zkclient.MaxRequestSize)
	case len(r.Requestor) > zkclient.MaxCopiedField:
		return fmt.Sprintf("requestor too long: %d bytes, the limit is %d", len(r.Requestor), zkclient.MaxCopiedField)
	case len(r.TenantName) > zkclient.MaxCopiedField:
		return fmt.Sprintf("tenant_name too long: %d bytes, the limit is %d", len(r.TenantName), zkclient.MaxCopiedField)
	}
	return ""
}

// refuseOversized declines a request too large to serve (so it fails
// once every pool declined it) and reports whether r was such a request.
// It is checked before anything is launched for the request.
func (w *poolWorker) refuseOversized(ctx context.Context, r *zkclient.NodeRequest) bool {
	reason := oversized(r)
	if reason == "" {
		return false
	}
	if r.State != zkclient.RequestRequested || r.DeclinedByID(w.id) || w.l.unstorable.has(r.ID, r.Version) {
		return true
	}
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
