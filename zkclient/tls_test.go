package zkclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

// TestMutualTLS runs against a ZooKeeper with a secure client port and a
// throw-away CA: the right client certificate works; a client that does not
// trust the server's CA, or whose certificate the server does not trust, is
// refused.
func TestMutualTLS(t *testing.T) {
	pki := zktest.NewPKI(t, "test-ca")
	srv := zktest.StartTLSServer(t, pki)

	c, err := zktest.ConnectTLS(srv.Addr, srv.Client, 15*time.Second)
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()
	n := &zkclient.Node{State: zkclient.NodeReady, Provider: "p", Type: []string{"l"}}
	_, err = c.CreateNode(ctx, n)
	require.NoError(t, err)
	got, err := c.GetNode(ctx, n.ID)
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeReady, got.State)

	other := zktest.NewPKI(t, "other-ca")
	otherCert, otherKey := other.Issue(t, "client")

	// Wrong CA: the client does not trust the server.
	wrongCA := srv.Client
	wrongCA.CA = other.CAFile
	_, err = zktest.ConnectTLS(srv.Addr, wrongCA, 3*time.Second)
	require.Error(t, err)

	// A client certificate the server does not trust.
	untrusted := zkclient.TLSFiles{Cert: otherCert, Key: otherKey, CA: pki.CAFile}
	_, err = zktest.ConnectTLS(srv.Addr, untrusted, 3*time.Second)
	require.Error(t, err)

	// Incomplete TLS settings are a configuration error, not a plaintext
	// fallback.
	_, err = zktest.ConnectTLS(srv.Addr, zkclient.TLSFiles{CA: pki.CAFile}, time.Second)
	require.ErrorContains(t, err, "zookeeper-tls needs cert, key and ca")
}
