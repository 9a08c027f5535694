package zkclient_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

// A write larger than the packet limit is refused before it is sent: the
// session stays connected and the next write succeeds.
func TestWriteTooLarge(t *testing.T) {
	c, _ := zktest.Connect(t)
	ctx := ctxT(t, 30*time.Second)
	big := bytes.Repeat([]byte("x"), zkclient.DefaultMaxPacket)

	_, err := c.Create(ctx, "/big", big, zkclient.Persistent, true)
	require.ErrorIs(t, err, zkclient.ErrTooLarge)
	require.False(t, zkclient.IsConnectionError(err))
	var tl *zkclient.TooLargeError
	require.ErrorAs(t, err, &tl)
	require.Greater(t, tl.Size, tl.Limit)

	_, err = c.Create(ctx, "/small", []byte("x"), zkclient.Persistent, true)
	require.NoError(t, err)
	_, err = c.Set(ctx, "/small", big, -1)
	require.ErrorIs(t, err, zkclient.ErrTooLarge)
	// Two halves fit one by one but not in one transaction.
	half := big[:len(big)/2]
	_, err = c.Multi(ctx, zkclient.SetOp{Path: "/small", Data: half, Version: -1}, zkclient.CreateOp{Path: "/other", Data: half})
	require.ErrorIs(t, err, zkclient.ErrTooLarge)
	_, err = c.Set(ctx, "/small", half, -1)
	require.NoError(t, err)
	require.True(t, c.Connected())

	// A request decoded from ZooKeeper knows its size.
	req := &zkclient.NodeRequest{State: zkclient.RequestRequested, NodeTypes: []string{"a"}, Requestor: "zuul"}
	id, err := c.SubmitRequest(ctx, req, "200", false)
	require.NoError(t, err)
	got, err := c.GetRequest(ctx, id)
	require.NoError(t, err)
	data, _, err := c.Get(ctx, zkclient.RequestPath(id))
	require.NoError(t, err)
	require.Equal(t, len(data), got.Size)
}
