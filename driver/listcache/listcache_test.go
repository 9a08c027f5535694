package listcache

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// counter is a listing that returns its call number, and fails while
// fail is set.
type counter struct {
	calls   atomic.Int32
	fail    atomic.Bool
	release chan struct{} // when set, each call waits for it
}

func (c *counter) fetch(ctx context.Context) ([]int, error) {
	n := int(c.calls.Add(1))
	if c.release != nil {
		select {
		case <-c.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if c.fail.Load() {
		return nil, errors.New("cloud down")
	}
	return []int{n}, nil
}

func TestFirstCallListsThenCacheServes(t *testing.T) {
	var c counter
	cache := New(time.Hour, quiet, c.fetch)
	for range 100 {
		items, _, err := cache.Get(context.Background())
		require.NoError(t, err)
		require.Equal(t, []int{1}, items)
	}
	require.EqualValues(t, 1, c.calls.Load(), "one listing for a hundred callers within the TTL")
}

func TestConcurrentFirstCallersShareOneListing(t *testing.T) {
	c := counter{release: make(chan struct{})}
	cache := New(time.Hour, quiet, c.fetch)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			items, _, err := cache.Get(context.Background())
			require.NoError(t, err)
			require.Equal(t, []int{1}, items)
		})
	}
	require.Eventually(t, func() bool { return c.calls.Load() == 1 }, 10*time.Second, time.Millisecond)
	close(c.release)
	wg.Wait()
	require.EqualValues(t, 1, c.calls.Load())
}

func TestStaleValueServedWhileOneRefreshRuns(t *testing.T) {
	var c counter
	cache := New(0, quiet, c.fetch) // every value is stale at once
	items, first, err := cache.Get(context.Background())
	require.NoError(t, err)
	require.Equal(t, []int{1}, items)
	// A stale read returns the old items and starts a refresh.
	items, _, err = cache.Get(context.Background())
	require.NoError(t, err)
	require.Equal(t, []int{1}, items, "the stale listing is served at once")
	require.Eventually(t, func() bool {
		got, at, _ := cache.Get(context.Background())
		return got[0] > 1 && at.After(first)
	}, 10*time.Second, time.Millisecond, "a background refresh replaced it")
}

func TestFreshWaitsForAListingAfterT(t *testing.T) {
	var c counter
	cache := New(0, quiet, c.fetch)
	_, _, err := cache.Get(context.Background())
	require.NoError(t, err)
	since := time.Now()
	require.Eventually(t, func() bool {
		items, at, ok, err := cache.Fresh(context.Background(), since)
		require.NoError(t, err)
		if ok {
			require.True(t, at.After(since))
			require.Greater(t, items[0], 1)
		}
		return ok
	}, 10*time.Second, time.Millisecond)
}

func TestErrors(t *testing.T) {
	var c counter
	c.fail.Store(true)
	cache := New(0, quiet, c.fetch)
	_, _, err := cache.Get(context.Background())
	require.EqualError(t, err, "cloud down", "a first listing's error reaches the caller")

	c.fail.Store(false)
	items, _, err := cache.Get(context.Background())
	require.NoError(t, err)
	c.fail.Store(true)
	for range 20 {
		got, _, err := cache.Get(context.Background())
		require.NoError(t, err, "a failed background refresh keeps the last listing")
		require.Equal(t, items, got)
	}
	_, err = cache.Refresh(context.Background())
	require.EqualError(t, err, "cloud down")
	c.fail.Store(false)
	got, err := cache.Refresh(context.Background())
	require.NoError(t, err)
	require.Greater(t, got[0], items[0], "Refresh lists now")
}

func TestCanceledWaitForFirstListing(t *testing.T) {
	c := counter{release: make(chan struct{})}
	defer close(c.release)
	cache := New(time.Hour, quiet, c.fetch)
	go func() { _, _, _ = cache.Get(context.Background()) }()
	require.Eventually(t, func() bool { return c.calls.Load() == 1 }, 10*time.Second, time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := cache.Get(ctx)
	require.ErrorIs(t, err, context.Canceled)
}
