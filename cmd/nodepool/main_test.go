package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

// testNow is the fixed "now" of the golden outputs.
var testNow = time.Unix(1690930000, 0)

// fakeDriver is a driver whose delete machines finish after two steps.
type fakeDriver struct {
	mu      sync.Mutex
	deleted []string
}

func (d *fakeDriver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	p := driver.ParseProviderCommon(s)
	s.Ignore("pools")
	s.Finish()
	return p
}

func (d *fakeDriver) Open(ctx context.Context, cfg *driver.ProviderConfig, env driver.Env) (driver.Adapter, error) {
	return &fakeAdapter{d: d}, nil
}

type fakeAdapter struct{ d *fakeDriver }

func (a *fakeAdapter) CreateMachine(driver.CreateSpec) driver.CreateMachine { return nil }
func (a *fakeAdapter) DeleteMachine(id string) driver.DeleteMachine {
	return &fakeDelete{a: a, id: id}
}
func (a *fakeAdapter) ListInstances(context.Context) ([]driver.Instance, error) { return nil, nil }
func (a *fakeAdapter) Close() error                                             { return nil }

type fakeDelete struct {
	a     *fakeAdapter
	id    string
	steps int
}

func (m *fakeDelete) Advance(ctx context.Context) (bool, error) {
	if m.id == "gone" {
		return false, driver.NotFoundError("server %s not found", m.id)
	}
	m.steps++
	if m.steps < 2 {
		return false, nil
	}
	m.a.d.mu.Lock()
	m.a.d.deleted = append(m.a.d.deleted, m.id)
	m.a.d.mu.Unlock()
	return true, nil
}

var fake = &fakeDriver{}

func init() { driver.Register("clitest", fake) }

// env is one test's ZooKeeper chroot and config file.
type env struct {
	t      *testing.T
	zk     *zkclient.Client
	chroot string
	config string
	now    time.Time
	stdin  string
	// lockTimeout overrides the CLI's 5 s node lock timeout when set.
	lockTimeout time.Duration
}

func newEnv(t *testing.T) *env {
	zk, chroot := zktest.Connect(t)
	e := &env{t: t, zk: zk, chroot: chroot, now: testNow}
	e.config = e.writeConfig(chroot)
	return e
}

func (e *env) writeConfig(chroot string) string {
	host, port, _ := strings.Cut(zktest.Hosts()[0], ":")
	path := filepath.Join(e.t.TempDir(), "nodepool.yaml")
	cfg := fmt.Sprintf(`zookeeper-servers:
  - host: %s
    port: %s
    chroot: %s
labels:
  - name: ubuntu-jammy
diskimages:
  - name: ubuntu-jammy
  - name: paused-image
    pause: true
providers:
  - name: osp-east
    driver: clitest
`, host, port, chroot)
	require.NoError(e.t, os.WriteFile(path, []byte(cfg), 0o644))
	return path
}

// run runs the CLI with -c <config> prepended.
func (e *env) run(args ...string) (string, string, int) {
	return e.runConfig(e.config, args...)
}

