package driver

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestErrorKindsAndMetrics(t *testing.T) {
	for _, tc := range []struct {
		err    error
		kind   Kind
		metric string
	}{
		{QuotaError("no cores left"), KindQuota, "error.quota"},
		{CapacityError("no hosts in az1"), KindCapacity, "error.capacity"},
		{TransientError("503"), KindTransient, "error.unknown"},
		{NotFoundError("server 1"), KindNotFound, "error.unknown"},
		{errors.New("boom"), KindUnknown, "error.unknown"},
		{WithMetric(errors.New("ERROR state"), "error.status"), KindUnknown, "error.status"},
		{WithMetric(CapacityError("none"), "error.custom"), KindCapacity, "error.custom"},
		{fmt.Errorf("wrapped: %w", CapacityError("none")), KindCapacity, "error.capacity"},
	} {
		require.Equal(t, tc.kind, KindOf(tc.err), "%v", tc.err)
		require.Equal(t, tc.metric, MetricOf(tc.err), "%v", tc.err)
	}
	require.True(t, IsCapacity(fmt.Errorf("x: %w", CapacityError("none"))))
	require.True(t, IsTransient(TransientError("busy")))
	require.False(t, IsTransient(errors.New("busy")))
}
