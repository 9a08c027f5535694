package nodepool_test

// Chaos and soak tests: real nodepool-launcher processes, killed with
// SIGKILL at random (seeded) moments while a Zuul-like client streams
// requests at them, on a simcloud whose state file outlives (and is shared
// by) the processes.
//
// Flags (after the package on the go test command line):
//
//	-nodepool.chaos-seed=N  replay the random choices of a failed run (kill
//	                        points, delays, request sizes; the timing of
//	                        the processes still varies). Every chaos test
//	                        prints the seed it used.
//	-nodepool.soak=30m      run TestSoak for that long instead of its
//	                        short CI version, e.g.
//	                        go test -run 'TestChaos|TestSoak' -timeout 0 . -nodepool.soak=30m
//	                        (without the flag, TestSoak runs for about 40 s)
//
// NODEPOOL_CHAOS_KEEP_LOGS=1 keeps the launchers' logs (they are kept
// anyway when a test fails; the test prints where).

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

var (
	chaosSeedFlag = flag.Uint64("nodepool.chaos-seed", 0, "seed of the chaos tests' random kill points (0: a fresh seed, printed by each test)")
	soakFlag      = flag.Duration("nodepool.soak", 0, "run TestSoak for this long (e.g. 30m) instead of its short CI version")
)

// chaosRNG returns the test's random source and logs its seed.
func chaosRNG(t *testing.T) *rand.Rand {
	seed := *chaosSeedFlag
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("chaos seed %d (replay with -nodepool.chaos-seed=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// chaosRig runs launcher processes on one ZooKeeper chroot and one
// simcloud state file.
type chaosRig struct {
	t       *testing.T
	bin     string
	zk      *zkclient.Client // Zuul's connection, and the test's
	state   string           // simcloud state file
	cfgPath string
	logDir  string
	proxy   *zktest.Proxy // between the launchers and ZooKeeper, when asked

	mu    sync.Mutex
	procs []*launcherProc
	seq   int
}

// launcherProc is one launcher process.
type launcherProc struct {
	n       int
	cmd     *exec.Cmd
	log     string
	started time.Time
	done    chan struct{}
	killed  bool
}

// chaosOptions shape a rig's configuration.
type chaosOptions struct {
	viaProxy bool   // launchers reach ZooKeeper through a Proxy (for session expiry)
	knobs    string // extra simcloud provider keys
}

func newChaosRig(t *testing.T, o chaosOptions) *chaosRig {
	t.Helper()
	r := &chaosRig{t: t, bin: buildBinary(t, "./cmd/nodepool-launcher")}
	var chroot string
	r.zk, chroot = zktest.Connect(t)
	target := zktest.Hosts()[0]
	if o.viaProxy {
		p, err := zktest.NewProxy(target)
		require.NoError(t, err)
		t.Cleanup(p.Close)
		r.proxy = p
		target = p.Addr()
	}
	host, port, err := net.SplitHostPort(target)
	require.NoError(t, err)
	dir := t.TempDir()
	r.logDir, err = os.MkdirTemp("", "nodepool-chaos-logs-")
	require.NoError(t, err)
	r.state = filepath.Join(dir, "cloud.json")
	r.cfgPath = filepath.Join(dir, "nodepool.yaml")
	require.NoError(t, os.WriteFile(r.cfgPath, []byte(sprintf(`
zookeeper-servers:
  - host: %s
    port: %s
    chroot: %s
zookeeper-timeout: 2.0
labels:
  - name: small
providers:
  - name: sim
    driver: simcloud
    state-file: %s
    boot-time: [0.1, 0.6]
    api-latency: 0.1
    launch-retries: 5
    %s
    pools:
      - name: main
        max-servers: 10
        labels:
          - name: small
`, host, port, chroot, r.state, o.knobs)), 0o600))
	t.Cleanup(func() {
		r.mu.Lock()
		procs := r.procs
		r.mu.Unlock()
		for _, p := range procs {
			r.stop(p)
		}
		if t.Failed() || os.Getenv("NODEPOOL_CHAOS_KEEP_LOGS") != "" {
			t.Logf("launcher logs kept in %s", r.logDir)
		} else {
			_ = os.RemoveAll(r.logDir)
		}
	})
	return r
}

// start runs a new launcher process.
func (r *chaosRig) start() *launcherProc {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	p := &launcherProc{n: r.seq, log: filepath.Join(r.logDir, fmt.Sprintf("launcher-%03d.log", r.seq)), done: make(chan struct{})}
	f, err := os.Create(p.log)
	require.NoError(r.t, err)
	p.cmd = exec.Command(r.bin, "-c", r.cfgPath, "--no-webapp", "--cleanup-interval", "1s")
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		_ = f.Close()
		r.t.Fatalf("starting launcher %d: %v", p.n, err)
	}
	r.procs = append(r.procs, p)
	go func() {
		_ = p.cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p
}

// kill sends SIGKILL and reaps the process.
func (r *chaosRig) kill(p *launcherProc) {
	r.t.Helper()
	select {
	case <-p.done:
		r.t.Errorf("launcher %d exited by itself before it was killed (log %s)", p.n, p.log)
		return
	default:
	}
	p.killed = true
	_ = p.cmd.Process.Kill()
	<-p.done
}

// checkAlive fails the test for every process that exited unasked.
func (r *chaosRig) checkAlive() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.procs {
		select {
		case <-p.done:
			if !p.killed {
				r.t.Errorf("launcher %d exited by itself (log %s)", p.n, p.log)
			}
		default:
		}
	}
}

// stop interrupts a process (a graceful stop), killing it if it lingers.
func (r *chaosRig) stop(p *launcherProc) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		r.t.Errorf("launcher %d did not stop within 30 s of SIGINT; killed", p.n)
		r.kill(p)
	}
}