func (e *env) runConfig(config string, args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	c := &cli{now: func() time.Time { return e.now }, stdin: strings.NewReader(e.stdin),
		lockTimeout: e.lockTimeout, pollInterval: 10 * time.Millisecond}
	code := c.run(append([]string{"-c", config}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

func (e *env) ctx() context.Context { return context.Background() }

func (e *env) create(p, data string) {
	_, err := e.zk.Create(e.ctx(), p, []byte(data), zkclient.Persistent, true)
	require.NoError(e.t, err)
}

func (e *env) get(p string) string {
	data, _, err := e.zk.Get(e.ctx(), p)
	require.NoError(e.t, err)
	return string(data)
}

func (e *env) exists(p string) bool {
	ok, _, err := e.zk.Exists(e.ctx(), p)
	require.NoError(e.t, err)
	return ok
}

// ago is a build/upload state_time whose int() is exactly d before testNow
// (their ages are computed from the truncated timestamp).
func ago(d time.Duration) float64 { return float64(testNow.Add(-d).Unix()) + 0.25 }

// nodeAgo is a node state_time d (and a bit) before testNow.
func nodeAgo(d time.Duration) float64 { return float64(testNow.Add(-d).Unix()) - 0.25 }

func (e *env) seedNodes() {
	n := &zkclient.Node{State: zkclient.NodeReady, StateTime: nodeAgo(21*time.Minute + 7*time.Second),
		Provider: "osp-east", Pool: "main", Type: []string{"ubuntu-jammy"},
		ExternalID: "8e1f6c1a-3b2d-4c5e-9f70-1a2b3c4d5e6f", PublicIPv4: "203.0.113.10",
		PublicIPv6: "2001:db8::10", PrivateIPv4: "10.0.0.12", AZ: "nova", Username: "zuul",
		Launcher: "nl01.example.org-PoolWorker.osp-east-main-3f8e2a6c9b1d4e7f8a0b1c2d3e4f5a6b"}
	n.SetPort(22)
	e.create(zkclient.NodePath("0000000123"), string(n.AppendJSON(nil)))
	n2 := &zkclient.Node{State: zkclient.NodeBuilding, StateTime: nodeAgo(31 * time.Second),
		Provider: "osp-east", Pool: "main", Type: []string{"ubuntu-jammy"}}
	e.create(zkclient.NodePath("0000000124"), string(n2.AppendJSON(nil)))
}

// lockElsewhere takes a node lock from another session.
func (e *env) lockElsewhere(id string) *zkclient.Lock {
	other := zktest.ConnectChroot(e.t, e.chroot)
	l := other.NodeLock(id)
	ok, err := l.TryAcquire(e.ctx())
	require.NoError(e.t, err)
	require.True(e.t, ok)
	return l
}

const buildUUID = "5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b"

func (e *env) seedImages() {
	b := &zkclient.ImageBuild{State: zkclient.ImageReady, StateTime: ago(2*time.Hour + 13*time.Minute + 9*time.Second),
		Builder: "nb01.example.org", Formats: []string{"qcow2", "raw"}, Username: "zuul", PythonPath: "auto"}
	data, _ := b.MarshalJSON()
	e.create(zkclient.BuildPath("ubuntu-jammy", buildUUID), string(data))
	b.StateTime = ago(26*time.Hour + 40*time.Minute + 51*time.Second)
	data, _ = b.MarshalJSON()
	e.create(zkclient.BuildPath("ubuntu-jammy", "0000000042"), string(data))
	c := &zkclient.ImageBuild{State: zkclient.ImageBuilding, StateTime: ago(12*time.Minute + time.Second),
		Builder: "nb02.example.org", Formats: []string{"qcow2", "tar"}}
	data, _ = c.MarshalJSON()
	e.create(zkclient.BuildPath("centos-9-stream", "9d2e41aa07c34b4c8f1e6b5a4c3d2e1f"), string(data))

	u := &zkclient.ImageUpload{State: zkclient.ImageReady, StateTime: ago(time.Hour + 58*time.Minute + 20*time.Second),
		ExternalName: "ubuntu-jammy-1690924100", ExternalID: "0d9c7b0e-7c1f-4b8e-9c39-5a0e8d1f2a3b", Format: "qcow2", Username: "zuul"}
	data, _ = u.MarshalJSON()
	e.create(zkclient.UploadPath("ubuntu-jammy", buildUUID, "osp-east", "0000000001"), string(data))
	u2 := &zkclient.ImageUpload{State: zkclient.ImageUploading, StateTime: ago(3*time.Minute + 12*time.Second)}
	data, _ = u2.MarshalJSON()
	e.create(zkclient.UploadPath("ubuntu-jammy", buildUUID, "aws-us-east-2", "0000000002"), string(data))
}

func TestNoCommand(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, 1, run(nil, &out, &errb))
	require.True(t, strings.HasPrefix(out.String(), "usage: nodepool [-h] [-l LOGCONFIG] [--version] [-c CONFIG] [-s SECURE]\n"), out.String())
	require.Contains(t, out.String(), "\nNode pool.\n")
	require.Contains(t, out.String(), "    list                list nodes\n")
	require.Contains(t, out.String(), "    hold                place a node in the HOLD state e.g. for running\n                        maintenance tasks\n")
	require.Empty(t, errb.String())
}

func TestArgErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"node-list"}, "nodepool: error: argument command: invalid choice: 'node-list' (choose from 'list', 'image-list',"},
		{[]string{"hold"}, "usage: nodepool hold [-h] [--reason REASON] id\nnodepool hold: error: the following arguments are required: id\n"},
		{[]string{"image-delete", "--provider", "p"}, "nodepool image-delete: error: the following arguments are required: --image, --upload-id, --build-id\n"},
		{[]string{"list", "--bogus"}, "nodepool: error: unrecognized arguments: --bogus\n"},
		{[]string{"-c"}, "nodepool: error: argument -c: expected one argument\n"},
		{[]string{"list", "--format", "xml"}, "nodepool list: error: argument --format: invalid choice: 'xml' (choose from 'text', 'json')\n"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		require.Equal(t, 2, run(c.args, &out, &errb), c.args)
		require.Contains(t, errb.String(), c.want)
		require.True(t, strings.HasPrefix(errb.String(), "usage: "))
		require.Empty(t, out.String())
	}
}

func TestVersionAndHelp(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, 0, run([]string{"--version"}, &out, &errb))
	require.True(t, strings.HasPrefix(out.String(), "Nodepool version: "))
	out.Reset()
	require.Equal(t, 0, run([]string{"list", "-h"}, &out, &errb))
	require.Equal(t, `usage: nodepool list [-h] [--detail] [--format {text,json}]

options:
  -h, --help            show this help message and exit
  --detail              Output detailed node info
  --format {text,json}  output format (default: text)
`, out.String())
}

