// Command embedded-scheduler is a small CI scheduler that embeds nodepool:
// it runs the launcher in-process with its own driver (hypervisor hosts
// whose nodes are VMs), reads jobs from its own source (a jobs file, or a
// built-in list), asks the launcher's placement API which provider pools
// could serve each job and why (the quota it needs against what is left),
// and only then turns the job into a node request in ZooKeeper. It waits
// for each request as Zuul does, uses the nodes, returns them and waits
// until the launcher has deleted them. No binary of cmd/ is involved.
//
//	go run ./examples/embedded-scheduler -zk 127.0.0.1:22181 -chroot /embedded-demo
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/quota"
	"github.com/nodepool-go/nodepool/zkclient"
)

// configYAML is the launcher's configuration. Its providers name the
// example's own driver, which the launcher looks up in the registry the
// example builds: two hypervisor hosts, the bigger one preferred.
const configYAML = `
labels:
  - name: small
  - name: large
providers:
  - name: host-a
    driver: hypervisor
    priority: 1
    cores: 8
    ram: 16384
    boot-time: 0.1
    pools:
      - name: main
        max-servers: 4
        labels:
          - {name: small, cores: 2, ram: 2048}
          - {name: large, cores: 4, ram: 8192}
  - name: host-b
    driver: hypervisor
    priority: 2
    cores: 4
    ram: 8192
    boot-time: 0.1
    pools:
      - name: main
        max-servers: 2
        labels:
          - {name: small, cores: 2, ram: 2048}
`

// defaultJobs is the request source when no -jobs file is given.
const defaultJobs = `
# name        labels             [tenant]
lint          small
unit          small,small
integration   large,small
gpu-train     gpu
huge-matrix   large,large,large
docs          small
`

// options are the scheduler's settings (its flags).
type options struct {
	Hosts   []string
	Chroot  string
	Jobs    io.Reader // the request source; nil for defaultJobs
	Hold    time.Duration
	Timeout time.Duration
	Logger  *slog.Logger // the launcher's logger
}

func main() {
	hosts := os.Getenv("NODEPOOL_ZK_HOSTS")
	if hosts == "" {
		hosts = "127.0.0.1:2181"
	}
	zkHosts := flag.String("zk", hosts, "ZooKeeper hosts, comma separated (default $NODEPOOL_ZK_HOSTS or 127.0.0.1:2181)")
	chroot := flag.String("chroot", "", "ZooKeeper chroot for the launcher and the requests")
	jobsFile := flag.String("jobs", "", `jobs file: lines "name label[,label...] [tenant]" (default: a built-in list)`)
	hold := flag.Duration("hold", 2*time.Second, "how long each job keeps its nodes")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	verbose := flag.Bool("v", false, "show the launcher's log")
	flag.Parse()

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	opts := options{
		Hosts:   strings.Split(*zkHosts, ","),
		Chroot:  *chroot,
		Hold:    *hold,
		Timeout: *timeout,
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	if *jobsFile != "" {
		f, err := os.Open(*jobsFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "embedded-scheduler:", err)
			os.Exit(2)
		}
		defer f.Close()
		opts.Jobs = f
	}
	if err := run(context.Background(), opts, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "embedded-scheduler:", err)
		os.Exit(1)
	}
}

// job is one unit of work of the request source.
type job struct {
	Name   string
	Labels []string
	Tenant string
}

// parseJobs reads "name label[,label...] [tenant]" lines; # starts a comment.
func parseJobs(r io.Reader) ([]job, error) {
	var jobs []job
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("jobs line %d: want \"name label[,label...] [tenant]\", got %q", n, sc.Text())
		}
		j := job{Name: f[0], Labels: strings.Split(f[1], ",")}
		if len(f) == 3 {
			j.Tenant = f[2]
		}
		jobs = append(jobs, j)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(jobs) == 0 {
		return nil, errors.New("no jobs")
	}
	return jobs, nil
}

