package zkclient

import (
	"context"
	"errors"
	"log/slog"
	"path"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"
)

// TreeCache mirrors the direct children of one directory (requests or
// nodes) in memory. It is event driven: one persistent recursive watch on
// the directory, dispatched from the connection's event stream, so a new
// or changed child costs one read of that child and nothing else, never a
// listing of the directory, and no watch is set again after it fires.
// Against a server older than ZooKeeper 3.6, which has no persistent
// watches, it falls back to one child watch on the directory and one data
// watch per child. Corrupt children are logged once and left out.
type TreeCache[T any] struct {
	c      *Client
	root   string
	decode func(id string, data []byte) (T, error)
	log    *slog.Logger

	mu      sync.RWMutex
	items   map[string]T
	vers    map[string]int32
	bad     map[string]int32 // corrupt children, by version logged
	watched map[string]bool  // data watch set and not yet fired (one-shot mode)

	// persistent is set while the directory has a persistent recursive
	// watch (ZooKeeper 3.6+); otherwise the cache sets one-shot watches.
	persistent   atomic.Bool
	oneShot      bool // never set a persistent watch (tests of the fallback)
	legacyLogged bool // the fallback was logged (Run's goroutine only)

	// queue holds the events not handled yet (onEvent appends, Run takes
	// them all); overflow is set when it reached maxQueuedEvents.
	queueMu  sync.Mutex
	queue    []zk.Event
	overflow atomic.Bool
	kick     chan struct{}

	subsMu sync.Mutex
	subs   []chan struct{}

	synced    chan struct{}
	syncOnce  sync.Once
	fetchSize int
	gen       atomic.Uint64

	indexes []*CacheIndex[T]

	// Write-through (see owned.go): lockPrefix/lockSuffix locate a
	// child's lock directory ("" disables it); pending counts the watch
	// events our own writes will fire; owned children are locked by this
	// client; refetch are children to read again (re-arming their watch).
	lockPrefix, lockSuffix string
	unwatched              func(T) bool
	pending                map[string]int
	owned                  map[string]bool
	refetch                map[string]bool
}

// CacheIndex groups a cache's children by a key computed from each child,
// kept current as the cache changes, so a lookup costs the size of one
// group instead of a scan of the whole tree.
type CacheIndex[T any] struct {
	owner  *sync.RWMutex
	key    func(T) string
	groups map[string]map[string]T // key → id → child
	keyOf  map[string]string       // id → key
}

// Index adds an index by key; children for which key returns "" are left
// out. Add indexes before Run.
func (t *TreeCache[T]) Index(key func(T) string) *CacheIndex[T] {
	ix := &CacheIndex[T]{key: key, groups: map[string]map[string]T{}, keyOf: map[string]string{}}
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, v := range t.items {
		ix.put(id, v)
	}
	t.indexes = append(t.indexes, ix)
	ix.owner = &t.mu
	return ix
}

func (ix *CacheIndex[T]) put(id string, v T) {
	ix.remove(id)
	k := ix.key(v)
	if k == "" {
		return
	}
	g := ix.groups[k]
	if g == nil {
		g = map[string]T{}
		ix.groups[k] = g
	}
	g[id] = v
	ix.keyOf[id] = k
}

func (ix *CacheIndex[T]) remove(id string) {
	k, ok := ix.keyOf[id]
	if !ok {
		return
	}
	delete(ix.keyOf, id)
	g := ix.groups[k]
	delete(g, id)
	if len(g) == 0 {
		delete(ix.groups, k)
	}
}

// Lookup returns a snapshot of the children whose key is k. Callers must
// not modify the values.
func (ix *CacheIndex[T]) Lookup(k string) []T {
	ix.owner.RLock()
	defer ix.owner.RUnlock()
	g := ix.groups[k]
	out := make([]T, 0, len(g))
	for _, v := range g {
		out = append(out, v)
	}
	return out
}

// Count returns how many children have key k.
func (ix *CacheIndex[T]) Count(k string) int {
	ix.owner.RLock()
	defer ix.owner.RUnlock()
	return len(ix.groups[k])
}

// put stores a child; t.mu must be held.
func (t *TreeCache[T]) put(id string, item T, version int32) {
	t.items[id] = item
	t.vers[id] = version
	for _, ix := range t.indexes {
		ix.put(id, item)
	}
}