func TestZooKeeperUnreachable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte("zookeeper-servers:\n  - host: 127.0.0.1\n    port: 1\n"), 0o644))
	var out, errb bytes.Buffer
	code := run([]string{"-c", path, "--zk-timeout", "1", "list"}, &out, &errb)
	require.Equal(t, 1, code)
	require.Contains(t, errb.String(), "Error: cannot connect to ZooKeeper at 127.0.0.1:1 within 1s")
}

func TestConfigMissing(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"-c", "/nonexistent/nodepool.yaml", "list"}, &out, &errb)
	require.Equal(t, 1, code)
	require.Contains(t, errb.String(), "Error: ")
	require.Equal(t, 1, strings.Count(errb.String(), "\n"))
}

func TestListGolden(t *testing.T) {
	e := newEnv(t)
	out, _, code := e.run("list")
	require.Equal(t, 0, code)
	require.Equal(t, `+----+----------+-------+-----------+-------------+------+-------+-----+--------+
| ID | Provider | Label | Server ID | Public IPv4 | IPv6 | State | Age | Locked |
+----+----------+-------+-----------+-------------+------+-------+-----+--------+
+----+----------+-------+-----------+-------------+------+-------+-----+--------+
`, out)

	e.seedNodes()
	e.lockElsewhere("0000000124")
	out, errOut, code := e.run("list")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, `+------------+----------+--------------+--------------------------------------+--------------+--------------+----------+-------------+----------+
| ID         | Provider | Label        | Server ID                            | Public IPv4  | IPv6         | State    | Age         | Locked   |
+------------+----------+--------------+--------------------------------------+--------------+--------------+----------+-------------+----------+
| 0000000123 | osp-east | ubuntu-jammy | 8e1f6c1a-3b2d-4c5e-9f70-1a2b3c4d5e6f | 203.0.113.10 | 2001:db8::10 | ready    | 00:00:21:07 | unlocked |
| 0000000124 | osp-east | ubuntu-jammy |                                      |              |              | building | 00:00:00:31 | locked   |
+------------+----------+--------------+--------------------------------------+--------------+--------------+----------+-------------+----------+
`, out)

	out, _, code = e.run("list", "--detail")
	require.Equal(t, 0, code)
	lines := strings.Split(out, "\n")
	require.Equal(t, "| ID         | Provider | Label        | Server ID                            | Public IPv4  | IPv6         | State    | Age         | Locked   | Pool | Hostname | Private IPv4 | AZ   | Username | Port | Launcher                                                                   | Allocated To | Hold Job | Comment | User Data | Driver Data |", lines[1])
	require.Equal(t, "| 0000000123 | osp-east | ubuntu-jammy | 8e1f6c1a-3b2d-4c5e-9f70-1a2b3c4d5e6f | 203.0.113.10 | 2001:db8::10 | ready    | 00:00:21:07 | unlocked | main |          | 10.0.0.12    | nova | zuul     | 22   | nl01.example.org-PoolWorker.osp-east-main-3f8e2a6c9b1d4e7f8a0b1c2d3e4f5a6b |              |          |         |           |             |", lines[3])

	out, _, code = e.run("list", "--format", "json")
	require.Equal(t, 0, code)
	require.True(t, strings.HasPrefix(out, `[{"id": "0000000123", "provider": "osp-east", "label": ["ubuntu-jammy"], "server_id": "8e1f6c1a-3b2d-4c5e-9f70-1a2b3c4d5e6f", "public_ipv4": "203.0.113.10", "ipv6": "2001:db8::10", "state": "ready", "age": "00:00:21:07", "locked": "unlocked", "pool": "main", "hostname": null, "private_ipv4": "10.0.0.12", "AZ": "nova", "username": "zuul", "connection_port": 22, "launcher": "nl01.example.org-PoolWorker.osp-east-main-3f8e2a6c9b1d4e7f8a0b1c2d3e4f5a6b", "allocated_to": null, "hold_job": null, "comment": null, "user_data": null, "driver_data": null}, {"id": "0000000124"`), out)
}

