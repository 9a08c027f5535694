package azure_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/azure"
)

// BenchmarkThousandsOfNodes launches and deletes 2000 nodes at once
// through one adapter against the fake (VM creation taking 1 s, listings
// lagging 0.5 s, listings refreshed every 2 s as in production) with
// every machine advanced every 20 ms, as the launcher does, and reports
// the API calls per minute: writes grow with the nodes, the polling does
// not (it reads the shared listings). Run with -benchtime=1x.
func BenchmarkThousandsOfNodes(b *testing.B) {
	const nodes = 2000
	defer azure.SetListTTL(2 * time.Second)()
	for i := 0; i < b.N; i++ {
		cloud, ad, cfg := openFake(b, "")
		cloud.SetDelays(time.Second, 500*time.Millisecond)
		start := time.Now()
		machines := make([]driver.CreateMachine, nodes)
		for j := range machines {
			machines[j] = ad.CreateMachine(spec(cfg, "bionic", fmt.Sprintf("%010d", j)))
		}
		advanceAll(b, len(machines), func(j int) (bool, error) {
			inst, err := machines[j].Advance(context.Background())
			return inst != nil, err
		})
		created := time.Since(start)
		deletes := make([]driver.DeleteMachine, nodes)
		for j := range deletes {
			deletes[j] = ad.DeleteMachine(machines[j].ExternalID())
		}
		advanceAll(b, len(deletes), func(j int) (bool, error) { return deletes[j].Advance(context.Background()) })
		total := time.Since(start)
		calls := cloud.Calls()
		b.ReportMetric(float64(calls)/total.Minutes(), "calls/min")
		b.ReportMetric(created.Seconds(), "s-to-create-all")
		b.ReportMetric(total.Seconds(), "s-total")
		var kinds []string
		for _, k := range []string{"PUT publicipaddresses", "PUT networkinterfaces", "PUT virtualmachines", "GET publicipaddresses",
			"GET networkinterfaces", "GET virtualmachines", "DELETE virtualmachines", "DELETE networkinterfaces",
			"DELETE publicipaddresses", "DELETE disks", "GET skus", "POST token"} {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, cloud.CallsOf(k)))
		}
		sort.Strings(kinds)
		b.Logf("%d nodes created in %v, deleted after %v; %d API calls (%.0f/min): %s", nodes, created.Round(time.Millisecond),
			total.Round(time.Millisecond), calls, float64(calls)/total.Minutes(), strings.Join(kinds, " "))
	}
}

// advanceAll advances n machines every 20 ms (32 at a time, as the
// launcher does) until all are done.
func advanceAll(b *testing.B, n int, advance func(int) (bool, error)) {
	done := make([]bool, n)
	left := n
	deadline := time.Now().Add(5 * time.Minute)
	for left > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("%d machines not done", left)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		sem := make(chan struct{}, 32)
		for j := 0; j < n; j++ {
			if done[j] {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				ok, err := advance(j)
				if err != nil && !driver.IsTransient(err) {
					b.Errorf("machine %d: %v", j, err)
				}
				if ok || (err != nil && !driver.IsTransient(err)) {
					mu.Lock()
					done[j] = true
					left--
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		time.Sleep(20 * time.Millisecond)
	}
}
