package zkclient_test

import (
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

func TestStoreRequests(t *testing.T) {
	c, chroot := zktest.Connect(t)
	ctx := ctxT(t, 30*time.Second)

	for _, bad := range []string{"", "20", "2000", "2-0"} {
		_, err := c.SubmitRequest(ctx, &zkclient.NodeRequest{State: zkclient.RequestRequested}, bad, false)
		require.Error(t, err, "priority %q", bad)
	}
	ids, err := c.RequestIDs(ctx)
	require.NoError(t, err)
	require.Empty(t, ids, "nothing created for bad priorities")

	req := &zkclient.NodeRequest{State: zkclient.RequestRequested, NodeTypes: []string{"a"}, Reuse: true,
		RequestorData: json.RawMessage(`{"k": "v"}`)}
	id, err := c.SubmitRequest(ctx, req, "200", false)
	require.NoError(t, err)
	require.Regexp(t, `^200-\d{10}$`, id)
	require.Equal(t, id, req.ID)
	require.True(t, zkclient.ValidRequestID(id))

	eph := &zkclient.NodeRequest{State: zkclient.RequestRequested, Requestor: zkclient.RequestorMinReady}
	ephID, err := c.SubmitRequest(ctx, eph, "900", true)
	require.NoError(t, err)
	require.Greater(t, ephID[4:], id[4:], "the sequence is shared by all priorities")
	_, st, err := c.Get(ctx, zkclient.RequestPath(ephID))
	require.NoError(t, err)
	require.Equal(t, c.SessionID(), st.EphemeralOwner)

	got, err := c.GetRequest(ctx, id)
	require.NoError(t, err)
	require.Equal(t, normRequest(req), normRequest(got))
	require.Zero(t, got.Version)

	got.State = zkclient.RequestPending
	got.DeclinedBy = []string{"pool-1"}
	l := c.RequestLock(id)
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, c.StoreRequest(ctx, got, l))
	require.EqualValues(t, 1, got.Version)
	require.NoError(t, l.Release(ctx))
	require.ErrorIs(t, c.StoreRequest(ctx, got, l), zkclient.ErrLockLost, "released lock guards nothing")
	require.NoError(t, c.StoreRequest(ctx, got, nil))
	require.EqualValues(t, 2, got.Version)

	all, err := c.Requests(ctx, nil)
	require.NoError(t, err)
	require.Len(t, all, 2)

	// A corrupt request is skipped and reported.
	_, err = c.Create(ctx, zkclient.RequestRoot+"/100-", []byte(`{"state": "bogus"}`), zkclient.Sequential, false)
	require.NoError(t, err)
	var skipped []string
	all, err = c.Requests(ctx, func(id string, err error) { skipped = append(skipped, id) })
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Len(t, skipped, 1)

	require.NoError(t, c.DeleteRequest(ctx, id))
	require.NoError(t, c.DeleteRequest(ctx, id), "deleting a missing request is fine")
	_, err = c.GetRequest(ctx, id)
	require.ErrorIs(t, err, zkclient.ErrNoNode)

	// The ephemeral request vanishes with its session.
	c.Close()
	c2 := zktest.ConnectChroot(t, chroot)
	_, err = c2.GetRequest(ctx, ephID)
	require.ErrorIs(t, err, zkclient.ErrNoNode)
}