func TestImageListingsGolden(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ cmd, want string }{
		{"image-list", `+----------+-----------+----------+-------+---------------------+-------------------+-------+-----+
| Build ID | Upload ID | Provider | Image | Provider Image Name | Provider Image ID | State | Age |
+----------+-----------+----------+-------+---------------------+-------------------+-------+-----+
+----------+-----------+----------+-------+---------------------+-------------------+-------+-----+
`},
		{"dib-image-list", `+----+-------+---------+---------+-------+-----+
| ID | Image | Builder | Formats | State | Age |
+----+-------+---------+---------+-------+-----+
+----+-------+---------+---------+-------+-----+
`},
		{"image-status", `+-------+--------+---------------+-------------------+
| Image | Paused | Build Request | Build Request Age |
+-------+--------+---------------+-------------------+
+-------+--------+---------------+-------------------+
`},
	} {
		out, errOut, code := e.run(c.cmd)
		require.Equal(t, 0, code, errOut)
		require.Equal(t, c.want, out, c.cmd)
	}

	e.seedImages()
	out, _, code := e.run("image-list")
	require.Equal(t, 0, code)
	// The spec's example rows, in the normative order (providers sorted).
	require.Equal(t, `+----------------------------------+------------+---------------+--------------+-------------------------+--------------------------------------+-----------+-------------+
| Build ID                         | Upload ID  | Provider      | Image        | Provider Image Name     | Provider Image ID                    | State     | Age         |
+----------------------------------+------------+---------------+--------------+-------------------------+--------------------------------------+-----------+-------------+
| 5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b | 0000000002 | aws-us-east-2 | ubuntu-jammy |                         |                                      | uploading | 00:00:03:12 |
| 5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b | 0000000001 | osp-east      | ubuntu-jammy | ubuntu-jammy-1690924100 | 0d9c7b0e-7c1f-4b8e-9c39-5a0e8d1f2a3b | ready     | 00:01:58:20 |
+----------------------------------+------------+---------------+--------------+-------------------------+--------------------------------------+-----------+-------------+
`, out)

	out, _, code = e.run("dib-image-list")
	require.Equal(t, 0, code)
	// The spec's example rows, in the normative order (images by name,
	// builds by state_time).
	require.Equal(t, `+--------------------------------------------------+-----------------+------------------+-----------+----------+-------------+
| ID                                               | Image           | Builder          | Formats   | State    | Age         |
+--------------------------------------------------+-----------------+------------------+-----------+----------+-------------+
| centos-9-stream-9d2e41aa07c34b4c8f1e6b5a4c3d2e1f | centos-9-stream | nb02.example.org | qcow2,tar | building | 00:00:12:01 |
| ubuntu-jammy-0000000042                          | ubuntu-jammy    | nb01.example.org | qcow2,raw | ready    | 01:02:40:51 |
| ubuntu-jammy-5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b    | ubuntu-jammy    | nb01.example.org | qcow2,raw | ready    | 00:02:13:09 |
+--------------------------------------------------+-----------------+------------------+-----------+----------+-------------+
`, out)

	out, _, code = e.run("dib-image-list", "--format", "json")
	require.Equal(t, 0, code)
	require.Contains(t, out, `{"id": "ubuntu-jammy-5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b", "image": "ubuntu-jammy", "builder": "nb01.example.org", "formats": ["qcow2", "raw"], "state": "ready", "age": 1690922011}`)

	// image-status: pause ubuntu-jammy and request a build 5:42 ago.
	_, _, code = e.run("image-pause", "ubuntu-jammy")
	require.Equal(t, 0, code)
	_, _, code = e.run("image-build", "ubuntu-jammy")
	require.Equal(t, 0, code)
	_, st, err := e.zk.Exists(e.ctx(), zkclient.BuildRequestPath("ubuntu-jammy"))
	require.NoError(t, err)
	e.now = time.UnixMilli(st.Ctime).Truncate(time.Second).Add(5*time.Minute + 42*time.Second + 500*time.Millisecond)
	out, _, code = e.run("image-status")
	require.Equal(t, 0, code)
	require.Equal(t, `+-----------------+--------+---------------+-------------------+
| Image           | Paused | Build Request | Build Request Age |
+-----------------+--------+---------------+-------------------+
| centos-9-stream | False  |               |                   |
| ubuntu-jammy    | True   | pending       | 00:00:05:42       |
+-----------------+--------+---------------+-------------------+
`, out)

	// A paused image's builds show as paused in dib-image-list.
	out, _, _ = e.run("dib-image-list")
	require.Contains(t, out, "| ubuntu-jammy-0000000042                          | ubuntu-jammy    | nb01.example.org | qcow2,raw | paused   |")
	_, _, code = e.run("image-unpause", "ubuntu-jammy")
	require.Equal(t, 0, code)
	require.False(t, e.exists(zkclient.ImagePausePath("ubuntu-jammy")))
	_, _, code = e.run("image-unpause", "ubuntu-jammy")
	require.Equal(t, 0, code)
}

