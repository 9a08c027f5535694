package nodepool_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/internal/bench"
	"github.com/nodepool-go/nodepool/internal/zktest"
)

// BenchmarkLauncherBurst runs an in-process launcher on simcloud (zero boot
// time) and drives b.N single-node requests through it as Zuul does, 200 in
// flight at a time; it reports fulfilled/s and ZooKeeper requests per
// request (launch and deletion together).
func BenchmarkLauncherBurst(b *testing.B) {
	zk, chroot := zktest.Connect(b)
	path := filepath.Join(b.TempDir(), "nodepool.yaml")
	if err := os.WriteFile(path, []byte(sprintf(`
labels:
  - name: small
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    pools:
      - name: main
        max-servers: 100000
        labels:
          - name: small
`, "bench-"+chroot[1:])), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := nodepool.LoadConfig(path, "")
	if err != nil {
		b.Fatal(err)
	}
	lzk := zktest.ConnectChroot(b, chroot)
	l, err := nodepool.NewLauncher(cfg, nodepool.WithZooKeeper(lzk),
		nodepool.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for !l.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	b.ResetTimer()
	res, err := bench.Run(context.Background(), bench.Config{
		Client: zk, Requests: b.N, Concurrency: min(b.N, 200), Labels: []string{"small"},
		ReturnWait: true, LauncherOps: func() int64 { return lzk.Ops().Total() },
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if res.Fulfilled != b.N {
		b.Fatalf("fulfilled %d of %d (%s)", res.Fulfilled, b.N, res.FirstErr)
	}
	b.ReportMetric(res.FulfilledPerSec, "fulfilled/s")
	b.ReportMetric(float64(res.LauncherOps)/float64(b.N), "zkops/req")
	b.ReportMetric(float64(res.P99.Milliseconds()), "p99-ms")
	_ = fmt.Sprint
}
