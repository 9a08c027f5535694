// Package listcache is the listing a cloud driver shares between all the
// machines of one provider: a stale-while-revalidate cache of one list
// call. The first caller lists synchronously; later callers get the cached
// items at once and, when they are older than the TTL, one background
// refresh starts. However many machines poll, the cloud sees at most one
// listing per TTL, so a provider with thousands of nodes costs a few list
// calls a minute. Machines that must see a state newer than their own
// last action ask Fresh for a listing that started after it.
package listcache

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// refreshTimeout bounds one background listing.
const refreshTimeout = 2 * time.Minute

// Cache is one listing shared by every machine of a provider: the
// first call lists synchronously; later calls get the cached items at
// once and, when they are older than the TTL, start one background
// refresh. However many machines poll, the cloud sees at most one listing
// per TTL.
type Cache[T any] struct {
	ttl   time.Duration
	fetch func(ctx context.Context) ([]T, error)
	log   *slog.Logger

	mu       sync.Mutex
	items    []T
	at       time.Time // start of the listing that produced items
	valid    bool
	inflight chan struct{} // closed when the running listing ends
}

// New returns a cache of the listing fetch makes, refreshed when older
// than ttl; failed background refreshes are logged on log.
func New[T any](ttl time.Duration, log *slog.Logger, fetch func(ctx context.Context) ([]T, error)) *Cache[T] {
	return &Cache[T]{ttl: ttl, fetch: fetch, log: log}
}

// Get returns the items and the time their listing started.
func (c *Cache[T]) Get(ctx context.Context) ([]T, time.Time, error) {
	for {
		c.mu.Lock()
		if c.valid {
			items, at := c.items, c.at
			if time.Since(at) > c.ttl && c.inflight == nil {
				c.startLocked(context.WithoutCancel(ctx))
			}
			c.mu.Unlock()
			return items, at, nil
		}
		if ch := c.inflight; ch != nil {
			c.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, time.Time{}, ctx.Err()
			}
		}
		ch := make(chan struct{})
		c.inflight = ch
		c.mu.Unlock()
		start := time.Now()
		items, err := c.fetch(ctx)
		c.mu.Lock()
		c.inflight = nil
		close(ch)
		if err != nil {
			c.mu.Unlock()
			return nil, time.Time{}, err
		}
		c.items, c.at, c.valid = items, start, true
		c.mu.Unlock()
		return items, start, nil
	}
}

// Fresh returns items listed after t and when that listing started; ok
// is false while there is none yet (Get has then started a refresh if
// the TTL allows).
func (c *Cache[T]) Fresh(ctx context.Context, t time.Time) (items []T, at time.Time, ok bool, err error) {
	items, at, err = c.Get(ctx)
	if err != nil || !at.After(t) {
		return nil, time.Time{}, false, err
	}
	return items, at, true, nil
}

// startLocked starts a background refresh; c.mu is held.
func (c *Cache[T]) startLocked(ctx context.Context) {
	ch := make(chan struct{})
	c.inflight = ch
	go func() {
		ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		defer cancel()
		start := time.Now()
		items, err := c.fetch(ctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.inflight = nil
		close(ch)
		if err != nil {
			c.log.Warn("refreshing a cached listing failed", "error", err)
			return
		}
		if !c.valid || start.After(c.at) {
			c.items, c.at, c.valid = items, start, true
		}
	}()
}

// Refresh lists synchronously and stores the result (leak cleanup wants
// the current state).
func (c *Cache[T]) Refresh(ctx context.Context) ([]T, error) {
	start := time.Now()
	items, err := c.fetch(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.valid || start.After(c.at) {
		c.items, c.at, c.valid = items, start, true
	}
	return items, nil
}
