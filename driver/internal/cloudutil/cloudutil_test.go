package cloudutil

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
)

func TestFormatRequest(t *testing.T) {
	req := driver.RequestInfo{ID: "200-1", Labels: []string{"a", "b"}, Requestor: "zuul", RelativePriority: 2,
		TenantName: "t", EventID: "ev", RequestorData: []byte(`{"job": {"name": "j"}, "n": 3}`)}
	for tmpl, want := range map[string]string{
		"{request.id}":                           "200-1",
		"x-{request.tenant_name}-{{literal}}":    "x-t-{literal}",
		"{request.labels}":                       "['a', 'b']",
		"{request.labels[1]}":                    "b",
		"{request.relative_priority}":            "2",
		"{request.requestor_data[job][name]}":    "j",
		"{request.requestor_data[n]}":            "3",
		"{request.event_id}/{request.requestor}": "ev/zuul",
	} {
		got, err := FormatRequest(tmpl, req)
		require.NoError(t, err, tmpl)
		require.Equal(t, want, got, tmpl)
	}
	for _, bad := range []string{"{request.nope}", "{node.id}", "{request.id", "}", "{request.requestor_data[missing]}"} {
		_, err := FormatRequest(bad, req)
		require.Error(t, err, bad)
	}
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
