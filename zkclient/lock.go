package zkclient

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/google/uuid"
)

// The kazoo Lock recipe: contenders are named
// "<32 hex>__lock__<10-digit sequence>", ordered by the sequence string,
// and each waiter watches its predecessor. Zuul and the Python tools use
// the same recipe, so their locks and ours exclude each other.

var contenderRe = regexp.MustCompile(`(?:__lock__)(-?\d{10})$`)

const lockMarker = "__lock__"

// ErrLockTimeout is returned when a blocking acquire gives up.
var ErrLockTimeout = errors.New("zkclient: lock timeout")

// ErrLocked is returned by TryAcquire-style helpers when someone else holds
// the lock.
var ErrLocked = errors.New("zkclient: locked by another contender")

// Lock is one contender for a kazoo-compatible lock. A Lock object is used
// by one goroutine at a time; within a process, two Lock objects for the
// same directory never contend in ZooKeeper at once (the second waits, or
// fails to try-acquire, in memory first).
type Lock struct {
	c         *Client
	dir       string
	prefix    string
	data      []byte
	ephemeral bool
	mkParents bool
	dirLikely bool
	mu        sync.Mutex
	node      string // our contender's name, "" when none
	held      bool
	local     *localEntry
	lost      <-chan struct{}
	sid       int64 // session that created our contender
}

// LockOption configures a Lock.
type LockOption func(*Lock)

// WithIdentifier stores id as the contender's data (kazoo's identifier).
func WithIdentifier(id string) LockOption { return func(l *Lock) { l.data = []byte(id) } }

// PersistentContender makes the contender survive session loss (used for metastatic
// backing nodes).
func PersistentContender() LockOption { return func(l *Lock) { l.ephemeral = false } }

// DirLikely says the lock directory most likely exists already (the object
// was locked before), so TryAcquireWith tries the contender alone first and
// saves a round trip.
func DirLikely() LockOption { return func(l *Lock) { l.dirLikely = true } }

// NoParents makes acquisition fail with ErrNoNode instead of re-creating
// the lock directory's parent when it is gone (node locks use it so that
// locking a deleted node does not resurrect an empty node znode).
func NoParents() LockOption { return func(l *Lock) { l.mkParents = false } }

// NewLock returns a contender for the lock directory dir.
func (c *Client) NewLock(dir string, opts ...LockOption) *Lock {
	l := &Lock{c: c, dir: dir, ephemeral: true, mkParents: true,
		prefix: strings.ReplaceAll(uuid.NewString(), "-", "") + lockMarker}
	for _, o := range opts {
		o(l)
	}
	return l
}

// NodeLock returns a contender for a node's lock.
func (c *Client) NodeLock(id string, opts ...LockOption) *Lock {
	return c.NewLock(NodeLockPath(id), append([]LockOption{NoParents()}, opts...)...)
}

// RequestLock returns a contender for a node request's lock.
func (c *Client) RequestLock(id string, opts ...LockOption) *Lock {
	return c.NewLock(RequestLockPath(id), opts...)
}

// Dir returns the lock directory.
func (l *Lock) Dir() string { return l.dir }

// Node returns the path of our contender znode, or "" when we have none.
func (l *Lock) Node() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.node == "" {
		return ""
	}
	return l.dir + "/" + l.node
}

// Held reports whether we hold the lock and our session is still the one
// that acquired it.
func (l *Lock) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return false
	}
	if !l.ephemeral {
		return true
	}
	return l.c.conn.SessionID() == l.sid
}

// Lost returns a channel closed when the session that acquired the lock is
// lost (never closed for persistent contenders).
func (l *Lock) Lost() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil || !l.ephemeral {
		return nil
	}
	return l.lost
}

// TryAcquire attempts to take the lock once, without waiting.
func (l *Lock) TryAcquire(ctx context.Context) (bool, error) {
	return l.acquire(ctx, false)
}

// Acquire waits until the lock is taken or ctx ends (ErrLockTimeout when
// ctx's deadline passed).
func (l *Lock) Acquire(ctx context.Context) error {
	ok, err := l.acquire(ctx, true)
	if err != nil {
		return err
	}
	if !ok {
		return ErrLockTimeout
	}
	return nil
}

