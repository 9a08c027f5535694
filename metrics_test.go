package nodepool_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/webapp"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// statsdLine is one received statsd line and the socket that sent it
// (each launcher has its own).
type statsdLine struct {
	from string
	text string
}

// statsdSink collects the lines sent to a local UDP port.
type statsdSink struct {
	t     *testing.T
	conn  *net.UDPConn
	mu    sync.Mutex
	lines []statsdLine
	seen  chan struct{}
}

// listenStatsd points STATSD_HOST/STATSD_PORT at a fresh UDP socket;
// launchers created afterwards report there.
func listenStatsd(t *testing.T) *statsdSink {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Setenv("STATSD_HOST", "127.0.0.1")
	t.Setenv("STATSD_PORT", strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port))
	s := &statsdSink{t: t, conn: c, seen: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			for _, l := range strings.Split(string(buf[:n]), "\n") {
				s.lines = append(s.lines, statsdLine{from: from.String(), text: l})
			}
			s.mu.Unlock()
			select {
			case s.seen <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return s
}

// snapshot returns the lines received so far.
func (s *statsdSink) snapshot() []statsdLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]statsdLine(nil), s.lines...)
}

// waitFor waits until cond holds for the lines received so far.
func (s *statsdSink) waitFor(msg string, cond func([]statsdLine) bool) []statsdLine {
	s.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		lines := s.snapshot()
		if cond(lines) {
			return lines
		}
		select {
		case <-s.seen:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			s.t.Fatalf("statsd: %s; got %d lines: %v", msg, len(lines), lines)
		}
	}
}

// has reports whether a line matching re was received (from any sender
// when from is "").
func has(lines []statsdLine, from, re string) bool {
	rx := regexp.MustCompile("^" + re + "$")
	for _, l := range lines {
		if (from == "" || l.from == from) && rx.MatchString(l.text) {
			return true
		}
	}
	return false
}

// gauges returns the latest value of every gauge sent by from.
func gauges(lines []statsdLine, from string) map[string]string {
	out := map[string]string{}
	for _, l := range lines {
		if l.from != from || !strings.HasSuffix(l.text, "|g") {
			continue
		}
		k, v, _ := strings.Cut(strings.TrimSuffix(l.text, "|g"), ":")
		out[k] = v
	}
	return out
}

// senders returns the senders of lines with the given prefix.
func senders(lines []statsdLine, prefix string) []string {
	set := map[string]bool{}
	for _, l := range lines {
		if strings.HasPrefix(l.text, prefix) {
			set[l.from] = true
		}
	}
	var out []string
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// runLauncher is startLauncher with an explicit hostname and a stop
// function for stopping it before the test ends.
func runLauncher(t *testing.T, chroot, host, yaml string) (*nodepool.Launcher, func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	cfg, err := nodepool.LoadConfig(path, "")
	require.NoError(t, err)
	zk := zktest.ConnectChroot(t, chroot)
	l, err := nodepool.NewLauncher(cfg, nodepool.WithZooKeeper(zk), nodepool.WithHostname(host))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Error("launcher did not stop")
			}
		})
	}
	t.Cleanup(stop)
	require.Eventually(t, l.Ready, 20*time.Second, 20*time.Millisecond)
	return l, stop
}

const otherConfig = `
labels:
  - name: other
tenant-resource-limits:
  - tenant-name: tenant.one
    max-cores: 64
providers:
  - name: sim2
    driver: simcloud
    cloud: %s
    pools:
      - name: main
        max-servers: 3
        labels:
          - name: other
`

// statsLeader returns the identifier of the stats election's leader.
func statsLeader(t *testing.T, ctx context.Context, zk *zkclient.Client) string {
	t.Helper()
	children, err := zk.Children(ctx, zkclient.StatsElection)
	require.NoError(t, err)
	require.NotEmpty(t, children)
	sort.Slice(children, func(i, j int) bool {
		return children[i][strings.LastIndex(children[i], "__lock__"):] < children[j][strings.LastIndex(children[j], "__lock__"):]
	})
	data, _, err := zk.Get(ctx, zkclient.StatsElection+"/"+children[0])
	require.NoError(t, err)
	return string(data)
}

