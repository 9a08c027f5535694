package quota_test

import (
	"fmt"

	"github.com/nodepool-go/nodepool/quota"
)

// Example decides whether a request fits a pool, the way the launcher
// does before it launches nodes: the pool's limits minus what its nodes
// use now must cover what the request's nodes need.
func Example() {
	// A pool with max-servers: 10 and max-cores: 40; max-ram is not
	// configured, so RAM is unlimited (and so is every resource the limit
	// does not name: its default is Inf).
	limits := quota.New(40, 10, quota.Inf, quota.Inf, nil)

	// Eight nodes of a label costing 4 cores and 8 GiB each are running.
	perNode := quota.New(4, 1, 8192, 0, nil)
	used := quota.Zero()
	used.AddN(perNode, 8)

	remaining := limits.Clone()
	remaining.Sub(used)
	fmt.Println("used:     ", used)
	fmt.Println("remaining:", remaining)

	// Requests for two and for three more nodes of that label.
	for _, n := range []float64{2, 3} {
		need := quota.Zero()
		need.AddN(perNode, n)
		left := remaining.Clone()
		left.Sub(need)
		if left.NonNegative() {
			fmt.Printf("%v nodes need %v: fits, leaving %v\n", n, need, left)
		} else {
			fmt.Printf("%v nodes need %v: over the limit on %v\n", n, need, left.Negative())
		}
	}
	// Output:
	// used:      {cores: 32, instances: 8, ram: 65536}
	// remaining: {cores: 8, instances: 2, ram: inf}
	// 2 nodes need {cores: 8, instances: 2, ram: 16384}: fits, leaving {cores: 0, instances: 0, ram: inf}
	// 3 nodes need {cores: 12, instances: 3, ram: 24576}: over the limit on [cores instances]
}

// ExampleResources_Sub shows the default rules: a resource that one side
// lacks counts as that side's default, so a limit that does not mention a
// resource leaves it unlimited, and a need that does not mention it
// consumes none of it.
func ExampleResources_Sub() {
	// A cloud reports cores and instances, and a volume limit besides.
	cloud := quota.New(100, 20, quota.Inf, quota.Inf, map[string]float64{quota.Volumes: 5})
	// A node that needs a volume; it says nothing of other resources.
	node := quota.FromMap(map[string]float64{quota.Cores: 2, quota.Instances: 1, quota.Volumes: 1}, 0)

	left := cloud.Clone()
	left.Sub(node)
	fmt.Println(left)
	fmt.Println("gpus left:", quota.FormatNumber(left.Get("gpus")))
	// Output:
	// {cores: 98, instances: 19, ram: inf, volumes: 4}
	// gpus left: inf
}
