// Package fakelauncher is a minimal stand-in for a nodepool launcher, for
// tests of Zuul-side code: it fulfils every request with fresh ready nodes
// (failing labels that start with "fail"), and deletes nodes once they are
// used and unlocked. It is not a launcher: no quota, no pools, no cleanup.
package fakelauncher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool/zkclient"
)

// ID is the pool id the fake launcher writes into declined_by.
const ID = "fake-launcher"

// Launcher watches /nodepool/requests and serves them.
type Launcher struct {
	c      *zkclient.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}

	mu      sync.Mutex
	seen    map[string]bool
	errs    []error
	deleted int
}

// Start runs a fake launcher on c until Stop or ctx ends.
func Start(ctx context.Context, c *zkclient.Client) (*Launcher, error) {
	if err := c.EnsurePath(ctx, zkclient.RequestRoot); err != nil {
		return nil, err
	}
	if err := c.EnsurePath(ctx, zkclient.NodeRoot); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &Launcher{c: c, cancel: cancel, sem: make(chan struct{}, 8), seen: map[string]bool{}}
	l.wg.Add(1)
	go l.loop(ctx)
	return l, nil
}

// Stop ends the launcher and returns the errors it met, joined.
func (l *Launcher) Stop() error {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.errs...)
}

// Deleted returns how many nodes the launcher has deleted.
func (l *Launcher) Deleted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deleted
}

func (l *Launcher) fail(err error) {
	if err == nil || errors.Is(err, context.Canceled) {
		return
	}
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *Launcher) loop(ctx context.Context) {
	defer l.wg.Done()
	for {
		ids, ev, err := l.c.ChildrenW(ctx, zkclient.RequestRoot)
		if err != nil {
			l.fail(err)
			return
		}
		for _, id := range ids {
			l.mu.Lock()
			dup := l.seen[id]
			l.seen[id] = true
			l.mu.Unlock()
			if dup {
				continue
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				select {
				case l.sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				defer func() { <-l.sem }()
				l.fail(l.handle(ctx, id))
			}()
		}
		select {
		case <-ev:
		case <-ctx.Done():
			return
		}
	}
}

// handle locks a requested request, marks it pending, creates one ready
// node per label and marks it fulfilled (or failed for "fail*" labels).
func (l *Launcher) handle(ctx context.Context, id string) error {
	r, err := l.c.GetRequest(ctx, id)
	if errors.Is(err, zkclient.ErrNoNode) {
		return nil
	}
	if err != nil || r.State != zkclient.RequestRequested {
		return err
	}
	lock := l.c.RequestLock(id)
	if ok, err := lock.TryAcquire(ctx); err != nil || !ok {
		return err
	}
	defer func() { _ = lock.Release(context.WithoutCancel(ctx)) }()
	if r, err = l.c.GetRequest(ctx, id); err != nil || r.State != zkclient.RequestRequested {
		if errors.Is(err, zkclient.ErrNoNode) {
			return nil
		}
		return err
	}
	now := func() float64 { return float64(time.Now().UnixNano()) / 1e9 }
	for _, label := range r.NodeTypes {
		if strings.HasPrefix(label, "fail") {
			r.State, r.StateTime = zkclient.RequestFailed, now()
			r.DeclinedBy = append(r.DeclinedBy, ID)
			return l.c.StoreRequest(ctx, r, lock)
		}
	}
	r.State, r.StateTime = zkclient.RequestPending, now()
	if err := l.c.StoreRequest(ctx, r, lock); err != nil {
		return ignoreGone(err)
	}
	r.Nodes = nil
	for i, label := range r.NodeTypes {
		t := now()
		n := &zkclient.Node{
			State: zkclient.NodeReady, StateTime: t, Cloud: "fake", Provider: "fake-provider",
			Pool: "main", Type: []string{label}, AllocatedTo: id, AZ: "az1", Region: "region1",
			PublicIPv4: fmt.Sprintf("198.51.100.%d", i+1), PrivateIPv4: fmt.Sprintf("10.0.0.%d", i+1),
			InterfaceIP: fmt.Sprintf("198.51.100.%d", i+1), Launcher: ID, CreatedTime: t,
			ExternalID: "fake-" + id, HostKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake"},
			Username: "zuul", ConnectionType: "ssh", PythonPath: "auto", TenantName: r.TenantName,
			Requestor: r.Requestor, Resources: map[string]float64{"cores": 1, "instances": 1, "ram": 1024},
		}
		n.SetPort(22)
		nid, err := l.c.CreateNode(ctx, n)
		if err != nil {
			return err
		}
		r.Nodes = append(r.Nodes, nid)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.fail(l.reap(ctx, nid))
		}()
	}
	r.State, r.StateTime = zkclient.RequestFulfilled, now()
	return ignoreGone(l.c.StoreRequest(ctx, r, lock))
}

func ignoreGone(err error) error {
	if errors.Is(err, zkclient.ErrNoNode) {
		return nil
	}
	return err
}

// reap watches a node and deletes it once it is used (or in-use) and
// unlocked, as a launcher's deleter would; held nodes are left alone.
func (l *Launcher) reap(ctx context.Context, id string) error {
	for {
		data, _, ev, err := l.c.GetW(ctx, zkclient.NodePath(id))
		if errors.Is(err, zkclient.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		n, err := zkclient.DecodeNode(id, data)
		if err != nil {
			return err
		}
		switch n.State {
		case zkclient.NodeHold:
			return nil
		case zkclient.NodeUsed, zkclient.NodeInUse:
			lock := l.c.NodeLock(id)
			ok, err := lock.TryAcquire(ctx)
			if err != nil {
				return ignoreGone(err)
			}
			if ok {
				if n, err = l.c.GetNode(ctx, id); err != nil {
					_ = lock.Release(ctx)
					return ignoreGone(err)
				}
				if n.State != zkclient.NodeUsed && n.State != zkclient.NodeInUse {
					// Changed (e.g. held) between our read and our lock.
					_ = lock.Release(ctx)
					continue
				}
				if err := l.c.DeleteNode(ctx, n, lock); err != nil {
					return err
				}
				l.mu.Lock()
				l.deleted++
				l.mu.Unlock()
				return nil
			}
			// Still locked by Zuul: wait for the lock directory to change
			// (re-checking first: the lock may have gone meanwhile).
			children, lev, err := l.c.ChildrenW(ctx, zkclient.NodeLockPath(id))
			if err != nil {
				return ignoreGone(err)
			}
			if len(zkclient.SortContenders(children)) == 0 {
				continue
			}
			select {
			case <-lev:
			case <-ctx.Done():
				return nil
			}
			continue
		}
		select {
		case <-ev:
		case <-ctx.Done():
			return nil
		}
	}
}