func TestRequestListGolden(t *testing.T) {
	e := newEnv(t)
	out, _, code := e.run("request-list")
	require.Equal(t, 0, code)
	require.Equal(t, `+------------+----------+-------+-----------+------------+-------+-------------+----------+
| Request ID | Priority | State | Requestor | Node Types | Nodes | Declined By | Event ID |
+------------+----------+-------+-----------+------------+-------+-------------+----------+
+------------+----------+-------+-----------+------------+-------+-------------+----------+
`, out)
	r1 := &zkclient.NodeRequest{State: zkclient.RequestPending, NodeTypes: []string{"ubuntu-jammy", "ubuntu-jammy"},
		Requestor: "c3a1e59b6f2d4a0e9b7d8f1e2a3b4c5d", EventID: "c2d9a7e4f1b0483c9d5e6f7a8b9c0d1e", Reuse: true}
	e.create(zkclient.RequestPath("200-0000000457"), string(r1.AppendJSON(nil)))
	r2 := &zkclient.NodeRequest{State: zkclient.RequestFulfilled, NodeTypes: []string{"centos-9-stream"},
		Nodes: []string{"0000000124"}, Requestor: "NodePool:min-ready", EventID: "5e1f0a9b8c7d4e6f9a0b1c2d3e4f5a6b"}
	e.create(zkclient.RequestPath("900-0000000455"), string(r2.AppendJSON(nil)))
	out, _, code = e.run("request-list")
	require.Equal(t, 0, code)
	require.Equal(t, `+----------------+----------+-----------+----------------------------------+---------------------------+------------+-------------+----------------------------------+
| Request ID     | Priority | State     | Requestor                        | Node Types                | Nodes      | Declined By | Event ID                         |
+----------------+----------+-----------+----------------------------------+---------------------------+------------+-------------+----------------------------------+
| 200-0000000457 | 0        | pending   | c3a1e59b6f2d4a0e9b7d8f1e2a3b4c5d | ubuntu-jammy,ubuntu-jammy |            |             | c2d9a7e4f1b0483c9d5e6f7a8b9c0d1e |
| 900-0000000455 | 0        | fulfilled | NodePool:min-ready               | centos-9-stream           | 0000000124 |             | 5e1f0a9b8c7d4e6f9a0b1c2d3e4f5a6b |
+----------------+----------+-----------+----------------------------------+---------------------------+------------+-------------+----------------------------------+
`, out)
	out, _, code = e.run("request-list", "--format", "json")
	require.Equal(t, 0, code)
	require.True(t, strings.HasPrefix(out, `[{"id": "200-0000000457", "relative_priority": 0, "state": "pending", "requestor": "c3a1e59b6f2d4a0e9b7d8f1e2a3b4c5d", "node_types": ["ubuntu-jammy", "ubuntu-jammy"], "nodes": [], "declined_by": [], "event_id": "c2d9a7e4f1b0483c9d5e6f7a8b9c0d1e"}, `), out)
}

func TestInfoGolden(t *testing.T) {
	e := newEnv(t)
	e.seedNodes()
	e.seedImages()
	e.create(zkclient.UploadPath("ubuntu-jammy", buildUUID, "osp-east", "0000000002"), e.get(zkclient.UploadPath("ubuntu-jammy", buildUUID, "osp-east", "0000000001")))
	out, _, code := e.run("info", "osp-east")
	require.Equal(t, 0, code)
	require.Equal(t, `ZooKeeper data for provider osp-east

Image data:
+--------------+----------------------------------+-----------------------+
| Image Name   | Build ID                         | Upload IDs            |
+--------------+----------------------------------+-----------------------+
| ubuntu-jammy | 5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b | 0000000001,0000000002 |
+--------------+----------------------------------+-----------------------+

Nodes:
+------------+--------------------------------------+
| ID         | Server ID                            |
+------------+--------------------------------------+
| 0000000123 | 8e1f6c1a-3b2d-4c5e-9f70-1a2b3c4d5e6f |
| 0000000124 |                                      |
+------------+--------------------------------------+
`, out)
	out, _, code = e.run("info", "nowhere")
	require.Equal(t, 0, code)
	require.Contains(t, out, "Image data:\n+------------+----------+------------+\n| Image Name | Build ID | Upload IDs |\n+------------+----------+------------+\n+------------+----------+------------+\n")
}

func TestHold(t *testing.T) {
	e := newEnv(t)
	e.seedNodes()
	out, _, code := e.run("hold", "0000000999")
	require.Equal(t, 0, code)
	require.Equal(t, "Node id 0000000999 not found\n", out)

	out, errOut, code := e.run("hold", "0000000123", "--reason", "debugging")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "| 0000000123 | osp-east | ubuntu-jammy | 8e1f6c1a-3b2d-4c5e-9f70-1a2b3c4d5e6f | 203.0.113.10 | 2001:db8::10 | hold  | 00:00:00:00 | unlocked |")
	n, err := e.zk.GetNode(e.ctx(), "0000000123")
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeHold, n.State)
	require.Equal(t, float64(testNow.Unix()), n.StateTime)
	require.Equal(t, "debugging", n.Comment)
	require.Equal(t, "8e1f6c1a-3b2d-4c5e-9f70-1a2b3c4d5e6f", n.ExternalID)
	locked, err := e.zk.IsLocked(e.ctx(), zkclient.NodeLockPath("0000000123"))
	require.NoError(t, err)
	require.False(t, locked)

	// A node locked by someone else: lock timeout → exit 1, unchanged.
	e.lockElsewhere("0000000124")
	e.lockTimeout = 300 * time.Millisecond
	out, errOut, code = e.run("hold", "0000000124")
	require.Equal(t, 1, code)
	require.Empty(t, out)
	require.Contains(t, errOut, "Error: timeout after 300ms waiting for the lock of node 0000000124")
	n, err = e.zk.GetNode(e.ctx(), "0000000124")
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeBuilding, n.State)
}

