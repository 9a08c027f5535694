package metastatic_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver/metastatic"
	"github.com/nodepool-go/nodepool/driver/simcloud"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// metaYAML is a simcloud provider serving "small" and a metastatic
// provider carving "meta" nodes, two per backing "small" node.
func metaYAML(cloud string, graceSeconds int) string {
	return fmt.Sprintf(`
labels:
  - name: small
  - name: meta
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    pools:
      - name: main
        max-servers: 10
        labels:
          - name: small
  - name: meta
    driver: metastatic
    pools:
      - name: main
        max-servers: 10
        labels:
          - name: meta
            backing-label: small
            max-parallel-jobs: 2
            grace-time: %d
`, cloud, graceSeconds)
}

// metaLauncher runs a launcher on its own ZooKeeper session; stop ends the
// launcher and closes the session, like a launcher process exiting.
func metaLauncher(t *testing.T, chroot, yaml string) (stop func()) {
	t.Helper()
	zk := zktest.ConnectChroot(t, chroot)
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	cfg, err := nodepool.LoadConfig(path, "")
	require.NoError(t, err)
	l, err := nodepool.NewLauncher(cfg, nodepool.WithZooKeeper(zk), nodepool.WithHostname("test-"+t.Name()),
		nodepool.WithCleanupInterval(200*time.Millisecond))
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
			t.Errorf("launcher did not stop")
		}
		zk.Close()
	}
	t.Cleanup(stop)
	require.Eventually(t, l.Ready, 20*time.Second, 20*time.Millisecond)
	return stop
}

const metaID = "NodePool:metastatic:meta"

// backingNodes returns the nodes carrying our ownership in user_data,
// checking that each is in-use and locked by us first.
func backingNodes(t *testing.T, ctx context.Context, zk *zkclient.Client) map[string]*zkclient.Node {
	t.Helper()
	nodes, err := zk.Nodes(ctx, nil)
	require.NoError(t, err)
	out := map[string]*zkclient.Node{}
	for _, n := range nodes {
		ud, ok := metastatic.ParseUserData(n.UserData)
		if !ok || ud.Owner != metaID {
			continue
		}
		require.Equal(t, []string{"small"}, n.Type)
		require.Equal(t, "meta", ud.Label)
		require.Equal(t, 2, ud.Slots)
		if n.State == zkclient.NodeInUse {
			ids, err := zk.Contenders(ctx, zkclient.NodeLockPath(n.ID))
			require.NoError(t, err)
			require.NotEmpty(t, ids)
			require.Equal(t, metaID, ids[0], "backing node %s locked by us", n.ID)
		}
		out[n.ID] = n
	}
	return out
}

// checkSlots checks the metastatic nodes' placement: each names a backing
// node of ours and a slot nobody else uses, and carries its connection
// values. It returns backing node id → number of nodes on it.
func checkSlots(t *testing.T, ctx context.Context, zk *zkclient.Client, backing map[string]*zkclient.Node) map[string]int {
	t.Helper()
	nodes, err := zk.Nodes(ctx, nil)
	require.NoError(t, err)
	used := map[string]string{}
	per := map[string]int{}
	for _, n := range nodes {
		if n.Provider != "meta" || n.State != zkclient.NodeInUse {
			continue
		}
		var dd metastatic.DriverData
		require.NoError(t, json.Unmarshal(n.DriverData, &dd), "node %s driver_data %s", n.ID, n.DriverData)
		require.Equal(t, n.ID, dd.Node)
		require.Equal(t, n.ID, n.ExternalID)
		require.Equal(t, n.ID, dd.Metadata["nodepool_node_id"])
		bn, ok := backing[dd.BackingNode]
		require.True(t, ok, "node %s on unknown backing node %s", n.ID, dd.BackingNode)
		require.NotNil(t, n.Slot)
		require.Equal(t, dd.Slot, *n.Slot)
		require.True(t, dd.Slot == 0 || dd.Slot == 1, "slot %d", dd.Slot)
		key := fmt.Sprintf("%s/%d", dd.BackingNode, dd.Slot)
		require.Empty(t, used[key], "slot %s given to %s and %s", key, used[key], n.ID)
		used[key] = n.ID
		per[dd.BackingNode]++
		require.Equal(t, bn.InterfaceIP, n.InterfaceIP)
		require.NotEmpty(t, n.InterfaceIP)
		require.Equal(t, bn.Username, n.Username)
		require.NotEqual(t, metastatic.Placeholder, n.Username)
		require.Equal(t, bn.ConnectionType, n.ConnectionType)
		require.Equal(t, bn.HostKeys, n.HostKeys)
		require.Equal(t, metastatic.ImageName, n.ImageID)
	}
	return per
}

