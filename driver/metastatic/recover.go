package metastatic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/zkclient"
)

// init makes sure we serve the provider: it takes the provider's serve
// lock (ErrStandby when another launcher holds it) and then rebuilds the
// records from ZooKeeper, plus the backing
// requests left in flight by a previous server of this provider. Losing
// the lock with the session drops the records; the next call recovers.
func (a *Adapter) init(ctx context.Context) error {
	a.initMu.Lock()
	defer a.initMu.Unlock()
	if a.inited && a.serve.Held() {
		return nil
	}
	if a.serve != nil && !a.serve.Held() {
		a.log.Warn("lost the serve lock with the ZooKeeper session; dropping the backing node records")
		_ = a.serve.Release(ctx)
		a.serve = nil
	}
	if a.inited {
		a.inited = false
		a.mu.Lock()
		for _, rs := range a.records {
			for _, r := range rs {
				r.failed = true // waiting machines fail and retry
			}
		}
		a.records = map[string][]*record{}
		a.mu.Unlock()
	}
	if a.serve == nil {
		l := a.zk.NewLock(ServeLockRoot+"/"+a.cfg.Name, zkclient.WithIdentifier(a.id))
		got, err := l.TryAcquire(ctx)
		if err != nil {
			return fmt.Errorf("%s: taking the serve lock: %w", Name, err)
		}
		if !got {
			return ErrStandby
		}
		a.serve = l
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.recover(ctx); err != nil {
		a.records = map[string][]*record{}
		return fmt.Errorf("%s: recovering backing nodes: %w", Name, err)
	}
	a.inited = true
	return nil
}

func (a *Adapter) recover(ctx context.Context) error {
	nodes, err := a.zk.Nodes(ctx, nil)
	if err != nil {
		return err
	}
	now := a.now()
	byNode := map[string]*record{}
	for _, n := range nodes {
		ud, ok := ParseUserData(n.UserData)
		if !ok || ud.Owner != a.id {
			continue
		}
		contender, err := a.ourContender(ctx, n.ID)
		if err != nil {
			return err
		}
		if contender == "" {
			continue
		}
		if n.State != zkclient.NodeInUse {
			// A release that stopped half-way: finish it.
			a.log.Info("finishing the release of a backing node", "node", n.ID, "state", n.State)
			if err := a.release(ctx, n.ID); err != nil {
				return err
			}
			continue
		}
		r := newRecord(ud.Label, ud.Slots, now)
		r.nodeID = n.ID
		byNode[n.ID] = r
		a.records[ud.Label] = append(a.records[ud.Label], r)
		a.log.Info("recovered backing node", "node", n.ID, "label", ud.Label, "slots", ud.Slots)
	}
	for _, n := range nodes {
		if n.Provider != a.cfg.Name || len(n.DriverData) == 0 {
			continue
		}
		var dd DriverData
		if json.Unmarshal(n.DriverData, &dd) != nil {
			continue
		}
		r := byNode[dd.BackingNode]
		if r == nil || dd.Slot < 0 || dd.Slot >= len(r.slots) || r.slots[dd.Slot] != "" {
			continue
		}
		r.slots[dd.Slot] = n.ID
	}
	reqs, err := a.zk.Requests(ctx, nil)
	if err != nil {
		return err
	}
	for _, req := range reqs {
		if req.Requestor != a.id {
			continue
		}
		taken := req.State == zkclient.RequestFulfilled && len(req.Nodes) > 0 && byNode[req.Nodes[0]] != nil
		if req.State == zkclient.RequestFailed || taken || len(req.NodeTypes) == 0 {
			if err := a.zk.DeleteRequest(ctx, req.ID); err != nil {
				return err
			}
			continue
		}
		label := a.labelFor(req.NodeTypes[0])
		slots := 1
		if s := a.settings(label); s != nil {
			slots = s.MaxParallelJobs
		}
		r := newRecord(label, slots, now)
		r.requestID = req.ID
		a.records[label] = append(a.records[label], r)
		a.log.Info("adopted backing node request", "request", req.ID, "state", req.State, "label", label)
	}
	// A node we locked for a request that has vanished since (deleted by
	// someone else before we wrote our user_data) is ready, allocated to
	// nothing its provider could free while we lock it: unlock it.
	live := map[string]bool{}
	for _, req := range reqs {
		live[req.ID] = true
	}
	for _, n := range nodes {
		if n.State != zkclient.NodeReady || n.AllocatedTo == "" || live[n.AllocatedTo] || byNode[n.ID] != nil {
			continue
		}
		mine, err := a.ourContenders(ctx, n.ID)
		if err != nil {
			return err
		}
		for _, p := range mine {
			if err := a.zk.Delete(ctx, p, -1); err != nil && !errors.Is(err, zkclient.ErrNoNode) {
				return err
			}
		}
		if len(mine) > 0 {
			a.log.Info("unlocked a node whose backing request vanished", "node", n.ID, "request", n.AllocatedTo)
		}
	}
	return nil
}

// ourContender returns the path of the first contender of the node's lock
// when it carries our identifier, else "".
func (a *Adapter) ourContender(ctx context.Context, nodeID string) (string, error) {
	dir := zkclient.NodeLockPath(nodeID)
	children, err := a.zk.Children(ctx, dir)
	if errors.Is(err, zkclient.ErrNoNode) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	sorted := zkclient.SortContenders(children)
	if len(sorted) == 0 {
		return "", nil
	}
	p := dir + "/" + sorted[0]
	data, _, err := a.zk.Get(ctx, p)
	if errors.Is(err, zkclient.ErrNoNode) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if string(data) != a.id {
		return "", nil
	}
	return p, nil
}

// ourContenders returns every contender of the node's lock with our
// identifier.
func (a *Adapter) ourContenders(ctx context.Context, nodeID string) ([]string, error) {
	dir := zkclient.NodeLockPath(nodeID)
	children, err := a.zk.Children(ctx, dir)
	if errors.Is(err, zkclient.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ch := range zkclient.SortContenders(children) {
		data, _, err := a.zk.Get(ctx, dir+"/"+ch)
		if errors.Is(err, zkclient.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if string(data) == a.id {
			out = append(out, dir+"/"+ch)
		}
	}
	return out, nil
}

// --- allocation ----------------------------------------------------------------

// allocate puts nodeID into the first free slot of the label's records,
// requesting a new backing node when there is none.
func (a *Adapter) allocate(ctx context.Context, label *driver.LabelConfig, nodeID string) (*record, int, error) {
	st, ok := label.Settings.(*LabelSettings)
	if !ok {
		return nil, 0, fmt.Errorf("%s: label %s has no metastatic settings", Name, label.Name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.records[label.Name] {
		if i := r.freeSlot(); i >= 0 {
			r.slots[i] = nodeID
			return r, i, nil
		}
	}
	now := a.now()
	req := &zkclient.NodeRequest{
		State:       zkclient.RequestRequested,
		StateTime:   float64(now.UnixNano()) / 1e9,
		CreatedTime: float64(now.UnixNano()) / 1e9,
		NodeTypes:   []string{st.BackingLabel},
		Reuse:       true,
		Requestor:   a.id,
	}
	if _, err := a.zk.SubmitRequest(ctx, req, BackingPriority, false); err != nil {
		return nil, 0, fmt.Errorf("%s: requesting a backing node: %w", Name, err)
	}
	a.log.Info("requested backing node", "request", req.ID, "label", label.Name, "backing_label", st.BackingLabel)
	r := newRecord(label.Name, st.MaxParallelJobs, now)
	r.requestID = req.ID
	r.slots[0] = nodeID
	a.records[label.Name] = append(a.records[label.Name], r)
	return r, 0, nil
}
