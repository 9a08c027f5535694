package nodepool_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
)

// TestOutageRequeuedOnReturn cuts the launcher off ZooKeeper for 20 s
// (its session expires) under a stream of requests, with the default
// cleanup interval: every request is fulfilled within seconds of
// ZooKeeper's return, without waiting for the next cleanup pass.
func TestOutageRequeuedOnReturn(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	lzk, proxy := zktest.ConnectViaProxy(t, chroot, 4*time.Second)
	cloud := "cloud-" + chroot[1:]
	// Launches take seconds, so handlers are in flight when it is cut.
	l := launchertest.Start(t, lzk, sprintf(`
labels:
  - name: small
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    boot-time: [1, 3]
    pools:
      - name: main
        max-servers: 50
        labels:
          - name: small
`, cloud))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	const outage = 20 * time.Second
	var (
		mu   sync.Mutex
		reqs []*zuulsim.Request
		errs []error
		wg   sync.WaitGroup
	)
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			r, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{})
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				continue
			}
			mu.Lock()
			reqs = append(reqs, r)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := r.Wait(ctx); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				if ns, err := r.Accept(ctx); err == nil {
					_ = ns.Return(ctx)
				}
			}()
		}
	}()
	time.Sleep(2 * time.Second)
	proxy.Pause()
	time.Sleep(outage)
	proxy.Resume()
	back := time.Now()
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	require.Empty(t, errs)

	var worst time.Duration
	for _, r := range reqs {
		from := r.SubmittedAt
		if from.Before(back) {
			from = back
		}
		if d := r.DoneAt.Sub(from); d > worst {
			worst = d
		}
	}
	t.Logf("%d requests around a %v outage; the slowest was served %v after ZooKeeper's return", len(reqs), outage, worst.Round(time.Millisecond))
	require.Less(t, worst, 15*time.Second, "every request is served within seconds of ZooKeeper's return (the cleanup interval is a minute)")
	noLeaks(t, ctx, l, zk, cloud, "sim")
}