func TestStoreNodes(t *testing.T) {
	c, chroot := zktest.Connect(t)
	ctx := ctxT(t, 30*time.Second)

	ids, err := c.NodeIDs(ctx)
	require.NoError(t, err)
	require.Empty(t, ids)

	n := &zkclient.Node{State: zkclient.NodeInit, StateTime: 1690929001.654321, Type: []string{"a"}, Username: "zuul"}
	n.SetPort(22)
	id, err := c.CreateNode(ctx, n)
	require.NoError(t, err)
	require.Regexp(t, `^\d{10}$`, id)
	id2, err := c.CreateNode(ctx, &zkclient.Node{State: zkclient.NodeInit})
	require.NoError(t, err)
	require.Greater(t, id2, id)

	got, err := c.GetNode(ctx, id)
	require.NoError(t, err)
	require.Equal(t, normNode(n), normNode(got))

	// StoreNode is guarded by the lock.
	l := c.NodeLock(id)
	require.NoError(t, l.Acquire(ctx))
	got.State = zkclient.NodeBuilding
	require.NoError(t, c.StoreNode(ctx, got, l))
	require.EqualValues(t, 1, got.Version)
	// Someone force-unlocks (recursive delete of lock/): the guard trips.
	require.NoError(t, c.DeleteRecursive(ctx, zkclient.NodeLockPath(id)))
	got.State = zkclient.NodeReady
	require.ErrorIs(t, c.StoreNode(ctx, got, l), zkclient.ErrLockLost)
	again, err := c.GetNode(ctx, id)
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeBuilding, again.State)
	require.NoError(t, l.Release(ctx))

	// Empty and corrupt nodes are skipped by Nodes; GetNode reports ErrEmpty.
	_, err = c.Create(ctx, zkclient.NodeRoot+"/", nil, zkclient.Sequential, false)
	require.NoError(t, err)
	emptyIDs, err := c.NodeIDs(ctx)
	require.NoError(t, err)
	sort.Strings(emptyIDs)
	_, err = c.GetNode(ctx, emptyIDs[len(emptyIDs)-1])
	require.ErrorIs(t, err, zkclient.ErrEmpty)
	var skipped int
	nodes, err := c.Nodes(ctx, func(string, error) { skipped++ })
	require.NoError(t, err)
	require.Len(t, nodes, 2)
	require.Equal(t, 1, skipped)

	// DeleteNode: state "deleted" is written first, then the node and its
	// lock directory are removed.
	l = c.NodeLock(id)
	require.NoError(t, l.Acquire(ctx))
	other := zktest.ConnectChroot(t, chroot)
	_, _, watch, err := other.GetW(ctx, zkclient.NodePath(id))
	require.NoError(t, err)
	require.NoError(t, c.DeleteNode(ctx, again, l))
	ev := <-watch
	require.Equal(t, zk.EventNodeDataChanged, ev.Type, "the deleted state is written before the delete")
	require.Equal(t, zkclient.NodeDeleted, again.State)
	require.False(t, l.Held())
	ok, _, err := c.Exists(ctx, zkclient.NodePath(id))
	require.NoError(t, err)
	require.False(t, ok)
	ok, _, err = c.Exists(ctx, zkclient.NodeLockPath(id))
	require.NoError(t, err)
	require.False(t, ok)
	// Deleting an already deleted node is fine.
	require.NoError(t, c.DeleteNode(ctx, &zkclient.Node{ID: id, State: zkclient.NodeUsed}, nil))
}

func TestStoreComponents(t *testing.T) {
	c, _ := zktest.Connect(t)
	ctx := ctxT(t, 30*time.Second)

	comps, err := c.Components(ctx, zkclient.KindPool)
	require.NoError(t, err)
	require.Empty(t, comps)

	p := &zkclient.Component{Kind: zkclient.KindPool, Hostname: "nl01", State: zkclient.ComponentRunning,
		ID: "nl01-PoolWorker.p-main-abc", ProviderName: "p", SupportedLabels: []string{"a"}, Priority: 100}
	require.NoError(t, c.RegisterComponent(ctx, p))
	require.Regexp(t, `^nl01\d{10}$`, p.Name)
	_, st, err := c.Get(ctx, zkclient.ComponentPath(zkclient.KindPool)+"/"+p.Name)
	require.NoError(t, err)
	require.Equal(t, c.SessionID(), st.EphemeralOwner, "registrations are ephemeral")

	stale := *p
	p.Paused = true
	require.NoError(t, c.UpdateComponent(ctx, p))
	require.EqualValues(t, 1, p.Version)
	stale.State = zkclient.ComponentStopped
	require.ErrorIs(t, c.UpdateComponent(ctx, &stale), zkclient.ErrBadVersion, "optimistic update conflict")

	// Corrupt and empty registrations are skipped.
	for _, data := range [][]byte{[]byte("not json"), nil, []byte(`[1]`)} {
		_, err := c.Create(ctx, zkclient.ComponentPath(zkclient.KindPool)+"/junk", data, zkclient.EphemeralSequential, false)
		require.NoError(t, err)
	}
	comps, err = c.Components(ctx, zkclient.KindPool)
	require.NoError(t, err)
	require.Len(t, comps, 1)
	require.Equal(t, p.Name, comps[0].Name)
	require.True(t, comps[0].Paused)
	require.EqualValues(t, 1, comps[0].Version)
	require.Equal(t, []string{"a"}, comps[0].SupportedLabels)

	require.NoError(t, c.UnregisterComponent(ctx, p))
	require.NoError(t, c.UnregisterComponent(ctx, p))
	comps, err = c.Components(ctx, zkclient.KindPool)
	require.NoError(t, err)
	require.Empty(t, comps)
}