func (l *Lock) acquire(ctx context.Context, blocking bool) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		return false, fmt.Errorf("zkclient: lock %s already held by this contender", l.dir)
	}
	// In-process guard: one contender per directory per process.
	entry, ok := l.c.locals.enter(l.dir)
	for !ok {
		if !blocking {
			return false, nil
		}
		select {
		case <-entry.done:
		case <-ctx.Done():
			return false, lockCtxErr(ctx)
		}
		entry, ok = l.c.locals.enter(l.dir)
	}
	got, err := l.contend(ctx, blocking)
	if err != nil && ctx.Err() != nil {
		// The context ended inside a ZooKeeper call: report it like the
		// wait did (ErrLockTimeout for a passed deadline).
		err = lockCtxErr(ctx)
	}
	if err != nil || !got {
		l.c.locals.leave(l.dir, entry)
		return false, err
	}
	l.local = entry
	l.held = true
	return true, nil
}

func lockCtxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrLockTimeout
	}
	return ctx.Err()
}

// contend runs the recipe; l.mu is held.
func (l *Lock) contend(ctx context.Context, blocking bool) (bool, error) {
	l.lost = l.c.sessionLost()
	if err := l.createContender(ctx); err != nil {
		return false, err
	}
	for {
		children, err := l.c.Children(ctx, l.dir)
		if err != nil {
			l.abandon()
			return false, err
		}
		pred, found := predecessor(children, l.node, len(l.prefix))
		if !found {
			// Our ephemeral contender vanished (session expired): retry.
			l.lost = l.c.sessionLost()
			if err := l.createContender(ctx); err != nil {
				return false, err
			}
			continue
		}
		if pred == "" {
			return true, nil
		}
		if !blocking {
			l.abandon()
			return false, nil
		}
		exists, _, ev, err := l.c.ExistsW(ctx, l.dir+"/"+pred)
		if err != nil {
			l.abandon()
			return false, err
		}
		if !exists {
			continue
		}
		select {
		case <-ev:
		case <-l.lost:
		case <-ctx.Done():
			l.abandon()
			return false, lockCtxErr(ctx)
		}
	}
}

// createContender creates our sequential contender, reusing one left by an
// ambiguous earlier create.
func (l *Lock) createContender(ctx context.Context) error {
	flags := Sequential
	if l.ephemeral {
		flags = EphemeralSequential
	}
	if l.node != "" {
		// After a connection loss the create may have succeeded: look for
		// a child with our prefix before creating another.
		children, err := l.c.Children(ctx, l.dir)
		if err == nil {
			for _, ch := range children {
				if strings.HasPrefix(ch, l.prefix) {
					l.node = ch
					l.sid = l.c.conn.SessionID()
					return nil
				}
			}
		}
	}
	for attempt := 0; ; attempt++ {
		p, err := l.c.Create(ctx, l.dir+"/"+l.prefix, l.data, flags, false)
		if err == nil {
			l.node = path.Base(p)
			l.sid = l.c.conn.SessionID()
			return nil
		}
		if !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrNodeExists) && ctx.Err() == nil {
			// The create may have happened: make sure it is undone.
			l.removeLater()
		}
		if errors.Is(err, zk.ErrNoNode) && attempt == 0 {
			if l.mkParents {
				err = l.c.EnsurePath(ctx, l.dir)
			} else {
				_, err = l.c.Create(ctx, l.dir, nil, Persistent, false)
				if errors.Is(err, zk.ErrNodeExists) {
					err = nil
				}
			}
			if err != nil {
				return err
			}
			continue
		}
		return err
	}
}

// abandon deletes our contender; when that fails (connection loss) the
// contender is removed in the background once the connection is back, so
// a lock is never left held by a live session that gave it up.
func (l *Lock) abandon() {
	if l.node == "" {
		return
	}
	err := l.c.Delete(context.Background(), l.dir+"/"+l.node, -1)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		l.removeLater()
	}
	l.node = ""
}

// removeLater deletes every contender with our prefix once the connection
// is back (for operations whose outcome is unknown).
func (l *Lock) removeLater() {
	go l.c.removeContenders(l.dir, l.prefix, l.ephemeral)
}

