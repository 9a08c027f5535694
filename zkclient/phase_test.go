package zkclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

// TestOpsByPhase: requests count under the phase of their context, and
// the phases add up to the total.
func TestOpsByPhase(t *testing.T) {
	c, _ := zktest.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := c.Ops().ByPhase()
	total := c.Ops().Total()
	pctx := zkclient.WithPhase(ctx, "test-phase")
	_, err := c.Create(pctx, "/x", nil, zkclient.Persistent, true)
	require.NoError(t, err)
	_, _, err = c.Get(pctx, "/x")
	require.NoError(t, err)
	_, err = c.Multi(pctx, zkclient.CheckOp{Path: "/x", Version: 0})
	require.NoError(t, err)
	_, _, err = c.Exists(ctx, "/x")
	require.NoError(t, err)
	after := c.Ops().ByPhase()
	require.Equal(t, int64(3), after["test-phase"]-before["test-phase"])
	require.Equal(t, int64(1), after["other"]-before["other"])
	var sum int64
	for _, v := range after {
		sum += v
	}
	require.Equal(t, c.Ops().Total(), sum)
	require.Equal(t, int64(4), c.Ops().Total()-total)
	require.Equal(t, "test-phase", zkclient.PhaseOf(pctx))
	require.Equal(t, "other", zkclient.PhaseOf(ctx))
}
