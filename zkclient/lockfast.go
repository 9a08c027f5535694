package zkclient

import (
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/go-zookeeper/zk"
)

// Transactional lock operations. They follow the kazoo recipe exactly (the
// same contender names in the same directory) but fold the writes that
// surround taking or giving up a lock into the same ZooKeeper transaction,
// so the launcher's hot path costs one round trip where the plain recipe
// costs three or four. Observers cannot tell: a transaction is atomic.

// ErrPrecondition is returned when an operation folded into a lock
// transaction failed (e.g. a version check): the lock was not taken.
var ErrPrecondition = errors.New("zkclient: transaction precondition failed")

// TryAcquireWith takes the lock without waiting and, in the same
// transaction when possible, applies ops (typically a versioned set of the
// locked record). When the lock directory does not exist yet, creating it
// and our contender in one transaction proves we are alone; otherwise the
// plain recipe runs and ops follow guarded by our contender. It returns
// false when the lock is held elsewhere, and ErrPrecondition (lock not
// taken) when ops failed.
func (l *Lock) TryAcquireWith(ctx context.Context, ops ...Op) (bool, error) {
	sets := l.c.expectSets(ops, 0)
	got, err := l.tryAcquireWith(ctx, ops)
	if len(sets) > 0 {
		var failed error
		if !got || err != nil {
			failed = ErrPrecondition
		}
		settleSets(sets, nil, failed, nil)
	}
	return got, err
}

func (l *Lock) tryAcquireWith(ctx context.Context, ops []Op) (bool, error) {
	if l.dirLikely {
		got, err := l.acquireInDir(ctx, ops)
		if !errors.Is(err, zk.ErrNoNode) {
			return got, err
		}
		// No lock directory after all: the full path creates it.
	}
	l.mu.Lock()
	if l.held {
		l.mu.Unlock()
		return false, fmt.Errorf("zkclient: lock %s already held by this contender", l.dir)
	}
	entry, ok := l.c.locals.enter(l.dir)
	if !ok {
		l.mu.Unlock()
		return false, nil
	}
	flags := Sequential
	if l.ephemeral {
		flags = EphemeralSequential
	}
	all := append([]Op{CreateOp{Path: l.dir}, CreateOp{Path: l.dir + "/" + l.prefix, Data: l.data, Flags: flags}}, ops...)
	res, err := l.c.Multi(ctx, all...)
	if err == nil {
		l.node = path.Base(res[1].String)
		l.sid = l.c.conn.SessionID()
		l.lost = l.c.sessionLost()
		l.local, l.held = entry, true
		l.mu.Unlock()
		return true, nil
	}
	l.c.locals.leave(l.dir, entry)
	l.mu.Unlock()
	return l.afterDirCreate(ctx, res, err, ops)
}

// afterDirCreate continues TryAcquireWith after the transaction that also
// created the lock directory failed.
func (l *Lock) afterDirCreate(ctx context.Context, res []zk.MultiResponse, err error, ops []Op) (bool, error) {
	first := multiError(res, 0)
	switch {
	case errors.Is(first, zk.ErrNodeExists):
		// The directory exists: the plain recipe, then the ops.
	case errors.Is(first, zk.ErrNoNode):
		return false, err // the locked object is gone
	case len(res) > 2 && multiFailedAt(res) >= 2:
		return false, fmt.Errorf("%w: %v", ErrPrecondition, err)
	default:
		if IsConnectionError(err) {
			// The outcome is unknown: make sure no contender of ours stays.
			l.removeLater()
		}
		return false, err
	}
	return l.acquireInDir(ctx, ops)
}