// acceptMeta submits a request for one meta node and accepts it.
func acceptMeta(t *testing.T, ctx context.Context, zk *zkclient.Client) *zuulsim.NodeSet {
	t.Helper()
	req, err := zuulsim.Submit(ctx, zk, []string{"meta"}, zuulsim.Options{})
	require.NoError(t, err)
	_, err = req.Wait(ctx)
	require.NoError(t, err)
	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	return ns
}

// waitAllGone waits until no node record and no simcloud server is left.
// An init record without instance may remain: a launcher stopped between
// creating and locking a node leaves one, which any launcher removes after
// a minute (initOrphanAge); it is not a backing node.
func waitAllGone(t *testing.T, ctx context.Context, zk *zkclient.Client, cloud string, within time.Duration) {
	t.Helper()
	left := func() []string {
		nodes, err := zk.Nodes(ctx, nil)
		if err != nil {
			return []string{err.Error()}
		}
		var out []string
		for _, n := range nodes {
			if n.State != zkclient.NodeInit || n.ExternalID != "" {
				out = append(out, n.ID+":"+string(n.State)+":"+n.Provider)
			}
		}
		return out
	}
	if !assert.Eventually(t, func() bool { return len(left()) == 0 }, within, 20*time.Millisecond) {
		require.Empty(t, left(), "node records left")
	}
	require.Eventually(t, func() bool { return len(simcloud.Get(cloud).Instances()) == 0 }, 30*time.Second, 20*time.Millisecond,
		"every simcloud server is deleted")
}

