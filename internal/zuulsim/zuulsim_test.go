package zuulsim_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/internal/zuulsim/fakelauncher"
	"github.com/nodepool-go/nodepool/zkclient"
)

// orderedKeys returns the top-level keys of a JSON object in order.
func orderedKeys(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytesReader(data))
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok)
	var out []string
	for dec.More() {
		k, err := dec.Token()
		require.NoError(t, err)
		out = append(out, k.(string))
		var skip json.RawMessage
		require.NoError(t, dec.Decode(&skip))
	}
	return out
}

func fixtureKeys(t *testing.T, name string) []string {
	return orderedKeys(t, readFixture(t, name))
}

func startLauncher(t *testing.T, ctx context.Context, chroot string) *fakelauncher.Launcher {
	t.Helper()
	lc := zktest.ConnectChroot(t, chroot)
	l, err := fakelauncher.Start(ctx, lc)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, l.Stop()) })
	return l
}

func waitGone(t *testing.T, ctx context.Context, c *zkclient.Client, p string) {
	t.Helper()
	for {
		ok, _, ev, err := c.ExistsW(ctx, p)
		require.NoError(t, err)
		if !ok {
			return
		}
		select {
		case <-ev:
		case <-ctx.Done():
			t.Fatalf("%s still exists", p)
		}
	}
}

func getJSON(t *testing.T, ctx context.Context, c *zkclient.Client, p string) ([]byte, map[string]any) {
	t.Helper()
	data, _, err := c.Get(ctx, p)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	return data, m
}

func TestZuulSequence(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, chroot := zktest.Connect(t)
	opts := zuulsim.Options{Tenant: "openstack", ProjectName: "opendev.org/openstack/nova"}

	// Submitted payload: Zuul's keys in Zuul's order, persistent sequential.
	req, err := zuulsim.Submit(ctx, c, []string{"ubuntu-jammy"}, opts)
	require.NoError(t, err)
	require.Regexp(t, `^200-\d{10}$`, req.ID)
	raw, m := getJSON(t, ctx, c, zkclient.RequestPath(req.ID))
	require.Equal(t, fixtureKeys(t, "node-request-zuul-new.json"), orderedKeys(t, raw))
	require.Contains(t, string(raw), `"node_types": ["ubuntu-jammy"], "requestor": "`+zuulsim.DefaultSystemID+`"`)
	require.Equal(t, "requested", m["state"])
	require.Equal(t, "openstack", m["tenant_name"])
	require.Nil(t, m["provider"])
	rd := m["requestor_data"].(map[string]any)
	for _, k := range []string{"build_set_uuid", "tenant_name", "pipeline_name", "job_uuid", "job_name", "span_info"} {
		require.Contains(t, rd, k)
	}
	_, st, err := c.Exists(ctx, zkclient.RequestPath(req.ID))
	require.NoError(t, err)
	require.Zero(t, st.EphemeralOwner, "Zuul's requests are persistent")
	// The launcher's decoder reads it.
	_, err = c.GetRequest(ctx, req.ID)
	require.NoError(t, err)

	l := startLauncher(t, ctx, chroot)
	nr, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, nr.State)
	require.Len(t, nr.Nodes, 1)
	require.False(t, req.DoneAt.Before(req.SubmittedAt))

	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	require.Len(t, ns.Nodes, 1)
	n := ns.Nodes[0]
	require.Equal(t, nr.Nodes[0], n.ID)
	require.Equal(t, "ubuntu-jammy", n.Label)
	require.True(t, n.Locked())
	require.Equal(t, "198.51.100.1", n.Data.InterfaceIP)

	// The request is gone; the node is in-use, locked, in Zuul's key order.
	ok, _, err := c.Exists(ctx, zkclient.RequestPath(req.ID))
	require.NoError(t, err)
	require.False(t, ok)
	locked, err := c.IsLocked(ctx, zkclient.NodeLockPath(n.ID))
	require.NoError(t, err)
	require.True(t, locked)
	raw, m = getJSON(t, ctx, c, zkclient.NodePath(n.ID))
	require.Equal(t, fixtureKeys(t, "node-in-use-zuul.json"), orderedKeys(t, raw))
	require.Equal(t, n.ID, m["id"])
	require.Equal(t, "in-use", m["state"])
	require.Equal(t, req.ID, m["allocated_to"])
	require.Equal(t, map[string]any{"zuul_system": zuulsim.DefaultSystemID, "project_name": "opendev.org/openstack/nova"}, m["user_data"])
	require.Contains(t, string(raw), `"user_data": {"zuul_system": "`+zuulsim.DefaultSystemID+`", "project_name": "opendev.org/openstack/nova"}, "tenant_name": "openstack", "requestor": "`)
	// The launcher's decoder reads Zuul's write.
	dn, err := c.GetNode(ctx, n.ID)
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeInUse, dn.State)

	// Return: used, unlocked, then deleted by the launcher.
	ready := make(chan []byte, 1)
	go func() {
		// Catch the used write before the launcher deletes the node.
		for {
			data, _, ev, err := c.GetW(ctx, zkclient.NodePath(n.ID))
			if err != nil {
				close(ready)
				return
			}
			var s struct{ State string }
			_ = json.Unmarshal(data, &s)
			if s.State == "used" {
				ready <- data
				return
			}
			<-ev
		}
	}()
	time.Sleep(50 * time.Millisecond) // let the watcher arm
	require.NoError(t, ns.Return(ctx))
	require.False(t, n.Locked())
	if used, ok := <-ready; ok {
		require.Equal(t, fixtureKeys(t, "node-used-zuul.json"), orderedKeys(t, used))
	}
	waitGone(t, ctx, c, zkclient.NodePath(n.ID))
	require.Equal(t, 1, l.Deleted())
}

