package bench_test

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/bench"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim/fakelauncher"
)

func TestRunAgainstFakeLauncher(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, chroot := zktest.Connect(t)
	lc := zktest.ConnectChroot(t, chroot)
	l, err := fakelauncher.Start(ctx, lc)
	require.NoError(t, err)

	res, err := bench.Run(ctx, bench.Config{
		Client:      c,
		Requests:    20,
		Concurrency: 5,
		Labels:      []string{"fake-label"},
		ReturnWait:  true,
		MntrAddr:    zktest.Hosts()[0],
		LauncherPID: os.Getpid(), // the fake launcher runs in this process
		LauncherOps: func() int64 { return lc.Ops().Total() },
	})
	require.NoError(t, err)
	require.NoError(t, l.Stop())

	require.Equal(t, 20, res.Requests)
	require.Equal(t, 20, res.Fulfilled, res.FirstErr)
	require.Zero(t, res.Errors)
	require.Zero(t, res.Failed)
	require.Equal(t, 20, res.NodesReturned)
	require.Equal(t, 20, res.NodesDeleted)
	require.Equal(t, 20, l.Deleted())
	require.Positive(t, res.FulfilledPerSec)
	require.Positive(t, res.P50)
	require.LessOrEqual(t, res.P50, res.P95)
	require.LessOrEqual(t, res.P95, res.P99)
	require.LessOrEqual(t, res.P99, res.Max)
	require.Positive(t, res.DeleteSpan)
	require.Positive(t, res.DeletesPerSec)
	require.Positive(t, res.ZuulOps)
	require.Positive(t, res.LauncherOps)
	require.NotNil(t, res.Mntr)
	require.GreaterOrEqual(t, res.Mntr.PacketsReceived, res.ZuulOps+res.LauncherOps)
	require.Positive(t, res.Mntr.PacketsSent)
	require.NotNil(t, res.Launcher)
	require.Positive(t, res.Launcher.PeakRSSKB)
	require.GreaterOrEqual(t, res.Launcher.CPUSeconds, 0.0)

	var out bytes.Buffer
	res.Print(&out)
	t.Log("\n" + out.String())
	for _, s := range []string{"fulfilled/s:", "latency p50/p95/p99:", "deletions/s:", "server packets:", "launcher zk ops:", "launcher peak RSS:"} {
		require.Contains(t, out.String(), s)
	}
}

func TestRunFailedRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, chroot := zktest.Connect(t)
	l, err := fakelauncher.Start(ctx, zktest.ConnectChroot(t, chroot))
	require.NoError(t, err)
	defer func() { require.NoError(t, l.Stop()) }()
	res, err := bench.Run(ctx, bench.Config{Client: c, Requests: 3, Labels: []string{"fail-x"}, ReturnWait: true})
	require.NoError(t, err)
	require.Equal(t, 3, res.Failed)
	require.Zero(t, res.Fulfilled)
	require.Zero(t, res.NodesReturned)
}

func TestMntr(t *testing.T) {
	ctx := context.Background()
	a, err := bench.Mntr(ctx, zktest.Hosts()[0])
	require.NoError(t, err)
	require.Contains(t, a, "zk_packets_sent")
}

// TestReturnTogether: no node set is returned before every request was
// accepted, so the deletion span starts after the last fulfilment.
func TestReturnTogether(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, chroot := zktest.Connect(t)
	l, err := fakelauncher.Start(ctx, zktest.ConnectChroot(t, chroot))
	require.NoError(t, err)
	defer func() { require.NoError(t, l.Stop()) }()
	_, err = bench.Run(ctx, bench.Config{Client: c, Requests: 4, Concurrency: 2, ReturnTogether: true})
	require.Error(t, err, "a gate with requests still queued would never open")
	res, err := bench.Run(ctx, bench.Config{Client: c, Requests: 10, ReturnTogether: true, ReturnWait: true})
	require.NoError(t, err)
	require.Equal(t, 10, res.Fulfilled, res.FirstErr)
	require.Equal(t, 10, res.NodesDeleted)
	require.LessOrEqual(t, res.Elapsed, res.Total-res.DeleteSpan+time.Millisecond,
		"returns began only after the last request was fulfilled")
}
