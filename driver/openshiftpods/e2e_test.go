package openshiftpods_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/fakekube/kubee2e"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

const e2eConfig = `
labels:
  - name: openshift-pod
providers:
  - name: openshift
    driver: openshiftpods
    context: fake
    pools:
      - name: main
        max-servers: 1
        labels:
          - name: openshift-pod
            image: docker.io/fedora:28
`

func TestEndToEnd(t *testing.T) {
	fake := setup(t)
	zk, _ := zktest.Connect(t)
	kubee2e.StartLauncher(t, zk, e2eConfig, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	req, nodes := kubee2e.Serve(t, ctx, zk, "openshift-pod")
	n := nodes[0]
	require.Equal(t, "kubectl", n.ConnectionType)
	require.Equal(t, "main-openshift-pod-"+n.ID, n.ExternalID)
	require.Equal(t, "openshift-pod-"+n.ID, n.InterfaceIP)
	require.Equal(t, "fake-node-1", n.HostID)

	// max-servers 1: the next request waits for the pod to go.
	second, err := zuulsim.Submit(ctx, zk, []string{"openshift-pod"}, zuulsim.Options{})
	require.NoError(t, err)
	time.Sleep(time.Second)
	got, err := zk.GetRequest(ctx, second.ID)
	require.NoError(t, err)
	require.NotEqual(t, zkclient.RequestFulfilled, got.State)
	require.Len(t, fake.Names("pods", "main"), 1)
	kubee2e.Return(t, ctx, req)
	got, err = second.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
}
