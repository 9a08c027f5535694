package zkclient_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/zktest"
)

// TestPipelinedRequestsGetTheirOwnAnswers: requests sent back to back (the
// connection gathers queued requests into one write and reads answers
// through a buffer) each get their own answer, small and large alike.
func TestPipelinedRequestsGetTheirOwnAnswers(t *testing.T) {
	c, _ := zktest.Connect(t)
	ctx := context.Background()
	const n = 2000
	big := make([]byte, 200<<10) // several of these overflow one gathered write
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := []byte(fmt.Sprintf("record %d", i))
			if i%100 == 0 {
				data = append([]byte(fmt.Sprintf("record %d", i)), big...)
			}
			p := fmt.Sprintf("/pipeline-%d", i)
			if _, err := c.Create(ctx, p, data, 0, false); err != nil {
				errs[i] = err
				return
			}
			got, _, err := c.Get(ctx, p)
			if err != nil {
				errs[i] = err
				return
			}
			if string(got) != string(data) {
				errs[i] = fmt.Errorf("%s: read %d bytes starting %q, wrote %d", p, len(got), got[:min(len(got), 16)], len(data))
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
}

// TestPipelinedRequestsFailWhenTheConnectionDrops: requests in flight when
// the connection is cut each end, with an answer or an error, instead of
// waiting forever.
func TestPipelinedRequestsFailWhenTheConnectionDrops(t *testing.T) {
	c, proxy := zktest.ConnectViaProxy(t, zktest.Chroot(t), 4*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 3000
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.Create(ctx, fmt.Sprintf("/drop-%d", i), []byte("x"), 0, false)
		}()
	}
	time.Sleep(5 * time.Millisecond)
	proxy.Pause()
	time.Sleep(100 * time.Millisecond)
	proxy.Resume()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("requests in flight when the connection dropped never ended")
	}
}
