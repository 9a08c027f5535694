package openshift_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/fakekube/kubee2e"
	"github.com/nodepool-go/nodepool/internal/zktest"
)

const e2eConfig = `
labels:
  - name: openshift-project
  - name: openshift-pod
providers:
  - name: openshift
    driver: openshift
    context: fake
    pools:
      - name: main
        labels:
          - name: openshift-project
            type: project
          - name: openshift-pod
            type: pod
            image: docker.io/fedora:28
`

func TestEndToEnd(t *testing.T) {
	fake := setup(t)
	zk, _ := zktest.Connect(t)
	stop := kubee2e.StartLauncher(t, zk, e2eConfig, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	req, nodes := kubee2e.Serve(t, ctx, zk, "openshift-project", "openshift-pod")
	require.Equal(t, "project", nodes[0].ConnectionType)
	require.Equal(t, "kubectl", nodes[1].ConnectionType)
	require.Equal(t, "openshift-pod", nodes[1].InterfaceIP)
	require.Equal(t, "fake", nodes[1].Cloud)
	var p map[string]any
	require.NoError(t, json.Unmarshal(nodes[1].ConnectionPort, &p))
	require.Equal(t, nodes[1].ExternalID, p["namespace"])
	require.Equal(t, "openshift-pod", p["pod"])
	kubee2e.Return(t, ctx, req)
	require.Eventually(t, func() bool { return len(fake.Names("namespaces", "")) == 0 }, 60*time.Second, 50*time.Millisecond,
		"the used nodes' projects are deleted")
	stop()

	// A project left behind by a crash is found by its labels after a
	// restart.
	fake.AddNamespace("main-0000077777", map[string]string{driver.MetaNodeID: "0000077777", driver.MetaPoolName: "main", driver.MetaProviderName: "openshift"})
	kubee2e.StartLauncher(t, zk, e2eConfig, 200*time.Millisecond)
	require.Eventually(t, func() bool { return !fake.Exists("namespaces", "", "main-0000077777") }, 30*time.Second, 50*time.Millisecond)
}
