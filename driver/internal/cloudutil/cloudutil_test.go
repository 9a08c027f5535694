package cloudutil

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
)

func TestFormatRequest(t *testing.T) {
	req := driver.RequestInfo{ID: "100-0000000001", Labels: []string{"a", "b"}, TenantName: "t1", RequestorData: []byte(`{"x": {"y": 2}}`)}
	for tmpl, want := range map[string]string{
		"Tenant is {request.tenant_name}": "Tenant is t1",
		"{request.labels}":                "['a', 'b']",
		"{request.requestor_data[x][y]}":  "2",
		"{{literal}} {request.id}":        "{literal} 100-0000000001",
	} {
		got, err := FormatRequest(tmpl, req)
		require.NoError(t, err, tmpl)
		require.Equal(t, want, got, tmpl)
	}
	_, err := FormatRequest("{request.nope}", req)
	require.Error(t, err)
	_, err = FormatRequest("{node.id}", req)
	require.Error(t, err)
}

func TestListCacheShared(t *testing.T) {
	var calls atomic.Int32
	c := NewListCache(time.Hour, slog.Default(), func(context.Context) ([]int, error) {
		calls.Add(1)
		time.Sleep(10 * time.Millisecond)
		return []int{1}, nil
	})
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			items, _, err := c.Get(context.Background())
			require.NoError(t, err)
			require.Equal(t, []int{1}, items)
		}()
	}
	wg.Wait()
	require.Equal(t, int32(1), calls.Load(), "concurrent callers share one listing")
	_, err := c.Refresh(context.Background())
	require.NoError(t, err)
	require.Equal(t, int32(2), calls.Load())
}

func TestLimiterSpacesCalls(t *testing.T) {
	l := NewLimiter(0)
	require.NoError(t, l.Wait(context.Background()), "unlimited")
	l = NewLimiter(1e-3) // one call per 1000 s
	require.NoError(t, l.Wait(context.Background()), "the first call is immediate")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, l.Wait(ctx), context.Canceled, "the second must wait its turn")
}
