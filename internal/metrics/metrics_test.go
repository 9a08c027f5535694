package metrics_test

import (
	"io"
	"math"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/metrics"
)

func TestMetricsMapping(t *testing.T) {
	for _, tc := range []struct {
		kind   metrics.Kind
		key    string
		name   string
		labels prometheus.Labels
	}{
		{metrics.Counter, "nodepool.launch.ready", "nodepool_launch_total",
			prometheus.Labels{"provider": "", "az": "", "requestor": "", "result": "ready"}},
		{metrics.Timer, "nodepool.launch.error.quota", "nodepool_launch_duration_seconds",
			prometheus.Labels{"provider": "", "az": "", "requestor": "", "result": "error.quota"}},
		{metrics.Counter, "nodepool.launch.provider.rax.error.zksession", "nodepool_launch_total",
			prometheus.Labels{"provider": "rax", "az": "", "requestor": "", "result": "error.zksession"}},
		{metrics.Counter, "nodepool.launch.provider.rax.az1.ready", "nodepool_launch_total",
			prometheus.Labels{"provider": "rax", "az": "az1", "requestor": "", "result": "ready"}},
		{metrics.Counter, "nodepool.launch.requestor.zuul_host.error.status", "nodepool_launch_total",
			prometheus.Labels{"provider": "", "az": "", "requestor": "zuul_host", "result": "error.status"}},
		{metrics.Gauge, "nodepool.nodes.in-use", "nodepool_nodes", prometheus.Labels{"state": "in-use"}},
		{metrics.Gauge, "nodepool.provider.p1.nodes.ready", "nodepool_provider_nodes",
			prometheus.Labels{"provider": "p1", "state": "ready"}},
		{metrics.Gauge, "nodepool.provider.rax.dfw.nodes.ready", "nodepool_provider_nodes",
			prometheus.Labels{"provider": "rax.dfw", "state": "ready"}},
		{metrics.Gauge, "nodepool.label.ubuntu.nodes.deleting", "nodepool_label_nodes",
			prometheus.Labels{"label": "ubuntu", "state": "deleting"}},
		{metrics.Gauge, "nodepool.provider.p1.max_servers", "nodepool_provider_max_servers",
			prometheus.Labels{"provider": "p1"}},
		{metrics.Gauge, "nodepool.tenant_limits.tenant-one.cores", "nodepool_tenant_limit",
			prometheus.Labels{"tenant": "tenant-one", "limit": "cores"}},
		{metrics.Counter, "nodepool.provider.p1.leaked.floatingips", "nodepool_provider_leaked_total",
			prometheus.Labels{"provider": "p1", "kind": "floatingips"}},
		{metrics.Gauge, "nodepool.provider.p1.nodes.deleted", "nodepool_provider_nodes",
			prometheus.Labels{"provider": "p1", "state": "deleted"}},
		{metrics.Gauge, "nodepool.dib_image_build.fake-image.qcow2.size", "nodepool_dib_image_build_size_bytes",
			prometheus.Labels{"image": "fake-image", "format": "qcow2"}},
		{metrics.Gauge, "nodepool.dib_image_build.fake-image.status.rc", "nodepool_dib_image_build_rc",
			prometheus.Labels{"image": "fake-image"}},
		{metrics.Gauge, "nodepool.dib_image_build.fake-image.status.last_build",
			"nodepool_dib_image_build_last_build_timestamp_seconds", prometheus.Labels{"image": "fake-image"}},
		{metrics.Timer, "nodepool.dib_image_build.fake-image.status.duration", "nodepool_dib_image_build_duration_seconds",
			prometheus.Labels{"image": "fake-image"}},
		{metrics.Counter, "nodepool.image_update.fake-image.p1", "nodepool_image_update_total",
			prometheus.Labels{"image": "fake-image", "provider": "p1"}},
		{metrics.Timer, "nodepool.image_update.fake-image.p1", "nodepool_image_update_duration_seconds",
			prometheus.Labels{"image": "fake-image", "provider": "p1"}},
		{metrics.Gauge, "nodepool.image_build_requests", "nodepool_image_build_requests", prometheus.Labels{}},
		{metrics.Counter, "nodepool.something.new-thing", "nodepool_something_new_thing_total", prometheus.Labels{}},
		{metrics.Timer, "other.x", "other_x_duration_seconds", prometheus.Labels{}},
	} {
		s := metrics.Map(tc.kind, tc.key)
		require.Equal(t, tc.name, s.Name, tc.key)
		require.Equal(t, tc.labels, s.Labels, tc.key)
	}
}

// listen returns a UDP socket and a function reading its datagrams' lines
// until want is seen (or the deadline passes).
func listen(t *testing.T) (*net.UDPConn, func(want ...string) []string) {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	var lines []string
	return c, func(want ...string) []string {
		t.Helper()
		buf := make([]byte, 65536)
		deadline := time.Now().Add(10 * time.Second)
		for {
			missing := 0
			for _, w := range want {
				found := false
				for _, l := range lines {
					if l == w {
						found = true
					}
				}
				if !found {
					missing++
				}
			}
			if missing == 0 {
				return lines
			}
			require.NoError(t, c.SetReadDeadline(deadline))
			n, err := c.Read(buf)
			require.NoError(t, err, "waiting for %q; have %q", want, lines)
			require.LessOrEqual(t, n, metrics.MaxPacket)
			lines = append(lines, strings.Split(string(buf[:n]), "\n")...)
		}
	}
}

