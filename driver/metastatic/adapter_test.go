package metastatic_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/drivertest"
	"github.com/nodepool-go/nodepool/driver/metastatic"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

type services struct{ zk *zkclient.Client }

func (s services) ZooKeeper() *zkclient.Client { return s.zk }

const myID = "NodePool:metastatic:meta"

// backer plays the backing provider: it fulfils (or fails) our backing
// requests with ready nodes of the backing label.
type backer struct {
	zk    *zkclient.Client
	fail  atomic.Bool
	count atomic.Int32
}

func startBacker(t *testing.T, zk *zkclient.Client) *backer {
	b := &backer{zk: zk}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			b.pass(ctx)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

func (b *backer) pass(ctx context.Context) {
	reqs, err := b.zk.Requests(ctx, nil)
	if err != nil {
		return
	}
	for _, r := range reqs {
		if r.Requestor != myID || r.State != zkclient.RequestRequested {
			continue
		}
		if b.fail.Load() {
			r.State = zkclient.RequestFailed
			_ = b.zk.StoreRequest(ctx, r, nil)
			continue
		}
		n := &zkclient.Node{State: zkclient.NodeReady, Provider: "backing", Pool: "main", Type: r.NodeTypes,
			AllocatedTo: r.ID, InterfaceIP: "192.0.2.7", PublicIPv4: "192.0.2.7", PrivateIPv4: "10.0.0.7",
			Region: "r1", AZ: "az1", Username: "zuul", PythonPath: "/usr/bin/python3", ShellType: "sh",
			ConnectionType: "ssh", HostKeys: []string{"ssh-ed25519 AAAA"}}
		n.SetPort(2222)
		if _, err := b.zk.CreateNode(ctx, n); err != nil {
			continue
		}
		b.count.Add(1)
		r.State = zkclient.RequestFulfilled
		r.Nodes = []string{n.ID}
		_ = b.zk.StoreRequest(ctx, r, nil)
	}
}

func providerConfig(grace time.Duration) *driver.ProviderConfig {
	return &driver.ProviderConfig{Name: "meta", Driver: metastatic.Name, Pools: []*driver.PoolConfig{{
		Name: "main",
		Labels: []*driver.LabelConfig{{Name: "meta", Username: metastatic.Placeholder,
			Settings: &metastatic.LabelSettings{BackingLabel: "small", MaxParallelJobs: 2, GraceTime: grace}}},
	}}}
}

func open(t *testing.T, zk *zkclient.Client, cfg *driver.ProviderConfig) *metastatic.Adapter {
	t.Helper()
	ad, err := metastatic.Driver{}.Open(t.Context(), cfg, driver.Env{Services: services{zk}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ad.Close() })
	return ad.(*metastatic.Adapter)
}

// TestMetastaticConformance runs driver/drivertest. The listing parts do
// not apply (ListInstances and ListResources list nothing by design), nor
// the quota and image tests (no cloud quota errors, no images).
func TestMetastaticConformance(t *testing.T) {
	zk, _ := zktest.Connect(t)
	startBacker(t, zk)
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) {
			cfg := providerConfig(time.Minute)
			return open(t, zk, cfg), cfg
		},
		Unlisted: true,
		Timeout:  10 * time.Second,
	})
}

func spec(cfg *driver.ProviderConfig, nodeID string) driver.CreateSpec {
	return driver.CreateSpec{Hostname: "np" + nodeID, Label: cfg.Pools[0].Labels[0], Pool: cfg.Pools[0],
		Metadata: map[string]string{driver.MetaNodeID: nodeID, driver.MetaPoolName: "main", driver.MetaProviderName: "meta"}}
}

func create(t *testing.T, ad driver.Adapter, s driver.CreateSpec) (*driver.Instance, error) {
	t.Helper()
	return drivertest.AdvanceCreate(t.Context(), ad.CreateMachine(s), 5*time.Millisecond, 10*time.Second)
}

func remove(t *testing.T, ad driver.Adapter, id string) {
	t.Helper()
	require.NoError(t, drivertest.AdvanceDelete(t.Context(), ad.DeleteMachine(id), 5*time.Millisecond, 10*time.Second))
}

