package launcher

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepool-go/nodepool/internal/metrics"
)

// statsd is the launcher's metrics reporter: upstream's
// statsd keys, sent when STATSD_HOST or STATSD_PORT is set, mirrored into a
// Prometheus registry (see package internal/metrics for the name mapping).
// The environment is read on first use, i.e. when the launcher starts.
type statsd struct {
	once sync.Once
	r    *metrics.Reporter
}

// reporter returns the reporter, creating it from the environment.
func (s *statsd) reporter() *metrics.Reporter {
	s.once.Do(func() { s.r = metrics.FromEnv() })
	return s.r
}

func (s *statsd) incr(key string) { s.reporter().Incr(key) }

// launch records a launch result under every key upstream sends it.
func (s *statsd) launch(nl *nodeLaunch, result string) {
	var d time.Duration
	if !nl.firstTick.IsZero() {
		d = nl.p.l.now().Sub(nl.firstTick)
	}
	s.reporter().Launch(nl.p.cfg.Name, nl.node.AZ, nl.h.req.Requestor, result, d)
}

// MetricsHandler serves the launcher's figures in the Prometheus
// exposition format (the same figures that go to statsd).
func (l *Launcher) MetricsHandler() http.Handler {
	l.registerZKOps()
	return l.stats.reporter().Handler()
}

// zkOpsCollector exposes the launcher's client-side ZooKeeper request
// counts (nodepool_zookeeper_requests_total{op}) and the same requests by
// the phase of the launcher's work that sent them
// (nodepool_zookeeper_phase_requests_total{phase}), read when scraped.
type zkOpsCollector struct {
	l     *Launcher
	desc  *prometheus.Desc
	phase *prometheus.Desc
}

func (c zkOpsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.phase }

func (c zkOpsCollector) Collect(ch chan<- prometheus.Metric) {
	zk := c.l.ZooKeeper()
	if zk == nil {
		return
	}
	ops := zk.Ops()
	for op, v := range map[string]int64{"read": ops.Reads.Load(), "create": ops.Creates.Load(),
		"set": ops.Sets.Load(), "delete": ops.Deletes.Load(), "multi": ops.Multis.Load()} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), op)
	}
	for phase, v := range ops.ByPhase() {
		ch <- prometheus.MustNewConstMetric(c.phase, prometheus.CounterValue, float64(v), phase)
	}
}

// registerZKOps adds the ZooKeeper request counters and the request queue
// gauges to the registry once.
func (l *Launcher) registerZKOps() {
	l.zkOpsOnce.Do(func() {
		_ = l.stats.reporter().Registry().Register(zkOpsCollector{l: l, desc: prometheus.NewDesc(
			"nodepool_zookeeper_requests_total", "ZooKeeper requests sent by this launcher, by operation.",
			[]string{"op"}, nil), phase: prometheus.NewDesc(
			"nodepool_zookeeper_phase_requests_total", "ZooKeeper requests sent by this launcher, by phase of its work.",
			[]string{"phase"}, nil)})
		_ = l.stats.reporter().Registry().Register(newRequestCollector(l))
	})
}
