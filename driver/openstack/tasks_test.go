package openstack

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/fakeopenstack"
)

// TaskDone counts API calls by provider, call and status.
func (c *counter) TaskDone(provider, call string, status int, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tasks == nil {
		c.tasks = map[string]int{}
	}
	c.tasks[fmt.Sprintf("%s %s %d", provider, call, status)]++
}

func TestAPICallsAreTimedPerCall(t *testing.T) {
	cloud := fakeopenstack.Setup(t, fakeopenstack.Options{})
	cfg := parse(t, "name: os\ncloud: fake\nrate: 0\ncloud-images: [{name: cirros}]\n"+basePools)
	cnt := &counter{m: map[string]int{}}
	a, err := Driver{}.Open(context.Background(), cfg, driver.Env{Services: cnt})
	require.NoError(t, err)
	ad := a.(*Adapter)
	cloud.AddServer(fakeopenstack.Server{Name: "other"})
	_, err = ad.ListInstances(context.Background())
	require.NoError(t, err)
	cnt.mu.Lock()
	defer cnt.mu.Unlock()
	require.Positive(t, cnt.tasks["os identity.POST.tokens 201"], "authentication: %v", cnt.tasks)
	require.Positive(t, cnt.tasks["os compute.GET.servers_detail 200"], "server listing: %v", cnt.tasks)
	for call := range cnt.tasks {
		require.NotContains(t, call, "identity.GET", "a service's discovery is named after the service")
	}
}
