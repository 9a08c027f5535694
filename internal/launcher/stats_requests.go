package launcher

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepool-go/nodepool/zkclient"
)

// requestCollector exposes the node request queue, read from the request
// cache when scraped: nodepool_requests{state} and the age of the oldest
// waiting request, nodepool_request_oldest_waiting_seconds. Both are
// Prometheus only; statsd gets no key upstream does not send.
type requestCollector struct {
	l      *Launcher
	count  *prometheus.Desc
	oldest *prometheus.Desc
}

func newRequestCollector(l *Launcher) requestCollector {
	return requestCollector{l: l,
		count: prometheus.NewDesc("nodepool_requests", "Node requests in ZooKeeper, by state.",
			[]string{"state"}, nil),
		oldest: prometheus.NewDesc("nodepool_request_oldest_waiting_seconds",
			"Age of the oldest requested or pending node request (0 when none waits).", nil, nil),
	}
}

func (c requestCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.count; ch <- c.oldest }

func (c requestCollector) Collect(ch chan<- prometheus.Metric) {
	l := c.l
	// Run creates the cache before the launcher becomes ready; the atomic
	// ready flag orders that write before this read.
	if !l.Ready() {
		return
	}
	cache := l.requests
	counts := map[zkclient.RequestState]int{zkclient.RequestRequested: 0, zkclient.RequestPending: 0,
		zkclient.RequestFulfilled: 0, zkclient.RequestFailed: 0}
	now := float64(l.now().UnixNano()) / 1e9
	oldest := 0.0
	for _, r := range cache.List() {
		counts[r.State]++
		if r.State != zkclient.RequestRequested && r.State != zkclient.RequestPending {
			continue
		}
		t := r.CreatedTime
		if t <= 0 {
			t = r.StateTime
		}
		if t > 0 && now-t > oldest {
			oldest = now - t
		}
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(n), string(st))
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, oldest)
}
