// Package bench is the end-to-end load benchmark of a nodepool launcher
// (issue 9): it drives the launcher only through ZooKeeper, as Zuul would,
// and measures throughput, latency, node deletion, ZooKeeper traffic and
// the launcher's CPU and memory.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Config describes one benchmark run.
type Config struct {
	Client      *zkclient.Client // ZooKeeper client acting as Zuul; required
	Requests    int              // number of requests (N), default 1
	Concurrency int              // requests in flight at once (C), default N
	Labels      []string         // labels of each request, default ["fake-label"]
	Zuul        zuulsim.Options  // Zuul-side request attributes
	Hold        time.Duration    // how long each node set stays in-use

	// ReturnWait waits until every returned node's znode is deleted.
	ReturnWait bool
	// ReturnTogether holds every node set until all requests are accepted,
	// then returns them at once, so the deletion rate is the launcher's
	// and not the fulfilment rate. It needs Concurrency = Requests.
	ReturnTogether bool
	// MntrAddr is "host:port" of a ZooKeeper server whose mntr counters are
	// sampled before and after the run; empty skips it.
	MntrAddr string
	// LauncherPID is a launcher process to sample from /proc; 0 skips it.
	LauncherPID int
	// LauncherOps, when set, returns the launcher's client-side ZooKeeper
	// request count (for in-process launchers); sampled before and after.
	LauncherOps func() int64
	// LauncherPhases, when set, returns the launcher's ZooKeeper requests
	// by phase of its work; sampled before and after.
	LauncherPhases func() map[string]int64
	// Progress, when set, receives a line now and then.
	Progress func(format string, args ...any)
}

// Result is what one run measured.
type Result struct {
	Requests  int // submitted
	Fulfilled int // fulfilled and accepted
	Failed    int // failed by the launcher
	Errors    int // other errors (first one in FirstError)
	FirstErr  string

	Elapsed         time.Duration // first submit to last fulfilled
	FulfilledPerSec float64
	P50, P95, P99   time.Duration // submit to fulfilled seen
	Max             time.Duration
	// SubmitSpan is when the last request was submitted and FirstDone when
	// the first was fulfilled, both counted from the first submit.
	SubmitSpan, FirstDone time.Duration

	NodesReturned int
	NodesDeleted  int           // returned nodes seen deleted (ReturnWait)
	DeleteWait    time.Duration // last return to last deletion
	DeleteSpan    time.Duration // first return to last deletion
	DeletesPerSec float64       // NodesDeleted / DeleteSpan
	DeleteErr     string        // why waiting for deletions stopped early, if it did

	ZuulOps     int64 // requests sent by the benchmark's own client (Zuul's share)
	LauncherOps int64 // Config.LauncherOps delta, -1 when unknown
	// LauncherPhases and ZuulPhases are the requests of the run by phase
	// (Config.LauncherPhases delta; the benchmark's own client).
	LauncherPhases map[string]int64
	ZuulPhases     map[string]int64
	Mntr           *MntrDelta
	Launcher       *ProcStats
	Total          time.Duration // wall time of the whole run
}

type sample struct {
	submitted time.Time
	latency   time.Duration
	doneAt    time.Time
	returned  time.Time
	nodes     []string
	failed    bool
	err       error
}

