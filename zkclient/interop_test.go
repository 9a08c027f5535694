package zkclient_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Interop tests against the real peer: kazoo (the library Python nodepool
// and Zuul use), driven by testdata/kazoo_peer.py with /usr/bin/python3.

const python = "/usr/bin/python3"

// kazoo runs a one-shot peer command and decodes its JSON answer.
func kazoo(t *testing.T, chroot string, args ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, append([]string{"testdata/kazoo_peer.py", zktest.HostsString(chroot)}, args...)...)
	out, err := cmd.Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	require.NoError(t, err, "kazoo peer %v failed: %s", args, stderr)
	var res map[string]any
	require.NoError(t, json.Unmarshal(out, &res), "peer output %q", out)
	return res
}

// peer is a long-running kazoo process talking line by line.
type peer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
}

func startPeer(t *testing.T, chroot string, args ...string) *peer {
	t.Helper()
	cmd := exec.Command(python, append([]string{"testdata/kazoo_peer.py", zktest.HostsString(chroot)}, args...)...)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start(), "starting %s", python)
	p := &peer{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("kazoo peer stderr:\n%s", stderr.String())
		}
	})
	return p
}

// next reads the peer's next JSON line.
func (p *peer) next(t *testing.T) map[string]any {
	t.Helper()
	got := make(chan map[string]any, 1)
	go func() {
		if !p.lines.Scan() {
			got <- nil
			return
		}
		var m map[string]any
		if json.Unmarshal(p.lines.Bytes(), &m) != nil {
			m = map[string]any{"unparsable": p.lines.Text()}
		}
		got <- m
	}()
	select {
	case m := <-got:
		require.NotNil(t, m, "kazoo peer exited early")
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no answer from the kazoo peer")
		return nil
	}
}

func TestInteropKazooHoldsLock(t *testing.T) {
	c, chroot := zktest.Connect(t)
	ctx := ctxT(t, 60*time.Second)
	n := &zkclient.Node{State: zkclient.NodeReady}
	id, err := c.CreateNode(ctx, n)
	require.NoError(t, err)
	dir := zkclient.NodeLockPath(id)

	py := startPeer(t, chroot, "hold-lock", dir, "zuul-executor")
	msg := py.next(t)
	require.Equal(t, true, msg["acquired"])
	require.Regexp(t, `__lock__\d{10}$`, msg["node"])

	ids, err := c.Contenders(ctx, dir)
	require.NoError(t, err)
	require.Equal(t, []string{"zuul-executor"}, ids, "kazoo's contender is recognised")

	l := c.NodeLock(id)
	ok, err := l.TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok, "kazoo holds the lock")
	require.Len(t, children(t, c, dir), 1)

	done := make(chan error, 1)
	go func() { done <- l.Acquire(ctx) }()
	waitFor(t, 30*time.Second, "our contender queued", func() bool { return len(children(t, c, dir)) == 2 })
	select {
	case err := <-done:
		t.Fatalf("Acquire returned while kazoo holds the lock: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	_, err = io.WriteString(py.stdin, "release\n")
	require.NoError(t, err)
	require.Equal(t, true, py.next(t)["released"])
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Acquire did not succeed after kazoo released")
	}
	require.True(t, l.Held())
	require.NoError(t, c.StoreNode(ctx, n, l))
	require.NoError(t, l.Release(ctx))
}

func TestInteropKazooSeesOurLock(t *testing.T) {
	c, chroot := zktest.Connect(t)
	ctx := ctxT(t, 60*time.Second)
	dir := zkclient.RequestLockPath("200-0000000042")
	l := c.RequestLock("200-0000000042", zkclient.WithIdentifier("go-launcher"))
	require.NoError(t, l.Acquire(ctx))

	res := kazoo(t, chroot, "try-lock", dir, "1")
	require.Equal(t, false, res["acquired"])
	require.Equal(t, true, res["lock_timeout"], "kazoo raised LockTimeout")
	require.Equal(t, []any{"go-launcher"}, res["contenders"], "kazoo sees our contender first")
	require.Len(t, res["children_after"], 1, "kazoo removed its own contender")

	require.NoError(t, l.Release(ctx))
	res = kazoo(t, chroot, "try-lock", dir, "1")
	require.Equal(t, true, res["acquired"])
}