func TestMetricsStatsdAndPrometheusForLaunchedAndDeletedNode(t *testing.T) {
	sink := listenStatsd(t)
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	l1, stop1 := runLauncher(t, chroot, "stats-one", simYAML("sim", cloud, 10))
	l2, stop2 := runLauncher(t, chroot, "stats-two", sprintf(otherConfig, cloud+"-b"))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	req, err := zuulsim.Submit(ctx, zk, []string{"small"}, zuulsim.Options{SystemID: "zuul.system:1"})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	node, err := zk.GetNode(ctx, got.Nodes[0])
	require.NoError(t, err)

	// Launch result: timer and counter under every key.
	keys := []string{"nodepool.launch.ready", "nodepool.launch.provider.sim.ready",
		"nodepool.launch.requestor.zuul_system_1.ready"}
	if node.AZ != "" {
		keys = append(keys, "nodepool.launch.provider.sim."+node.AZ+".ready")
	}
	sink.waitFor("launch result keys", func(lines []statsdLine) bool {
		for _, k := range keys {
			if !has(lines, "", regexp.QuoteMeta(k)+`:[0-9]+\.[0-9]{6}\|ms`) || !has(lines, "", regexp.QuoteMeta(k)+`:1\|c`) {
				return false
			}
		}
		return true
	})

	// Node gauges from the elected reporter only.
	lines := sink.waitFor("ready node gauges", func(lines []statsdLine) bool {
		for _, from := range senders(lines, "nodepool.nodes.") {
			g := gauges(lines, from)
			if g["nodepool.nodes.ready"] == "1" && g["nodepool.provider.sim.nodes.ready"] == "1" &&
				g["nodepool.label.small.nodes.ready"] == "1" {
				return true
			}
		}
		return false
	})
	reporters := senders(lines, "nodepool.nodes.")
	require.Len(t, reporters, 1, "only the elected launcher reports node gauges")
	leader := reporters[0]
	g := gauges(lines, leader)
	for _, key := range []string{"nodepool.nodes.building", "nodepool.nodes.deleted", "nodepool.provider.sim2.nodes.ready",
		"nodepool.label.other.nodes.ready", "nodepool.label.large.nodes.in-use"} {
		require.Equal(t, "0", g[key], "%s is initialised to 0", key)
	}

	// Per pool-worker gauges from both launchers.
	lines = sink.waitFor("limit gauges", func(lines []statsdLine) bool {
		return has(lines, "", `nodepool\.provider\.sim\.max_servers:10\|g`) &&
			has(lines, "", `nodepool\.provider\.sim2\.max_servers:3\|g`) &&
			has(lines, "", `nodepool\.tenant_limits\.tenant_one\.cores:64\|g`)
	})
	require.Len(t, senders(lines, "nodepool.provider.sim"), 2)
	// Unset limits are sent as upstream sends them.
	sink.waitFor("infinite limits", func(lines []statsdLine) bool {
		return has(lines, "", `nodepool\.tenant_limits\.tenant_one\.ram:inf\|g`)
	})

	// Use and return the node: it is deleted.
	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))
	sink.waitFor("deleted node", func(lines []statsdLine) bool {
		g := gauges(lines, leader)
		return g["nodepool.nodes.ready"] == "0" && g["nodepool.nodes.used"] == "0" &&
			g["nodepool.nodes.deleting"] == "0" && g["nodepool.provider.sim.nodes.ready"] == "0"
	})
	require.Len(t, senders(sink.snapshot(), "nodepool.nodes."), 1)
	require.False(t, has(sink.snapshot(), "", `.*nodes\.deleted:[^|]*\|c`), "no counter shares a gauge's key")

	// Prometheus carries the same figures (node gauges on every launcher,
	// computed from its own cache).
	srv := httptest.NewServer(webapp.New(l1.ZooKeeper(), l1.Ready, webapp.WithMetrics(l1.MetricsHandler())))
	defer srv.Close()
	requireScrape(t, srv.URL+"/metrics",
		`nodepool_launch_total\{az="[^"]*",provider="sim",requestor="zuul_system_1",result="ready"\} 1`,
		`nodepool_launch_duration_seconds_count\{az="[^"]*",provider="sim",requestor="zuul_system_1",result="ready"\} 1`,
		`nodepool_provider_nodes_deleted_total\{provider="sim"\} 1`,
		`nodepool_nodes\{state="ready"\} 0`,
		`nodepool_provider_nodes\{provider="sim",state="ready"\} 0`,
		`nodepool_label_nodes\{label="small",state="used"\} 0`,
		`nodepool_provider_max_servers\{provider="sim"\} 10`,
	)
	srv2 := httptest.NewServer(l2.MetricsHandler())
	defer srv2.Close()
	text := requireScrape(t, srv2.URL,
		`nodepool_tenant_limit\{limit="cores",tenant="tenant_one"\} 64`,
		`nodepool_tenant_limit\{limit="ram",tenant="tenant_one"\} \+Inf`,
		`nodepool_provider_max_servers\{provider="sim2"\} 3`,
		`nodepool_nodes\{state="ready"\} 0`,
	)
	require.NotContains(t, text, `provider="sim",requestor=`, "launch figures stay with the launcher that launched")
	code, _ := metricsGet(t, srv.URL+"/ready")
	require.Equal(t, http.StatusOK, code, "the status routes still work")

	// The other launcher takes over the election when the leader stops.
	id := statsLeader(t, ctx, zk)
	require.Contains(t, []string{"stats-one-" + strconv.Itoa(os.Getpid()), "stats-two-" + strconv.Itoa(os.Getpid())}, id)
	if id == "stats-one-"+strconv.Itoa(os.Getpid()) {
		stop1()
	} else {
		stop2()
	}
	sink.waitFor("a second node-gauge reporter after the leader stopped", func(lines []statsdLine) bool {
		return len(senders(lines, "nodepool.nodes.")) == 2
	})
}

