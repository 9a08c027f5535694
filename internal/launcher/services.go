package launcher

import (
	"time"

	"github.com/nodepool-go/nodepool/zkclient"
)

// services is what the launcher offers drivers as driver.Env.Services:
// its ZooKeeper connection, which the metastatic driver uses to request,
// lock and release backing nodes, and its metrics, where the OpenStack
// driver counts the leaked ports and floating IPs it removes itself.
type services struct {
	zk    *zkclient.Client
	stats *statsd
}

// ZooKeeper returns the launcher's ZooKeeper connection.
func (s services) ZooKeeper() *zkclient.Client { return s.zk }

// Incr adds n to a statsd counter (and its Prometheus series).
func (s services) Incr(key string, n int) {
	if s.stats == nil || n <= 0 {
		return
	}
	b := s.stats.reporter().Batch(true)
	for range n {
		b.Incr(key)
	}
	b.Send()
}

// TaskDone records one cloud API call (driver.TaskRecorder).
func (s services) TaskDone(provider, call string, status int, d time.Duration) {
	if s.stats == nil {
		return
	}
	s.stats.reporter().Task(provider, call, status, d)
}