func scrape(t *testing.T, r *metrics.Reporter) string {
	t.Helper()
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

func TestMetricsReporterStatsdAndPrometheus(t *testing.T) {
	c, read := listen(t)
	r := metrics.New(metrics.WithStatsd(c.LocalAddr().String()))
	defer r.Close()
	require.True(t, r.StatsdEnabled())

	r.Launch("sim", "az1", "zuul.example:1", "ready", 1500*time.Millisecond)
	r.Launch("sim", "", "", "error.quota", 0)
	r.Incr("nodepool.provider.sim.leaked.instances")
	r.Gauge("nodepool.nodes.ready", 3)
	r.Gauge("nodepool.tenant_limits.t.cores", math.Inf(1))
	r.Gauge("nodepool.tenant_limits.t.ram", 1024.5)
	r.Task("sim", "compute.GET.servers_detail", 200, 250*time.Millisecond)
	r.Task("sim", "compute.POST.servers", 0, time.Second)
	r.DeletedNode("sim")

	lines := read(
		"nodepool.launch.ready:1500.000000|ms", "nodepool.launch.ready:1|c",
		"nodepool.launch.provider.sim.ready:1500.000000|ms", "nodepool.launch.provider.sim.ready:1|c",
		"nodepool.launch.provider.sim.az1.ready:1500.000000|ms", "nodepool.launch.provider.sim.az1.ready:1|c",
		"nodepool.launch.requestor.zuul_example_1.ready:1500.000000|ms", "nodepool.launch.requestor.zuul_example_1.ready:1|c",
		"nodepool.launch.error.quota:1|c", "nodepool.launch.provider.sim.error.quota:1|c",
		"nodepool.provider.sim.leaked.instances:1|c",
		"nodepool.nodes.ready:3|g",
		"nodepool.tenant_limits.t.cores:inf|g",
		"nodepool.tenant_limits.t.ram:1024.5|g",
		"nodepool.task.sim.compute.GET.servers_detail.200:250.000000|ms",
		"nodepool.task.sim.compute.GET.servers_detail.200:1|c",
		"nodepool.task.sim.compute.GET.servers_detail.attempted:1|c",
		"nodepool.task.sim.compute.POST.servers.failed:1|c",
		"nodepool.task.sim.compute.POST.servers.attempted:1|c",
	)
	for _, l := range lines {
		require.NotContains(t, l, "requestor..", "no requestor key without a requestor")
		require.NotContains(t, l, "nodes.deleted", "deleted nodes are not counted in statsd")
	}

	text := scrape(t, r)
	for _, want := range []string{
		`nodepool_launch_total{az="az1",provider="sim",requestor="zuul_example_1",result="ready"} 1`,
		`nodepool_launch_total{az="",provider="sim",requestor="",result="error.quota"} 1`,
		`nodepool_launch_duration_seconds_sum{az="az1",provider="sim",requestor="zuul_example_1",result="ready"} 1.5`,
		`nodepool_launch_duration_seconds_count{az="az1",provider="sim",requestor="zuul_example_1",result="ready"} 1`,
		`nodepool_provider_leaked_total{kind="instances",provider="sim"} 1`,
		`nodepool_nodes{state="ready"} 3`,
		`nodepool_tenant_limit{limit="cores",tenant="t"} +Inf`,
		`nodepool_tenant_limit{limit="ram",tenant="t"} 1024.5`,
		`nodepool_task_duration_seconds_sum{call="compute.GET.servers_detail",provider="sim",status="200"} 0.25`,
		`nodepool_task_duration_seconds_count{call="compute.POST.servers",provider="sim",status="failed"} 1`,
		`nodepool_provider_nodes_deleted_total{provider="sim"} 1`,
		"# TYPE nodepool_launch_duration_seconds histogram",
		"go_goroutines",
	} {
		require.Contains(t, text, want)
	}
}

func TestMetricsBatchSplitsPackets(t *testing.T) {
	c, read := listen(t)
	r := metrics.New(metrics.WithStatsd(c.LocalAddr().String()))
	defer r.Close()
	b := r.Batch(true)
	var want []string
	for i := range 100 {
		key := "nodepool.label.label-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + ".nodes.ready"
		b.Gauge(key, float64(i))
		want = append(want, key+":"+itoa(i)+"|g")
	}
	b.Send()
	read(want...) // each datagram is checked against MaxPacket
}

func TestMetricsWithoutStatsd(t *testing.T) {
	t.Setenv("STATSD_HOST", "")
	t.Setenv("STATSD_PORT", "")
	r := metrics.FromEnv()
	require.False(t, r.StatsdEnabled())
	r.Incr("nodepool.provider.p.leaked.ports")
	b := r.Batch(true)
	b.Gauge("nodepool.nodes.used", 2)
	b.Send()
	text := scrape(t, r)
	require.Contains(t, text, `nodepool_provider_leaked_total{kind="ports",provider="p"} 1`)
	require.Contains(t, text, `nodepool_nodes{state="used"} 2`)
}

func TestMetricsStatsdAddrFromEnv(t *testing.T) {
	t.Setenv("STATSD_HOST", "")
	t.Setenv("STATSD_PORT", "")
	_, ok := metrics.StatsdAddrFromEnv()
	require.False(t, ok)
	t.Setenv("STATSD_PORT", "9125")
	addr, ok := metrics.StatsdAddrFromEnv()
	require.True(t, ok)
	require.Equal(t, "localhost:9125", addr)
	t.Setenv("STATSD_HOST", "10.0.0.1")
	t.Setenv("STATSD_PORT", "")
	addr, _ = metrics.StatsdAddrFromEnv()
	require.Equal(t, "10.0.0.1:8125", addr)
}

func itoa(i int) string { return strconv.Itoa(i) }
