package aws_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/aws"
	"github.com/nodepool-go/nodepool/internal/fakeaws"
)

// pollMany starts n create machines of instances that stay pending and,
// once every instance exists, advances each every 20 ms as the launcher
// does for d; it returns the DescribeInstances calls made while polling
// and the time that took.
func pollMany(t testing.TB, cloud *fakeaws.Cloud, n int, d time.Duration) (int, time.Duration) {
	ad, cfg := open(t, baseProvider)
	cloud.SetQuota("L-1216C47A", float64(4*n))
	machines := make([]driver.CreateMachine, n)
	for i := range machines {
		machines[i] = ad.CreateMachine(spec(cfg, "small", fmt.Sprintf("%010d", i)))
	}
	advance := func(m driver.CreateMachine) {
		inst, err := m.Advance(context.Background())
		require.NoError(t, err)
		require.Nil(t, inst, "instances stay pending")
		time.Sleep(20 * time.Millisecond)
	}
	var wg sync.WaitGroup
	for _, m := range machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m.ExternalID() == "" {
				advance(m)
			}
		}()
	}
	wg.Wait()
	before := cloud.Calls()["DescribeInstances"]
	start := time.Now()
	for _, m := range machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < d {
				advance(m)
			}
		}()
	}
	wg.Wait()
	return cloud.Calls()["DescribeInstances"] - before, time.Since(start)
}

// TestListingIsSharedByAllMachines: 500 machines polling for their
// instances cost one DescribeInstances per listing interval, not one per
// machine.
func TestListingIsSharedByAllMachines(t *testing.T) {
	cloud := useFake(t, fakeaws.Options{PendingTime: time.Hour})
	const ttl = 50 * time.Millisecond
	t.Cleanup(aws.SetTimings(ttl, time.Millisecond))
	calls, took := pollMany(t, cloud, 500, time.Second)
	require.Equal(t, 500, cloud.Calls()["RunInstances"])
	require.LessOrEqual(t, calls, int(took/ttl)+2, "one listing per %v for all 500 machines", ttl)
	require.Positive(t, calls)
}

// BenchmarkAPICallsPerMinute measures the calls a provider with 2000
// instances being launched makes per minute with the default listing
// interval: go test -run - -bench APICalls ./driver/aws/
func BenchmarkAPICallsPerMinute(b *testing.B) {
	for i := 0; i < b.N; i++ {
		cloud := fakeaws.Setup(b, fakeaws.Options{PendingTime: time.Hour})
		b.Setenv("AWS_ENDPOINT_URL", cloud.URL)
		b.Setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
		b.Setenv("AWS_SECRET_ACCESS_KEY", "fake")
		b.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		const window = 20 * time.Second
		calls, took := pollMany(b, cloud, 2000, window)
		perMin := float64(calls) * float64(time.Minute) / float64(took)
		total := 0
		for k, v := range cloud.Calls() {
			if k != "RunInstances" {
				total += v
			}
		}
		b.ReportMetric(perMin, "DescribeInstances/min")
		b.ReportMetric(float64(total)*float64(time.Minute)/float64(took), "non-create-calls/min")
	}
}