func TestDelete(t *testing.T) {
	e := newEnv(t)
	e.seedNodes()
	out, _, code := e.run("delete", "0000000999")
	require.Equal(t, 0, code)
	require.Equal(t, "Node id 0000000999 not found\n", out)

	out, errOut, code := e.run("delete", "0000000123")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "| deleting | 00:00:00:00 | unlocked |")
	n, err := e.zk.GetNode(e.ctx(), "0000000123")
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeDeleting, n.State)
	require.Equal(t, "osp-east", n.Provider)

	// --now: the instance is deleted through the driver, then the znode.
	out, errOut, code = e.run("delete", "0000000123", "--now")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, `+----+----------+-------+-----------+-------------+------+-------+-----+--------+
| ID | Provider | Label | Server ID | Public IPv4 | IPv6 | State | Age | Locked |
+----+----------+-------+-----------+-------------+------+-------+-----+--------+
+----+----------+-------+-----------+-------------+------+-------+-----+--------+
`, out)
	require.False(t, e.exists(zkclient.NodePath("0000000123")))
	fake.mu.Lock()
	require.Contains(t, fake.deleted, "8e1f6c1a-3b2d-4c5e-9f70-1a2b3c4d5e6f")
	fake.mu.Unlock()

	// NotFound from the cloud counts as deleted.
	n3 := &zkclient.Node{State: zkclient.NodeUsed, Provider: "osp-east", ExternalID: "gone"}
	e.create(zkclient.NodePath("0000000125"), string(n3.AppendJSON(nil)))
	_, errOut, code = e.run("delete", "--now", "0000000125")
	require.Equal(t, 0, code, errOut)
	require.False(t, e.exists(zkclient.NodePath("0000000125")))

	// Provider not in the config.
	n4 := &zkclient.Node{State: zkclient.NodeReady, Provider: "elsewhere", ExternalID: "x"}
	e.create(zkclient.NodePath("0000000126"), string(n4.AppendJSON(nil)))
	out, _, code = e.run("delete", "--now", "0000000126")
	require.Equal(t, 0, code)
	require.Equal(t, "Provider elsewhere for node 0000000126 not defined on this launcher\n", out)
	require.True(t, e.exists(zkclient.NodePath("0000000126")))
}

func TestErase(t *testing.T) {
	e := newEnv(t)
	e.seedNodes()
	e.seedImages()
	other := &zkclient.Node{State: zkclient.NodeReady, Provider: "aws-us-east-2"}
	e.create(zkclient.NodePath("0000000200"), string(other.AppendJSON(nil)))

	e.stdin = "n\n"
	out, _, code := e.run("erase", "osp-east")
	require.Equal(t, 0, code)
	require.Equal(t, "\nWARNING! This action is not reversible!\nErase ZooKeeper data for provider osp-east? [N/y] Aborting. No data erased.\n", out)
	require.True(t, e.exists(zkclient.NodePath("0000000123")))

	e.stdin = "y\n"
	out, _, code = e.run("erase", "osp-east")
	require.Equal(t, 0, code)
	require.Equal(t, "\nWARNING! This action is not reversible!\nErase ZooKeeper data for provider osp-east? [N/y] Erasing build data for osp-east...\nErasing node data for osp-east...\n", out)
	require.False(t, e.exists(zkclient.BuildProviderPath("ubuntu-jammy", buildUUID, "osp-east")))
	require.True(t, e.exists(zkclient.BuildProviderPath("ubuntu-jammy", buildUUID, "aws-us-east-2")))
	require.True(t, e.exists(zkclient.BuildPath("ubuntu-jammy", buildUUID)))
	require.False(t, e.exists(zkclient.NodePath("0000000123")))
	require.False(t, e.exists(zkclient.NodePath("0000000124")))
	require.True(t, e.exists(zkclient.NodePath("0000000200")))

	e.stdin = ""
	out, _, code = e.run("erase", "aws-us-east-2", "--force")
	require.Equal(t, 0, code)
	require.Equal(t, "Erasing build data for aws-us-east-2...\nErasing node data for aws-us-east-2...\n", out)
	require.False(t, e.exists(zkclient.NodePath("0000000200")))
	require.False(t, e.exists(zkclient.BuildProviderPath("ubuntu-jammy", buildUUID, "aws-us-east-2")))
}

