package quota

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDefaultRules(t *testing.T) {
	tests := []struct {
		name string
		a, b Resources
		sub  bool
		want map[string]float64
	}{
		{
			name: "a limit without an explicit resource is unlimited for it",
			a:    New(100, Inf, Inf, Inf, nil),
			b:    New(4, 1, 8192, 0, map[string]float64{Volumes: 1}),
			sub:  true,
			want: map[string]float64{Cores: 96, Instances: Inf, RAM: Inf, Volumes: Inf},
		},
		{
			name: "a need without the resource consumes none of it",
			a:    New(Inf, 5, Inf, Inf, map[string]float64{"L-X": 64}),
			b:    New(2, 1, 4096, 0, nil),
			sub:  true,
			want: map[string]float64{Cores: Inf, Instances: 4, RAM: Inf, "L-X": 64},
		},
		{
			name: "the static need has default 1",
			a:    New(Inf, Inf, Inf, Inf, map[string]float64{"foo": 3}),
			b:    New(0, 1, 0, 1, nil),
			sub:  true,
			want: map[string]float64{Cores: Inf, Instances: Inf, RAM: Inf, "foo": 2},
		},
		{
			name: "add inserts missing resources with the receiver's default",
			a:    Zero(),
			b:    New(2, 1, 1024, 0, map[string]float64{"gpu": 0.5}),
			want: map[string]float64{Cores: 2, Instances: 1, RAM: 1024, "gpu": 0.5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.a.Clone()
			if tt.sub {
				r.Sub(tt.b)
			} else {
				r.Add(tt.b)
			}
			require.Equal(t, tt.want, r.Map())
		})
	}
}

func TestNonNegativeAndNegative(t *testing.T) {
	r := New(0, 3, -1, 0, map[string]float64{"x": -2})
	require.False(t, r.NonNegative())
	require.Equal(t, []string{RAM, "x"}, r.Negative())
	require.True(t, New(0, 0, 0, 0, nil).NonNegative(), "zero is allowed")
}

func TestGetFallsBackToDefault(t *testing.T) {
	r := New(1, 1, 1, Inf, nil)
	require.True(t, math.IsInf(r.Get("volumes"), 1))
	require.Equal(t, float64(1), r.Get(Cores))
	require.Equal(t, "{cores: 1, instances: 1, ram: 1}", r.String())
}

// TestWorkedExample follows a worked example of quota accounting step by step.
func TestWorkedExample(t *testing.T) {
	cloudLimits := New(32, 10, 65536, 0, map[string]float64{Volumes: Inf, VolumeGB: Inf})
	unmanaged := New(4, 1, 4096, 0, nil)
	provider := cloudLimits.Clone()
	provider.Sub(unmanaged)
	require.Equal(t, float64(28), provider.Get(Cores))
	require.Equal(t, float64(9), provider.Get(Instances))
	require.Equal(t, float64(61440), provider.Get(RAM))

	pool := New(20, 10, Inf, Inf, nil)
	small := New(2, 1, 2048, 0, nil)
	big := New(8, 1, 16384, 0, nil)

	usage := Zero()
	usage.Add(big)
	usage.Add(small)
	usage.Add(small)
	require.Equal(t, map[string]float64{Cores: 12, Instances: 3, RAM: 20480}, usage.Map())

	// Tenant check.
	tenantUsage := Zero()
	tenantUsage.Add(small)
	tenantUsage.Add(small)
	need := Zero()
	need.Add(big)
	need.Add(small)
	tenant := New(40, Inf, Inf, Inf, nil)
	tenant.Sub(tenantUsage)
	tenant.Sub(need)
	require.Equal(t, float64(26), tenant.Get(Cores))
	require.True(t, tenant.NonNegative())

	// hasProviderQuota ignores usage.
	r := provider.Clone()
	r.Sub(need)
	require.True(t, r.NonNegative())
	require.Equal(t, float64(18), r.Get(Cores))
	r = pool.Clone()
	r.Sub(need)
	require.True(t, r.NonNegative())
	require.Equal(t, float64(10), r.Get(Cores))

	// hasRemainingQuota(big): ok, pool cores exactly 0.
	r = provider.Clone()
	r.Sub(usage)
	r.Sub(big)
	require.Equal(t, map[string]float64{Cores: 8, Instances: 5, RAM: 24576, Volumes: Inf, VolumeGB: Inf}, r.Map())
	r = pool.Clone()
	r.Sub(usage)
	r.Sub(big)
	require.Equal(t, float64(0), r.Get(Cores))
	require.True(t, r.NonNegative())
	usage.Add(big)

	// hasRemainingQuota(small): the pool's cores go to −2 → pause.
	r = provider.Clone()
	r.Sub(usage)
	r.Sub(small)
	require.Equal(t, float64(6), r.Get(Cores))
	r = pool.Clone()
	r.Sub(usage)
	r.Sub(small)
	require.Equal(t, float64(-2), r.Get(Cores))
	require.False(t, r.NonNegative())

	// Decline example: [big, big, big] can never fit max-cores 20.
	three := Zero()
	for i := 0; i < 3; i++ {
		three.Add(big)
	}
	r = pool.Clone()
	r.Sub(three)
	require.False(t, r.NonNegative())
}
