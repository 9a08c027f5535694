package ensembletest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/simcloud"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

var long = flag.Bool("nodepool.ensemble-long", false, "run TestEnsembleFaults in its long form (20 s quorum loss, three rounds)")

const launcherYAML = `
labels:
  - name: small
providers:
  - name: %[1]s
    driver: simcloud
    cloud: %[2]s
    boot-time: [0.2, 0.6]
    pools:
      - name: main
        max-servers: 40
        labels:
          - name: small
`

// outcome is what became of one Zuul-like request.
type outcome struct {
	id              string
	submitted, done time.Time
	state           zkclient.RequestState // fulfilled or failed; "" when Wait gave up
	nodes           []string
	accepted        bool // Zuul locked the nodes and used them
	err             error
}

// stream submits single-node requests at a steady rate until stop is
// closed, runs each through Zuul's sequence (wait, accept, use, return)
// and collects the outcomes.
type stream struct {
	zk  *zkclient.Client
	ctx context.Context
	mu  sync.Mutex
	out []*outcome
	wg  sync.WaitGroup
}

func (s *stream) run(every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			o := s.one()
			s.mu.Lock()
			s.out = append(s.out, o)
			s.mu.Unlock()
		}()
	}
}

// one runs one request. Submitting waits for ZooKeeper like Zuul's client.
func (s *stream) one() *outcome {
	o := &outcome{submitted: time.Now()}
	var r *zuulsim.Request
	for {
		var err error
		r, err = zuulsim.Submit(s.ctx, s.zk, []string{"small"}, zuulsim.Options{})
		if err == nil {
			break
		}
		if !zkclient.IsConnectionError(err) || s.ctx.Err() != nil {
			o.err = fmt.Errorf("submitting: %w", err)
			return o
		}
		if err := s.zk.WaitConnected(s.ctx); err != nil {
			o.err = err
			return o
		}
	}
	o.id = r.ID
	got, err := r.Wait(s.ctx)
	o.done = time.Now()
	if got != nil {
		o.state, o.nodes = got.State, got.Nodes
	}
	if errors.Is(err, zuulsim.ErrRequestFailed) {
		return o
	}
	if err != nil {
		o.err = fmt.Errorf("request %s: %w", r.ID, err)
		return o
	}
	ns, err := r.Accept(s.ctx)
	if err != nil {
		if errors.Is(err, zuulsim.ErrNotAllocated) {
			o.err = fmt.Errorf("request %s: %w", r.ID, err)
		}
		// Otherwise Zuul-side trouble during a fault: the request is
		// deleted, and the launchers reclaim (and may reuse) its nodes.
		return o
	}
	o.accepted = true
	time.Sleep(100 * time.Millisecond) // the job
	for range 50 {
		if err := ns.Return(s.ctx); err == nil || s.ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return o
}

// event is one fault, from the fault to the end of its recovery.
type event struct {
	name       string
	start, end time.Time
	back       time.Time     // when quorum was back (zero: never lost)
	outage     time.Duration // time ZooKeeper was unavailable by design
}

// resumed is how long after t the first request was fulfilled.
func resumed(done []time.Time, t time.Time) time.Duration {
	i := sort.Search(len(done), func(i int) bool { return done[i].After(t) })
	if i == len(done) {
		return -1
	}
	return done[i].Sub(t)
}

// stall is the longest time within [start, end+settle] in which no
// request was fulfilled: how long serving stopped.
func stall(done []time.Time, ev event, settle time.Duration) time.Duration {
	from, to := ev.start, ev.end.Add(settle)
	prev, worst := from, time.Duration(0)
	for _, d := range done {
		if d.Before(from) {
			continue
		}
		if d.After(to) {
			break
		}
		worst = max(worst, d.Sub(prev))
		prev = d
	}
	return worst
}

// TestEnsembleFaults runs a stream of Zuul-like requests against two
// launchers on a three-server ensemble while it kills the leader, then a
// follower, takes quorum away, and restarts every server in turn: every
// request ends fulfilled or failed, no node is allocated twice, no
// instance leaks, and the stall of each event is reported.
func TestEnsembleFaults(t *testing.T) {
	quorumLoss, rounds, every, settle := 10*time.Second, 1, 200*time.Millisecond, 4*time.Second
	if *long {
		quorumLoss, rounds, every, settle = 20*time.Second, 3, 100*time.Millisecond, 8*time.Second
	}
	ens := zktest.StartEnsemble(t)
	chroot := zktest.Chroot(t)
	zuul := ens.Connect(chroot, 10*time.Second)
	var clouds []string
	for _, name := range []string{"a", "b"} {
		cloud := "ens-" + name + "-" + chroot[len(chroot)-8:]
		clouds = append(clouds, cloud)
		lzk := ens.Connect(chroot, 10*time.Second)
		launchertest.Start(t, lzk, fmt.Sprintf(launcherYAML, "sim-"+name, cloud),
			// A short cleanup interval lets the leak check below converge;
			// recovery from the faults must not wait for it (the stalls
			// reported stay well below it).
			nodepool.WithHostname("launcher-"+name), nodepool.WithCleanupInterval(10*time.Second))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	s := &stream{zk: zuul, ctx: ctx}
	stop := make(chan struct{})
	go s.run(every, stop)
	time.Sleep(settle)

	var events []event
	var back time.Time
	do := func(name string, outage time.Duration, fault func()) {
		ev := event{name: name, start: time.Now(), outage: outage}
		back = time.Time{}
		fault()
		ev.end, ev.back = time.Now(), back
		events = append(events, ev)
		time.Sleep(settle)
	}
	for round := 1; round <= rounds; round++ {
		leader := ens.Leader()
		do(fmt.Sprintf("round %d: kill the leader (server %d) and restart it", round, leader), 0, func() {
			ens.Kill(leader)
			time.Sleep(settle)
			ens.Restart(leader)
		})
		follower := ens.Leader()%3 + 1
		do(fmt.Sprintf("round %d: kill a follower (server %d) and restart it", round, follower), 0, func() {
			ens.Kill(follower)
			time.Sleep(settle)
			ens.Restart(follower)
		})
		keep := ens.Leader()
		others := []int{keep%3 + 1, (keep+1)%3 + 1}
		do(fmt.Sprintf("round %d: no quorum for %v (servers %d and %d down)", round, quorumLoss, others[0], others[1]), quorumLoss, func() {
			ens.Kill(others[0])
			ens.Kill(others[1])
			time.Sleep(quorumLoss)
			ens.StartAsync(others[0])
			ens.Restart(others[1])
			back = time.Now()
		})
		do(fmt.Sprintf("round %d: rolling restart of all three", round), 0, func() {
			for id := 1; id <= 3; id++ {
				ens.Kill(id)
				ens.Restart(id)
			}
		})
	}
	close(stop)
	s.wg.Wait()

	// Every request ended fulfilled or failed; no node was used by two
	// requests (a node whose acceptance failed goes back to the pool).
	owner := map[string]string{}
	var done []time.Time
	fulfilled, failed, notAccepted := 0, 0, 0
	for _, o := range s.out {
		require.NoError(t, o.err)
		switch o.state {
		case zkclient.RequestFulfilled:
			fulfilled++
			done = append(done, o.done)
			if !o.accepted {
				notAccepted++
				continue
			}
		case zkclient.RequestFailed:
			failed++
		default:
			t.Fatalf("request %s ended %q", o.id, o.state)
		}
		for _, n := range o.nodes {
			if prev, dup := owner[n]; dup {
				t.Fatalf("node %s allocated to %s and %s", n, prev, o.id)
			}
			owner[n] = o.id
		}
	}
	require.NotZero(t, fulfilled)
	sort.Slice(done, func(i, j int) bool { return done[i].Before(done[j]) })
	var report strings.Builder
	fmt.Fprintf(&report, "%d requests: %d fulfilled (%d of them not accepted by Zuul during a fault), %d failed\n", len(s.out), fulfilled, notAccepted, failed)
	for _, ev := range events {
		st := stall(done, ev, settle)
		fmt.Fprintf(&report, "  %-62s longest time without a fulfilment %5.1f s", ev.name, st.Seconds())
		if !ev.back.IsZero() {
			fmt.Fprintf(&report, "; first fulfilment %.1f s after quorum was back (%.1f s after the fault)",
				resumed(done, ev.back).Seconds(), ev.back.Sub(ev.start).Seconds())
		}
		report.WriteString("\n")
		require.Less(t, st, ev.outage+30*time.Second, "serving resumes after %s", ev.name)
	}
	t.Log(report.String())

	// No instance leaked: after Zuul's leftovers are gone, the clouds and
	// the node records agree and nothing is allocated.
	ids, err := zuul.RequestIDs(ctx)
	require.NoError(t, err)
	for _, id := range ids {
		_ = zuul.DeleteRequest(ctx, id)
	}
	var last string
	require.Eventually(t, func() bool {
		nodes, err := zuul.Nodes(ctx, nil)
		if err != nil {
			last = err.Error()
			return false
		}
		byID := map[string]*zkclient.Node{}
		ext := map[string]bool{}
		for _, n := range nodes {
			byID[n.ID] = n
			ext[n.ExternalID] = true
			if n.State != zkclient.NodeReady || n.AllocatedTo != "" {
				last = fmt.Sprintf("node %s is %s (allocated to %q)", n.ID, n.State, n.AllocatedTo)
				return false
			}
		}
		for _, c := range clouds {
			for _, inst := range simcloud.Get(c).Instances() {
				if byID[inst.Metadata[driver.MetaNodeID]] == nil {
					last = fmt.Sprintf("instance %s in %s has no node record", inst.ID, c)
					return false
				}
				delete(ext, inst.ID)
			}
		}
		if len(ext) > 0 {
			last = fmt.Sprintf("%d node records have no instance", len(ext))
			return false
		}
		return true
	}, 120*time.Second, 500*time.Millisecond, "leak check: %s", func() string { return last }())
}
