package metastatic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/zkclient"
)

// deallocate frees the slot holding nodeID, if any.
func (a *Adapter) deallocate(nodeID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, rs := range a.records {
		for _, r := range rs {
			for i, s := range r.slots {
				if s == nodeID {
					r.slots[i] = ""
					r.lastUsed = a.now()
					return
				}
			}
		}
	}
}

// drop removes a record; a.mu is held.
func (a *Adapter) drop(r *record) {
	rs := a.records[r.label]
	for i, x := range rs {
		if x == r {
			a.records[r.label] = append(rs[:i:i], rs[i+1:]...)
			break
		}
	}
	if len(a.records[r.label]) == 0 {
		delete(a.records, r.label)
	}
}

// checkRequests advances every record waiting for its backing node.
func (a *Adapter) checkRequests(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var all []*record
	for _, rs := range a.records {
		all = append(all, rs...)
	}
	for _, r := range all {
		a.checkRecord(ctx, r)
	}
}

// checkRecord advances one record waiting for its backing node, reading
// its request at most every checkInterval; a.mu is held.
func (a *Adapter) checkRecord(ctx context.Context, r *record) {
	if r.nodeID != "" || r.failed || r.requestID == "" {
		return
	}
	now := a.now()
	if now.Sub(r.checkedAt) < checkInterval {
		return
	}
	r.checkedAt = now
	if err := a.checkRequest(ctx, r); err != nil {
		a.log.Warn("checking backing node request failed", "request", r.requestID, "error", err)
	}
}

// fail marks a waiting record failed and removes it; a.mu is held.
func (a *Adapter) fail(ctx context.Context, r *record, why string) {
	a.log.Warn("backing node request failed", "request", r.requestID, "label", r.label, "reason", why)
	r.failed = true
	a.drop(r)
	if err := a.zk.DeleteRequest(ctx, r.requestID); err != nil {
		a.log.Warn("deleting failed backing node request failed", "request", r.requestID, "error", err)
	}
}

func (a *Adapter) checkRequest(ctx context.Context, r *record) error {
	req, err := a.zk.GetRequest(ctx, r.requestID)
	if errors.Is(err, zkclient.ErrNoNode) {
		a.fail(ctx, r, "request vanished")
		return nil
	}
	if err != nil {
		return err
	}
	switch req.State {
	case zkclient.RequestFailed:
		a.fail(ctx, r, "request failed")
		return nil
	case zkclient.RequestFulfilled:
	default:
		return nil
	}
	if len(req.Nodes) == 0 {
		a.fail(ctx, r, "fulfilled without nodes")
		return nil
	}
	id := req.Nodes[0]
	contender, err := a.ourContender(ctx, id)
	if err != nil {
		return err
	}
	if contender == "" {
		// Not ours yet (a previous incarnation may have locked it already).
		lock := a.zk.NodeLock(id, zkclient.PersistentContender(), zkclient.WithIdentifier(a.id))
		got, err := lock.TryAcquire(ctx)
		if errors.Is(err, zkclient.ErrNoNode) {
			a.fail(ctx, r, "backing node vanished")
			return nil
		}
		if err != nil {
			return err
		}
		if !got {
			if r.lockSince.IsZero() {
				r.lockSince = a.now()
			} else if a.now().Sub(r.lockSince) > LockTimeout {
				a.fail(ctx, r, "timeout locking backing node "+id)
			}
			return nil
		}
		contender = lock.Node()
		lock.Forget() // the persistent contender is the state from now on
	}
	n, err := a.zk.GetNode(ctx, id)
	if errors.Is(err, zkclient.ErrNoNode) {
		a.fail(ctx, r, "backing node vanished")
		return nil
	}
	if err != nil {
		return err
	}
	ud, _ := json.Marshal(UserData{Owner: a.id, Label: r.label, Slots: len(r.slots)})
	n.UserData, _ = json.Marshal(string(ud))
	n.State = zkclient.NodeInUse
	n.StateTime = float64(a.now().UnixNano()) / 1e9
	if _, err := a.zk.Multi(ctx, zkclient.CheckOp{Path: contender, Version: -1},
		zkclient.NodeSet(n, n.Version)); err != nil {
		return fmt.Errorf("storing backing node %s: %w", id, err)
	}
	if err := a.zk.DeleteRequest(ctx, r.requestID); err != nil {
		a.log.Warn("deleting fulfilled backing node request failed", "request", r.requestID, "error", err)
	}
	r.nodeID = id
	r.lastUsed = a.now()
	a.log.Info("obtained backing node", "node", id, "request", r.requestID, "label", r.label)
	return nil
}