func TestMetastaticInstanceCopiesBackingNode(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	startBacker(t, zk)
	cfg := providerConfig(time.Minute)
	session := zktest.ConnectChroot(t, chroot)
	ad := open(t, session, cfg)
	inst, err := create(t, ad, spec(cfg, "0000000100"))
	require.NoError(t, err)
	session.Close() // the persistent lock outlives the session that took it
	require.Equal(t, "0000000100", inst.ExternalID)
	require.Equal(t, "192.0.2.7", inst.InterfaceIP)
	require.Equal(t, "10.0.0.7", inst.PrivateIPv4)
	require.Equal(t, "az1", inst.AZ)
	require.Equal(t, "zuul", inst.Username)
	require.Equal(t, "/usr/bin/python3", inst.PythonPath)
	require.Equal(t, "sh", inst.ShellType)
	require.Equal(t, "ssh", inst.ConnectionType)
	require.Equal(t, 2222, inst.ConnectionPort)
	require.Equal(t, []string{"ssh-ed25519 AAAA"}, inst.HostKeys)
	require.Equal(t, 0, *inst.Slot)
	var dd metastatic.DriverData
	require.NoError(t, json.Unmarshal(inst.DriverData, &dd))
	require.Equal(t, "0000000100", dd.Node)
	require.Equal(t, "0000000100", dd.Metadata[driver.MetaNodeID])

	bn, err := zk.GetNode(t.Context(), dd.BackingNode)
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeInUse, bn.State)
	var s string
	require.NoError(t, json.Unmarshal(bn.UserData, &s), "user_data is a JSON string, as upstream writes it")
	require.JSONEq(t, `{"owner":"NodePool:metastatic:meta","label":"meta","slots":2}`, s)
	ids, err := zk.Contenders(t.Context(), zkclient.NodeLockPath(bn.ID))
	require.NoError(t, err)
	require.Equal(t, []string{myID}, ids)
	reqs, err := zk.RequestIDs(t.Context())
	require.NoError(t, err)
	require.Empty(t, reqs, "the backing request is deleted")

	q, err := ad.QuotaForLabel(t.Context(), cfg.Pools[0].Labels[0])
	require.NoError(t, err)
	require.Equal(t, 1.0, q.Get("instances"))
}

func TestMetastaticFailedBackingRequestFailsAttemptAndRetryAllocatesAgain(t *testing.T) {
	zk, _ := zktest.Connect(t)
	b := startBacker(t, zk)
	b.fail.Store(true)
	cfg := providerConfig(time.Minute)
	ad := open(t, zk, cfg)
	_, err := create(t, ad, spec(cfg, "0000000100"))
	require.ErrorContains(t, err, "backing node failed")
	reqs, err := zk.RequestIDs(t.Context())
	require.NoError(t, err)
	require.Empty(t, reqs, "the failed backing request is deleted")
	remove(t, ad, "0000000100") // the launcher cleans up the attempt

	b.fail.Store(false)
	inst, err := create(t, ad, spec(cfg, "0000000100"))
	require.NoError(t, err)
	require.Equal(t, 0, *inst.Slot)
	require.EqualValues(t, 1, b.count.Load())
}

func TestMetastaticReleaseAfterGraceSetsUsedAndUnlocks(t *testing.T) {
	zk, _ := zktest.Connect(t)
	startBacker(t, zk)
	cfg := providerConfig(300 * time.Millisecond)
	ad := open(t, zk, cfg)
	inst, err := create(t, ad, spec(cfg, "0000000100"))
	require.NoError(t, err)
	var dd metastatic.DriverData
	require.NoError(t, json.Unmarshal(inst.DriverData, &dd))
	_, err = ad.ListResources(t.Context())
	require.NoError(t, err)
	remove(t, ad, "0000000100")
	_, err = ad.ListResources(t.Context())
	require.NoError(t, err)
	bn, err := zk.GetNode(t.Context(), dd.BackingNode)
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeInUse, bn.State, "kept during the grace time")

	time.Sleep(350 * time.Millisecond)
	_, err = ad.ListResources(t.Context())
	require.NoError(t, err)
	bn, err = zk.GetNode(t.Context(), dd.BackingNode)
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeUsed, bn.State)
	locked, err := zk.IsLocked(t.Context(), zkclient.NodeLockPath(bn.ID))
	require.NoError(t, err)
	require.False(t, locked, "our persistent lock is removed")
}

func TestMetastaticRecoveryFromZooKeeper(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	b := startBacker(t, zk)
	cfg := providerConfig(time.Minute)
	ad := open(t, zk, cfg)
	// One node on a backing node, recorded as the launcher records it
	// (driver_data naming the backing node and slot).
	inst, err := create(t, ad, spec(cfg, "0000000100"))
	require.NoError(t, err)
	_, dd := recordNode(t, zk, inst)

	// A fresh adapter (another session: a restarted launcher) recovers the
	// backing node with slot 0 taken: the next node gets slot 1 of it.
	require.NoError(t, ad.Close())
	ad2 := open(t, zktest.ConnectChroot(t, chroot), cfg)
	inst2, err := create(t, ad2, spec(cfg, "0000000200"))
	require.NoError(t, err)
	var dd2 metastatic.DriverData
	require.NoError(t, json.Unmarshal(inst2.DriverData, &dd2))
	require.Equal(t, dd.BackingNode, dd2.BackingNode)
	require.Equal(t, 1, dd2.Slot)
	require.EqualValues(t, 1, b.count.Load(), "no new backing node")
	// Both slots are taken now: a third node needs a new backing node.
	inst3, err := create(t, ad2, spec(cfg, "0000000300"))
	require.NoError(t, err)
	var dd3 metastatic.DriverData
	require.NoError(t, json.Unmarshal(inst3.DriverData, &dd3))
	require.NotEqual(t, dd.BackingNode, dd3.BackingNode)
}

