package launcher

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/zkclient"
)

// minReady tracks the launcher's own min-ready requests.
type minReady struct {
	mu        sync.Mutex
	submitted map[string][]string // label → request ids
}

func (l *Launcher) runMinReady(ctx context.Context) {
	m := &l.minReady
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.submitted == nil {
		m.submitted = map[string][]string{}
	}
	for label, ids := range m.submitted {
		var keep []string
		for _, id := range ids {
			r, err := l.zk.GetRequest(ctx, id)
			if errors.Is(err, zkclient.ErrNoNode) {
				continue
			}
			if err != nil {
				keep = append(keep, id)
				continue
			}
			switch r.State {
			case zkclient.RequestFulfilled:
				for _, nid := range r.Nodes {
					n, err := l.zk.GetNode(ctx, nid)
					if err != nil || n.AllocatedTo != id {
						continue
					}
					n.AllocatedTo = ""
					if err := l.zk.StoreNode(ctx, n, nil); err != nil {
						l.log.Warn("releasing min-ready node failed", "node", nid, "error", err)
					}
				}
				_ = l.zk.DeleteRequest(ctx, id)
			case zkclient.RequestFailed:
				_ = l.zk.DeleteRequest(ctx, id)
			default:
				keep = append(keep, id)
			}
		}
		if len(keep) == 0 {
			delete(m.submitted, label)
		} else {
			m.submitted[label] = keep
		}
	}
	cfg := l.Config()
	var want []*config.LabelConfig
	for _, lc := range cfg.Labels {
		if lc.MinReady > 0 && len(m.submitted[lc.Name]) == 0 {
			want = append(want, lc)
		}
	}
	if len(want) == 0 {
		return
	}
	// The cache tells cheaply whether any label is short; only then are
	// the nodes counted from ZooKeeper itself (as upstream does, so that a
	// lagging cache never over-creates).
	short := false
	cached := readyCounts(l.nodes.List())
	for _, lc := range want {
		if cached[lc.Name] < lc.MinReady {
			short = true
			break
		}
	}
	if !short {
		return
	}
	nodes, err := l.zk.Nodes(ctx, nil)
	if err != nil {
		l.log.Warn("min-ready: reading nodes failed", "error", err)
		return
	}
	ready := readyCounts(nodes)
	for _, lc := range want {
		need := lc.MinReady - ready[lc.Name]
		if need <= 0 || !l.labelServable(ctx, lc.Name) {
			continue
		}
		for i := 0; i < need; i++ {
			req := &zkclient.NodeRequest{State: zkclient.RequestRequested, StateTime: unixNow(l.now()),
				NodeTypes: []string{lc.Name}, Reuse: false, Requestor: zkclient.RequestorMinReady,
				EventID: strings.ReplaceAll(uuid.NewString(), "-", "")}
			id, err := l.zk.SubmitRequest(ctx, req, "900", true)
			if err != nil {
				l.log.Warn("min-ready: submitting request failed", "label", lc.Name, "error", err)
				break
			}
			m.submitted[lc.Name] = append(m.submitted[lc.Name], id)
		}
	}
}

// labelServable reports whether some running pool serves the label and
// its image is available.
func (l *Launcher) labelServable(ctx context.Context, label string) bool {
	l.mu.Lock()
	ws := make([]*poolWorker, 0, len(l.workers))
	for _, w := range l.workers {
		ws = append(ws, w)
	}
	l.mu.Unlock()
	for _, w := range ws {
		if w.pool.Label(label) != nil && w.imagesAvailable(ctx, []string{label}) == nil {
			return true
		}
	}
	return false
}

// readyCounts counts ready, unallocated nodes per label.
func readyCounts(nodes []*zkclient.Node) map[string]int {
	ready := map[string]int{}
	for _, n := range nodes {
		if n.State == zkclient.NodeReady && n.AllocatedTo == "" {
			for _, t := range n.Type {
				ready[t]++
			}
		}
	}
	return ready
}