// requireScrape waits until the exposition at url has a line matching
// each regular expression (gauges follow the node cache within a second),
// and returns it.
func requireScrape(t *testing.T, url string, res ...string) string {
	t.Helper()
	var text string
	deadline := time.Now().Add(20 * time.Second)
	for {
		var code int
		code, text = metricsGet(t, url)
		require.Equal(t, http.StatusOK, code)
		missing := ""
		for _, re := range res {
			if !regexp.MustCompile(`(?m)^` + re + `$`).MatchString(text) {
				missing = re
				break
			}
		}
		if missing == "" {
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line matches %s in:\n%s", missing, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricsGet fetches url and returns the status code and body.
func metricsGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestMetricsWithoutStatsdPrometheusOnlyAndNoElection(t *testing.T) {
	t.Setenv("STATSD_HOST", "")
	t.Setenv("STATSD_PORT", "")
	zk, chroot := zktest.Connect(t)
	l := launchertest.StartChroot(t, chroot, simYAML("sim", "cloud-"+chroot[1:], 5))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := httptest.NewServer(l.MetricsHandler())
	defer srv.Close()
	require.Eventually(t, func() bool {
		_, text := metricsGet(t, srv.URL)
		return strings.Contains(text, `nodepool_provider_nodes{provider="sim",state="ready"} 0`) &&
			strings.Contains(text, `nodepool_provider_max_servers{provider="sim"} 5`)
	}, 20*time.Second, 50*time.Millisecond)
	children, err := zk.Children(ctx, zkclient.StatsElection)
	if err == nil {
		require.Empty(t, children, "launchers without statsd do not take part in the stats election")
	}
}
