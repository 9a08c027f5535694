package zkclient_test

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/zkclient"
)

// TestIsConnectionError: errors of the connection (including a transport
// error go-zookeeper returns for a request it was writing when the server
// went away) are retryable; answers of the server and context errors are
// not.
func TestIsConnectionError(t *testing.T) {
	reset := &net.OpError{Op: "write", Net: "tcp", Err: syscall.ECONNRESET}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{zk.ErrConnectionClosed, true},
		{zk.ErrNoServer, true},
		{zk.ErrSessionExpired, true},
		{&zkclient.OpError{Op: "get", Path: "/nodepool/requests/100-0000000001", Err: reset}, true},
		{fmt.Errorf("reading: %w", reset), true},
		{zkclient.ErrNoNode, false},
		{&zkclient.OpError{Op: "set", Path: "/x", Err: zk.ErrBadVersion}, false},
		{context.DeadlineExceeded, false},
		{nil, false},
	} {
		require.Equal(t, tt.want, zkclient.IsConnectionError(tt.err), "%v", tt.err)
	}
}