// remove drops a child; t.mu must be held.
func (t *TreeCache[T]) remove(id string) {
	delete(t.items, id)
	delete(t.vers, id)
	for _, ix := range t.indexes {
		ix.remove(id)
	}
}

// NewNodeCache returns a cache of /nodepool/nodes. It takes the nodes this
// client writes under their lock without reading them back.
func NewNodeCache(c *Client) *TreeCache[*Node] {
	t := newTreeCache(c, NodeRoot, DecodeNode)
	t.lockPrefix, t.lockSuffix = NodeRoot+"/", "/"+lockDirName
	return t
}

// NewRequestCache returns a cache of /nodepool/requests. It takes the
// requests this client writes under their lock without reading them back;
// a fulfilled or failed request is left without a data watch once
// unlocked (nobody changes it any more; its deletion shows in the
// directory listing).
func NewRequestCache(c *Client) *TreeCache[*NodeRequest] {
	t := newTreeCache(c, RequestRoot, DecodeRequest)
	t.lockPrefix, t.lockSuffix = RequestLockRoot+"/", ""
	t.unwatched = func(r *NodeRequest) bool { return r.State == RequestFulfilled || r.State == RequestFailed }
	return t
}

func newTreeCache[T any](c *Client, root string, decode func(string, []byte) (T, error)) *TreeCache[T] {
	return &TreeCache[T]{
		c: c, root: root, decode: decode, log: c.log.With("cache", root),
		items:     map[string]T{},
		vers:      map[string]int32{},
		bad:       map[string]int32{},
		watched:   map[string]bool{},
		pending:   map[string]int{},
		owned:     map[string]bool{},
		refetch:   map[string]bool{},
		kick:      make(chan struct{}, 1),
		synced:    make(chan struct{}),
		fetchSize: 128,
	}
}

// Subscribe returns a channel that receives a token whenever the cache
// changed (changes are coalesced; read the cache after each token).
func (t *TreeCache[T]) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	t.subsMu.Lock()
	t.subs = append(t.subs, ch)
	t.subsMu.Unlock()
	return ch
}

// Generation returns a number that changes whenever the cache changed.
func (t *TreeCache[T]) Generation() uint64 { return t.gen.Load() }

func (t *TreeCache[T]) notify() {
	t.gen.Add(1)
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	for _, s := range t.subs {
		select {
		case s <- struct{}{}:
		default:
		}
	}
}

// Synced is closed once the first full read has completed.
func (t *TreeCache[T]) Synced() <-chan struct{} { return t.synced }

// Get returns a cached child.
func (t *TreeCache[T]) Get(id string) (T, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	v, ok := t.items[id]
	return v, ok
}

// Len returns the number of cached children.
func (t *TreeCache[T]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.items)
}

// List returns a snapshot of the cached children. Callers must not modify
// the values (clone before changing).
func (t *TreeCache[T]) List() []T {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]T, 0, len(t.items))
	for _, v := range t.items {
		out = append(out, v)
	}
	return out
}

// onEvent runs on the connection's receive loop: queue, never block.
// Events below a child (its lock, which the recursive watch reports too)
// are dropped here.
func (t *TreeCache[T]) onEvent(ev zk.Event) {
	if rel, ok := strings.CutPrefix(ev.Path, t.root+"/"); ok && strings.Contains(rel, "/") {
		return
	}
	t.queueMu.Lock()
	if len(t.queue) < maxQueuedEvents {
		t.queue = append(t.queue, ev)
	} else {
		t.overflow.Store(true)
	}
	t.queueMu.Unlock()
	t.wakeLoop()
}

// maxQueuedEvents bounds the events waiting for the cache's loop (a burst
// of 10,000 new requests is 10,000 events); past it the cache drops them
// and reads the whole directory again.
const maxQueuedEvents = 1 << 20

// handleSlice is how many events the cache applies before announcing them.
const handleSlice = 512

// takeEvents returns the queued events, oldest first.
func (t *TreeCache[T]) takeEvents() []zk.Event {
	t.queueMu.Lock()
	defer t.queueMu.Unlock()
	q := t.queue
	t.queue = nil
	return q
}

