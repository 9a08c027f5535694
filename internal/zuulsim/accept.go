package zuulsim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nodepool-go/nodepool/internal/pyjson"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Node is one node of an accepted node set, locked by us.
type Node struct {
	ID    string         // znode name
	Label string         // the requested label it satisfies
	Data  *zkclient.Node // decoded view of the data last read or written

	members members // the node's JSON as read, updated by our writes
	lock    *zkclient.Lock
}

// NodeSet is the nodes of a fulfilled request, locked and in-use.
type NodeSet struct {
	RequestID string
	Nodes     []*Node

	c    *zkclient.Client
	opts Options
}

// Accept takes the nodes of a fulfilled request as Zuul's executor does:
// for each node read it, require allocated_to == request id, lock it
// (blocking, Options.LockTimeout) and re-check; then delete the request
// whatever happened; then mark every node in-use with Zuul's user_data.
// On error every lock taken is released.
func (r *Request) Accept(ctx context.Context) (*NodeSet, error) {
	req := r.Result
	if req == nil || req.State != zkclient.RequestFulfilled {
		return nil, fmt.Errorf("zuulsim: request %s is not fulfilled (call Wait first)", r.ID)
	}
	ns := &NodeSet{RequestID: r.ID, c: r.c, opts: r.opts}
	var err error
	for i, id := range req.Nodes {
		label := ""
		if i < len(req.NodeTypes) {
			label = req.NodeTypes[i]
		}
		var n *Node
		if n, err = ns.lockNode(ctx, id, label); err != nil {
			break
		}
		ns.Nodes = append(ns.Nodes, n)
	}
	if len(req.Nodes) != len(req.NodeTypes) && err == nil {
		err = fmt.Errorf("zuulsim: request %s has %d nodes for %d labels", r.ID, len(req.Nodes), len(req.NodeTypes))
	}
	// Zuul deletes the request regardless of whether locking succeeded.
	if derr := r.Cancel(ctx); err == nil {
		err = derr
	}
	if err == nil {
		userData := pyjson.NewObject(nil)
		userData.Str("zuul_system", r.opts.SystemID)
		userData.Str("project_name", r.opts.ProjectName)
		ud := userData.Bytes()
		for _, n := range ns.Nodes {
			n.members.set("user_data", ud)
			if err = ns.store(ctx, n, zkclient.NodeInUse); err != nil {
				break
			}
		}
	}
	if err != nil {
		ns.Unlock(context.WithoutCancel(ctx))
		return nil, err
	}
	return ns, nil
}

func (ns *NodeSet) lockNode(ctx context.Context, id, label string) (*Node, error) {
	n := &Node{ID: id, Label: label}
	if err := ns.read(ctx, n); err != nil {
		return nil, err
	}
	lock := ns.c.NodeLock(id)
	lctx, cancel := context.WithTimeout(ctx, ns.opts.LockTimeout)
	err := lock.Acquire(lctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("zuulsim: locking node %s: %w", id, err)
	}
	n.lock = lock
	if err := ns.read(ctx, n); err != nil {
		_ = lock.Release(context.WithoutCancel(ctx))
		return nil, err
	}
	return n, nil
}

// read loads the node and checks that it is allocated to our request.
func (ns *NodeSet) read(ctx context.Context, n *Node) error {
	data, _, err := ns.c.Get(ctx, zkclient.NodePath(n.ID))
	if err != nil {
		return fmt.Errorf("zuulsim: reading node %s: %w", n.ID, err)
	}
	m, err := parseMembers(data)
	if err != nil {
		return fmt.Errorf("zuulsim: node %s: %w", n.ID, err)
	}
	if got := m.str("allocated_to"); got != ns.RequestID {
		return fmt.Errorf("%w: node %s is allocated to %q, not %s", ErrNotAllocated, n.ID, got, ns.RequestID)
	}
	return n.setMembers(m)
}

func (n *Node) setMembers(m members) error {
	d, err := zkclient.DecodeNode(n.ID, m.encode())
	if err != nil {
		return fmt.Errorf("zuulsim: node %s: %w", n.ID, err)
	}
	n.members, n.Data = m, d
	return nil
}

// store sets the node's state (refreshing state_time, as Zuul's state
// setter does) and writes it with Zuul's key order: an unversioned set
// while we hold the node lock.
func (ns *NodeSet) store(ctx context.Context, n *Node, state zkclient.NodeState) error {
	n.members.set("state", rawString(string(state)))
	n.members.set("state_time", rawFloat(now()))
	data := encodeZuulNode(n.ID, n.members)
	if _, err := ns.c.Set(ctx, zkclient.NodePath(n.ID), data, -1); err != nil {
		return fmt.Errorf("zuulsim: storing node %s: %w", n.ID, err)
	}
	return n.setMembers(n.members)
}

// Return finishes the job: every node still in-use becomes used, then all
// nodes are unlocked so the launcher deletes them.
func (ns *NodeSet) Return(ctx context.Context) error {
	var errs []error
	for _, n := range ns.Nodes {
		if n.lock != nil && n.Data.State == zkclient.NodeInUse {
			errs = append(errs, ns.store(ctx, n, zkclient.NodeUsed))
		}
	}
	errs = append(errs, ns.Unlock(ctx))
	return errors.Join(errs...)
}

// Hold keeps the nodes for an autohold: state hold with hold_job, comment
// and hold_expiration (seconds, 0 = no expiry), then unlock.
func (ns *NodeSet) Hold(ctx context.Context, job, comment string, expiration int) error {
	var errs []error
	for _, n := range ns.Nodes {
		if n.lock == nil {
			continue
		}
		n.members.set("hold_job", rawNullString(job))
		n.members.set("comment", rawNullString(comment))
		n.members.set("hold_expiration", rawInt(int64(expiration)))
		errs = append(errs, ns.store(ctx, n, zkclient.NodeHold))
	}
	errs = append(errs, ns.Unlock(ctx))
	return errors.Join(errs...)
}

// Unlock releases the node locks without changing the nodes; on in-use
// nodes this looks like a dead executor, and the launcher deletes them.
func (ns *NodeSet) Unlock(ctx context.Context) error {
	var errs []error
	for _, n := range ns.Nodes {
		if n.lock != nil {
			errs = append(errs, n.lock.Release(ctx))
			n.lock = nil
		}
	}
	return errors.Join(errs...)
}

// Locked reports whether the node's lock is still held by us.
func (n *Node) Locked() bool { return n.lock != nil && n.lock.Held() }

// LockTimeout is Zuul's default blocking node-lock timeout.
const LockTimeout = 30 * time.Second