func TestMetastaticAdoptsInFlightBackingRequest(t *testing.T) {
	zk, _ := zktest.Connect(t)
	cfg := providerConfig(time.Minute)
	ad := open(t, zk, cfg)
	// The machine submits a request; nobody serves it yet, and the adapter
	// goes away (its launcher died).
	m := ad.CreateMachine(spec(cfg, "0000000100"))
	inst, err := m.Advance(t.Context())
	require.NoError(t, err)
	require.Nil(t, inst)
	reqs, err := zk.Requests(t.Context(), nil)
	require.NoError(t, err)
	require.Len(t, reqs, 1)
	require.Equal(t, myID, reqs[0].Requestor)
	require.Equal(t, "100", reqs[0].Priority())
	require.Equal(t, []string{"small"}, reqs[0].NodeTypes)

	require.NoError(t, ad.Close())
	b := startBacker(t, zk)
	ad2 := open(t, zk, cfg)
	inst, err = create(t, ad2, spec(cfg, "0000000200"))
	require.NoError(t, err)
	require.Equal(t, 0, *inst.Slot, "the adopted request's node serves the new machine")
	require.EqualValues(t, 1, b.count.Load(), "no second backing request")
	ids, err := zk.RequestIDs(t.Context())
	require.NoError(t, err)
	require.Empty(t, ids)
}

func TestMetastaticLostBackingNode(t *testing.T) {
	for _, how := range []string{"znode deleted", "lock removed"} {
		t.Run(how, func(t *testing.T) {
			zk, _ := zktest.Connect(t)
			b := startBacker(t, zk)
			cfg := providerConfig(time.Minute)
			ad := open(t, zk, cfg)
			// A ready, unallocated metastatic node on the backing node.
			n := &zkclient.Node{State: zkclient.NodeBuilding, Provider: "meta", Type: []string{"meta"}}
			_, err := zk.CreateNode(t.Context(), n)
			require.NoError(t, err)
			inst, err := create(t, ad, spec(cfg, n.ID))
			require.NoError(t, err)
			n.State, n.DriverData, n.Slot = zkclient.NodeReady, inst.DriverData, inst.Slot
			require.NoError(t, zk.StoreNode(t.Context(), n, nil))
			var dd metastatic.DriverData
			require.NoError(t, json.Unmarshal(inst.DriverData, &dd))

			if how == "znode deleted" {
				require.NoError(t, zk.DeleteRecursive(t.Context(), zkclient.NodePath(dd.BackingNode)))
			} else {
				require.NoError(t, zk.DeleteRecursive(t.Context(), zkclient.NodeLockPath(dd.BackingNode)))
			}
			_, err = ad.ListResources(t.Context())
			require.NoError(t, err)
			got, err := zk.GetNode(t.Context(), n.ID)
			require.NoError(t, err)
			require.Equal(t, zkclient.NodeDeleting, got.State, "a ready node on a lost backing node is sent to deletion")

			// The next node gets a new backing node, not the lost one's slot.
			inst2, err := create(t, ad, spec(cfg, "0000000900"))
			require.NoError(t, err)
			var dd2 metastatic.DriverData
			require.NoError(t, json.Unmarshal(inst2.DriverData, &dd2))
			require.NotEqual(t, dd.BackingNode, dd2.BackingNode)
			require.EqualValues(t, 2, b.count.Load())
		})
	}
}

func TestMetastaticParseUserData(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		ok   bool
		want metastatic.UserData
	}{
		{`"{\"owner\": \"x\", \"label\": \"l\", \"slots\": 3}"`, true, metastatic.UserData{Owner: "x", Label: "l", Slots: 3}},
		{`{"owner": "x", "label": "l", "slots": 3}`, true, metastatic.UserData{Owner: "x", Label: "l", Slots: 3}},
		{`"{\"zuul\": 1}"`, false, metastatic.UserData{}},
		{`"not json"`, false, metastatic.UserData{}},
		{`null`, false, metastatic.UserData{}},
		{``, false, metastatic.UserData{}},
	} {
		got, ok := metastatic.ParseUserData(json.RawMessage(tc.raw))
		require.Equal(t, tc.ok, ok, tc.raw)
		require.Equal(t, tc.want, got, tc.raw)
	}
}