// acquireInDir creates our contender in the existing lock directory
// together with the checks among ops, sees whether we are first, then
// applies the writes.
func (l *Lock) acquireInDir(ctx context.Context, ops []Op) (bool, error) {
	var checks, writes []Op
	for _, o := range ops {
		if _, ok := o.(CheckOp); ok {
			checks = append(checks, o)
		} else {
			writes = append(writes, o)
		}
	}
	got, err := l.tryWithChecks(ctx, checks)
	if err != nil || !got || len(writes) == 0 {
		return got, err
	}
	check, err := l.checkOp()
	if err == nil {
		_, err = l.c.Multi(ctx, append([]Op{check}, writes...)...)
	}
	if err != nil {
		_ = l.Release(ctx)
		if errors.Is(err, ErrLockLost) || IsConnectionError(err) {
			return false, err
		}
		return false, fmt.Errorf("%w: %v", ErrPrecondition, err)
	}
	return true, nil
}

// tryWithChecks is the non-blocking recipe with the contender created in
// one transaction with read-only checks.
func (l *Lock) tryWithChecks(ctx context.Context, checks []Op) (bool, error) {
	if len(checks) == 0 {
		return l.TryAcquire(ctx)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	entry, ok := l.c.locals.enter(l.dir)
	if !ok {
		return false, nil
	}
	flags := Sequential
	if l.ephemeral {
		flags = EphemeralSequential
	}
	res, err := l.c.Multi(ctx, append([]Op{CreateOp{Path: l.dir + "/" + l.prefix, Data: l.data, Flags: flags}}, checks...)...)
	if err != nil {
		l.c.locals.leave(l.dir, entry)
		if first := multiError(res, 0); multiFailedAt(res) == 0 && errors.Is(first, zk.ErrNoNode) {
			return false, first // no lock directory
		}
		if multiFailedAt(res) >= 1 {
			return false, fmt.Errorf("%w: %v", ErrPrecondition, err)
		}
		if IsConnectionError(err) {
			l.removeLater()
		}
		return false, err
	}
	l.node = path.Base(res[0].String)
	l.sid = l.c.conn.SessionID()
	l.lost = l.c.sessionLost()
	children, err := l.c.Children(ctx, l.dir)
	if err == nil {
		if pred, found := predecessor(children, l.node, len(l.prefix)); found && pred == "" {
			// The checks held when our contender was created, but a
			// holder ahead of us then may have changed the znodes and
			// released the lock since: check again now that it is ours.
			if _, err = l.c.Multi(ctx, checks...); err == nil {
				l.local, l.held = entry, true
				return true, nil
			}
			if !IsConnectionError(err) {
				err = fmt.Errorf("%w: %v", ErrPrecondition, err)
			}
		}
	}
	l.abandon()
	l.c.locals.leave(l.dir, entry)
	return false, err
}

// multiError returns the error of operation i of a failed transaction.
func multiError(res []zk.MultiResponse, i int) error {
	if i < len(res) {
		return res[i].Error
	}
	return nil
}

// multiFailedAt returns the index of the operation that made a transaction
// fail (the others report a rollback), or -1.
func multiFailedAt(res []zk.MultiResponse) int {
	for i, r := range res {
		// Operations before the failing one report success, the ones after
		// it ZooKeeper's "runtime inconsistency" (-2).
		if r.Error != nil && !errors.Is(r.Error, zk.ErrAPIError) && r.Error.Error() != "unknown error: -2" {
			return i
		}
	}
	return -1
}

// deleteOp returns the operation that removes our contender.
func (l *Lock) deleteOp() (Op, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held || l.node == "" {
		return nil, ErrLockLost
	}
	return DeleteOp{Path: l.dir + "/" + l.node, Version: -1}, nil
}

// ReleaseWith applies ops and releases every lock in one transaction; the
// deletes of our contenders also guard the ops (they fail if a lock was
// lost). On error nothing happened and every lock is still held.
func (c *Client) ReleaseWith(ctx context.Context, locks []*Lock, ops ...Op) error {
	all := make([]Op, 0, len(locks)+len(ops))
	var tail []Op
	sets := c.expectSets(ops, max(len(locks)-1, 0))
	for i, l := range locks {
		d, err := l.deleteOp()
		if err != nil {
			settleSets(sets, nil, err, nil)
			return err
		}
		if i == len(locks)-1 {
			tail = append(tail, d) // the last lock goes after the ops
			continue
		}
		all = append(all, d)
	}
	all = append(append(all, ops...), tail...)
	res, err := c.Multi(ctx, all...)
	written := map[string]bool{}
	for _, s := range sets {
		written[s.id] = true
	}
	unlocked := map[string]bool{}
	for _, l := range locks {
		if _, id := c.lockOwner(l.dir); id != "" && written[id] {
			unlocked[id] = true
		}
	}
	settleSets(sets, res, err, func(id string) bool { return unlocked[id] })
	if err != nil {
		return err
	}
	for _, l := range locks {
		_, id := c.lockOwner(l.dir)
		l.forget(!unlocked[id])
	}
	return nil
}

// DeleteLockedNode removes a node, its lock directory and our contender in
// one transaction, provided nobody else contends for the lock; otherwise
// (or on any failure) it falls back to DeleteNode.
func (c *Client) DeleteLockedNode(ctx context.Context, n *Node, lock *Lock) error {
	if d, err := lock.deleteOp(); err == nil {
		_, err := c.Multi(ctx, d, DeleteOp{Path: NodeLockPath(n.ID), Version: -1}, DeleteOp{Path: NodePath(n.ID), Version: -1})
		if err == nil {
			c.recordDeleted(NodePath(n.ID))
			lock.forget(false)
			return nil
		}
	}
	return c.DeleteNode(ctx, n, lock)
}

// TryAcquireIdle takes the lock only when nobody holds it or waits for it,
// in one transaction: with checks (typically the version of the locked
// record), the empty lock directory is deleted and created again holding
// our contender. A contender of anyone else makes the delete fail, so the
// transaction proves we are alone without listing the directory (the plain
// recipe costs a create and a listing, and a delete when we lose). The
// directory is never seen missing: a transaction is atomic. It returns
// false when the lock is held or contended, ErrPrecondition when a check
// failed; without a lock directory it takes the lock as TryAcquireWith.
func (l *Lock) TryAcquireIdle(ctx context.Context, checks ...Op) (bool, error) {
	l.mu.Lock()
	if l.held {
		l.mu.Unlock()
		return false, fmt.Errorf("zkclient: lock %s already held by this contender", l.dir)
	}
	entry, ok := l.c.locals.enter(l.dir)
	if !ok {
		l.mu.Unlock()
		return false, nil
	}
	flags := Sequential
	if l.ephemeral {
		flags = EphemeralSequential
	}
	n := len(checks)
	all := append(append([]Op(nil), checks...), DeleteOp{Path: l.dir, Version: -1}, CreateOp{Path: l.dir},
		CreateOp{Path: l.dir + "/" + l.prefix, Data: l.data, Flags: flags})
	res, err := l.c.Multi(ctx, all...)
	if err == nil {
		l.node = path.Base(res[n+2].String)
		l.sid = l.c.conn.SessionID()
		l.lost = l.c.sessionLost()
		l.local, l.held = entry, true
		l.mu.Unlock()
		return true, nil
	}
	l.c.locals.leave(l.dir, entry)
	l.mu.Unlock()
	at := multiFailedAt(res)
	switch {
	case at >= 0 && at < n:
		return false, fmt.Errorf("%w: %v", ErrPrecondition, err)
	case at == n && errors.Is(multiError(res, n), zk.ErrNotEmpty):
		return false, nil // held or contended
	case at == n && errors.Is(multiError(res, n), zk.ErrNoNode):
		return l.TryAcquireWith(ctx, checks...) // no lock directory yet
	case IsConnectionError(err):
		// The outcome is unknown: make sure no contender of ours stays.
		l.removeLater()
	}
	return false, err
}