// printer serializes the output of concurrent jobs.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// run starts the launcher, schedules every job and waits until all of
// them have finished and their nodes are deleted.
func run(ctx context.Context, opts options, out io.Writer) error {
	if opts.Jobs == nil {
		opts.Jobs = strings.NewReader(defaultJobs)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	jobs, err := parseJobs(opts.Jobs)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	zk, err := zkclient.Connect(ctx, zkclient.Config{Hosts: opts.Hosts, Chroot: opts.Chroot, Logger: opts.Logger})
	if err != nil {
		return fmt.Errorf("connecting to ZooKeeper: %w", err)
	}
	defer zk.Close()

	// 1. The launcher, in-process, with our driver.
	// Our own driver set: just the hypervisor driver, in a registry of its
	// own (the stock drivers are not linked at all).
	hv := newHypervisorDriver()
	drivers := driver.NewRegistry()
	drivers.Register("hypervisor", hv)
	cfg, err := config.Parse("embedded-scheduler.yaml", []byte(configYAML), config.WithRegistry(drivers))
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	l, err := nodepool.NewLauncher(cfg, nodepool.WithZooKeeper(zk), nodepool.WithDrivers(drivers),
		nodepool.WithLogger(opts.Logger), nodepool.WithHostname("embedded-scheduler"))
	if err != nil {
		return err
	}
	lctx, stopLauncher := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(lctx) }()
	defer func() {
		stopLauncher()
		<-runErr
	}()
	if err := waitReady(ctx, l, runErr); err != nil {
		return err
	}
	p := &printer{w: out}
	p.printf("launcher running in-process: driver hypervisor, providers host-a (8 cores) and host-b (4 cores), ZooKeeper %s%s\n",
		strings.Join(opts.Hosts, ","), opts.Chroot)

	// 2. Place each job, submit what can be served, run the jobs.
	s := &scheduler{zk: zk, l: l, p: p, hold: opts.Hold}
	var wg sync.WaitGroup
	for _, j := range jobs {
		if err := s.schedule(ctx, j, &wg); err != nil {
			wg.Wait()
			return err
		}
	}
	wg.Wait()

	// 3. Every node is deleted: no VM is left on the hosts.
	vms := hv.VMs()
	names := make([]string, 0, len(vms))
	left := 0
	for name, n := range vms {
		names = append(names, fmt.Sprintf("%s %d", name, n))
		left += n
	}
	sort.Strings(names)
	p.printf("summary: %d jobs, %d submitted, %d rejected, %d fulfilled, %d failed; %d nodes launched, %d deleted; VMs left: %s\n",
		len(jobs), s.submitted, s.rejected, s.fulfilled, s.failed, s.launched, s.deleted, strings.Join(names, ", "))
	if s.failed > 0 || left > 0 {
		return fmt.Errorf("%d jobs failed, %d VMs left", s.failed, left)
	}
	return nil
}

