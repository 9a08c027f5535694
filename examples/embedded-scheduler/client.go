package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nodepool-go/nodepool/zkclient"
)

// The requestor side of the protocol, as Zuul speaks it, with the public
// zkclient API: watch the request, lock the nodes, delete the request,
// mark the nodes in-use, and at the end mark them used and unlock them.

// watchRequest reads the request whenever it changes until done says the
// wait is over; a vanished request is reported as zkclient.ErrNoNode.
func watchRequest(ctx context.Context, zk *zkclient.Client, id string, done func(*zkclient.NodeRequest) (bool, error)) error {
	for {
		data, _, ev, err := zk.GetW(ctx, zkclient.RequestPath(id))
		if err != nil {
			return err
		}
		r, err := zkclient.DecodeRequest(id, data)
		if err != nil {
			return err
		}
		if ok, err := done(r); ok || err != nil {
			return err
		}
		select {
		case <-ev:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitFulfilled waits until a launcher fulfils the request; a failed
// request is deleted (as Zuul does) and reported as an error.
func waitFulfilled(ctx context.Context, zk *zkclient.Client, id string) (*zkclient.NodeRequest, error) {
	var got *zkclient.NodeRequest
	err := watchRequest(ctx, zk, id, func(r *zkclient.NodeRequest) (bool, error) {
		switch r.State {
		case zkclient.RequestFulfilled:
			got = r
			return true, nil
		case zkclient.RequestFailed:
			_ = zk.DeleteRequest(ctx, id)
			return true, fmt.Errorf("failed: declined by every pool (%v)", r.DeclinedBy)
		}
		return false, nil
	})
	return got, err
}

// waitPending waits until a launcher has taken the request on: it is
// pending, or already done.
func waitPending(ctx context.Context, zk *zkclient.Client, id string) error {
	err := watchRequest(ctx, zk, id, func(r *zkclient.NodeRequest) (bool, error) {
		return r.State != zkclient.RequestRequested, nil
	})
	if errors.Is(err, zkclient.ErrNoNode) {
		return nil // fulfilled, and its job has taken the nodes
	}
	return err
}

// heldNode is a node locked by the scheduler.
type heldNode struct {
	node *zkclient.Node
	lock *zkclient.Lock
}

// takeNodes locks the nodes of a fulfilled request (checking they are
// allocated to it), deletes the request and marks the nodes in-use.
func takeNodes(ctx context.Context, zk *zkclient.Client, r *zkclient.NodeRequest) ([]heldNode, error) {
	var held []heldNode
	release := func() {
		for _, h := range held {
			_ = h.lock.Release(context.WithoutCancel(ctx))
		}
	}
	for _, id := range r.Nodes {
		lock := zk.NodeLock(id)
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := lock.Acquire(lctx)
		cancel()
		if err != nil {
			release()
			return nil, fmt.Errorf("locking node %s: %w", id, err)
		}
		n, err := zk.GetNode(ctx, id)
		if err == nil && n.AllocatedTo != r.ID {
			err = fmt.Errorf("node %s is allocated to %q", id, n.AllocatedTo)
		}
		if err != nil {
			_ = lock.Release(context.WithoutCancel(ctx))
			release()
			return nil, err
		}
		held = append(held, heldNode{node: n, lock: lock})
	}
	if err := zk.DeleteRequest(ctx, r.ID); err != nil {
		release()
		return nil, err
	}
	for _, h := range held {
		h.node.State = zkclient.NodeInUse
		h.node.StateTime = unixNow()
		if err := zk.StoreNode(ctx, h.node, h.lock); err != nil {
			release()
			return nil, err
		}
	}
	return held, nil
}

// returnNodes marks the nodes used and unlocks them; the launcher then
// deletes them.
func returnNodes(ctx context.Context, zk *zkclient.Client, held []heldNode) error {
	var errs []error
	for _, h := range held {
		h.node.State = zkclient.NodeUsed
		h.node.StateTime = unixNow()
		errs = append(errs, zk.StoreNode(ctx, h.node, h.lock), h.lock.Release(ctx))
	}
	return errors.Join(errs...)
}

// waitDeleted waits until every node record is gone.
func waitDeleted(ctx context.Context, zk *zkclient.Client, ids []string) error {
	for _, id := range ids {
		for {
			ok, _, ev, err := zk.ExistsW(ctx, zkclient.NodePath(id))
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			select {
			case <-ev:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}
