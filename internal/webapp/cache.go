package webapp

import (
	"container/list"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Limits of the response cache. Only the query parameters an endpoint
// defines (params) make distinct entries, the entries are bounded in
// number and bytes (least recently used first out), a response larger
// than the byte bound is served uncached, and entries are dropped once
// expired by a timer, whether or not more requests come.
const (
	CacheMaxEntries = 256
	CacheMaxBytes   = 64 << 20
	// MaxProducing bounds the responses computed at once (each may hold
	// the whole node list); further requests wait for a turn.
	MaxProducing = 4
)

// params lists the query parameters each endpoint reads: the rest of a
// query string is ignored, for the cache as for the response. "fields"
// selects columns of the text tables.
var params = map[string][]string{
	"/node-list":       {"node_id"},
	"/request-explain": {"request_id"},
}

// cacheKey is the key of a response: the path, the endpoint's own
// parameters, the columns selected (text only) and the format.
func cacheKey(path string, q url.Values, wantJSON bool) string {
	var b strings.Builder
	b.WriteString(path)
	for _, p := range params[path] {
		b.WriteString("\x00" + p + "=" + q.Get(p))
	}
	if wantJSON {
		b.WriteString("\x00json")
	} else {
		b.WriteString("\x00fields=" + q.Get("fields"))
	}
	return b.String()
}

type entry struct {
	body     []byte
	json     bool
	modified time.Time // by the handler's clock: freshness and headers
	stored   time.Time // by the wall clock: when the sweeper drops it
	key      string
}

// responseCache is a bounded LRU of responses with timed expiry.
type responseCache struct {
	maxEntries, maxBytes int

	mu    sync.Mutex
	items map[string]*list.Element
	lru   list.List // front: most recently used
	bytes int
	sweep *time.Timer
}

func newResponseCache(maxEntries, maxBytes int) *responseCache {
	return &responseCache{maxEntries: maxEntries, maxBytes: maxBytes, items: map[string]*list.Element{}}
}

// get returns the entry of key if it is still fresh at now.
func (c *responseCache) get(key string, now time.Time) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.items[key]
	if el == nil {
		return nil
	}
	e := el.Value.(*entry)
	if now.Sub(e.modified) >= CacheExpiry || now.Before(e.modified) || time.Since(e.stored) >= CacheExpiry {
		c.remove(el)
		return nil
	}
	c.lru.MoveToFront(el)
	return e
}

// put stores e (unless it alone exceeds the byte bound), evicting the
// least recently used entries to stay within the bounds.
func (c *responseCache) put(e *entry) {
	if len(e.body) > c.maxBytes {
		return
	}
	e.stored = time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.items[e.key]; el != nil {
		c.remove(el)
	}
	for c.lru.Len() > 0 && (c.lru.Len() >= c.maxEntries || c.bytes+len(e.body) > c.maxBytes) {
		c.remove(c.lru.Back())
	}
	c.items[e.key] = c.lru.PushFront(e)
	c.bytes += len(e.body)
	if c.sweep == nil {
		c.sweep = time.AfterFunc(CacheExpiry, c.expire)
	}
}

func (c *responseCache) remove(el *list.Element) {
	e := el.Value.(*entry)
	c.lru.Remove(el)
	delete(c.items, e.key)
	c.bytes -= len(e.body)
}

// expire drops the expired entries and re-arms itself while any remain.
func (c *responseCache) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Duration
	for el := c.lru.Back(); el != nil; {
		prev := el.Prev()
		age := time.Since(el.Value.(*entry).stored)
		if age >= CacheExpiry {
			c.remove(el)
		} else if left := CacheExpiry - age; next == 0 || left < next {
			next = left
		}
		el = prev
	}
	if c.lru.Len() == 0 {
		c.sweep = nil
		return
	}
	c.sweep.Reset(next)
}

// size returns the number of entries and their bytes.
func (c *responseCache) size() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.bytes
}
