package kube

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// listCache shares one listing among all of a provider's machines: the
// first call lists synchronously; later calls get the cached items at once
// and, once they are older than ttl, start one background refresh. A
// machine that must see the cluster as it is after its own write waits
// for a listing that started after that write (fresh).
type listCache[T any] struct {
	ttl   time.Duration
	fetch func(ctx context.Context) ([]T, error)
	log   *slog.Logger

	mu       sync.Mutex
	items    []T
	at       time.Time // start of the listing that produced items
	valid    bool
	inflight bool
}

func newListCache[T any](ttl time.Duration, log *slog.Logger, fetch func(ctx context.Context) ([]T, error)) *listCache[T] {
	return &listCache[T]{ttl: ttl, fetch: fetch, log: log}
}

// get returns the cached listing and the time it started, listing
// synchronously when there is none yet.
func (c *listCache[T]) get(ctx context.Context) ([]T, time.Time, error) {
	c.mu.Lock()
	if c.valid {
		items, at := c.items, c.at
		if time.Since(at) > c.ttl && !c.inflight {
			c.inflight = true
			go c.refreshAsync(context.WithoutCancel(ctx))
		}
		c.mu.Unlock()
		return items, at, nil
	}
	c.mu.Unlock()
	items, err := c.refresh(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return items, c.at, nil
}

// fresh returns a listing that started after t; ok is false while there is
// none yet (a refresh is then under way or due).
func (c *listCache[T]) fresh(ctx context.Context, t time.Time) ([]T, bool, error) {
	items, at, err := c.get(ctx)
	if err != nil || !at.After(t) {
		return nil, false, err
	}
	return items, true, nil
}

func (c *listCache[T]) refreshAsync(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	items, err := c.fetch(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight = false
	if err != nil {
		c.log.Warn("refreshing a cached listing failed", "error", err)
		return
	}
	if !c.valid || start.After(c.at) {
		c.items, c.at, c.valid = items, start, true
	}
}

// refresh lists synchronously and stores the result.
func (c *listCache[T]) refresh(ctx context.Context) ([]T, error) {
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