var sessionLine = regexp.MustCompile(`ZooKeeper session connected.*session=0x([0-9a-f]+)`)

// sessions returns the ZooKeeper sessions a process logged.
func (p *launcherProc) sessions() map[int64]bool {
	out := map[int64]bool{}
	data, _ := os.ReadFile(p.log)
	for _, m := range sessionLine.FindAllStringSubmatch(string(data), -1) {
		if v, err := strconv.ParseUint(m[1], 16, 64); err == nil {
			out[int64(v)] = true
		}
	}
	return out
}

// countLogs counts the lines containing s in every launcher's log.
func (r *chaosRig) countLogs(s string) int {
	r.mu.Lock()
	procs := append([]*launcherProc(nil), r.procs...)
	r.mu.Unlock()
	n := 0
	for _, p := range procs {
		data, _ := os.ReadFile(p.log)
		n += strings.Count(string(data), s)
	}
	return n
}

// nodesSince returns the nodes in state whose state_time is after t.
func (r *chaosRig) nodesSince(ctx context.Context, state zkclient.NodeState, t time.Time) []*zkclient.Node {
	nodes, err := r.zk.Nodes(ctx, nil)
	if err != nil {
		return nil
	}
	var out []*zkclient.Node
	since := float64(t.UnixNano()) / 1e9
	for _, n := range nodes {
		if n.State == state && n.StateTime >= since {
			out = append(out, n)
		}
	}
	return out
}