func TestInteropPythonReadsOurRecords(t *testing.T) {
	c, chroot := zktest.Connect(t)
	ctx := ctxT(t, 60*time.Second)
	hold := 3600
	n := &zkclient.Node{
		State: zkclient.NodeReady, StateTime: 1690929342.456789, Provider: "prov", Pool: "main",
		Type: []string{"ubuntu-jammy", "ubuntu"}, InterfaceIP: "203.0.113.7", Username: "zuul",
		HostKeys: []string{"ssh-ed25519 AAAA"}, Comment: "café ☕ 😀", HoldExpiration: &hold,
		Resources:   map[string]float64{"cores": 8, "ram": 8192, "instances": 1},
		Attributes:  json.RawMessage(`{"executor-zone": "dmz"}`),
		CreatedTime: 1690920000,
	}
	n.SetPort(2022)
	id, err := c.CreateNode(ctx, n)
	require.NoError(t, err)

	res := kazoo(t, chroot, "read", zkclient.NodePath(id))
	v := res["value"].(map[string]any)
	require.Equal(t, "ready", v["state"])
	require.Equal(t, 1690929342.456789, v["state_time"])
	require.Equal(t, []any{"ubuntu-jammy", "ubuntu"}, v["type"])
	require.Equal(t, 2022.0, v["connection_port"])
	require.Equal(t, 2022.0, v["ssh_port"])
	require.Equal(t, "café ☕ 😀", v["comment"])
	require.Equal(t, 3600.0, v["hold_expiration"])
	require.Equal(t, map[string]any{"cores": 8.0, "instances": 1.0, "ram": 8192.0}, v["resources"])
	require.Equal(t, map[string]any{"executor-zone": "dmz"}, v["attributes"])
	require.Nil(t, v["cloud"])
	types := res["types"].(map[string]any)
	require.Equal(t, "float", types["state_time"])
	require.Equal(t, "float", types["created_time"], "integral timestamps stay floats")
	require.Equal(t, "int", types["connection_port"])
	require.Equal(t, "int", types["hold_expiration"])
	require.Equal(t, "list", types["host_keys"])
	require.Equal(t, "NoneType", types["cloud"])
	keys := res["keys"].([]any)
	require.Len(t, keys, 36)
	require.Equal(t, "state", keys[0])
	require.Equal(t, "requestor", keys[len(keys)-1])

	req := &zkclient.NodeRequest{State: zkclient.RequestRequested, StateTime: 1690929100.5,
		NodeTypes: []string{"ubuntu-jammy"}, Reuse: false, Requestor: zkclient.RequestorMinReady,
		EventID: "1f2e3d4c5b6a47988a9b0c1d2e3f4a5b"}
	rid, err := c.SubmitRequest(ctx, req, "900", true)
	require.NoError(t, err)
	res = kazoo(t, chroot, "read", zkclient.RequestPath(rid))
	v = res["value"].(map[string]any)
	require.Equal(t, "requested", v["state"])
	require.Equal(t, false, v["reuse"])
	require.Equal(t, "NodePool:min-ready", v["requestor"])
	require.Equal(t, []any{}, v["declined_by"])
	require.Equal(t, []any{"ubuntu-jammy"}, v["node_types"])
	require.Equal(t, 0.0, v["relative_priority"])
	for _, k := range []string{"requestor_data", "requestor", "node_types", "provider", "state", "state_time", "event_id"} {
		require.Contains(t, v, k, "Zuul requires key %s", k)
	}
	require.Equal(t, []any{"state", "state_time", "declined_by", "node_types", "nodes", "reuse", "requestor",
		"requestor_data", "provider", "relative_priority", "event_id", "created_time", "tenant_name"}, res["keys"])
}

func TestInteropWeReadPythonRecords(t *testing.T) {
	c, chroot := zktest.Connect(t)
	ctx := ctxT(t, 60*time.Second)

	// A Zuul-style node write: "id" first, bare-string type, float port.
	res := kazoo(t, chroot, "write-node", `{"id": "x", "state": "in-use", "type": "ubuntu", "connection_port": 22,
		"user_data": {"zuul_system": "abc"}, "hold_expiration": "86400", "state_time": 1690929400.3141594,
		"comment": "naïve", "resources": {"cores": 2, "ram": 2048.5}, "username": null}`)
	id := res["id"].(string)
	require.Regexp(t, `^\d{10}$`, id)
	n, err := c.GetNode(ctx, id)
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeInUse, n.State)
	require.Equal(t, []string{"ubuntu"}, n.Type)
	require.Equal(t, 22, n.Port())
	require.Equal(t, 86400, *n.HoldExpiration)
	require.Equal(t, 1690929400.3141594, n.StateTime)
	require.Equal(t, "naïve", n.Comment)
	require.Equal(t, map[string]float64{"cores": 2, "ram": 2048.5}, n.Resources)
	require.Equal(t, "", n.Username)
	require.JSONEq(t, `{"zuul_system": "abc"}`, string(n.UserData))
	require.Equal(t, []zkclient.Member{{Key: "id", Value: json.RawMessage(`"x"`)}}, n.Extra)

	// Python reads back our rewrite: its value plus nodepool's key set.
	require.NoError(t, c.StoreNode(ctx, n, nil))
	back := kazoo(t, chroot, "read", zkclient.NodePath(id))
	v := back["value"].(map[string]any)
	require.Equal(t, "x", v["id"])
	require.Equal(t, []any{"ubuntu"}, v["type"])
	require.Nil(t, v["username"])
	require.Equal(t, 86400.0, v["hold_expiration"])
	require.EqualValues(t, 1, back["version"])

	res = kazoo(t, chroot, "write-request", `{"requestor_data": {"job_name": "tox"}, "node_types": ["a", "b"],
		"requestor": "zuul-1", "created_time": 1690929000.1234567, "provider": null, "state": "requested",
		"state_time": 1690929000.1201663, "relative_priority": 2, "event_id": "ev", "tenant_name": "t"}`, "199")
	rid := res["id"].(string)
	require.True(t, zkclient.ValidRequestID(rid), rid)
	r, err := c.GetRequest(ctx, rid)
	require.NoError(t, err)
	require.Equal(t, "199", r.Priority())
	require.Equal(t, zkclient.RequestRequested, r.State)
	require.Equal(t, []string{"a", "b"}, r.NodeTypes)
	require.True(t, r.Reuse, "absent reuse reads as true")
	require.Empty(t, r.DeclinedBy)
	require.Equal(t, 2, r.RelativePriority)
	require.Equal(t, "zuul-1", r.Requestor)
	require.Equal(t, "t", r.TenantName)
	require.Equal(t, 1690929000.1234567, r.CreatedTime)
	require.JSONEq(t, `{"job_name": "tox"}`, string(r.RequestorData))
	require.Zero(t, r.Version)
}