func TestImageCommands(t *testing.T) {
	e := newEnv(t)
	e.seedImages()
	up := zkclient.UploadPath("ubuntu-jammy", buildUUID, "osp-east", "0000000001")
	out, _, code := e.run("image-delete", "--provider", "osp-east", "--image", "ubuntu-jammy", "--build-id", buildUUID, "--upload-id", "0000000009")
	require.Equal(t, 0, code)
	require.Equal(t, "Image upload not found\n", out)
	out, _, code = e.run("image-delete", "--provider", "aws-us-east-2", "--image", "ubuntu-jammy", "--build-id", buildUUID, "--upload-id", "0000000002")
	require.Equal(t, 0, code)
	require.Equal(t, "Cannot delete because image upload in progress\n", out)
	out, _, code = e.run("image-delete", "--provider=osp-east", "--image", "ubuntu-jammy", "--build-id", buildUUID, "--upload-id", "0000000001")
	require.Equal(t, 0, code)
	require.Empty(t, out)
	require.Contains(t, e.get(up), `"state": "deleting", "state_time": 1690930000`)

	out, _, code = e.run("dib-image-delete", "ubuntu-jammy-0000000099")
	require.Equal(t, 0, code)
	require.Equal(t, "Build ubuntu-jammy-0000000099 not found\n", out)
	out, _, code = e.run("dib-image-delete", "centos-9-stream-9d2e41aa07c34b4c8f1e6b5a4c3d2e1f")
	require.Equal(t, 0, code)
	require.Equal(t, "Cannot delete a build in progress\n", out)
	out, _, code = e.run("dib-image-delete", "ubuntu-jammy-0000000042")
	require.Equal(t, 0, code)
	require.Empty(t, out)
	require.Contains(t, e.get(zkclient.BuildPath("ubuntu-jammy", "0000000042")), `"state": "deleting"`)
	_, errOut, code := e.run("dib-image-delete", "nodash")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "Error: ")

	_, errOut, code = e.run("image-build", "nosuch")
	require.Equal(t, 1, code)
	require.Equal(t, "Error: Trying to build a non disk-image-builder image: nosuch\n", lastLine(errOut))
	_, errOut, code = e.run("image-build", "paused-image")
	require.Equal(t, 1, code)
	require.Equal(t, "Error: Skipping build request for image paused-image; paused\n", lastLine(errOut))
	_, _, code = e.run("image-build", "ubuntu-jammy")
	require.Equal(t, 0, code)
	_, _, code = e.run("image-build", "ubuntu-jammy")
	require.Equal(t, 0, code)
	require.True(t, e.exists(zkclient.BuildRequestPath("ubuntu-jammy")))
}

func lastLine(s string) string {
	lines := strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n")
	return lines[len(lines)-1] + "\n"
}

func TestExportImport(t *testing.T) {
	e := newEnv(t)
	e.seedImages()
	e.create(zkclient.UploadPath("ubuntu-jammy", buildUUID, "osp-east", "0000000005"), e.get(zkclient.UploadPath("ubuntu-jammy", buildUUID, "osp-east", "0000000001")))
	_, _, code := e.run("image-pause", "centos-9-stream")
	require.Equal(t, 0, code)
	require.NoError(t, e.zk.EnsurePath(e.ctx(), zkclient.UploadLockPath("ubuntu-jammy", buildUUID, "osp-east")))
	require.NoError(t, e.zk.RequestBuild(e.ctx(), "ubuntu-jammy"))

	path := filepath.Join(t.TempDir(), "export.json")
	require.NoError(t, os.WriteFile(path, bytes.Repeat([]byte("x"), 100000), 0o600))
	_, errOut, code := e.run("export-image-data", path)
	require.Equal(t, 0, code, errOut)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(data), `{"/nodepool/images/centos-9-stream/pause": "", "/nodepool/images/centos-9-stream/builds/9d2e41aa07c34b4c8f1e6b5a4c3d2e1f": "{\"state\": \"building\"`), string(data))
	require.NotContains(t, string(data), "lock")
	require.NotContains(t, string(data), "request-build")
	require.True(t, strings.HasSuffix(string(data), "}"))

	wantImages, _, _ := e.run("image-list")
	wantDib, _, _ := e.run("dib-image-list")
	wantStatus, _, _ := e.run("image-status")

	// Import into an empty chroot.
	e2 := newEnv(t)
	_, errOut, code = e2.run("import-image-data", path)
	require.Equal(t, 0, code, errOut)
	gotImages, _, _ := e2.run("image-list")
	gotDib, _, _ := e2.run("dib-image-list")
	gotStatus, _, _ := e2.run("image-status")
	require.Equal(t, wantImages, gotImages)
	require.Equal(t, wantDib, gotDib)
	require.NotEqual(t, wantStatus, gotStatus) // the build request is not exported
	require.Contains(t, gotStatus, "| centos-9-stream | True   |")

	// The next upload id continues after the restored ones.
	u := &zkclient.ImageUpload{ImageName: "ubuntu-jammy", BuildID: buildUUID, ProviderName: "osp-east", State: zkclient.ImageUploading}
	require.NoError(t, e2.zk.CreateUpload(e2.ctx(), u))
	require.Greater(t, u.ID, "0000000005")
	// Only the imported uploads remain besides the new one.
	ids, err := e2.zk.Children(e2.ctx(), zkclient.UploadsPath("ubuntu-jammy", buildUUID, "osp-east"))
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"0000000001", "0000000005", u.ID}, ids)

	// Re-importing identical data is fine; differing data is refused.
	_, errOut, code = e2.run("import-image-data", path)
	require.Equal(t, 0, code, errOut)
}