// busy waits (up to 20 s) until a launcher started at since is in the
// phase: "launch" (it writes a building node), "delete" (it writes a
// deleting node) or "any" (at once). It reports whether the phase was seen.
func (r *chaosRig) busy(ctx context.Context, phase string, since time.Time) bool {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		switch phase {
		case "launch":
			if len(r.nodesSince(ctx, zkclient.NodeBuilding, since)) > 0 {
				return true
			}
		case "delete":
			if len(r.nodesSince(ctx, zkclient.NodeDeleting, since)) > 0 {
				return true
			}
		default:
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// lockOwner returns the session of the holder of a node's lock: the
// contender "<uuid>__lock__<sequence>" with the lowest sequence.
func (r *chaosRig) lockOwner(ctx context.Context, id string) (int64, bool) {
	kids, err := r.zk.Children(ctx, zkclient.NodeLockPath(id))
	if err != nil || len(kids) == 0 {
		return 0, false
	}
	seq := func(name string) string { return name[strings.LastIndex(name, "__")+1:] }
	sort.Slice(kids, func(i, j int) bool { return seq(kids[i]) < seq(kids[j]) })
	ok, st, err := r.zk.Exists(ctx, zkclient.NodeLockPath(id)+"/"+kids[0])
	if err != nil || !ok {
		return 0, false
	}
	return st.EphemeralOwner, true
}

// launchingProc returns, of two processes, one holding the lock of a
// building node (chosen at random) and the other.
func (r *chaosRig) launchingProc(ctx context.Context, rng *rand.Rand, procs []*launcherProc) (*launcherProc, *launcherProc) {
	nodes, err := r.zk.Nodes(ctx, nil)
	if err != nil {
		return nil, nil
	}
	rng.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	for _, n := range nodes {
		if n.State != zkclient.NodeBuilding {
			continue
		}
		owner, ok := r.lockOwner(ctx, n.ID)
		if !ok {
			continue
		}
		for i, p := range procs {
			if p.sessions()[owner] {
				return p, procs[1-i]
			}
		}
	}
	return nil, nil
}

// launchesOf returns the init and building nodes whose lock p holds.
func (r *chaosRig) launchesOf(ctx context.Context, p *launcherProc) []*zkclient.Node {
	sessions := p.sessions()
	nodes, err := r.zk.Nodes(ctx, nil)
	if err != nil {
		return nil
	}
	var out []*zkclient.Node
	for _, n := range nodes {
		if n.State != zkclient.NodeBuilding && n.State != zkclient.NodeInit {
			continue
		}
		if owner, ok := r.lockOwner(ctx, n.ID); ok && sessions[owner] {
			out = append(out, n)
		}
	}
	return out
}

// simInstances reads the simcloud state file (written atomically).
func (r *chaosRig) simInstances() []simServer {
	return readSimState(r.t, r.state).Servers
}

type simServer = struct {
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata"`
}

// liveSessions returns the sessions connected to ZooKeeper now (the
// four-letter command "cons").
func liveSessions() (map[int64]bool, error) {
	c, err := net.DialTimeout("tcp", zktest.Hosts()[0], 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "cons"); err != nil {
		return nil, err
	}
	out := map[int64]bool{}
	re := regexp.MustCompile(`sid=0x([0-9a-f]+)`)
	sc := bufio.NewScanner(c)
	var text []string
	for sc.Scan() {
		text = append(text, sc.Text())
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			v, err := strconv.ParseUint(m[1], 16, 64)
			if err == nil {
				out[int64(v)] = true
			}
		}
	}
	if len(out) == 0 && sc.Err() == nil {
		// At least the test's own session is connected.
		return nil, fmt.Errorf("four-letter command cons listed no session (it needs 4lw.commands.whitelist, as scripts/zookeeper.sh sets): %q", strings.Join(text, " "))
	}
	return out, sc.Err()
}

// lockContenders returns the contender znodes of every node and request
// lock, with their owning sessions.
func (r *chaosRig) lockContenders(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	add := func(dir string) error {
		kids, err := r.zk.Children(ctx, dir)
		if errors.Is(err, zkclient.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, k := range kids {
			ok, st, err := r.zk.Exists(ctx, dir+"/"+k)
			if err != nil {
				return err
			}
			if ok {
				out[dir+"/"+k] = st.EphemeralOwner
			}
		}
		return nil
	}
	ids, err := r.zk.NodeIDs(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := add(zkclient.NodeLockPath(id)); err != nil {
			return nil, err
		}
	}
	reqs, err := r.zk.Children(ctx, zkclient.RequestLockRoot)
	if err != nil && !errors.Is(err, zkclient.ErrNoNode) {
		return nil, err
	}
	for _, id := range reqs {
		if err := add(zkclient.RequestLockPath(id)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// deadEphemerals walks /nodepool and returns the ephemeral znodes whose
// session is not connected.
func (r *chaosRig) deadEphemerals(ctx context.Context) ([]string, error) {
	live, err := liveSessions()
	if err != nil {
		return nil, err
	}
	var dead []string
	var walk func(p string) error
	walk = func(p string) error {
		ok, st, err := r.zk.Exists(ctx, p)
		if err != nil || !ok {
			return err
		}
		if st.EphemeralOwner != 0 && !live[st.EphemeralOwner] {
			dead = append(dead, fmt.Sprintf("%s (session 0x%x)", p, st.EphemeralOwner))
		}
		kids, err := r.zk.Children(ctx, p)
		if errors.Is(err, zkclient.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, k := range kids {
			if err := walk(p + "/" + k); err != nil {
				return err
			}
		}
		return nil
	}
	return dead, walk("/nodepool")
}

// zuulLoad streams requests as Zuul does: submit one or two "small"
// nodes, wait, accept (lock, in-use), keep them a moment, return them.
type zuulLoad struct {
	zk   *zkclient.Client
	hist *history // notes what Zuul did to each node

	submitted, fulfilled, failed atomic.Int64
	wg                           sync.WaitGroup
	stopCh                       chan struct{}

	mu        sync.Mutex
	errs      []string
	allocated map[string]string    // node -> request it was fulfilled with
	doubles   []string             // nodes fulfilled to two requests
	inflight  map[string]time.Time // request -> submitted at
	slowest   time.Duration        // longest wait for fulfilled or failed
}

func startZuulLoad(ctx context.Context, zk *zkclient.Client, a *auditor, workers int, seed uint64) *zuulLoad {
	z := &zuulLoad{zk: zk, hist: &a.hist, stopCh: make(chan struct{}), allocated: map[string]string{}, inflight: map[string]time.Time{}}
	for i := 0; i < workers; i++ {
		z.wg.Add(1)
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		go func() {
			defer z.wg.Done()
			for {
				select {
				case <-z.stopCh:
					return
				default:
				}
				if ctx.Err() != nil {
					return
				}
				z.one(ctx, rng)
			}
		}()
	}
	return z
}

func (z *zuulLoad) errorf(format string, args ...any) {
	z.mu.Lock()
	z.errs = append(z.errs, fmt.Sprintf(format, args...))
	z.mu.Unlock()
}

func (z *zuulLoad) one(ctx context.Context, rng *rand.Rand) {
	labels := []string{"small"}
	if rng.IntN(3) == 0 {
		labels = append(labels, "small")
	}
	req, err := zuulsim.Submit(ctx, z.zk, labels, zuulsim.Options{})
	if err != nil {
		if ctx.Err() == nil {
			z.errorf("submit: %v", err)
			time.Sleep(100 * time.Millisecond)
		}
		return
	}
	z.submitted.Add(1)
	z.mu.Lock()
	z.inflight[req.ID] = time.Now()
	z.mu.Unlock()
	defer func() {
		z.mu.Lock()
		delete(z.inflight, req.ID)
		z.mu.Unlock()
	}()
	got, err := req.Wait(ctx)
	if took := time.Since(req.SubmittedAt); err == nil || errors.Is(err, zuulsim.ErrRequestFailed) {
		z.mu.Lock()
		z.slowest = max(z.slowest, took)
		z.mu.Unlock()
	}
	switch {
	case err == nil:
	case errors.Is(err, zuulsim.ErrRequestFailed):
		z.failed.Add(1)
		if got == nil || got.State != zkclient.RequestFailed || len(got.DeclinedBy) == 0 {
			z.errorf("request %s failed without being declined: %+v", req.ID, got)
		}
		return
	default:
		z.errorf("request %s: %v", req.ID, err)
		return
	}
	z.fulfilled.Add(1)
	if len(got.Nodes) != len(labels) {
		z.errorf("request %s fulfilled with %d nodes for %d labels", req.ID, len(got.Nodes), len(labels))
	}
	z.mu.Lock()
	for _, id := range got.Nodes {
		z.hist.note(id, "zuul: request %s fulfilled with it", req.ID)
		if prev, dup := z.allocated[id]; dup {
			z.doubles = append(z.doubles, fmt.Sprintf("node %s fulfilled to %s and %s", id, prev, req.ID))
		}
		z.allocated[id] = req.ID
	}
	z.mu.Unlock()
	ns, err := req.Accept(ctx)
	if err != nil {
		if errors.Is(err, zuulsim.ErrNotAllocated) {
			z.mu.Lock()
			z.doubles = append(z.doubles, err.Error())
			z.mu.Unlock()
		}
		z.errorf("accept %s: %v", req.ID, err)
		return
	}
	for _, n := range ns.Nodes {
		z.hist.note(n.ID, "zuul: locked (held %v) and in-use for %s", n.Locked(), req.ID)
	}
	time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
	for _, n := range ns.Nodes {
		z.hist.note(n.ID, "zuul: returning (lock held %v)", n.Locked())
	}
	if err := ns.Return(ctx); err != nil {
		z.errorf("return %s: %v", req.ID, err)
	}
}

// outstanding returns the requests in flight.
func (z *zuulLoad) outstanding() map[string]bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := map[string]bool{}
	for id := range z.inflight {
		out[id] = true
	}
	return out
}

// stop ends the stream and waits (up to d) for every request in flight
// to be fulfilled or failed; it returns the requests still waiting.
func (z *zuulLoad) stop(d time.Duration) []string {
	close(z.stopCh)
	done := make(chan struct{})
	go func() { z.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(d):
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	var out []string
	for id, at := range z.inflight {
		out = append(out, fmt.Sprintf("%s (submitted %s ago)", id, time.Since(at).Round(time.Second)))
	}
	sort.Strings(out)
	return out
}

// history keeps, per node, what the auditor saw and what Zuul did, to
// explain a failure.
type history struct {
	mu     sync.Mutex
	events map[string][]string
}

func (h *history) note(id, format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.events == nil {
		h.events = map[string][]string{}
	}
	h.events[id] = append(h.events[id], time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
}

var tenDigits = regexp.MustCompile(`\b\d{10}\b`)

// explain logs the history of every node named in the messages.
func (h *history) explain(t *testing.T, msgs []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	for _, m := range msgs {
		for _, id := range tenDigits.FindAllString(m, -1) {
			if ev, ok := h.events[id]; ok && !seen[id] {
				seen[id] = true
				t.Logf("history of node %s:\n  %s", id, strings.Join(ev, "\n  "))
			}
		}
	}
}

// auditor watches every request and node (a tree cache of each) for a
// request changed after it was fulfilled, and for a node of a fulfilled
// request allocated to another one.
type auditor struct {
	hist           history
	lastSeen       map[string]string // node -> state, allocation and version last noted
	mu             sync.Mutex
	fulfilledWith  map[string]string // request -> its nodes when first seen fulfilled
	nodeOf         map[string]string // node -> fulfilled request
	fulfilledTwice []string
	doubleAlloc    []string
}

func startAuditor(ctx context.Context, t *testing.T, zk *zkclient.Client) *auditor {
	a := &auditor{fulfilledWith: map[string]string{}, nodeOf: map[string]string{}, lastSeen: map[string]string{}}
	rc, nc := zkclient.NewRequestCache(zk), zkclient.NewNodeCache(zk)
	rsub, nsub := rc.Subscribe(), nc.Subscribe()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); _ = rc.Run(ctx) }()
	go func() { defer wg.Done(); _ = nc.Run(ctx) }()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-rsub:
			case <-nsub:
			}
			a.scan(rc.List(), nc.List())
		}
	}()
	t.Cleanup(wg.Wait)
	return a
}

func (a *auditor) scan(reqs []*zkclient.NodeRequest, nodes []*zkclient.Node) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range reqs {
		set := strings.Join(r.Nodes, ",")
		if prev, ok := a.fulfilledWith[r.ID]; ok {
			if r.State != zkclient.RequestFulfilled || set != prev {
				a.fulfilledTwice = append(a.fulfilledTwice, fmt.Sprintf("request %s fulfilled with [%s], later %s with [%s]", r.ID, prev, r.State, set))
				a.fulfilledWith[r.ID] = set
			}
			continue
		}
		if r.State != zkclient.RequestFulfilled {
			continue
		}
		a.fulfilledWith[r.ID] = set
		for _, n := range r.Nodes {
			if other, ok := a.nodeOf[n]; ok && other != r.ID {
				a.doubleAlloc = append(a.doubleAlloc, fmt.Sprintf("node %s in fulfilled requests %s and %s", n, other, r.ID))
			}
			a.nodeOf[n] = r.ID
		}
	}
	present := map[string]bool{}
	for _, n := range nodes {
		present[n.ID] = true
		if v := fmt.Sprintf("%s allocated to %q, version %d, launcher %s", n.State, n.AllocatedTo, n.Version, n.Launcher); a.lastSeen[n.ID] != v {
			a.lastSeen[n.ID] = v
			a.hist.note(n.ID, "cache: %s", v)
		}
		if r, ok := a.nodeOf[n.ID]; ok && n.AllocatedTo != "" && n.AllocatedTo != r {
			a.doubleAlloc = append(a.doubleAlloc, fmt.Sprintf("node %s of fulfilled request %s allocated to %s", n.ID, r, n.AllocatedTo))
			a.nodeOf[n.ID] = n.AllocatedTo
		}
	}
	for id := range a.lastSeen {
		if !present[id] {
			delete(a.lastSeen, id)
			a.hist.note(id, "cache: gone")
		}
	}
}

// chaosFigures are what a chaos test reports.
type chaosFigures struct {
	submitted, fulfilled, failed int64
	kills, expiries              int
	sessionsLost                 int
	leaked, recordsWithoutInst   int
	doubleAlloc, fulfilledTwice  int
	leaksCleaned, lostReset      int
	createFaults, deleteFaults   int
	slowest                      time.Duration
}

func (f chaosFigures) String() string {
	return fmt.Sprintf("requests submitted %d, fulfilled %d, failed %d (slowest %s); kills %d, session expiries %d; "+
		"leaked instances at the end %d, node records without instance %d; double allocations %d, requests fulfilled twice %d; "+
		"(launchers saw %d sessions expire, %d create and %d delete faults, removed %d leaked instances and reset %d lost requests on the way)",
		f.submitted, f.fulfilled, f.failed, f.slowest.Round(100*time.Millisecond), f.kills, f.expiries, f.leaked, f.recordsWithoutInst,
		f.doubleAlloc, f.fulfilledTwice, f.sessionsLost, f.createFaults, f.deleteFaults, f.leaksCleaned, f.lostReset)
}

// finish stops the stream and checks, once the launchers cleaned up, the
// promises of every chaos test: every request ended fulfilled or failed
// (declined), no node went to two requests, no request was fulfilled
// twice, every instance has a node record and every node record an
// instance (what remains is ready, unallocated spares), no lock is held at
// rest and no znode of a dead session is left.
func (r *chaosRig) finish(ctx context.Context, z *zuulLoad, a *auditor, f *chaosFigures) {
	t := r.t
	t.Helper()
	if stuck := z.stop(150 * time.Second); len(stuck) > 0 {
		t.Errorf("%d requests never completed: %s", len(stuck), strings.Join(stuck, ", "))
	}
	f.submitted, f.fulfilled, f.failed = z.submitted.Load(), z.fulfilled.Load(), z.failed.Load()
	z.mu.Lock()
	for _, e := range z.errs {
		t.Error(e)
	}
	doubles := append([]string(nil), z.doubles...)
	f.slowest = z.slowest
	z.mu.Unlock()

	var last string
	converged := assertEventually(120*time.Second, func() bool {
		nodes, err := r.zk.Nodes(ctx, nil)
		if err != nil {
			last = err.Error()
			return false
		}
		insts := r.simInstances()
		byExt := map[string]bool{}
		for _, s := range insts {
			byExt[s.ID] = true
		}
		byID := map[string]*zkclient.Node{}
		f.recordsWithoutInst = 0
		notAtRest := ""
		for _, n := range nodes {
			byID[n.ID] = n
			if n.State != zkclient.NodeReady || n.AllocatedTo != "" {
				notAtRest = fmt.Sprintf("node %s is %s (allocated to %q)", n.ID, n.State, n.AllocatedTo)
			}
			if n.ExternalID == "" || !byExt[n.ExternalID] {
				f.recordsWithoutInst++
				notAtRest = fmt.Sprintf("node %s (%s) has no instance %q", n.ID, n.State, n.ExternalID)
			}
		}
		f.leaked = 0
		for _, s := range insts {
			if n := byID[s.Metadata[driver.MetaNodeID]]; n == nil || n.ExternalID != s.ID {
				f.leaked++
				notAtRest = fmt.Sprintf("instance %s (node %s) has no node record", s.ID, s.Metadata[driver.MetaNodeID])
			}
		}
		if notAtRest != "" {
			last = notAtRest
			return false
		}
		locks, err := r.lockContenders(ctx)
		if err != nil {
			last = err.Error()
			return false
		}
		for p, owner := range locks {
			last = fmt.Sprintf("lock %s still held (session 0x%x)", p, owner)
			return false
		}
		dead, err := r.deadEphemerals(ctx)
		if err != nil {
			last = err.Error()
			return false
		}
		if len(dead) > 0 {
			last = "znodes of dead sessions: " + strings.Join(dead, ", ")
			return false
		}
		return true
	})
	if !converged {
		t.Errorf("the launchers did not clean up: %s", last)
	}
	r.checkAlive()
	a.mu.Lock()
	if t.Failed() || len(a.doubleAlloc)+len(a.fulfilledTwice) > 0 {
		z.mu.Lock()
		msgs := append(append(append(append([]string(nil), z.errs...), doubles...), a.doubleAlloc...), a.fulfilledTwice...)
		z.mu.Unlock()
		msgs = append(msgs, last)
		a.hist.explain(t, msgs)
	}
	f.doubleAlloc = len(doubles) + len(a.doubleAlloc)
	f.fulfilledTwice = len(a.fulfilledTwice)
	for _, d := range append(doubles, a.doubleAlloc...) {
		t.Errorf("double allocation: %s", d)
	}
	for _, d := range a.fulfilledTwice {
		t.Errorf("fulfilled twice: %s", d)
	}
	a.mu.Unlock()
	f.leaksCleaned = r.countLogs("deleted leaked resource")
	f.lostReset = r.countLogs("reset lost request")
	f.sessionsLost = r.countLogs("ZooKeeper session lost session=")
	f.createFaults = r.countLogs("random failure")
	f.deleteFaults = r.countLogs("random delete failure")
	if f.submitted != f.fulfilled+f.failed {
		t.Errorf("%d requests submitted, %d fulfilled + %d failed", f.submitted, f.fulfilled, f.failed)
	}
	if f.submitted == 0 {
		t.Error("no request was submitted; the test proved nothing")
	}
}

// TestChaosLauncherKills promises: a launcher process SIGKILLed at random
// moments (while it launches, while it deletes, or anywhere), K times in a
// row and restarted each time, under a steady stream of Zuul requests,
// loses nothing: every request is fulfilled, no node is allocated to two
// requests, no request is fulfilled twice, and after the cleanup interval
// there is no instance without a node record, no node record without an
// instance, and no lock or ephemeral znode of a dead session.
func TestChaosLauncherKills(t *testing.T) {
	rng := chaosRNG(t)
	r := newChaosRig(t, chaosOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a := startAuditor(ctx, t, r.zk)
	z := startZuulLoad(ctx, r.zk, a, 6, rng.Uint64())
	var f chaosFigures
	const k = 10
	phases := map[string]int{}
	for i := 0; i < k; i++ {
		p := r.start()
		phase := []string{"launch", "delete", "any"}[rng.IntN(3)]
		if r.busy(ctx, phase, p.started) {
			phases[phase]++
		}
		if phase == "any" {
			time.Sleep(time.Duration(rng.IntN(4000)) * time.Millisecond)
		} else {
			time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		}
		r.kill(p)
		f.kills++
		// Restart at once or after a while (the dead session's locks
		// linger until it expires).
		time.Sleep(time.Duration(rng.IntN(2500)) * time.Millisecond)
	}
	r.start()
	time.Sleep(3 * time.Second) // some requests served by the survivor
	r.finish(ctx, z, a, &f)
	t.Logf("kill points: %d while launching, %d while deleting, %d anywhere", phases["launch"], phases["delete"], phases["any"])
	t.Logf("chaos kills: %s", f)
	require.Zero(t, f.failed, "no fault injected: every request is fulfilled")
}

// TestChaosTakeover promises: with two launcher processes serving the
// same provider, killing one (SIGKILL, chosen as the holder of a node in
// mid-launch, at a random moment) and never restarting it, the survivor
// alone fulfils every outstanding request and removes the killed one's
// half-made nodes and instances: no leak, no double allocation. It runs
// several rounds, a fresh partner joining the survivor after each.
func TestChaosTakeover(t *testing.T) {
	rng := chaosRNG(t)
	r := newChaosRig(t, chaosOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a := startAuditor(ctx, t, r.zk)
	alive := []*launcherProc{r.start(), r.start()}
	z := startZuulLoad(ctx, r.zk, a, 4, rng.Uint64())
	var f chaosFigures
	const rounds = 4
	halfMade := 0
	for round := 0; round < rounds; round++ {
		// Let both serve a while, then choose the victim: the owner of the
		// lock of a node in mid-launch, killed a random moment later
		// (retrying when its launches finished meanwhile).
		time.Sleep(time.Duration(1000+rng.IntN(3000)) * time.Millisecond)
		var victim, survivor *launcherProc
		var victimNodes []*zkclient.Node
		require.Eventually(t, func() bool {
			victim, survivor = r.launchingProc(ctx, rng, alive)
			if victim == nil {
				return false
			}
			time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
			victimNodes = r.launchesOf(ctx, victim)
			if len(victimNodes) == 0 {
				return false
			}
			r.kill(victim)
			return true
		}, 60*time.Second, 10*time.Millisecond, "a launcher has a node in mid-launch")
		f.kills++
		halfMade += len(victimNodes)
		outstanding := z.outstanding()
		t.Logf("round %d: killed launcher %d holding %d nodes in mid-launch, %d requests outstanding; launcher %d survives",
			round+1, victim.n, len(victimNodes), len(outstanding), survivor.n)
		// Only the survivor runs: it completes every outstanding request
		// and removes the victim's nodes with their instances.
		require.Eventually(t, func() bool {
			now := z.outstanding()
			for id := range outstanding {
				if now[id] {
					return false
				}
			}
			insts := r.simInstances()
			for _, n := range victimNodes {
				if _, err := r.zk.GetNode(ctx, n.ID); err == nil {
					return false
				}
				for _, s := range insts {
					if s.Metadata[driver.MetaNodeID] == n.ID {
						return false
					}
				}
			}
			return true
		}, 90*time.Second, 100*time.Millisecond, "the survivor serves the outstanding requests and removes the killed launcher's half-made nodes and instances")
		select {
		case <-survivor.done:
			t.Fatalf("the survivor (launcher %d) exited", survivor.n)
		default:
		}
		alive = []*launcherProc{survivor}
		if round < rounds-1 {
			alive = append(alive, r.start())
		}
	}
	r.finish(ctx, z, a, &f)
	t.Logf("takeover: %s; %d half-made nodes of killed launchers removed by the survivors", f, halfMade)
	require.Zero(t, f.failed, "no fault injected: every request is fulfilled")
}

// TestSoak promises the chaos promises under every fault at once, for as
// long as -nodepool.soak says (default: a short CI run of about 40 s), with
// two launcher processes sharing the provider: SIGKILLs of either (each
// replaced after a random pause), ZooKeeper session expiry (the launchers'
// connections cut for longer than their session timeout), and cloud create
// and delete failures. Requests may fail only properly (declined after
// the launch retries ran out); none is lost, no node is allocated twice,
// nothing leaks.
func TestSoak(t *testing.T) {
	d := *soakFlag
	ci := d == 0
	if ci {
		d = 35 * time.Second
	}
	if dl, ok := t.Deadline(); ok && time.Until(dl) < d+3*time.Minute {
		t.Fatalf("-nodepool.soak=%s needs a longer test timeout: add -timeout %s (or -timeout 0)", d, (d + 10*time.Minute).Round(time.Minute))
	}
	rng := chaosRNG(t)
	r := newChaosRig(t, chaosOptions{viaProxy: true, knobs: "create-failure-rate: 0.05\n    delete-failure-rate: 0.05"})
	ctx, cancel := context.WithTimeout(context.Background(), d+5*time.Minute)
	defer cancel()
	a := startAuditor(ctx, t, r.zk)
	z := startZuulLoad(ctx, r.zk, a, 6, rng.Uint64())
	var f chaosFigures
	// Two launchers share the provider (and its quota lock); one of them
	// is killed at a time and replaced.
	alive := []*launcherProc{r.start(), r.start()}
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(1500+rng.IntN(4000)) * time.Millisecond)
		fault := rng.IntN(3)
		if f.expiries == 0 && f.kills > 0 {
			// Every soak tests expiry at least once, however the dice fall.
			fault = 2
		}
		switch fault {
		case 0, 1:
			phase := []string{"launch", "delete", "any"}[rng.IntN(3)]
			r.busy(ctx, phase, time.Now())
			time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
			i := rng.IntN(len(alive))
			r.kill(alive[i])
			f.kills++
			time.Sleep(time.Duration(rng.IntN(2500)) * time.Millisecond)
			alive[i] = r.start()
		case 2:
			// Longer than the 2 s session timeout: the session expires.
			r.proxy.Pause()
			time.Sleep(time.Duration(3500+rng.IntN(1500)) * time.Millisecond)
			r.proxy.Resume()
			f.expiries++
		}
	}
	r.finish(ctx, z, a, &f)
	mode := "CI"
	if !ci {
		mode = d.String()
	}
	t.Logf("soak (%s): %s", mode, f)
	require.Positive(t, f.sessionsLost, "no session expired; the soak did not test expiry")
}
