package cloudutil

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// refreshTimeout bounds one asynchronous listing.
const refreshTimeout = 2 * time.Minute

// ListCache is a stale-while-revalidate listing: the first call lists
// synchronously; later calls return the cached value at once and, when it is older than the TTL, start one
// asynchronous refresh. Thousands of machines polling share one listing.
type ListCache[T any] struct {
	ttl   time.Duration
	fetch func(ctx context.Context) ([]T, error)
	log   *slog.Logger

	mu       sync.Mutex
	items    []T
	at       time.Time // start of the listing that produced items
	valid    bool
	inflight chan struct{} // closed when the running listing ends
}

// NewListCache returns a cache refreshed by fetch when older than ttl;
// failed background refreshes are logged on log.
func NewListCache[T any](ttl time.Duration, log *slog.Logger, fetch func(ctx context.Context) ([]T, error)) *ListCache[T] {
	return &ListCache[T]{ttl: ttl, fetch: fetch, log: log}
}

// Get returns the listing and the time its fetch started.
func (c *ListCache[T]) Get(ctx context.Context) ([]T, time.Time, error) {
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

// Fresh returns a listing that started after t; ok is false while there
// is none yet (get has then started a refresh if the TTL allows).
func (c *ListCache[T]) Fresh(ctx context.Context, t time.Time) ([]T, bool, error) {
	items, at, err := c.Get(ctx)
	if err != nil {
		return nil, false, err
	}
	if at.After(t) {
		return items, true, nil
	}
	return nil, false, nil
}

// startLocked starts an asynchronous refresh; c.mu is held.
func (c *ListCache[T]) startLocked(ctx context.Context) {
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
// the current state, not a second-old one).
func (c *ListCache[T]) Refresh(ctx context.Context) ([]T, error) {
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