func TestImportRefused(t *testing.T) {
	e := newEnv(t)
	e.seedImages()
	path := filepath.Join(t.TempDir(), "export.json")
	_, _, code := e.run("export-image-data", path)
	require.Equal(t, 0, code)
	data, err := os.ReadFile(path)
	require.NoError(t, err)

	e2 := newEnv(t)
	bad := map[string]string{
		"truncated":  string(data[:len(data)-40]),
		"nonobject":  `["a"]`,
		"notstring":  `{"/nodepool/images/x/pause": 1}`,
		"badkey":     `{"/nodepool/nodes/0000000001": "{}"}`,
		"badrecord":  `{"/nodepool/images/x/builds/0000000001": "{\"state\": \"bogus\"}"}`,
		"orphan":     `{"/nodepool/images/x/builds/b1/providers/p/images/0000000001": "{\"state\": \"ready\"}"}`,
		"duplicate":  `{"/nodepool/images/x/pause": "", "/nodepool/images/x/pause": "y"}`,
		"trailing":   string(data) + "{}",
		"badupload":  `{"/nodepool/images/x/builds/b1": "{\"state\": \"ready\"}", "/nodepool/images/x/builds/b1/providers/p/images/abc": "{\"state\": \"ready\"}"}`,
		"empty file": ``,
	}
	for name, content := range bad {
		p := filepath.Join(t.TempDir(), "bad.json")
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		_, errOut, code := e2.run("import-image-data", p)
		require.Equal(t, 1, code, name)
		require.Contains(t, errOut, "Error: refusing to import", name)
		require.False(t, e2.exists("/nodepool/images"), name)
	}

	// Conflicting with what ZooKeeper already holds: refused, nothing written.
	e2.create(zkclient.BuildPath("ubuntu-jammy", buildUUID), `{"state": "failed"}`)
	_, errOut, code := e2.run("import-image-data", path)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "ZooKeeper already holds different data at /nodepool/images/ubuntu-jammy/builds/"+buildUUID)
	require.False(t, e2.exists("/nodepool/images/centos-9-stream"))
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	require.NoError(t, os.WriteFile(good, []byte("labels:\n  - name: ubuntu-jammy\nproviders:\n  - name: p1\n    driver: clitest\n    max-concurrency: 0\n"), 0o644))
	var out, errb bytes.Buffer
	require.Equal(t, 0, run([]string{"-c", good, "config-validate"}, &out, &errb), errb.String())
	require.Empty(t, out.String())
	require.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO nodepool.cmd.config_validator: validating `+good+"\n", errb.String())
	require.Contains(t, errb.String(), " WARNING nodepool.cmd.config_validator: max-concurrency 0 means provider p1 accepts no requests")

	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("labels:\n  - name: [unclosed\n"), 0o644))
	out.Reset()
	errb.Reset()
	require.Equal(t, 1, run([]string{"-c", bad, "config-validate"}, &out, &errb))
	require.Contains(t, errb.String(), " ERROR nodepool.cmd.config_validator: YAML parsing failed")
	require.Empty(t, out.String())

	unknown := filepath.Join(dir, "unknown.yaml")
	require.NoError(t, os.WriteFile(unknown, []byte("nothandled: 1\n"), 0o644))
	errb.Reset()
	require.Equal(t, 1, run([]string{"-c", unknown, "config-validate"}, &out, &errb))
	require.Contains(t, errb.String(), " ERROR nodepool.cmd.config_validator: ")
}

func TestLogConfig(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, 1, run([]string{"-l", "/nonexistent.yaml", "image-status"}, &out, &errb))
	require.Equal(t, "Error: Unable to read logging config file at /nonexistent.yaml\n", errb.String())
	// Both file forms are honoured: here each sends the CLI's records to a
	// file, the INI one at WARNING only.
	dir := t.TempDir()
	yamlLog, iniLog := filepath.Join(dir, "yaml.log"), filepath.Join(dir, "ini.log")
	yamlCfg := writeTemp(t, "log.yaml", "version: 1\nhandlers:\n  f: {class: logging.FileHandler, filename: "+yamlLog+"}\nroot:\n  level: WARNING\nloggers:\n  nodepool:\n    level: DEBUG\n    handlers: [f]\n")
	iniCfg := writeTemp(t, "log.conf", "[loggers]\nkeys=root\n[handlers]\nkeys=f\n[formatters]\nkeys=s\n[logger_root]\nlevel=WARNING\nhandlers=f\n"+
		"[handler_f]\nclass=FileHandler\nformatter=s\nargs=('"+iniLog+"',)\n[formatter_s]\nformat=%(levelname)s %(name)s: %(message)s\n")
	bad := writeTemp(t, "bad.yaml", "nothandled: 1\n")
	for _, lc := range []string{yamlCfg, iniCfg} {
		out.Reset()
		errb.Reset()
		require.Equal(t, 1, run([]string{"-l", lc, "-c", bad, "config-validate"}, &out, &errb))
		require.Empty(t, errb.String())
	}
	yamlOut, err := os.ReadFile(yamlLog)
	require.NoError(t, err)
	require.Contains(t, string(yamlOut), "extra keys not allowed") // no formatter: the bare message
	iniOut, err := os.ReadFile(iniLog)
	require.NoError(t, err)
	require.Contains(t, string(iniOut), "ERROR nodepool.cmd.config_validator: ")
	require.NotContains(t, string(iniOut), "INFO ")
}

func writeTemp(t *testing.T, name, content string) string {
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}
