package kubernetes_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/internal/kube"
	"github.com/nodepool-go/nodepool/driver/kubernetes"
	"github.com/nodepool-go/nodepool/internal/fakekube"
)

// BenchmarkAPICallsWhileWaiting measures the API calls per minute a
// provider makes while 2000 pod nodes wait for their pods to run (the
// launcher advances every machine every 20 ms), with the default list TTL
// and poll interval: the waits share one pod listing, so the figure does
// not grow with the number of nodes. Run with -benchtime=1x.
func BenchmarkAPICallsWhileWaiting(b *testing.B) {
	const nodes = 2000
	fake := fakekube.Setup(b, "fake")
	fake.PodStartDelay = time.Hour
	cfg := parse(b, provider)
	st := cfg.Settings.(*kube.ProviderSettings)
	st.QPS, st.Burst = 1e6, 1e6 // the set-up itself is not measured
	ad, err := kubernetes.Driver{}.Open(context.Background(), cfg, driver.Env{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	machines := make([]driver.CreateMachine, nodes)
	for i := range machines {
		machines[i] = ad.CreateMachine(spec(cfg, "pod-fedora", fmt.Sprintf("%010d", i)))
	}
	advanceAll := func() {
		for _, m := range machines {
			if _, err := m.Advance(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Until every pod exists.
	for fake.CallsBy()["POST pods"] < nodes {
		advanceAll()
		time.Sleep(20 * time.Millisecond)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		before, start := fake.Calls(), time.Now()
		for time.Since(start) < 10*time.Second {
			advanceAll()
			time.Sleep(20 * time.Millisecond)
		}
		b.ReportMetric(float64(fake.Calls()-before)/time.Since(start).Minutes(), "calls/min")
	}
}