func TestMetastaticThreeJobsTwoBackingNodesReleasedAfterGrace(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	metaLauncher(t, chroot, metaYAML(cloud, 2))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	reqs := make([]*zuulsim.Request, 3)
	for i := range reqs {
		var err error
		reqs[i], err = zuulsim.Submit(ctx, zk, []string{"meta"}, zuulsim.Options{})
		require.NoError(t, err)
	}
	var sets []*zuulsim.NodeSet
	for _, r := range reqs {
		_, err := r.Wait(ctx)
		require.NoError(t, err)
		ns, err := r.Accept(ctx)
		require.NoError(t, err)
		sets = append(sets, ns)
	}
	backing := backingNodes(t, ctx, zk)
	require.Len(t, backing, 2, "three jobs at two per backing node take two backing nodes")
	per := checkSlots(t, ctx, zk, backing)
	counts := []int{}
	for _, c := range per {
		counts = append(counts, c)
	}
	sort.Ints(counts)
	require.Equal(t, []int{1, 2}, counts)
	require.Len(t, simcloud.Get(cloud).Instances(), 2)
	reqIDs, err := zk.RequestIDs(ctx)
	require.NoError(t, err)
	require.Empty(t, reqIDs, "backing requests are deleted once their node is ours")

	for _, ns := range sets {
		require.NoError(t, ns.Return(ctx))
	}
	// The metastatic nodes go at once; the backing nodes stay for the
	// grace time (2 s) and are then returned and deleted.
	require.Eventually(t, func() bool {
		nodes, err := zk.Nodes(ctx, nil)
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if n.Provider == "meta" {
				return false
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond)
	gone := time.Now()
	require.Len(t, backingNodes(t, ctx, zk), 2, "backing nodes are kept during the grace time")
	for _, n := range backingNodes(t, ctx, zk) {
		require.Equal(t, zkclient.NodeInUse, n.State)
	}
	waitAllGone(t, ctx, zk, cloud, 20*time.Second)
	require.Greater(t, time.Since(gone), 1500*time.Millisecond, "released only after the grace time")
}

func TestMetastaticLauncherRestartRecoversBackingNodesAndRequests(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	yaml := metaYAML(cloud, 1)
	stop1 := metaLauncher(t, chroot, yaml)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Four jobs fill two backing nodes.
	var sets []*zuulsim.NodeSet
	for i := 0; i < 4; i++ {
		sets = append(sets, acceptMeta(t, ctx, zk))
	}
	before := backingNodes(t, ctx, zk)
	require.Len(t, before, 2)

	// A fifth job needs a third backing node: stop the launcher as soon as
	// the backing request exists (its node may be anywhere in its life).
	fifth, err := zuulsim.Submit(ctx, zk, []string{"meta"}, zuulsim.Options{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		reqs, err := zk.Requests(ctx, nil)
		if err != nil {
			return false
		}
		for _, r := range reqs {
			if r.Requestor == metaID {
				return true
			}
		}
		return false
	}, 20*time.Second, 5*time.Millisecond, "a backing request is submitted")
	stop1()

	// A new launcher takes over: the two backing nodes stay ours, the
	// backing request is adopted, the fifth job is served.
	metaLauncher(t, chroot, yaml)
	_, err = fifth.Wait(ctx)
	require.NoError(t, err)
	ns, err := fifth.Accept(ctx)
	require.NoError(t, err)
	sets = append(sets, ns)
	after := backingNodes(t, ctx, zk)
	for id := range before {
		require.Contains(t, after, id, "backing node %s is still ours", id)
	}
	require.Len(t, after, 3, "one more backing node, no leaked one")

	// A sixth job takes the free slot of the third backing node.
	sets = append(sets, acceptMeta(t, ctx, zk))
	after = backingNodes(t, ctx, zk)
	require.Len(t, after, 3, "the free slot is reused after the restart")
	per := checkSlots(t, ctx, zk, after)
	require.Len(t, per, 3)
	for id, c := range per {
		require.Equal(t, 2, c, "backing node %s", id)
	}
	// A server whose launch the stopped launcher abandoned is deleted by
	// the new one; three remain, all backing nodes.
	require.Eventually(t, func() bool { return len(simcloud.Get(cloud).Instances()) == 3 }, 20*time.Second, 20*time.Millisecond,
		"no simcloud server leaked")

	for _, ns := range sets {
		require.NoError(t, ns.Return(ctx))
	}
	waitAllGone(t, ctx, zk, cloud, 30*time.Second)
	reqIDs, err := zk.RequestIDs(ctx)
	require.NoError(t, err)
	require.Empty(t, reqIDs)
}

func TestMetastaticConfigBackingLabelSettingsMustAgree(t *testing.T) {
	base := "labels: [{name: a}, {name: b}]\nproviders:\n  - name: p\n    driver: metastatic\n    pools:\n      - name: m\n        labels: [{name: a, backing-label: x, max-parallel-jobs: 2, grace-time: 5}, %s]\n"
	for _, tc := range []struct{ other, err string }{
		{"{name: b, backing-label: x, max-parallel-jobs: 3, grace-time: 5}", "all labels with backing-label x must have the same max-parallel-jobs and grace-time"},
		{"{name: b, backing-label: x, max-parallel-jobs: 2, grace-time: 6}", "all labels with backing-label x must have the same max-parallel-jobs and grace-time"},
		{"{name: b, backing-label: x, max-parallel-jobs: 2, grace-time: 5}", ""},
		{"{name: b, backing-label: y, max-parallel-jobs: 3}", ""},
	} {
		path := filepath.Join(t.TempDir(), "nodepool.yaml")
		require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(base, tc.other)), 0o600))
		_, err := nodepool.LoadConfig(path, "")
		if tc.err == "" {
			require.NoError(t, err, tc.other)
		} else {
			require.ErrorContains(t, err, tc.err, tc.other)
		}
	}
}

func TestMetastaticTwoLaunchersOneServesTheOtherTakesOver(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	yaml := metaYAML(cloud, 1)
	stop1 := metaLauncher(t, chroot, yaml)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The first launcher serves the provider once its first cleanup pass
	// has used the adapter; only then does the second one start.
	require.Eventually(t, func() bool {
		ok, _ := zk.IsLocked(ctx, metastatic.ServeLockRoot+"/meta")
		return ok
	}, 30*time.Second, 10*time.Millisecond)
	metaLauncher(t, chroot, yaml)

	// The second launcher's pool declines what it gets; the first serves.
	var sets []*zuulsim.NodeSet
	for i := 0; i < 3; i++ {
		sets = append(sets, acceptMeta(t, ctx, zk))
	}
	before := backingNodes(t, ctx, zk)
	require.Len(t, before, 2)

	// The first launcher goes; the second takes over, and a fourth job
	// takes the free slot of the recovered backing nodes.
	stop1()
	sets = append(sets, acceptMeta(t, ctx, zk))
	after := backingNodes(t, ctx, zk)
	require.Equal(t, len(before), len(after))
	for id := range before {
		require.Contains(t, after, id)
	}
	per := checkSlots(t, ctx, zk, after)
	for id, c := range per {
		require.Equal(t, 2, c, "backing node %s", id)
	}

	for _, ns := range sets {
		require.NoError(t, ns.Return(ctx))
	}
	waitAllGone(t, ctx, zk, cloud, 30*time.Second)
}