// Run executes the benchmark. It returns an error only when the run could
// not be set up; per-request errors are counted in the Result.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Client == nil {
		return Result{}, errors.New("bench: no ZooKeeper client")
	}
	if cfg.Requests <= 0 {
		cfg.Requests = 1
	}
	if cfg.Concurrency <= 0 || cfg.Concurrency > cfg.Requests {
		cfg.Concurrency = cfg.Requests
	}
	if len(cfg.Labels) == 0 {
		cfg.Labels = []string{"fake-label"}
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string, ...any) {}
	}
	c := cfg.Client
	res := Result{Requests: cfg.Requests, LauncherOps: -1}

	var mntrBefore map[string]int64
	if cfg.MntrAddr != "" {
		var err error
		if mntrBefore, err = Mntr(ctx, cfg.MntrAddr); err != nil {
			return res, err
		}
	}
	var procBefore ProcStats
	var sampler *Sampler
	if cfg.LauncherPID > 0 {
		var err error
		if procBefore, err = ReadProc(cfg.LauncherPID); err != nil {
			return res, err
		}
		sampler = StartSampler(cfg.LauncherPID, 50*time.Millisecond)
		defer func() {
			if sampler != nil {
				sampler.Stop()
			}
		}()
	}
	var launcherOps0 int64
	if cfg.LauncherOps != nil {
		launcherOps0 = cfg.LauncherOps()
	}
	zuulOps0 := c.Ops().Total()
	zuulPhases0 := c.Ops().ByPhase()
	var launcherPhases0 map[string]int64
	if cfg.LauncherPhases != nil {
		launcherPhases0 = cfg.LauncherPhases()
	}

	var gate *returnGate
	if cfg.ReturnTogether {
		if cfg.Concurrency != cfg.Requests {
			return res, errors.New("bench: returning together needs every request in flight at once")
		}
		gate = &returnGate{open: make(chan struct{})}
		gate.wg.Add(cfg.Requests)
		go func() { gate.wg.Wait(); close(gate.open) }()
	}
	deletions := newDeleteTracker(ctx, c)
	samples := make([]sample, cfg.Requests)
	var next atomic.Int64
	var done atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= cfg.Requests || ctx.Err() != nil {
					return
				}
				samples[i] = oneRequest(ctx, cfg, deletions, gate)
				if d := done.Add(1); d%1000 == 0 {
					progress("%d/%d requests done", d, cfg.Requests)
				}
			}
		}()
	}
	wg.Wait()

	var lat []time.Duration
	var lastDone, firstDone, lastSubmit, firstReturn, lastReturn time.Time
	for _, s := range samples {
		if s.submitted.After(lastSubmit) {
			lastSubmit = s.submitted
		}
		if !s.doneAt.IsZero() && (firstDone.IsZero() || s.doneAt.Before(firstDone)) {
			firstDone = s.doneAt
		}
		switch {
		case s.failed:
			res.Failed++
		case s.err != nil:
			res.Errors++
			if res.FirstErr == "" {
				res.FirstErr = s.err.Error()
			}
		}
		if !s.doneAt.IsZero() && !s.failed {
			lat = append(lat, s.latency)
			if s.doneAt.After(lastDone) {
				lastDone = s.doneAt
			}
		}
		if !s.returned.IsZero() {
			res.Fulfilled++
			res.NodesReturned += len(s.nodes)
			if firstReturn.IsZero() || s.returned.Before(firstReturn) {
				firstReturn = s.returned
			}
			if s.returned.After(lastReturn) {
				lastReturn = s.returned
			}
		}
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if !lastSubmit.IsZero() {
		res.SubmitSpan = lastSubmit.Sub(start)
	}
	if !firstDone.IsZero() {
		res.FirstDone = firstDone.Sub(start)
	}
	if !lastDone.IsZero() {
		res.Elapsed = lastDone.Sub(start)
		res.FulfilledPerSec = float64(len(lat)) / res.Elapsed.Seconds()
	}
	slices.Sort(lat)
	res.P50, res.P95, res.P99 = percentile(lat, 50), percentile(lat, 95), percentile(lat, 99)
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}

	if cfg.ReturnWait && res.NodesReturned > 0 {
		progress("waiting for %d returned nodes to be deleted", res.NodesReturned)
		lastDel, n, err := deletions.wait(ctx)
		if err != nil {
			// Keep going: the other figures are still worth reporting.
			res.DeleteErr = err.Error()
		}
		res.NodesDeleted = n
		if n > 0 {
			res.DeleteWait = lastDel.Sub(lastReturn)
			res.DeleteSpan = lastDel.Sub(firstReturn)
		}
		if res.DeleteSpan > 0 {
			res.DeletesPerSec = float64(n) / res.DeleteSpan.Seconds()
		}
	}
	// Sample the counters even when ctx has ended (deletion wait timed out).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	res.Total = time.Since(start)
	res.ZuulOps = c.Ops().Total() - zuulOps0
	if cfg.LauncherOps != nil {
		res.LauncherOps = cfg.LauncherOps() - launcherOps0
	}
	res.ZuulPhases = diffCounts(zuulPhases0, c.Ops().ByPhase())
	if cfg.LauncherPhases != nil {
		res.LauncherPhases = diffCounts(launcherPhases0, cfg.LauncherPhases())
	}
	if cfg.LauncherPID > 0 {
		after, err := ReadProc(cfg.LauncherPID)
		if err != nil {
			return res, err
		}
		after.CPUSeconds -= procBefore.CPUSeconds
		after.PeakAnonKB, after.PeakFileKB = sampler.Stop()
		sampler = nil
		res.Launcher = &after
	}
	if cfg.MntrAddr != "" {
		after, err := Mntr(ctx, cfg.MntrAddr)
		if err != nil {
			return res, err
		}
		d := diffMntr(mntrBefore, after)
		res.Mntr = &d
	}
	return res, nil
}

