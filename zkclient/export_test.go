package zkclient

import (
	"context"
	"testing"
)

// HasPersistentWatch reports whether the cache holds a persistent watch.
func HasPersistentWatch[T any](t *TreeCache[T]) bool { return t.persistent.Load() }

// StartCache runs the cache until the test ends, with one-shot watches
// when oneShot is set, and waits for its first read of the directory.
func StartCache[T any](t testing.TB, ctx context.Context, cache *TreeCache[T], oneShot bool) {
	t.Helper()
	cache.oneShot = oneShot
	go func() { _ = cache.Run(ctx) }()
	select {
	case <-cache.Synced():
	case <-ctx.Done():
		t.Fatal("the cache never read its directory")
	}
	if cache.persistent.Load() == oneShot {
		t.Fatalf("cache with oneShot=%v has a persistent watch: %v", oneShot, cache.persistent.Load())
	}
}