func (c *Client) removeContenders(dir, prefix string, ephemeral bool) {
	lost := c.sessionLost()
	for attempt := 0; attempt < 1200; attempt++ {
		select {
		case <-c.done:
			return
		case <-lost:
			if ephemeral {
				return // the server removed it with the session
			}
		default:
		}
		if c.Connected() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			children, err := c.Children(ctx, dir)
			if errors.Is(err, zk.ErrNoNode) {
				cancel()
				return
			}
			done := err == nil
			for _, ch := range children {
				if strings.HasPrefix(ch, prefix) {
					if err := c.Delete(ctx, dir+"/"+ch, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
						done = false
					}
				}
			}
			cancel()
			if done {
				return
			}
		}
		select {
		case <-c.done:
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	c.log.Error("could not remove an abandoned lock contender", "lock", dir)
}

// Release gives up the lock. Releasing a lock lost with its session is not
// an error.
func (l *Lock) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return nil
	}
	var err error
	if l.node != "" {
		err = l.c.Delete(ctx, l.dir+"/"+l.node, -1)
		if errors.Is(err, zk.ErrNoNode) {
			err = nil
		}
		if err != nil {
			l.removeLater()
		}
		l.node = ""
	}
	l.held = false
	l.c.locals.leave(l.dir, l.local)
	l.local = nil
	l.lockReleased()
	return err
}

// Forget drops our claim without touching ZooKeeper (after the lock's
// znodes were removed by a recursive delete of the locked object).
func (l *Lock) Forget() { l.forget(true) }

// forget is Forget; notify tells the locked record's cache that the lock
// is gone (not needed when the record went with it).
func (l *Lock) forget(notify bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return
	}
	l.node = ""
	l.held = false
	l.c.locals.leave(l.dir, l.local)
	l.local = nil
	if notify {
		l.lockReleased()
	}
}

// checkOp returns a transaction guard that fails unless our contender
// still exists, so nothing is written after the lock was lost.
func (l *Lock) checkOp() (Op, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held || l.node == "" {
		return nil, ErrLockLost
	}
	return CheckOp{Path: l.dir + "/" + l.node, Version: -1}, nil
}

// predecessor returns the contender immediately ahead of ours and whether
// ours is present, applying kazoo's filter and ordering.
func predecessor(children []string, own string, prefixLen int) (string, bool) {
	if len(own) < prefixLen {
		return "", false
	}
	ownSeq := own[prefixLen:]
	found := false
	best, bestSeq := "", ""
	for _, ch := range children {
		m := contenderRe.FindStringSubmatch(ch)
		if ch == own {
			found = m != nil
		}
		if m == nil {
			continue
		}
		if seq := m[1]; seq < ownSeq && (best == "" || seq > bestSeq) {
			best, bestSeq = ch, seq
		}
	}
	return best, found
}

// SortContenders filters lock-directory children with kazoo's pattern and
// orders them by sequence; the first holds the lock.
func SortContenders(children []string) []string {
	type c struct{ name, seq string }
	var cs []c
	for _, ch := range children {
		if m := contenderRe.FindStringSubmatch(ch); m != nil {
			cs = append(cs, c{ch, m[1]})
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].seq < cs[j].seq })
	out := make([]string, len(cs))
	for i, x := range cs {
		out[i] = x.name
	}
	return out
}

// Contenders returns the identifiers of a lock's contenders in lock order
// (an anonymous contender's identifier is "").
func (c *Client) Contenders(ctx context.Context, dir string) ([]string, error) {
	children, err := c.Children(ctx, dir)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ch := range SortContenders(children) {
		data, _, err := c.Get(ctx, dir+"/"+ch)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, string(data))
	}
	return out, nil
}

// IsLocked reports whether a lock directory has any contender.
func (c *Client) IsLocked(ctx context.Context, dir string) (bool, error) {
	children, err := c.Children(ctx, dir)
	if errors.Is(err, zk.ErrNoNode) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(SortContenders(children)) > 0, nil
}

type localEntry struct{ done chan struct{} }

// localLocks is the in-process guard: one contender per lock directory.
type localLocks struct {
	mu sync.Mutex
	m  map[string]*localEntry
}

func (ll *localLocks) init() { ll.m = make(map[string]*localEntry) }

// enter claims dir; when it is taken, it returns the holder's entry and false.
func (ll *localLocks) enter(dir string) (*localEntry, bool) {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	if e, ok := ll.m[dir]; ok {
		return e, false
	}
	e := &localEntry{done: make(chan struct{})}
	ll.m[dir] = e
	return e, true
}

func (ll *localLocks) leave(dir string, e *localEntry) {
	if e == nil {
		return
	}
	ll.mu.Lock()
	defer ll.mu.Unlock()
	if ll.m[dir] == e {
		delete(ll.m, dir)
		close(e.done)
	}
}