// oneRequest plays one Zuul build: submit, wait, accept (lock, delete the
// request, in-use), optionally hold the nodes in-use, return them.
func oneRequest(ctx context.Context, cfg Config, del *deleteTracker, gate *returnGate) sample {
	var s sample
	arrive := func() {}
	if gate != nil {
		arrive = sync.OnceFunc(gate.wg.Done)
		defer arrive()
	}
	req, err := zuulsim.Submit(zkclient.WithPhase(ctx, "zuul-submit"), cfg.Client, cfg.Labels, cfg.Zuul)
	if err != nil {
		s.err = err
		return s
	}
	s.submitted = req.SubmittedAt
	_, err = req.Wait(zkclient.WithPhase(ctx, "zuul-wait"))
	s.doneAt = req.DoneAt
	s.latency = req.DoneAt.Sub(req.SubmittedAt)
	if errors.Is(err, zuulsim.ErrRequestFailed) {
		s.failed = true
		return s
	}
	if err != nil {
		s.err = err
		return s
	}
	ns, err := req.Accept(zkclient.WithPhase(ctx, "zuul-accept"))
	if err != nil {
		s.err = err
		return s
	}
	if gate != nil {
		arrive()
		select {
		case <-gate.open:
		case <-ctx.Done():
		}
	}
	if cfg.Hold > 0 {
		select {
		case <-time.After(cfg.Hold):
		case <-ctx.Done():
		}
	}
	if err := ns.Return(zkclient.WithPhase(ctx, "zuul-return")); err != nil {
		s.err = err
		return s
	}
	s.returned = time.Now()
	for _, n := range ns.Nodes {
		s.nodes = append(s.nodes, n.ID)
		if cfg.ReturnWait {
			del.track(zkclient.WithPhase(ctx, "bench-deletion-watch"), n.ID)
		}
	}
	return s
}

// returnGate releases every accepted node set at once.
type returnGate struct {
	wg   sync.WaitGroup
	open chan struct{}
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100 // nearest rank
	if i < 1 {
		i = 1
	}
	return sorted[i-1]
}

// deleteTracker records when returned nodes disappear. With a persistent
// recursive watch on the node directory (ZooKeeper 3.6+) every deletion is
// reported without a request, which keeps the benchmark's own load off
// the server it measures; otherwise each node gets a children watch (it
// fires when the lock directory goes and when the node itself is deleted).
type deleteTracker struct {
	c    *zkclient.Client
	wg   sync.WaitGroup
	mu   sync.Mutex
	last time.Time
	n    int
	err  error

	stop    func()               // ends the tree watch (nil: per-node watches)
	gone    map[string]time.Time // deletions the tree watch saw, by id
	waiting map[string]bool      // tracked ids not seen deleted yet
	settled chan struct{}        // signalled when waiting empties
}

func newDeleteTracker(ctx context.Context, c *zkclient.Client) *deleteTracker {
	d := &deleteTracker{c: c, gone: map[string]time.Time{}, waiting: map[string]bool{}, settled: make(chan struct{}, 1)}
	if err := c.EnsurePath(ctx, zkclient.NodeRoot); err != nil {
		return d
	}
	stop, err := c.WatchTree(zkclient.WithPhase(ctx, "bench-deletion-watch"), zkclient.NodeRoot, d.event)
	if err == nil {
		d.stop = stop
	}
	return d
}