func TestHold(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, chroot := zktest.Connect(t)
	startLauncher(t, ctx, chroot)
	req, err := zuulsim.Submit(ctx, c, []string{"a", "b"}, zuulsim.Options{Priority: "099"})
	require.NoError(t, err)
	require.Regexp(t, `^099-`, req.ID)
	_, err = req.Wait(ctx)
	require.NoError(t, err)
	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	require.Len(t, ns.Nodes, 2)
	require.Equal(t, "a", ns.Nodes[0].Label)
	require.Equal(t, "b", ns.Nodes[1].Label)
	require.NoError(t, ns.Hold(ctx, "tenant-one example.org/zuulsim job .*", "debugging", 86400))
	for _, n := range ns.Nodes {
		raw, m := getJSON(t, ctx, c, zkclient.NodePath(n.ID))
		require.Equal(t, fixtureKeys(t, "node-hold-zuul.json"), orderedKeys(t, raw))
		require.Equal(t, "hold", m["state"])
		require.Equal(t, "debugging", m["comment"])
		require.Equal(t, "tenant-one example.org/zuulsim job .*", m["hold_job"])
		require.EqualValues(t, 86400, m["hold_expiration"])
		locked, err := c.IsLocked(ctx, zkclient.NodeLockPath(n.ID))
		require.NoError(t, err)
		require.False(t, locked)
		dn, err := c.GetNode(ctx, n.ID)
		require.NoError(t, err)
		require.Equal(t, 86400, *dn.HoldExpiration)
	}
}

func TestUnlockLeavesInUseForTheLauncher(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, chroot := zktest.Connect(t)
	startLauncher(t, ctx, chroot)
	req, err := zuulsim.Submit(ctx, c, []string{"x"}, zuulsim.Options{})
	require.NoError(t, err)
	_, err = req.Wait(ctx)
	require.NoError(t, err)
	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Unlock(ctx))
	// The fake launcher deletes unlocked in-use nodes, as a real one does.
	waitGone(t, ctx, c, zkclient.NodePath(ns.Nodes[0].ID))
}

func TestFailedRequestIsDeleted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, chroot := zktest.Connect(t)
	startLauncher(t, ctx, chroot)
	req, err := zuulsim.Submit(ctx, c, []string{"fail-me"}, zuulsim.Options{})
	require.NoError(t, err)
	nr, err := req.Wait(ctx)
	require.ErrorIs(t, err, zuulsim.ErrRequestFailed)
	require.Equal(t, zkclient.RequestFailed, nr.State)
	require.Equal(t, []string{fakelauncher.ID}, nr.DeclinedBy)
	ok, _, err := c.Exists(ctx, zkclient.RequestPath(req.ID))
	require.NoError(t, err)
	require.False(t, ok)
	_, err = req.Accept(ctx)
	require.Error(t, err)
}

func TestAcceptRejectsForeignNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, chroot := zktest.Connect(t)
	req, err := zuulsim.Submit(ctx, c, []string{"x"}, zuulsim.Options{})
	require.NoError(t, err)
	// Hand-made fulfilment whose node belongs to another request.
	n := &zkclient.Node{State: zkclient.NodeReady, Type: []string{"x"}, AllocatedTo: "200-0000009999"}
	nid, err := c.CreateNode(ctx, n)
	require.NoError(t, err)
	r, err := c.GetRequest(ctx, req.ID)
	require.NoError(t, err)
	r.State, r.Nodes = zkclient.RequestFulfilled, []string{nid}
	require.NoError(t, c.StoreRequest(ctx, r, nil))
	_, err = req.Wait(ctx)
	require.NoError(t, err)
	_, err = req.Accept(ctx)
	require.ErrorIs(t, err, zuulsim.ErrNotAllocated)
	// Deleted regardless; the node was never locked.
	ok, _, err := c.Exists(ctx, zkclient.RequestPath(req.ID))
	require.NoError(t, err)
	require.False(t, ok)
	locked, err := c.IsLocked(ctx, zkclient.NodeLockPath(nid))
	require.NoError(t, err)
	require.False(t, locked)
	_ = chroot
}

func TestRelativePriorityAndCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, chroot := zktest.Connect(t)
	req, err := zuulsim.Submit(ctx, c, []string{"x"}, zuulsim.Options{})
	require.NoError(t, err)
	before, _ := getJSON(t, ctx, c, zkclient.RequestPath(req.ID))

	ok, err := req.RelativePriority(ctx, 5)
	require.NoError(t, err)
	require.True(t, ok)
	after, m := getJSON(t, ctx, c, zkclient.RequestPath(req.ID))
	require.EqualValues(t, 5, m["relative_priority"])
	require.Equal(t, orderedKeys(t, before), orderedKeys(t, after))
	_, st, err := c.Exists(ctx, zkclient.RequestPath(req.ID))
	require.NoError(t, err)
	require.EqualValues(t, 1, st.Version)

	// Skipped silently while a launcher holds the request lock.
	other := zktest.ConnectChroot(t, chroot)
	lock := other.RequestLock(req.ID)
	got, err := lock.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, got)
	ok, err = req.RelativePriority(ctx, 7)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, lock.Release(ctx))

	require.NoError(t, req.Cancel(ctx))
	require.NoError(t, req.Cancel(ctx))
	_, err = req.Wait(ctx)
	require.True(t, errors.Is(err, zuulsim.ErrRequestGone), "%v", err)
}
