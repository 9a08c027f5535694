package statuspage

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/zkclient"
)

func TestAge(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, c := range []struct {
		ago  time.Duration
		want string
	}{
		{0, "0s"}, {59 * time.Second, "59s"}, {61 * time.Second, "1m 1s"},
		{3*time.Hour + 12*time.Minute + 5*time.Second, "3h 12m"}, {50 * time.Hour, "2d 2h"},
		{-time.Minute, "0s"}, // a clock ahead of ours
	} {
		require.Equal(t, c.want, Age(now, float64(now.Add(-c.ago).Unix())), c.ago)
	}
	require.Equal(t, "-", Age(now, 0))
}

func TestGauge(t *testing.T) {
	require.Equal(t, Gauge{Name: "cores", Used: 3, Text: "3 (no limit)", Level: "ok"}, gauge("cores", 3, math.Inf(1)))
	require.Equal(t, "ok", gauge("s", 7, 10).Level)
	require.Equal(t, "high", gauge("s", 8, 10).Level)
	require.Equal(t, "full", gauge("s", 10, 10).Level)
	require.Equal(t, "full", gauge("s", 12, 10).Level)
	require.Equal(t, "12 of 10", gauge("s", 12, 10).Text)
}

func TestNodeBars(t *testing.T) {
	n := func(provider string, state zkclient.NodeState) *zkclient.Node {
		return &zkclient.Node{Provider: provider, State: state}
	}
	states, bars := nodeBars([]*zkclient.Node{
		n("b", zkclient.NodeReady), n("b", zkclient.NodeReady), n("b", zkclient.NodeBuilding), n("b", "odd"),
		n("a", zkclient.NodeInUse), n("a", zkclient.NodeReady),
	})
	require.Equal(t, []string{"building", "ready", "in-use", "odd"}, states, "life order, unknown states last")
	require.Equal(t, []ProviderNodes{
		{Provider: "a", Total: 2, Segments: []Segment{{State: "ready", Count: 1, Start: 0, Width: 25}, {State: "in-use", Count: 1, Start: 25, Width: 25}}},
		{Provider: "b", Total: 4, Segments: []Segment{{State: "building", Count: 1, Start: 0, Width: 25}, {State: "ready", Count: 2, Start: 25, Width: 50}, {State: "odd", Count: 1, Start: 75, Width: 25}}},
	}, bars)
	states, bars = nodeBars(nil)
	require.Empty(t, states)
	require.Empty(t, bars)
}
