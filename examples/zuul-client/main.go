// Command zuul-client is the reference client of the node-request
// protocol: it speaks to a nodepool launcher through ZooKeeper exactly as
// Zuul does. It submits node requests (persistent sequential znodes with
// Zuul's payload), waits on data watches until they are fulfilled, locks
// each node and checks its allocation, deletes the request, marks the
// nodes in-use, prints them, and finally returns them (state used, then
// unlocked) so that the launcher deletes them. It works against this
// launcher and against a Python one alike.
//
//	go run ./examples/zuul-client -zk 127.0.0.1:22181 -label ubuntu-jammy -n 2
//
// The protocol steps live in internal/zuulsim, which the tests, the
// benchmark and the chaos tests use to play Zuul too; a program outside
// this module follows the same steps with package zkclient (see
// docs/embedding.md, "Supplying requests", and zkclient's
// Example_submitRequest).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

type labelList []string

func (l *labelList) String() string { return strings.Join(*l, ",") }

func (l *labelList) Set(v string) error {
	*l = append(*l, strings.Split(v, ",")...)
	return nil
}

func main() {
	hosts := flag.String("zk", "127.0.0.1:22181", "ZooKeeper hosts, comma separated")
	chroot := flag.String("chroot", "", "ZooKeeper chroot (the launcher's)")
	n := flag.Int("n", 1, "number of requests")
	hold := flag.Duration("hold", 0, "how long to keep the nodes in-use, e.g. 10s")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	var labels labelList
	flag.Var(&labels, "label", "label to request; repeat or comma-separate for several nodes per request")
	flag.Parse()
	if len(labels) == 0 {
		fmt.Fprintln(os.Stderr, "zuul-client: give at least one -label")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	err := run(ctx, strings.Split(*hosts, ","), *chroot, labels, *n, *hold)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "zuul-client:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, hosts []string, chroot string, labels []string, n int, hold time.Duration) error {
	c, err := zkclient.Connect(ctx, zkclient.Config{
		Hosts:  hosts,
		Chroot: chroot,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		return fmt.Errorf("connecting to ZooKeeper: %w", err)
	}
	defer c.Close()

	// 1. Submit every request first, as the Zuul scheduler does.
	var reqs []*zuulsim.Request
	defer func() {
		// On failure, withdraw what is still outstanding (a no-op for
		// requests already accepted, which Accept deleted).
		for _, req := range reqs {
			_ = req.Cancel(context.Background())
		}
	}()
	for i := 0; i < n; i++ {
		req, err := zuulsim.Submit(ctx, c, labels, zuulsim.Options{})
		if err != nil {
			return fmt.Errorf("submitting request: %w", err)
		}
		fmt.Printf("submitted request %s for %v\n", req.ID, labels)
		reqs = append(reqs, req)
	}

	for _, req := range reqs {
		// 2. Wait until a launcher fulfils (or fails) it.
		if _, err := req.Wait(ctx); err != nil {
			return fmt.Errorf("request %s: %w", req.ID, err)
		}
		// 3. Lock the nodes, delete the request, mark the nodes in-use.
		nodes, err := req.Accept(ctx)
		if err != nil {
			return fmt.Errorf("accepting request %s: %w", req.ID, err)
		}
		fmt.Printf("request %s fulfilled in %s\n", req.ID, req.DoneAt.Sub(req.SubmittedAt).Round(time.Millisecond))
		for _, node := range nodes.Nodes {
			fmt.Printf("  node %s  label %-20s  interface_ip %-15s  host_keys %d\n",
				node.ID, node.Label, node.Data.InterfaceIP, len(node.Data.HostKeys))
		}
		// 4. "Run the job", then return the nodes: used, then unlocked.
		select {
		case <-time.After(hold):
		case <-ctx.Done():
		}
		if err := nodes.Return(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("returning nodes of %s: %w", req.ID, err)
		}
	}
	fmt.Println("all nodes returned")
	return nil
}
