// Command nodepool-bench is the end-to-end load benchmark of a nodepool
// launcher. It drives a running launcher only through ZooKeeper, as Zuul
// would: N requests submitted at concurrency C, nodes locked and set in-use,
// then returned; it reports throughput, latency, node deletion, ZooKeeper
// traffic and the launcher's CPU time and peak memory.
//
//	nodepool-bench -zk 127.0.0.1:22181 -chroot /bench -n 1000 -c 1000 \
//	    -label fake-label -zk-mntr 127.0.0.1:22181 -launcher-pid $(pidof nodepool-launcher)
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/nodepool-go/nodepool/internal/bench"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// listFlag is a repeatable flag that also accepts comma-separated lists.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func main() {
	var (
		hosts      = flag.String("zk", "127.0.0.1:22181", "ZooKeeper hosts, comma separated")
		chroot     = flag.String("chroot", "", "ZooKeeper chroot of the launcher")
		n          = flag.Int("n", 200, "number of requests")
		conc       = flag.Int("c", 0, "requests in flight at once (default: all of them)")
		pid        = flag.Int("launcher-pid", 0, "launcher process id, to report its CPU seconds and peak RSS")
		mntr       = flag.String("zk-mntr", "", "host:port of the ZooKeeper server to read mntr counters from (empty: skip)")
		returnWait = flag.Bool("return-wait", true, "wait until every returned node is deleted")
		hold       = flag.Duration("hold", 0, "how long each node set stays in-use")
		together   = flag.Bool("return-together", false, "return every node set at once after all are accepted (measures deletion throughput)")
		priority   = flag.String("priority", "200", "request priority (3 characters)")
		timeout    = flag.Duration("timeout", 10*time.Minute, "give up after this long")
		tlsCert    = flag.String("tls-cert", "", "ZooKeeper TLS client certificate")
		tlsKey     = flag.String("tls-key", "", "ZooKeeper TLS client key")
		tlsCA      = flag.String("tls-ca", "", "ZooKeeper TLS CA certificate")
		waitFor    = flag.Duration("wait-launcher", 0, "first wait up to this long for a launcher to register in the chroot (for launchers without a readiness endpoint)")
		labels     listFlag
		metricsURL = flag.String("launcher-metrics", "", "launcher /metrics URL, to count its ZooKeeper requests (comma-separate several launchers)")
	)
	flag.Var(&labels, "label", "label of each request; repeat or comma-separate for multi-node requests (default fake-label)")
	flag.Parse()
	if len(labels) == 0 {
		labels = listFlag{"fake-label"}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	cfg := zkclient.Config{
		Hosts:  strings.Split(*hosts, ","),
		Chroot: *chroot,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	}
	if *tlsCert != "" || *tlsKey != "" || *tlsCA != "" {
		cfg.TLS = &zkclient.TLSFiles{Cert: *tlsCert, Key: *tlsKey, CA: *tlsCA}
	}
	c, err := zkclient.Connect(ctx, cfg)
	if err != nil {
		fail(err)
	}
	defer c.Close()
	if *waitFor > 0 {
		if err := waitLauncher(ctx, c, *waitFor); err != nil {
			fail(err)
		}
	}

	res, err := bench.Run(ctx, bench.Config{
		Client:         c,
		Requests:       *n,
		Concurrency:    *conc,
		Labels:         labels,
		Zuul:           zuulsim.Options{Priority: *priority},
		Hold:           *hold,
		ReturnWait:     *returnWait,
		ReturnTogether: *together,
		MntrAddr:       *mntr,
		LauncherPID:    *pid,
		LauncherOps:    launcherOps(*metricsURL),
		LauncherPhases: launcherPhases(*metricsURL),
		Progress: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "nodepool-bench: "+format+"\n", args...)
		},
	})
	res.Print(os.Stdout)
	if err != nil {
		fail(err)
	}
	if res.Errors > 0 || res.Failed > 0 {
		fail(fmt.Errorf("%d requests failed, %d errors", res.Failed, res.Errors))
	}
	if res.DeleteErr != "" {
		fail(fmt.Errorf("not every returned node was deleted: %s", res.DeleteErr))
	}
}

// launcherOps returns a function summing nodepool_zookeeper_requests_total
// over the launchers' /metrics endpoints, or nil when none is given.
func launcherOps(urls string) func() int64 {
	if urls == "" {
		return nil
	}
	return func() int64 {
		var total int64
		for _, u := range strings.Split(urls, ",") {
			resp, err := http.Get(u)
			if err != nil {
				fmt.Fprintln(os.Stderr, "nodepool-bench: scraping", u+":", err)
				continue
			}
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				line := sc.Text()
				if !strings.HasPrefix(line, "nodepool_zookeeper_requests_total{") {
					continue
				}
				f := strings.Fields(line)
				if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
					total += int64(v)
				}
			}
			resp.Body.Close()
		}
		return total
	}
}

// launcherPhases returns a function summing
// nodepool_zookeeper_phase_requests_total by phase over the launchers'
// /metrics endpoints, or nil when none is given.
func launcherPhases(urls string) func() map[string]int64 {
	if urls == "" {
		return nil
	}
	return func() map[string]int64 {
		out := map[string]int64{}
		for _, u := range strings.Split(urls, ",") {
			scrape(u, func(line string) {
				rest, ok := strings.CutPrefix(line, `nodepool_zookeeper_phase_requests_total{phase="`)
				if !ok {
					return
				}
				phase, val, ok := strings.Cut(rest, `"}`)
				if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); ok && err == nil {
					out[phase] += int64(v)
				}
			})
		}
		return out
	}
}

// scrape calls fn with each line of a /metrics page.
func scrape(u string, fn func(line string)) {
	resp, err := http.Get(u)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodepool-bench: scraping", u+":", err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		fn(sc.Text())
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "nodepool-bench:", err)
	os.Exit(1)
}

// waitLauncher waits until a launcher component is registered and then a
// second more (it registers before its pool workers start).
func waitLauncher(ctx context.Context, c *zkclient.Client, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		cs, err := c.Components(ctx, "launcher")
		if err == nil && len(cs) > 0 {
			time.Sleep(time.Second)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no launcher registered within %s (last error: %v)", limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
