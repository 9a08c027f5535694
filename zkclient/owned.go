package zkclient

import (
	"context"
	"strings"

	"github.com/go-zookeeper/zk"
)

// Write-through of the launcher's own locked writes into its caches.
//
// A cached child's data watch fires on every change, and re-reading the
// child re-arms it: one read per write. While this client holds a
// record's lock nobody else writes the record (every writer locks it), so
// the cache may take the data this client wrote instead of reading it back
// and leave the watch unset; it reads the record (re-arming the watch)
// when the lock is released. Deletions stay visible through the
// directory's child watch, and a failed or uncertain write makes the cache
// read the record again, so the cache never holds less than it would by
// reading.

// writeOwner is a cache that takes this client's locked writes.
type writeOwner interface {
	expect(id string)                                          // a guarded write of id is about to be sent
	wrote(id string, s ownedSet, version int32, unlocked bool) // it succeeded (and the lock went with it)
	failed(id string)                                          // it failed or its outcome is unknown
	created(id string, data []byte)                            // this client created id (version 0)
	released(id string)                                        // the lock of id was given up
	deleted(id string)                                         // this client deleted id
}

// ownerRoute maps records and their lock directories to a cache.
type ownerRoute struct {
	root       string // the cached directory
	lockPrefix string // lock directory of id: lockPrefix + id + lockSuffix
	lockSuffix string
	o          writeOwner
}

// addOwner registers a cache for write-through; it returns the function
// that removes it.
func (c *Client) addOwner(r ownerRoute) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var cur []ownerRoute
	if p := c.owners.Load(); p != nil {
		cur = *p
	}
	next := append(append([]ownerRoute(nil), cur...), r)
	c.owners.Store(&next)
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		var out []ownerRoute
		if p := c.owners.Load(); p != nil {
			for _, x := range *p {
				if x.o != r.o {
					out = append(out, x)
				}
			}
		}
		c.owners.Store(&out)
	}
}

// ownerOf returns the cache of the record at p, and its id.
func (c *Client) ownerOf(p string) (writeOwner, string) {
	rs := c.owners.Load()
	if rs == nil {
		return nil, ""
	}
	for _, r := range *rs {
		if id, ok := strings.CutPrefix(p, r.root+"/"); ok && id != "" && !strings.Contains(id, "/") {
			return r.o, id
		}
	}
	return nil, ""
}

// lockOwner returns the cache of the record whose lock directory is dir.
func (c *Client) lockOwner(dir string) (writeOwner, string) {
	rs := c.owners.Load()
	if rs == nil {
		return nil, ""
	}
	for _, r := range *rs {
		rest, ok := strings.CutPrefix(dir, r.lockPrefix)
		if !ok {
			continue
		}
		if id, ok := strings.CutSuffix(rest, r.lockSuffix); ok && id != "" && !strings.Contains(id, "/") {
			return r.o, id
		}
	}
	return nil, ""
}

// ownedSet is a guarded SetOp on a cached record.
type ownedSet struct {
	o      writeOwner
	id     string
	data   []byte
	record any // SetOp.record
	idx    int // position in the transaction
	ver    int32
}

// expectSets announces the guarded sets among ops to their caches.
func (c *Client) expectSets(ops []Op, offset int) []ownedSet {
	var out []ownedSet
	for i, op := range ops {
		s, ok := op.(SetOp)
		if !ok {
			continue
		}
		if o, id := c.ownerOf(s.Path); o != nil {
			o.expect(id)
			out = append(out, ownedSet{o: o, id: id, data: s.Data, record: s.record, idx: offset + i, ver: s.Version})
		}
	}
	return out
}

// settleSets reports the outcome of announced sets: res are the
// transaction's results (nil when unknown); unlocked names the records
// whose lock the transaction also gave up.
func settleSets(sets []ownedSet, res []zk.MultiResponse, err error, unlocked func(id string) bool) {
	for _, s := range sets {
		if err != nil {
			s.o.failed(s.id)
			continue
		}
		v := int32(-1)
		if s.idx < len(res) && res[s.idx].Stat != nil {
			v = res[s.idx].Stat.Version
		} else if s.ver >= 0 {
			v = s.ver + 1
		}
		if v < 0 {
			s.o.failed(s.id)
			continue
		}
		s.o.wrote(s.id, s, v, unlocked != nil && unlocked(s.id))
	}
}

// lockReleased tells the cache of the locked record that its lock is gone.
func (l *Lock) lockReleased() {
	if o, id := l.c.lockOwner(l.dir); o != nil {
		o.released(id)
	}
}

