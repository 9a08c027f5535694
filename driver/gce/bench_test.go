package gce_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/gce"
	"github.com/nodepool-go/nodepool/internal/fakegce"
)

// BenchmarkAPICallsThousandsOfNodes launches and deletes 2000 nodes at
// once with the production listing TTL, advancing every machine as the
// launcher does, and reports the Compute Engine API calls per minute:
// every machine polls the two shared listings, so listings stay at a few
// per TTL whatever the number of machines, and each node costs one insert
// and one delete. Run with -bench APICalls -benchtime 1x.
func BenchmarkAPICallsThousandsOfNodes(b *testing.B) {
	const nodes = 2000
	for i := 0; i < b.N; i++ {
		cloud, _ := fakegce.Setup(b, fakegce.Options{NoAuth: true, BuildTime: 4 * time.Second, DeleteTime: 2 * time.Second, ListDelay: time.Second})
		cloud.SetQuota("CPUS", 1e6)
		cloud.SetQuota("INSTANCES", 1e6)
		restore := gce.Override(cloud.ClientOptions(), 0) // the production TTL
		ad, cfg := open(b, cloud, "")
		restore()
		ctx := context.Background()
		start := time.Now()

		creates := make([]driver.CreateMachine, nodes)
		for j := range creates {
			creates[j] = ad.CreateMachine(spec(cfg, "small", fmt.Sprintf("%010d", j)))
		}
		ids := make([]string, 0, nodes)
		for pending := nodes; pending > 0; {
			pending = 0
			for j, m := range creates {
				if m == nil {
					continue
				}
				inst, err := m.Advance(ctx)
				switch {
				case err != nil && !driver.IsTransient(err):
					b.Fatal(err)
				case inst != nil:
					ids = append(ids, inst.ExternalID)
					creates[j] = nil
				default:
					pending++
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Two minutes of quota checks on a full provider: the launcher
		// lists instances on every quota refresh.
		for t := 0; t < 100; t++ {
			if _, err := ad.ListInstances(ctx); err != nil {
				b.Fatal(err)
			}
		}
		deletes := make([]driver.DeleteMachine, len(ids))
		for j, id := range ids {
			deletes[j] = ad.DeleteMachine(id)
		}
		for pending := len(deletes); pending > 0; {
			pending = 0
			for j, m := range deletes {
				if m == nil {
					continue
				}
				done, err := m.Advance(ctx)
				switch {
				case err != nil:
					b.Fatal(err)
				case done:
					deletes[j] = nil
				default:
					pending++
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		elapsed := time.Since(start)
		calls := cloud.Calls()
		total := 0
		var parts []string
		for k, v := range calls {
			total += v
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(parts)
		lists := calls["compute.instances.list"] + calls["compute.zoneOperations.list"]
		b.ReportMetric(float64(total)/elapsed.Minutes(), "calls/min")
		b.ReportMetric(float64(lists)/elapsed.Minutes(), "list-calls/min")
		b.ReportMetric(elapsed.Seconds(), "s")
		b.Logf("%d nodes created and deleted in %v: %d calls (%s)", nodes, elapsed.Round(time.Millisecond), total, strings.Join(parts, " "))
	}
}

// BenchmarkRateLimit measures the request rate a provider with rate: 20
// achieves when many callers list at once: about 20 requests per second.
func BenchmarkRateLimit(b *testing.B) {
	cloud, _ := fakegce.Setup(b, fakegce.Options{NoAuth: true})
	restore := gce.Override(cloud.ClientOptions(), 0)
	ad, _ := open(b, cloud, "rate: 20\n")
	restore()
	lc := ad.(driver.LeakCleaner)
	b.ResetTimer()
	start := time.Now()
	done := make(chan error)
	for i := 0; i < b.N; i++ {
		go func() {
			_, err := lc.ListResources(context.Background())
			done <- err
		}()
	}
	for i := 0; i < b.N; i++ {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cloud.Calls()["compute.instances.list"])/time.Since(start).Seconds(), "requests/s")
}