// waitReady waits for the launcher's first start-up pass.
func waitReady(ctx context.Context, l *nodepool.Launcher, runErr <-chan error) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !l.Ready() {
		select {
		case err := <-runErr:
			return fmt.Errorf("launcher stopped: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// scheduler turns jobs into node requests.
type scheduler struct {
	zk   *zkclient.Client
	l    *nodepool.Launcher
	p    *printer
	hold time.Duration

	mu                             sync.Mutex
	submitted, rejected, fulfilled int
	failed, launched, deleted      int
}

func (s *scheduler) count(field *int, n int) {
	s.mu.Lock()
	*field += n
	s.mu.Unlock()
}

// schedule places one job: it prints every pool's verdict, rejects a job
// no pool can ever serve, and submits the others. A job a pool can serve
// now is waited for before the next job is placed, so that the next
// placement sees the quota it took.
func (s *scheduler) schedule(ctx context.Context, j job, wg *sync.WaitGroup) error {
	req := &zkclient.NodeRequest{State: zkclient.RequestRequested, NodeTypes: j.Labels, Reuse: true,
		Requestor: "embedded-scheduler", TenantName: j.Tenant, StateTime: unixNow(), CreatedTime: unixNow()}
	places, err := s.l.Placements(ctx, req)
	if err != nil {
		return fmt.Errorf("job %s: placing: %w", j.Name, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "job %s: labels [%s]\n", j.Name, strings.Join(j.Labels, " "))
	for _, pl := range places {
		fmt.Fprintf(&b, "  %s/%s (priority %d): %s", pl.Provider, pl.Pool, pl.Priority, pl.Verdict)
		if pl.Reason != "" {
			fmt.Fprintf(&b, ": %s", pl.Reason)
		}
		b.WriteString("\n")
		if pl.Verdict != nodepool.CannotServe || pl.Shortfall != nil {
			fmt.Fprintf(&b, "      needs %s, left %s", pl.Need, pl.Remaining)
			if pl.Reusable > 0 {
				fmt.Fprintf(&b, ", reuses %d ready node(s)", pl.Reusable)
			}
			fmt.Fprintf(&b, ": %s\n", afterPlacing(pl.Remaining, pl.Need))
		}
		if pl.LeftTo != "" && pl.Verdict != nodepool.CannotServe {
			fmt.Fprintf(&b, "      but %s\n", pl.LeftTo)
		}
	}
	target := expectedPool(places)
	if target == nil {
		fmt.Fprintf(&b, "  => not submitted: no pool can ever serve it\n")
		s.p.printf("%s", b.String())
		s.count(&s.rejected, 1)
		return nil
	}
	id, err := s.zk.SubmitRequest(ctx, req, "100", false)
	if err != nil {
		return fmt.Errorf("job %s: submitting: %w", j.Name, err)
	}
	s.count(&s.submitted, 1)
	if target.Verdict == nodepool.CanServeNow {
		fmt.Fprintf(&b, "  => submitted as request %s; expected on %s/%s now\n", id, target.Provider, target.Pool)
	} else {
		fmt.Fprintf(&b, "  => submitted as request %s; it waits for %s/%s: %s\n", id, target.Provider, target.Pool, target.Reason)
	}
	s.p.printf("%s", b.String())

	started := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.runJob(ctx, j, id, started)
	}()
	if target.Verdict == nodepool.CanServeNow {
		select {
		case <-started:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	// A waiting job: let the launcher take it on before placing the next.
	return waitPending(ctx, s.zk, id)
}

// afterPlacing says what placing need would leave of left, or which
// resources it is short of and by how much.
func afterPlacing(left, need quota.Resources) string {
	after := left.Clone()
	after.Sub(need)
	short := after.Negative()
	if len(short) == 0 {
		return "would leave " + after.String()
	}
	parts := make([]string, len(short))
	for i, r := range short {
		parts[i] = r + " by " + quota.FormatNumber(-after.Get(r))
	}
	return "short of " + strings.Join(parts, ", ")
}

// expectedPool returns the pool the launcher is expected to hand the
// request to: one that can serve it now and defers to no other pool, else
// one that must wait and defers to none, else any that can serve it now;
// nil when no pool can ever serve it.
func expectedPool(places []nodepool.PoolPlacement) *nodepool.PoolPlacement {
	pick := func(v nodepool.PlacementVerdict, undeferred bool) *nodepool.PoolPlacement {
		var best *nodepool.PoolPlacement
		for i := range places {
			pl := &places[i]
			if pl.Verdict == v && (!undeferred || pl.LeftTo == "") && (best == nil || pl.Priority < best.Priority) {
				best = pl
			}
		}
		return best
	}
	for _, c := range []struct {
		v          nodepool.PlacementVerdict
		undeferred bool
	}{{nodepool.CanServeNow, true}, {nodepool.MustWait, true}, {nodepool.CanServeNow, false}, {nodepool.MustWait, false}} {
		if pl := pick(c.v, c.undeferred); pl != nil {
			return pl
		}
	}
	return nil
}

// runJob waits for the request, uses its nodes for the hold time, returns
// them and waits until they are deleted. started is closed once the
// request is fulfilled or has failed.
func (s *scheduler) runJob(ctx context.Context, j job, id string, started chan struct{}) {
	once := sync.OnceFunc(func() { close(started) })
	defer once()
	t0 := time.Now()
	req, err := waitFulfilled(ctx, s.zk, id)
	if err != nil {
		s.p.printf("job %s: request %s: %v\n", j.Name, id, err)
		s.count(&s.failed, 1)
		return
	}
	held, err := takeNodes(ctx, s.zk, req)
	once()
	if err != nil {
		s.p.printf("job %s: taking the nodes of %s: %v\n", j.Name, id, err)
		s.count(&s.failed, 1)
		return
	}
	s.count(&s.fulfilled, 1)
	s.count(&s.launched, len(held))
	var b strings.Builder
	fmt.Fprintf(&b, "job %s: request %s fulfilled after %s:", j.Name, id, time.Since(t0).Round(10*time.Millisecond))
	for _, h := range held {
		fmt.Fprintf(&b, " node %s (%s on %s/%s, %s, VM %s)", h.node.ID, h.node.Type[0], h.node.Provider, h.node.Pool, h.node.InterfaceIP, h.node.ExternalID)
	}
	s.p.printf("%s; nodes in use\n", b.String())

	select {
	case <-time.After(s.hold):
	case <-ctx.Done():
	}
	if err := returnNodes(context.WithoutCancel(ctx), s.zk, held); err != nil {
		s.p.printf("job %s: returning nodes: %v\n", j.Name, err)
		s.count(&s.failed, 1)
		return
	}
	ids := make([]string, len(held))
	for i, h := range held {
		ids[i] = h.node.ID
	}
	s.p.printf("job %s: done; nodes %s returned (used)\n", j.Name, strings.Join(ids, ", "))
	if err := waitDeleted(ctx, s.zk, ids); err != nil {
		s.p.printf("job %s: waiting for the deletion of %s: %v\n", j.Name, strings.Join(ids, ", "), err)
		s.count(&s.failed, 1)
		return
	}
	s.count(&s.deleted, len(ids))
	s.p.printf("job %s: nodes %s deleted by the launcher\n", j.Name, strings.Join(ids, ", "))
}

func unixNow() float64 { return float64(time.Now().UnixNano()) / 1e9 }