func TestStoreImages(t *testing.T) {
	c, _ := zktest.Connect(t)
	ctx := ctxT(t, 30*time.Second)
	const img = "ubuntu-jammy"

	names, err := c.ImageNames(ctx)
	require.NoError(t, err)
	require.Empty(t, names)

	// Uploads need the builds directory.
	require.Error(t, c.CreateUpload(ctx, &zkclient.ImageUpload{ImageName: img, BuildID: "x", ProviderName: "p", State: zkclient.ImageUploading}))

	b1 := &zkclient.ImageBuild{ImageName: img, State: zkclient.ImageBuilding, Formats: []string{"raw", "qcow2"}}
	require.NoError(t, c.CreateBuild(ctx, b1))
	require.Regexp(t, `^[0-9a-f]{32}$`, b1.ID)
	b2 := &zkclient.ImageBuild{ImageName: img, ID: "0000000002", State: zkclient.ImageReady}
	require.NoError(t, c.CreateBuild(ctx, b2), "legacy ids are kept literally")
	require.ErrorIs(t, c.CreateBuild(ctx, b2), zkclient.ErrNodeExists, "non-sequential create")

	// A build lock directory is not a build.
	bl := c.NewLock(zkclient.BuildLockPath(img))
	require.NoError(t, bl.Acquire(ctx))
	ids, err := c.BuildIDs(ctx, img)
	require.NoError(t, err)
	want := []string{b1.ID, "0000000002"}
	sort.Strings(want)
	require.Equal(t, want, ids)
	require.NoError(t, bl.Release(ctx))

	got, err := c.GetBuild(ctx, img, b1.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"qcow2", "raw"}, got.Formats)
	got.State = zkclient.ImageReady
	require.NoError(t, c.StoreBuild(ctx, got))
	require.EqualValues(t, 1, got.Version)
	builds, err := c.Builds(ctx, img, zkclient.ImageReady)
	require.NoError(t, err)
	require.Len(t, builds, 2)
	builds, err = c.Builds(ctx, img, zkclient.ImageBuilding)
	require.NoError(t, err)
	require.Empty(t, builds)

	// Uploads: sequential ids; the lock directory is skipped.
	ul := c.NewLock(zkclient.UploadLockPath(img, b1.ID, "p"))
	require.NoError(t, ul.Acquire(ctx))
	old := &zkclient.ImageUpload{ImageName: img, BuildID: b1.ID, ProviderName: "p", State: zkclient.ImageReady, StateTime: 2000, ExternalID: "newest"}
	require.NoError(t, c.CreateUpload(ctx, old))
	require.Regexp(t, `^\d{10}$`, old.ID)
	newer := &zkclient.ImageUpload{ImageName: img, BuildID: b1.ID, ProviderName: "p", State: zkclient.ImageReady, StateTime: 1000, ExternalID: "older"}
	require.NoError(t, c.CreateUpload(ctx, newer))
	require.Greater(t, newer.ID, old.ID)
	require.NoError(t, ul.Release(ctx))
	other := &zkclient.ImageUpload{ImageName: img, BuildID: "0000000002", ProviderName: "p", State: zkclient.ImageReady, StateTime: 1500, ExternalID: "mid"}
	require.NoError(t, c.CreateUpload(ctx, other))
	failed := &zkclient.ImageUpload{ImageName: img, BuildID: "0000000002", ProviderName: "p", State: zkclient.ImageFailed, StateTime: 9999}
	require.NoError(t, c.CreateUpload(ctx, failed))
	elsewhere := &zkclient.ImageUpload{ImageName: img, BuildID: "0000000002", ProviderName: "q", State: zkclient.ImageReady, StateTime: 99999}
	require.NoError(t, c.CreateUpload(ctx, elsewhere))

	ups, err := c.Uploads(ctx, img, b1.ID, "p")
	require.NoError(t, err)
	require.Len(t, ups, 2)
	require.Equal(t, zkclient.UploadPath(img, b1.ID, "p", old.ID), ups[0].Path())

	best, err := c.MostRecentUpload(ctx, img, "p", zkclient.ImageReady)
	require.NoError(t, err)
	require.NotNil(t, best)
	require.Equal(t, "newest", best.ExternalID, "picked by state_time, not id")
	require.Equal(t, old.Path(), best.Path())
	best, err = c.MostRecentUpload(ctx, img, "p", zkclient.ImageDeleting)
	require.NoError(t, err)
	require.Nil(t, best)
	best, err = c.MostRecentUpload(ctx, "no-such-image", "p", zkclient.ImageReady)
	require.NoError(t, err)
	require.Nil(t, best)

	provs, err := c.BuildProviders(ctx, img, "0000000002")
	require.NoError(t, err)
	require.Equal(t, []string{"p", "q"}, provs)

	failed.State = zkclient.ImageDeleting
	require.NoError(t, c.StoreUpload(ctx, failed))
	gu, err := c.GetUpload(ctx, img, "0000000002", "p", failed.ID)
	require.NoError(t, err)
	require.Equal(t, zkclient.ImageDeleting, gu.State)
	require.EqualValues(t, 1, gu.Version)

	// Pause and build-request flags are empty marker znodes.
	for i := 0; i < 2; i++ {
		require.NoError(t, c.SetImagePaused(ctx, img, true))
	}
	paused, err := c.ImagePaused(ctx, img)
	require.NoError(t, err)
	require.True(t, paused)
	data, _, err := c.Get(ctx, zkclient.ImagePausePath(img))
	require.NoError(t, err)
	require.Empty(t, data)
	for i := 0; i < 2; i++ {
		require.NoError(t, c.SetImagePaused(ctx, img, false))
	}
	paused, err = c.ImagePaused(ctx, img)
	require.NoError(t, err)
	require.False(t, paused)

	require.NoError(t, c.RequestBuild(ctx, img))
	requested, _, err := c.BuildRequested(ctx, img)
	require.NoError(t, err)
	require.True(t, requested)
	require.NoError(t, c.ClearBuildRequest(ctx, img))
	require.NoError(t, c.ClearBuildRequest(ctx, img))
	requested, _, err = c.BuildRequested(ctx, img)
	require.NoError(t, err)
	require.False(t, requested)

	names, err = c.ImageNames(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{img}, names)

	// Remove a whole build recursively.
	require.NoError(t, c.DeleteRecursive(ctx, zkclient.BuildPath(img, "0000000002")))
	ids, err = c.BuildIDs(ctx, img)
	require.NoError(t, err)
	require.Equal(t, []string{b1.ID}, ids)
}

