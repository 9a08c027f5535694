package zkclient_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nodepool-go/nodepool/zkclient"
)

// exampleZooKeeper connects to the ZooKeeper the examples use
// ($NODEPOOL_ZK_HOSTS, else the test server of scripts/zookeeper.sh) in a
// fresh chroot, and returns the client and a function that closes it and
// removes the chroot.
func exampleZooKeeper(ctx context.Context) (*zkclient.Client, func(), error) {
	cfg := zkclient.Config{
		Hosts:  strings.Split(cmp.Or(os.Getenv("NODEPOOL_ZK_HOSTS"), "127.0.0.1:22181"), ","),
		Logger: slog.New(slog.DiscardHandler),
	}
	root, err := zkclient.Connect(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	chroot := fmt.Sprintf("/zkclient-example-%d", time.Now().UnixNano())
	if err := root.EnsurePath(ctx, chroot); err != nil {
		root.Close()
		return nil, nil, err
	}
	cfg.Chroot = chroot
	c, err := zkclient.Connect(ctx, cfg)
	if err != nil {
		root.Close()
		return nil, nil, err
	}
	return c, func() {
		c.Close()
		_ = root.DeleteRecursive(context.Background(), chroot)
		root.Close()
	}, nil
}

// Example_submitRequest submits a node request the way Zuul does (a
// persistent sequential znode under /nodepool/requests, named after its
// priority) and reads it back as a launcher would.
func Example_submitRequest() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, done, err := exampleZooKeeper(ctx)
	if err != nil {
		fmt.Println("ZooKeeper:", err)
		return
	}
	defer done()

	now := float64(time.Now().UnixNano()) / 1e9
	req := &zkclient.NodeRequest{
		State:         zkclient.RequestRequested,
		StateTime:     now,
		NodeTypes:     []string{"ubuntu-jammy", "ubuntu-jammy"}, // two nodes
		Reuse:         true,
		Requestor:     "0123456789abcdef0123456789abcdef", // Zuul's system id
		RequestorData: json.RawMessage(`{"job_name": "tox-py312"}`),
		EventID:       "4f1c0de1a4",
		CreatedTime:   now,
		TenantName:    "example-tenant",
	}
	// "100" is the priority prefix (lower is served first); Zuul's
	// requests are persistent, nodepool's own (min-ready) are ephemeral.
	id, err := c.SubmitRequest(ctx, req, "100", false)
	if err != nil {
		fmt.Println("submit:", err)
		return
	}
	fmt.Println("submitted", id, "at", zkclient.RequestPath(id))

	// A launcher (or Zuul, waiting with a data watch: GetW) reads it back.
	got, err := c.GetRequest(ctx, id)
	if err != nil {
		fmt.Println("read:", err)
		return
	}
	fmt.Println("priority", got.Priority(), "sequence", got.Sequence())
	fmt.Println("state", got.State, "labels", got.NodeTypes, "reuse", got.Reuse)
	fmt.Println("tenant", got.TenantName, "requestor_data", string(got.RequestorData))

	// Zuul deletes a request it no longer needs (or once it has locked the
	// nodes of a fulfilled one).
	if err := c.DeleteRequest(ctx, id); err != nil {
		fmt.Println("delete:", err)
		return
	}
	_, err = c.GetRequest(ctx, id)
	fmt.Println("after delete: gone:", errors.Is(err, zkclient.ErrNoNode))
	// Output:
	// submitted 100-0000000000 at /nodepool/requests/100-0000000000
	// priority 100 sequence 0000000000
	// state requested labels [ubuntu-jammy ubuntu-jammy] reuse true
	// tenant example-tenant requestor_data {"job_name": "tox-py312"}
	// after delete: gone: true
}