// event records a node's deletion (on the connection's receive loop).
func (d *deleteTracker) event(ev zk.Event) {
	id, ok := strings.CutPrefix(ev.Path, zkclient.NodeRoot+"/")
	if !ok || ev.Type != zk.EventNodeDeleted || strings.Contains(id, "/") {
		return
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.waiting[id] {
		delete(d.waiting, id)
		d.countLocked(now)
		return
	}
	d.gone[id] = now
}

func (d *deleteTracker) countLocked(t time.Time) {
	d.n++
	if t.After(d.last) {
		d.last = t
	}
	if len(d.waiting) == 0 {
		select {
		case d.settled <- struct{}{}:
		default:
		}
	}
}

func (d *deleteTracker) track(ctx context.Context, id string) {
	if d.stop != nil {
		d.mu.Lock()
		if at, ok := d.gone[id]; ok {
			delete(d.gone, id)
			d.countLocked(at)
		} else {
			d.waiting[id] = true
		}
		d.mu.Unlock()
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		p := zkclient.NodePath(id)
		for {
			_, ev, err := d.c.ChildrenW(ctx, p)
			if errors.Is(err, zkclient.ErrNoNode) {
				d.deleted(time.Now())
				return
			}
			if err != nil {
				d.mu.Lock()
				if d.err == nil {
					d.err = err
				}
				d.mu.Unlock()
				return
			}
			select {
			case e := <-ev:
				if e.Type == zk.EventNodeDeleted {
					d.deleted(time.Now())
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
}

func (d *deleteTracker) deleted(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.countLocked(t)
}

func (d *deleteTracker) wait(ctx context.Context) (time.Time, int, error) {
	if d.stop != nil {
		defer d.stop()
		for {
			d.mu.Lock()
			left := len(d.waiting)
			d.mu.Unlock()
			if left == 0 {
				break
			}
			select {
			case <-d.settled:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
		}
	}
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	if ctx.Err() != nil {
		return d.last, d.n, fmt.Errorf("bench: waiting for node deletion: %w", ctx.Err())
	}
	return d.last, d.n, d.err
}

// Print writes the result as a readable report.
func (r Result) Print(w io.Writer) {
	pf := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	pf("requests:            %d (fulfilled %d, failed %d, errors %d)", r.Requests, r.Fulfilled, r.Failed, r.Errors)
	if r.FirstErr != "" {
		pf("first error:         %s", r.FirstErr)
	}
	pf("elapsed:             %s (first submit to last fulfilled)", round(r.Elapsed))
	pf("fulfilled/s:         %.1f", r.FulfilledPerSec)
	pf("timeline:            last submitted at %s, first fulfilled at %s", round(r.SubmitSpan), round(r.FirstDone))
	pf("latency p50/p95/p99: %s / %s / %s (max %s)", round(r.P50), round(r.P95), round(r.P99), round(r.Max))
	if r.NodesDeleted > 0 || r.DeleteSpan > 0 {
		pf("nodes deleted:       %d of %d returned; last %s after the last return", r.NodesDeleted, r.NodesReturned, round(r.DeleteWait))
		pf("deletions/s:         %.1f (first return to last deletion: %s)", r.DeletesPerSec, round(r.DeleteSpan))
	} else {
		pf("nodes returned:      %d", r.NodesReturned)
	}
	if r.DeleteErr != "" {
		pf("deletion wait:       %s", r.DeleteErr)
	}
	per := func(v int64) float64 {
		if r.Requests == 0 {
			return 0
		}
		return float64(v) / float64(r.Requests)
	}
	pf("zuul-side zk ops:    %d (%.1f per request)", r.ZuulOps, per(r.ZuulOps))
	if r.LauncherOps >= 0 {
		pf("launcher zk ops:     %d (%.1f per request)", r.LauncherOps, per(r.LauncherOps))
	}
	if m := r.Mntr; m != nil {
		pf("server packets:      received %d (%.1f/request), sent %d (%.1f/request)",
			m.PacketsReceived, per(m.PacketsReceived), m.PacketsSent, per(m.PacketsSent))
		pf("server minus zuul:   %.1f packets received per request (launcher + other clients)",
			per(m.PacketsReceived-r.ZuulOps))
	}
	if p := r.Launcher; p != nil {
		pf("launcher CPU:        %.2f s", p.CPUSeconds)
		pf("launcher peak RSS:   %.1f MB (VmHWM, process lifetime); %.1f MB resident at the end", float64(p.PeakRSSKB)/1024, float64(p.RSSKB)/1024)
		pf("launcher RSS split:  peak %.1f MB anonymous (heap, stacks), peak %.1f MB file-backed (the binary's pages); sampled every 50ms",
			float64(p.PeakAnonKB)/1024, float64(p.PeakFileKB)/1024)
	}
	printPhases(w, "launcher", r.LauncherPhases, r.Requests)
	printPhases(w, "zuul-side", r.ZuulPhases, r.Requests)
	pf("total wall time:     %s", round(r.Total))
}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Second:
		return d.Round(time.Millisecond)
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d
}

func diffCounts(before, after map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		if v -= before[k]; v != 0 {
			d[k] = v
		}
	}
	return d
}

// printPhases writes requests per request by phase, largest first.
func printPhases(w io.Writer, who string, m map[string]int64, requests int) {
	if len(m) == 0 || requests == 0 {
		return
	}
	names := zkclient.PhaseNames(m)
	slices.SortStableFunc(names, func(a, b string) int { return int(m[b] - m[a]) })
	var total int64
	for _, k := range names {
		total += m[k]
	}
	fmt.Fprintf(w, "%s zk requests per request by phase (total %.2f):\n", who, float64(total)/float64(requests))
	for _, k := range names {
		fmt.Fprintf(w, "  %-28s %6.2f\n", k, float64(m[k])/float64(requests))
	}
}
