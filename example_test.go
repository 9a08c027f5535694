package nodepool_test

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/simcloud"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Example_launcher runs a launcher in-process on the simulated cloud,
// submits a node request the way Zuul does and prints the request and its
// node once the launcher fulfilled it. It needs a ZooKeeper server
// ($NODEPOOL_ZK_HOSTS, else the test server of scripts/zookeeper.sh) and
// works in a chroot of its own, removed at the end.
func Example_launcher() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)

	// One ZooKeeper session, shared by the launcher and the "Zuul" below.
	hosts := strings.Split(cmp.Or(os.Getenv("NODEPOOL_ZK_HOSTS"), "127.0.0.1:22181"), ",")
	root, err := zkclient.Connect(ctx, zkclient.Config{Hosts: hosts, Logger: quiet})
	if err != nil {
		fmt.Println("ZooKeeper:", err)
		return
	}
	defer root.Close()
	chroot := fmt.Sprintf("/launcher-example-%d", time.Now().UnixNano())
	if err := root.EnsurePath(ctx, chroot); err != nil {
		fmt.Println("chroot:", err)
		return
	}
	defer root.DeleteRecursive(context.Background(), chroot)
	zk, err := zkclient.Connect(ctx, zkclient.Config{Hosts: hosts, Chroot: chroot, Logger: quiet})
	if err != nil {
		fmt.Println("ZooKeeper:", err)
		return
	}
	defer zk.Close()

	// The configuration, built in code (nodepool.LoadConfig reads the
	// same from a nodepool.yaml): one simcloud provider whose pool
	// "main" offers the label "small".
	const cloud = "launcher-example"
	defer simcloud.Forget(cloud) // the in-process cloud of that name
	provider, err := simcloud.NewProviderConfig(cloud, "small")
	if err != nil {
		fmt.Println("provider:", err)
		return
	}
	cfg := &config.Config{
		Labels:    []*config.LabelConfig{{Name: "small"}},
		Providers: []*driver.ProviderConfig{provider},
	}

	l, err := nodepool.NewLauncher(cfg,
		nodepool.WithZooKeeper(zk),
		nodepool.WithLogger(quiet),
		nodepool.WithHostname("example"))
	if err != nil {
		fmt.Println("launcher:", err)
		return
	}
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- l.Run(runCtx) }()
	defer func() {
		// Stop: Run returns once every worker has wound down.
		stop()
		fmt.Println("stopped:", <-stopped)
	}()
	for !l.Ready() {
		if ctx.Err() != nil {
			fmt.Println("the launcher did not get ready")
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("launcher ready")

	// What Zuul does: submit a request, then wait on a data watch until
	// a launcher fulfils (or fails) it.
	now := float64(time.Now().UnixNano()) / 1e9
	id, err := zk.SubmitRequest(ctx, &zkclient.NodeRequest{
		State: zkclient.RequestRequested, StateTime: now, CreatedTime: now,
		NodeTypes: []string{"small"}, Reuse: true, Requestor: "example-zuul",
	}, "100", false)
	if err != nil {
		fmt.Println("submit:", err)
		return
	}
	var req *zkclient.NodeRequest
	for {
		data, _, changed, err := zk.GetW(ctx, zkclient.RequestPath(id))
		if err != nil {
			fmt.Println("wait:", err)
			return
		}
		if req, err = zkclient.DecodeRequest(id, data); err != nil {
			fmt.Println("decode:", err)
			return
		}
		if req.State == zkclient.RequestFulfilled || req.State == zkclient.RequestFailed {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			fmt.Println("timed out in state", req.State)
			return
		}
	}
	fmt.Println("request", req.ID, req.State, "with", len(req.Nodes), "node")
	node, err := zk.GetNode(ctx, req.Nodes[0])
	if err != nil {
		fmt.Println("node:", err)
		return
	}
	fmt.Println("node", node.State, node.Type, "from", node.Provider+"/"+node.Pool,
		"allocated to the request:", node.AllocatedTo == req.ID)
	// Output:
	// launcher ready
	// request 100-0000000000 fulfilled with 1 node
	// node ready [small] from launcher-example/main allocated to the request: true
	// stopped: <nil>
}