// Run keeps the cache in sync until ctx ends.
func (t *TreeCache[T]) Run(ctx context.Context) error {
	remove := t.c.addWatchRoute(t.root, t.onEvent)
	defer remove()
	if t.lockPrefix != "" {
		defer t.c.addOwner(ownerRoute{root: t.root, lockPrefix: t.lockPrefix, lockSuffix: t.lockSuffix, o: t})()
	}
	sessions := t.c.Subscribe()
	defer t.c.Unsubscribe(sessions)
	needResync := true
	for {
		if needResync && t.c.Connected() {
			if err := t.resync(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				t.log.Warn("cache resync failed; retrying", "error", err)
			} else {
				needResync = false
				t.syncOnce.Do(func() { close(t.synced) })
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case ev := <-sessions:
			if ev.State == StateLost {
				needResync = true // watches died with the session
			}
			if ev.State == StateConnected && t.persistent.Load() {
				// A persistent watch dies with its connection, and what
				// changed meanwhile was never reported.
				needResync = true
			}
			if ev.State == StateConnected && needResync {
				continue
			}
		case <-t.kick:
			batch := t.takeEvents()
			if t.overflow.Swap(false) {
				needResync = true
			}
			// In slices, so that the first of a large burst are announced
			// before the last are read.
			for len(batch) > 0 && !needResync {
				n := min(len(batch), handleSlice)
				needResync = t.handle(ctx, batch[:n])
				batch = batch[n:]
			}
			if !needResync && t.fetchRefetch(ctx) {
				needResync = true
			}
		}
		if needResync && !t.c.Connected() {
			// Wait for the session before resyncing.
			select {
			case <-ctx.Done():
				return nil
			case <-sessions:
			}
		}
	}
}

// handle applies a batch of watch events; it reports whether a full
// resync is needed.
func (t *TreeCache[T]) handle(ctx context.Context, batch []zk.Event) bool {
	childrenChanged := false
	fetch := map[string]bool{} // changed children
	added := map[string]bool{} // new children
	changed := false
	for _, ev := range batch {
		if ev.Type == zk.EventNotWatching {
			return true
		}
		if ev.Path == t.root {
			if ev.Type == zk.EventNodeChildrenChanged || ev.Type == zk.EventNodeDeleted || ev.Type == zk.EventNodeCreated {
				childrenChanged = true
			}
			continue
		}
		rel := strings.TrimPrefix(ev.Path, t.root+"/")
		if strings.Contains(rel, "/") {
			continue // below a child (e.g. its lock); not watched
		}
		switch ev.Type {
		case zk.EventNodeCreated:
			// Only a persistent watch reports children's creation.
			t.mu.RLock()
			_, have := t.items[rel]
			_, bad := t.bad[rel]
			t.mu.RUnlock()
			if !have && !bad {
				added[rel] = true
			}
		case zk.EventNodeDataChanged:
			t.mu.Lock()
			delete(t.watched, rel)
			skip := t.ownEvent(rel)
			t.mu.Unlock()
			if !skip {
				fetch[rel] = true
			}
		case zk.EventNodeDeleted:
			t.mu.Lock()
			delete(t.watched, rel)
			if _, ok := t.items[rel]; ok {
				changed = true
			}
			t.remove(rel)
			delete(t.bad, rel)
			t.mu.Unlock()
			delete(fetch, rel)
		}
	}
	if childrenChanged {
		ids, _, err := t.c.ChildrenW(t.phase(ctx, "list"), t.root)
		if err != nil {
			t.log.Warn("listing children failed", "error", err)
			return true
		}
		present := make(map[string]bool, len(ids))
		t.mu.Lock()
		for _, id := range ids {
			present[id] = true
			if _, ok := t.items[id]; !ok && !t.watched[id] {
				if _, bad := t.bad[id]; !bad && !fetch[id] {
					added[id] = true
				}
			}
		}
		for id := range t.items {
			if !present[id] {
				t.remove(id)
				changed = true
			}
		}
		t.mu.Unlock()
	}
	resync := false
	for reason, ids := range map[string]map[string]bool{"changed": fetch, "new": added} {
		if len(ids) == 0 {
			continue
		}
		ch, failed := t.fetch(t.phase(ctx, reason), ids)
		changed = changed || ch
		// A failed read left a child stale and unwatched: resync.
		resync = resync || failed
	}
	if changed {
		t.notify()
	}
	return resync
}

// fetch reads children with a data watch, a few at a time; it reports
// whether anything changed and whether a read failed.
func (t *TreeCache[T]) fetch(ctx context.Context, ids map[string]bool) (changed, failed bool) {
	var ch, fl atomic.Bool
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(t.fetchSize)
	for id := range ids {
		g.Go(func() error {
			c, err := t.fetchOne(gctx, id)
			if c {
				ch.Store(true)
			}
			if err {
				fl.Store(true)
			}
			return nil
		})
	}
	_ = g.Wait()
	return ch.Load(), fl.Load()
}

func (t *TreeCache[T]) fetchOne(ctx context.Context, id string) (changed, failed bool) {
	p := t.root + "/" + id
	persistent := t.persistent.Load()
	var data []byte
	var st *zk.Stat
	var err error
	if persistent {
		data, st, err = t.c.Get(ctx, p)
	} else {
		data, st, _, err = t.c.GetW(ctx, p)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if errors.Is(err, zk.ErrNoNode) {
		delete(t.watched, id)
		if _, ok := t.items[id]; ok {
			t.remove(id)
			return true, false
		}
		return false, false
	}
	if err != nil {
		t.log.Warn("reading child failed", "path", p, "error", err)
		return false, true
	}
	if !persistent {
		t.watched[id] = true
	}
	if v, ok := t.vers[id]; ok && st.Version < v {
		return false, false // a stale read raced a newer one
	}
	item, err := t.decode(id, data)
	if err != nil {
		_, had := t.items[id]
		t.remove(id)
		if v, ok := t.bad[id]; !ok || v != st.Version {
			if !errors.Is(err, ErrEmpty) {
				t.log.Warn("skipping unreadable znode", "path", p, "error", err)
			}
			t.bad[id] = st.Version
		}
		return had, false
	}
	delete(t.bad, id)
	setVersion(item, st.Version)
	t.put(id, item, st.Version)
	return true, false
}

func setVersion(item any, v int32) {
	switch x := item.(type) {
	case *Node:
		x.Version = v
	case *NodeRequest:
		x.Version = v
	case *Component:
		x.Version = v
	}
}

// phase labels the cache's reads for the request counters by why they
// were made ("<dir>-cache:<reason>").
func (t *TreeCache[T]) phase(ctx context.Context, reason string) context.Context {
	return WithPhase(ctx, path.Base(t.root)+"-cache:"+reason)
}

// resync reads the whole directory, replacing the cache's contents.
func (t *TreeCache[T]) resync(ctx context.Context) error {
	ctx = t.phase(ctx, "resync")
	if err := t.c.EnsurePath(ctx, t.root); err != nil {
		return err
	}
	// The watch first, so that no change after the listing goes unseen.
	err := zk.ErrUnimplemented
	if !t.oneShot {
		err = t.c.AddWatch(ctx, t.root, true)
	}
	switch {
	case err == nil:
		t.persistent.Store(true)
	case errors.Is(err, zk.ErrUnimplemented):
		if !t.oneShot && (t.persistent.Load() || !t.legacyLogged) {
			t.log.Info("ZooKeeper has no persistent watches (before 3.6); watching each child instead")
			t.legacyLogged = true
		}
		t.persistent.Store(false)
	default:
		return err
	}
	var ids []string
	if t.persistent.Load() {
		ids, err = t.c.Children(ctx, t.root)
	} else {
		ids, _, err = t.c.ChildrenW(ctx, t.root)
	}
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.watched = map[string]bool{}
	t.pending, t.owned, t.refetch = map[string]int{}, map[string]bool{}, map[string]bool{}
	present := make(map[string]bool, len(ids))
	for _, id := range ids {
		present[id] = true
	}
	for id := range t.items {
		if !present[id] {
			t.remove(id)
		}
	}
	t.bad = map[string]int32{}
	t.mu.Unlock()
	fetch := make(map[string]bool, len(ids))
	for _, id := range ids {
		fetch[id] = true
	}
	if _, failed := t.fetch(ctx, fetch); failed {
		return errors.New("some children could not be read")
	}
	t.notify()
	return nil
}

// Base returns the last element of a path.
func Base(p string) string { return path.Base(p) }

// NewPoolComponentCache returns a cache of the registered pool components.
func NewPoolComponentCache(c *Client) *TreeCache[*Component] {
	return newTreeCache(c, ComponentPath(KindPool), func(name string, data []byte) (*Component, error) {
		comp := &Component{Name: name}
		if err := comp.UnmarshalJSON(data); err != nil {
			return nil, err
		}
		return comp, nil
	})
}