// --- release ---------------------------------------------------------------------

// release returns a backing node to its provider: state used and our
// contenders removed, in one transaction. A node already gone is not an
// error.
func (a *Adapter) release(ctx context.Context, nodeID string) error {
	n, err := a.zk.GetNode(ctx, nodeID)
	if errors.Is(err, zkclient.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	mine, err := a.ourContenders(ctx, nodeID)
	if err != nil {
		return err
	}
	n.State = zkclient.NodeUsed
	n.StateTime = float64(a.now().UnixNano()) / 1e9
	ops := []zkclient.Op{zkclient.NodeSet(n, n.Version)}
	for _, p := range mine {
		ops = append(ops, zkclient.DeleteOp{Path: p, Version: -1})
	}
	if _, err := a.zk.Multi(ctx, ops...); err != nil {
		return fmt.Errorf("releasing backing node %s: %w", nodeID, err)
	}
	a.log.Info("released backing node", "node", nodeID)
	return nil
}

// ListResources releases backing nodes idle for longer than their label's
// grace time and forgets lost ones; it lists nothing.
func (a *Adapter) ListResources(ctx context.Context) ([]driver.Resource, error) {
	if err := a.init(ctx); err != nil {
		if errors.Is(err, ErrStandby) {
			return nil, nil
		}
		return nil, err
	}
	a.checkRequests(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	var all []*record
	for _, rs := range a.records {
		all = append(all, rs...)
	}
	var errs []error
	for _, r := range all {
		// A slot whose node record is gone (deleted without our delete
		// machine, e.g. by a standby launcher) is free again.
		for i, id := range r.slots {
			if id == "" {
				continue
			}
			ok, _, err := a.zk.Exists(ctx, zkclient.NodePath(id))
			if err == nil && !ok {
				r.slots[i] = ""
				r.lastUsed = a.now()
			}
		}
	}
	now := a.now()
	for _, r := range all {
		if r.nodeID == "" {
			continue
		}
		contender, err := a.ourContender(ctx, r.nodeID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if contender == "" {
			a.lost(ctx, r)
			continue
		}
		var grace time.Duration
		if s := a.settings(r.label); s != nil {
			grace = s.GraceTime
		}
		if !r.empty() || now.Sub(r.lastUsed) <= grace {
			continue
		}
		if err := a.release(ctx, r.nodeID); err != nil {
			errs = append(errs, err)
			continue
		}
		a.drop(r)
	}
	return nil, errors.Join(errs...)
}

// lost forgets a backing node that vanished or whose lock is no longer
// ours, and sends its unused metastatic nodes to deletion; a.mu is held.
func (a *Adapter) lost(ctx context.Context, r *record) {
	a.log.Warn("backing node lost", "node", r.nodeID, "label", r.label)
	r.failed = true
	a.drop(r)
	for _, id := range r.slots {
		if id == "" {
			continue
		}
		lock := a.zk.NodeLock(id)
		if got, err := lock.TryAcquire(ctx); err != nil || !got {
			continue // in use, or being launched or deleted: its user returns it
		}
		n, err := a.zk.GetNode(ctx, id)
		if err == nil && n.State == zkclient.NodeReady && n.AllocatedTo == "" {
			n.State = zkclient.NodeDeleting
			n.StateTime = float64(a.now().UnixNano()) / 1e9
			if err := a.zk.StoreNode(ctx, n, lock); err != nil {
				a.log.Warn("marking node on a lost backing node deleting failed", "node", id, "error", err)
			}
		}
		_ = lock.Release(ctx)
	}
}

// DeleteResource does nothing: ListResources lists nothing.
func (a *Adapter) DeleteResource(context.Context, driver.Resource) error { return nil }
