package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// TestStockLauncherWithLocaldir builds this command, runs it against the
// test ZooKeeper with a localdir provider, and serves a request as Zuul
// does: the node's instance is a real directory while the node is in use,
// and both are gone once the node is returned.
func TestStockLauncherWithLocaldir(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "nodepool-launcher-localdir")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	base := filepath.Join(dir, "instances")
	host, port, _ := strings.Cut(zktest.Hosts()[0], ":")
	cfg := filepath.Join(dir, "nodepool.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`zookeeper-servers:
  - host: `+host+`
    port: `+port+`
    chroot: `+chroot+`
labels:
  - name: dir
providers:
  - name: local
    driver: localdir
    base-dir: `+base+`
    max-instances: 4
    boot-time: 0.1
    pools:
      - name: main
        labels:
          - name: dir
`), 0o600))

	logPath := filepath.Join(dir, "launcher.log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	defer logFile.Close()
	cmd := exec.Command(bin, "-c", cfg, "-no-webapp")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("launcher did not stop on SIGINT")
		}
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("launcher log:\n%s", data)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := zuulsim.Submit(ctx, zk, []string{"dir"}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	require.Len(t, got.Nodes, 1)

	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	node := ns.Nodes[0].Data
	require.Equal(t, "local", node.Provider)
	require.Equal(t, "main", node.Pool)
	require.Equal(t, "127.0.0.1", node.InterfaceIP)
	require.NotEmpty(t, node.ExternalID)
	record, err := os.ReadFile(filepath.Join(base, node.ExternalID, "instance.json"))
	require.NoError(t, err, "the node's instance is a directory under base-dir")
	require.Contains(t, string(record), `"nodepool_node_id": "`+ns.Nodes[0].ID+`"`)

	require.NoError(t, ns.Return(ctx))
	require.Eventually(t, func() bool {
		ids, err := zk.NodeIDs(ctx)
		if err != nil || len(ids) != 0 {
			return false
		}
		entries, err := os.ReadDir(base)
		return err == nil && len(entries) == 0
	}, 30*time.Second, 50*time.Millisecond, "the returned node's record and directory are deleted")
	select {
	case err := <-exited:
		t.Fatalf("launcher exited by itself: %v", err)
	default:
	}
}
