package ibmvpc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nodepool-go/nodepool/driver"
)

// BenchmarkAPICallsThousandsOfNodes launches 2000 instances at once, with
// every machine advanced every 20 ms as the launcher does, and measures
// the API calls: the per-node calls (one create) and the shared polling
// listings. Time is scaled: the listing TTL is 100 ms here; the reported
// calls/min are projected to the production TTL (listTTL).
//
//	go test -run '^$' -bench APICalls -benchtime 1x ./driver/ibmvpc/
func BenchmarkAPICallsThousandsOfNodes(b *testing.B) {
	const n = 2000
	prodTTL := defaultListTTL
	old := listTTL
	listTTL = 100 * time.Millisecond
	defer func() { listTTL = old }()
	for it := 0; it < b.N; it++ {
		c, ad, cfg := setup(b)
		c.SetStepDelay(300 * time.Millisecond)
		before := c.Calls()
		start := time.Now()
		machines := make([]driver.CreateMachine, n)
		for i := range machines {
			machines[i] = ad.CreateMachine(spec(cfg, "private", "debian-private", fmt.Sprintf("%010d", i)))
		}
		done := 0
		finished := make([]bool, n)
		for done < n {
			for i, m := range machines {
				if finished[i] {
					continue
				}
				inst, err := m.Advance(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				if inst != nil {
					finished[i] = true
					done++
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		elapsed := time.Since(start)
		after := c.Calls()
		diff := map[string]int{}
		for k, v := range after {
			if d := v - before[k]; d > 0 {
				diff[k] = d
			}
		}
		creates := diff["POST /v1/instances"]
		windows := float64(elapsed) / float64(listTTL)
		listings := float64(diff["LIST /v1/instances"]) / windows
		pages := float64(diff["GET /v1/instances"]) / float64(max(diff["LIST /v1/instances"], 1))
		// Projected: creates plus the instance listings at the production
		// TTL, each of `pages` pages.
		perMin := listings * pages * float64(time.Minute) / float64(prodTTL)
		b.ReportMetric(float64(creates)/n, "creates/node")
		b.ReportMetric(listings, "listings/ttl")
		b.ReportMetric(perMin, "poll-calls/min")
		b.Logf("%d nodes in %v: calls %v; %.2f instance listings per TTL of %.0f pages: %.0f polling calls/min at the production TTL %v",
			n, elapsed.Round(time.Millisecond), diff, listings, pages, perMin, prodTTL)
	}
}