func TestMetastaticStandbyTakesOverWhenTheServerGoes(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	b := startBacker(t, zk)
	cfg := providerConfig(time.Minute)
	server := zktest.ConnectChroot(t, chroot)
	ad1 := open(t, server, cfg)
	inst, err := create(t, ad1, spec(cfg, "0000000100"))
	require.NoError(t, err)
	_, dd := recordNode(t, zk, inst)

	// A second launcher's adapter stands by while the first serves.
	ad2 := open(t, zktest.ConnectChroot(t, chroot), cfg)
	_, err = ad2.CreateMachine(spec(cfg, "0000000200")).Advance(t.Context())
	require.ErrorIs(t, err, metastatic.ErrStandby)
	res, err := ad2.ListResources(t.Context())
	require.NoError(t, err)
	require.Empty(t, res)

	// The first launcher dies (its session ends): the second takes over
	// with the first one's backing node and its taken slot.
	server.Close()
	inst2, err := create(t, ad2, spec(cfg, "0000000200"))
	require.NoError(t, err)
	var dd2 metastatic.DriverData
	require.NoError(t, json.Unmarshal(inst2.DriverData, &dd2))
	require.Equal(t, dd.BackingNode, dd2.BackingNode)
	require.Equal(t, 1, dd2.Slot)
	require.EqualValues(t, 1, b.count.Load())
}

func TestMetastaticSlotOfVanishedNodeIsFreed(t *testing.T) {
	zk, _ := zktest.Connect(t)
	b := startBacker(t, zk)
	cfg := providerConfig(time.Minute)
	ad := open(t, zk, cfg)
	n := &zkclient.Node{State: zkclient.NodeBuilding, Provider: "meta", Type: []string{"meta"}}
	_, err := zk.CreateNode(t.Context(), n)
	require.NoError(t, err)
	_, err = create(t, ad, spec(cfg, n.ID))
	require.NoError(t, err)
	_, err = create(t, ad, spec(cfg, "0000000999")) // no record: freed below
	require.NoError(t, err)
	_, err = ad.ListResources(t.Context())
	require.NoError(t, err)
	inst, err := create(t, ad, spec(cfg, "0000000500"))
	require.NoError(t, err)
	require.Equal(t, 1, *inst.Slot, "the slot of the node without record was freed")
	require.EqualValues(t, 1, b.count.Load())
}

func TestMetastaticRecoveryUnlocksNodeOfVanishedRequest(t *testing.T) {
	zk, _ := zktest.Connect(t)
	// A ready node allocated to a request that is gone, locked by us (a
	// launcher died between locking it and writing user_data, and the
	// request was deleted meanwhile).
	n := &zkclient.Node{State: zkclient.NodeReady, Provider: "backing", Type: []string{"small"}, AllocatedTo: "100-0000000042"}
	_, err := zk.CreateNode(t.Context(), n)
	require.NoError(t, err)
	lock := zk.NodeLock(n.ID, zkclient.PersistentContender(), zkclient.WithIdentifier(myID))
	got, err := lock.TryAcquire(t.Context())
	require.NoError(t, err)
	require.True(t, got)
	lock.Forget()

	cfg := providerConfig(time.Minute)
	ad := open(t, zk, cfg)
	_, err = ad.ListResources(t.Context())
	require.NoError(t, err)
	locked, err := zk.IsLocked(t.Context(), zkclient.NodeLockPath(n.ID))
	require.NoError(t, err)
	require.False(t, locked, "its provider can free and reuse it again")
}

// recordNode stores the node record of a created metastatic instance as the
// launcher would (driver_data naming its own id) and returns it with its
// driver_data.
func recordNode(t *testing.T, zk *zkclient.Client, inst *driver.Instance) (*zkclient.Node, metastatic.DriverData) {
	t.Helper()
	n := &zkclient.Node{State: zkclient.NodeInUse, Provider: "meta", Type: []string{"meta"}, DriverData: inst.DriverData, Slot: inst.Slot}
	_, err := zk.CreateNode(t.Context(), n)
	require.NoError(t, err)
	var dd metastatic.DriverData
	require.NoError(t, json.Unmarshal(inst.DriverData, &dd))
	dd.Node = n.ID
	n.DriverData, _ = json.Marshal(dd)
	require.NoError(t, zk.StoreNode(t.Context(), n, nil))
	return n, dd
}