// ownEvent consumes a data event that one of our own writes fired; it
// reports whether the child need not be read (t.mu held).
func (t *TreeCache[T]) ownEvent(id string) bool {
	if t.pending[id] == 0 {
		return false
	}
	if t.pending[id]--; t.pending[id] == 0 {
		delete(t.pending, id)
	}
	if t.persistent.Load() {
		// The watch stays set: the event is our write, whose data the
		// cache already took, locked or not.
		_, ok := t.items[id]
		return ok
	}
	if t.owned[id] {
		return true // still locked: the data we wrote is in the cache
	}
	item, ok := t.items[id]
	return ok && t.unwatched != nil && t.unwatched(item)
}

func (t *TreeCache[T]) expect(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.owned[id] = true
	if t.persistent.Load() || t.watched[id] {
		// The write fires the watch; a second write before its event
		// arrives fires nothing, so the watch counts once.
		t.pending[id]++
		delete(t.watched, id)
	}
}

func (t *TreeCache[T]) wrote(id string, s ownedSet, version int32, unlocked bool) {
	item, ok := s.record.(T)
	var err error
	if !ok {
		item, err = t.decode(id, s.data)
	}
	t.mu.Lock()
	if err != nil {
		t.mu.Unlock()
		t.failed(id)
		return
	}
	if unlocked {
		delete(t.owned, id)
	}
	changed := false
	if v, ok := t.vers[id]; !ok || v < version {
		setVersion(item, version)
		t.put(id, item, version)
		changed = true
	}
	if unlocked {
		t.rearmLocked(id)
	}
	t.mu.Unlock()
	if changed {
		t.notify()
	}
}

func (t *TreeCache[T]) failed(id string) {
	t.mu.Lock()
	if t.pending[id] > 0 {
		if t.pending[id]--; t.pending[id] == 0 {
			delete(t.pending, id)
		}
	}
	delete(t.owned, id)
	t.refetch[id] = true
	t.mu.Unlock()
	t.wakeLoop()
}

func (t *TreeCache[T]) created(id string, data []byte) {
	item, err := t.decode(id, data)
	if err != nil {
		return // the directory listing reads it
	}
	t.mu.Lock()
	if _, ok := t.vers[id]; ok {
		t.mu.Unlock()
		return // already read
	}
	setVersion(item, 0)
	t.put(id, item, 0)
	t.owned[id] = true // about to be locked; read again if it never is (Refresh)
	t.mu.Unlock()
	t.notify()
}

func (t *TreeCache[T]) deleted(id string) {
	t.mu.Lock()
	_, had := t.items[id]
	t.remove(id)
	delete(t.owned, id)
	delete(t.pending, id)
	t.mu.Unlock()
	if had {
		t.notify()
	}
}

// recordDeleted tells the cache of the record at p that it is gone.
func (c *Client) recordDeleted(p string) {
	if o, id := c.ownerOf(p); o != nil {
		o.deleted(id)
	}
}

func (t *TreeCache[T]) released(id string) {
	t.mu.Lock()
	delete(t.owned, id)
	t.rearmLocked(id)
	t.mu.Unlock()
}

// rearmLocked schedules a read of a cached child that has no watch, no
// watch event on its way and no lock of ours (t.mu held).
func (t *TreeCache[T]) rearmLocked(id string) {
	if t.persistent.Load() {
		return // the persistent watch reports what changes next
	}
	item, ok := t.items[id]
	if !ok || t.watched[id] || t.pending[id] > 0 || t.owned[id] {
		return
	}
	if t.unwatched != nil && t.unwatched(item) {
		return
	}
	t.refetch[id] = true
	t.wakeLoop()
}

// Refresh reads a child again (e.g. a record this client created but
// will not lock after all).
func (t *TreeCache[T]) Refresh(id string) {
	t.mu.Lock()
	delete(t.owned, id)
	t.refetch[id] = true
	t.mu.Unlock()
	t.wakeLoop()
}

func (t *TreeCache[T]) wakeLoop() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// fetchRefetch reads the children queued for a read; it reports whether a
// read failed.
func (t *TreeCache[T]) fetchRefetch(ctx context.Context) bool {
	t.mu.Lock()
	ids := t.refetch
	t.refetch = map[string]bool{}
	t.mu.Unlock()
	if len(ids) == 0 {
		return false
	}
	changed, failed := t.fetch(t.phase(ctx, "rearm"), ids)
	if changed {
		t.notify()
	}
	return failed
}
