package nodepool_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver/simcloud"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

const metaConfig = `
labels:
  - name: big
  - name: small
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    pools:
      - name: main
        max-servers: 10
        labels:
          - name: big
  - name: meta
    driver: metastatic
    pools:
      - name: main
        max-servers: 10
        labels:
          - name: small
            backing-label: big
            max-parallel-jobs: 2
            grace-time: %d
`

// runMetaLauncher starts a launcher that the returned function stops (a
// restart is a stop and a new launcher on the same ZooKeeper).
func runMetaLauncher(t *testing.T, chroot, yaml string) (stop func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	cfg, err := nodepool.LoadConfig(path, "")
	require.NoError(t, err)
	l, err := nodepool.NewLauncher(cfg, nodepool.WithZooKeeper(zktest.ConnectChroot(t, chroot)),
		nodepool.WithHostname("meta-"+t.Name()), nodepool.WithCleanupInterval(200*time.Millisecond))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("launcher did not stop")
		}
	}
	t.Cleanup(stop)
	require.Eventually(t, l.Ready, 20*time.Second, 20*time.Millisecond)
	return stop
}

// backingNodes returns the nodes of label big, and the metastatic nodes'
// backing node per metastatic node id.
func backingNodes(t *testing.T, ctx context.Context, zk *zkclient.Client) (big []*zkclient.Node, backing map[string]string) {
	t.Helper()
	nodes, err := zk.Nodes(ctx, nil)
	require.NoError(t, err)
	backing = map[string]string{}
	for _, n := range nodes {
		switch {
		case n.HasLabel("big"):
			big = append(big, n)
		case n.HasLabel("small") && len(n.DriverData) > 0:
			var dd struct {
				BackingNode string `json:"backing_node"`
				Slot        int    `json:"slot"`
			}
			require.NoError(t, json.Unmarshal(n.DriverData, &dd))
			require.NotNil(t, n.Slot)
			require.Equal(t, dd.Slot, *n.Slot)
			backing[n.ID] = dd.BackingNode
		}
	}
	return big, backing
}

// TestMetastaticSlotsGraceAndRestart: three requests on max-parallel-jobs
// 2 take two backing nodes, locked persistently by the metastatic
// provider and marked with its user_data; a launcher restart in the
// middle loses none (a new request lands in a recovered free slot); once
// every node is returned and grace-time passed, the backing nodes are
// returned and deleted, in ZooKeeper and in the cloud.
func TestMetastaticSlotsGraceAndRestart(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	yaml := sprintf(metaConfig, cloud, 1)
	stop := runMetaLauncher(t, chroot, yaml)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var held []*zuulsim.NodeSet
	for i := 0; i < 3; i++ {
		held = append(held, acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{}))
	}
	big, backing := backingNodes(t, ctx, zk)
	require.Len(t, big, 2, "three jobs on max-parallel-jobs 2 take two backing nodes")
	require.Len(t, backing, 3)
	perBacking := map[string]int{}
	for _, b := range backing {
		perBacking[b]++
	}
	require.Len(t, perBacking, 2)
	for _, b := range big {
		require.Equal(t, zkclient.NodeInUse, b.State)
		require.LessOrEqual(t, perBacking[b.ID], 2)
		var s string
		require.NoError(t, json.Unmarshal(b.UserData, &s), "user_data is a JSON string")
		require.JSONEq(t, `{"owner": "NodePool:metastatic:meta", "label": "small", "slots": 2}`, s)
		ids, err := zk.Contenders(ctx, zkclient.NodeLockPath(b.ID))
		require.NoError(t, err)
		require.Equal(t, []string{"NodePool:metastatic:meta"}, ids)
	}
	// Metastatic nodes take their connection settings from the backing node.
	for _, ns := range held {
		for _, n := range ns.Nodes {
			b, err := zk.GetNode(ctx, backing[n.ID])
			require.NoError(t, err)
			require.Equal(t, b.InterfaceIP, n.Data.InterfaceIP)
			require.Equal(t, b.HostKeys, n.Data.HostKeys)
		}
	}

	// Restart: one job returns while the launcher is down.
	stop()
	require.NoError(t, held[0].Return(ctx))
	held = held[1:]
	runMetaLauncher(t, chroot, yaml)
	held = append(held, acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{}))
	big, backing = backingNodes(t, ctx, zk)
	require.Len(t, big, 2, "the new job took the recovered free slot, not a third backing node")
	require.Len(t, backing, 3)

	for _, ns := range held {
		require.NoError(t, ns.Return(ctx))
	}
	require.Eventually(t, func() bool {
		big, backing := backingNodes(t, ctx, zk)
		return len(big) == 0 && len(backing) == 0 && len(simcloud.Get(cloud).Instances()) == 0
	}, 30*time.Second, 50*time.Millisecond, "after grace-time the backing nodes are returned and deleted")
}

// TestMetastaticAbandonedBackingRequest: a backing request left by a
// launcher that died before it took the node is deleted on recovery, and
// its node goes back to the pool unallocated, not leaked.
func TestMetastaticAbandonedBackingRequest(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A dead metastatic provider's request, already fulfilled by the sim pool.
	req := &zkclient.NodeRequest{State: zkclient.RequestRequested, NodeTypes: []string{"big"}, Requestor: "NodePool:metastatic:meta", Reuse: true}
	id, err := zk.SubmitRequest(ctx, req, "100", false)
	require.NoError(t, err)
	runMetaLauncher(t, chroot, sprintf(metaConfig, cloud, 60))
	var nodeID string
	require.Eventually(t, func() bool {
		r, err := zk.GetRequest(ctx, id)
		if err == nil && r.State == zkclient.RequestFulfilled {
			nodeID = r.Nodes[0]
		}
		return nodeID != ""
	}, 20*time.Second, 20*time.Millisecond)
	// The metastatic adapter recovers on its first use.
	ns := acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{})
	_, err = zk.GetRequest(ctx, id)
	require.ErrorIs(t, err, zkclient.ErrNoNode, "the abandoned request is gone")
	require.Eventually(t, func() bool {
		n, err := zk.GetNode(ctx, nodeID)
		if err != nil {
			return false
		}
		return n.AllocatedTo == "" || n.State == zkclient.NodeInUse // free again, or reused as a backing node
	}, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, ns.Return(ctx))
}

// TestMetastaticLostBackingNode: a backing node deleted under the
// metastatic provider is forgotten; later jobs get a new backing node.
func TestMetastaticLostBackingNode(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	runMetaLauncher(t, chroot, sprintf(metaConfig, cloud, 60))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first := acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{})
	_, backing := backingNodes(t, ctx, zk)
	lost := backing[first.Nodes[0].ID]
	n, err := zk.GetNode(ctx, lost)
	require.NoError(t, err)
	require.NoError(t, zk.DeleteNode(ctx, n, nil))
	require.NoError(t, first.Return(ctx))
	require.Eventually(t, func() bool {
		ns := acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{})
		defer func() { require.NoError(t, ns.Return(ctx)) }()
		_, backing := backingNodes(t, ctx, zk)
		b := backing[ns.Nodes[0].ID]
		return b != "" && b != lost
	}, 20*time.Second, 200*time.Millisecond, "after a cleanup pass, new jobs go to a new backing node")
}