func TestEnsurePathDeleteRecursive(t *testing.T) {
	c, _ := zktest.Connect(t)
	ctx := ctxT(t, 30*time.Second)
	require.NoError(t, c.EnsurePath(ctx, "/a/b/c/d"))
	require.NoError(t, c.EnsurePath(ctx, "/a/b/c/d"), "idempotent")
	require.NoError(t, c.EnsurePath(ctx, "/"))
	for _, p := range []string{"/a", "/a/b", "/a/b/c", "/a/b/c/d"} {
		data, _, err := c.Get(ctx, p)
		require.NoError(t, err, p)
		require.Empty(t, data, "%s: marker znodes have empty data", p)
	}
	_, err := c.Create(ctx, "/a/b/x/y", []byte("v"), zkclient.Persistent, true)
	require.NoError(t, err)
	_, err = c.Create(ctx, "/a/q/r", nil, zkclient.Persistent, false)
	require.ErrorIs(t, err, zkclient.ErrNoNode, "no makepath")

	require.NoError(t, c.DeleteRecursive(ctx, "/a/b"))
	ok, _, err := c.Exists(ctx, "/a/b")
	require.NoError(t, err)
	require.False(t, ok)
	ok, _, err = c.Exists(ctx, "/a")
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, c.DeleteRecursive(ctx, "/a/b"), "missing is fine")
	require.NoError(t, c.DeleteRecursive(ctx, "/nothing/here"))

	// Multi: all or nothing.
	_, err = c.Multi(ctx, zkclient.CreateOp{Path: "/m1"}, zkclient.CreateOp{Path: "/a"})
	require.ErrorIs(t, err, zkclient.ErrNodeExists)
	ok, _, err = c.Exists(ctx, "/m1")
	require.NoError(t, err)
	require.False(t, ok)
	res, err := c.Multi(ctx, zkclient.CreateOp{Path: "/m1"}, zkclient.SetOp{Path: "/a", Data: []byte("x"), Version: 0},
		zkclient.CheckOp{Path: "/a", Version: 1}, zkclient.DeleteOp{Path: "/m1", Version: 0})
	require.NoError(t, err)
	require.Equal(t, "/m1", res[0].String, "paths are reported without the chroot")
	require.Positive(t, c.Ops().Multis.Load())
	require.Positive(t, c.Ops().Total())
	require.Greater(t, c.Ops().Total(), c.Ops().Writes())
}

func TestChrootIsolation(t *testing.T) {
	a, chrootA := zktest.Connect(t)
	b, chrootB := zktest.Connect(t)
	require.NotEqual(t, chrootA, chrootB)
	ctx := ctxT(t, 30*time.Second)

	id, err := a.CreateNode(ctx, &zkclient.Node{State: zkclient.NodeReady})
	require.NoError(t, err)
	ok, _, err := b.Exists(ctx, zkclient.NodePath(id))
	require.NoError(t, err)
	require.False(t, ok, "not visible in another chroot")
	ids, err := b.NodeIDs(ctx)
	require.NoError(t, err)
	require.Empty(t, ids)

	// Seen from the server root it lives under chroot A.
	root := zktest.ConnectChroot(t, "")
	ok, _, err = root.Exists(ctx, chrootA+zkclient.NodePath(id))
	require.NoError(t, err)
	require.True(t, ok)
	ok, _, err = root.Exists(ctx, zkclient.NodePath(id))
	require.NoError(t, err)
	require.False(t, ok, "nothing written outside the chroot")

	// Locks in different chroots do not contend.
	la, lb := a.NewLock(lockDir), b.NewLock(lockDir)
	require.NoError(t, la.Acquire(ctx))
	okb, err := lb.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, okb)
}
