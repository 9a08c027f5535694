package launcher

import (
	"math"
	"testing"

	"github.com/nodepool-go/nodepool/driver"
)

func TestMaxServersSumsAsUpstream(t *testing.T) {
	pools := func(max ...int) *driver.ProviderConfig {
		pc := &driver.ProviderConfig{}
		for _, m := range max {
			pc.Pools = append(pc.Pools, &driver.PoolConfig{MaxServers: m})
		}
		return pc
	}
	if got := maxServers(pools(3, 0, 4)); got != 7 {
		t.Errorf("3+0+4: %v", got)
	}
	if got := maxServers(pools(3, driver.Unlimited)); !math.IsInf(got, 1) {
		t.Errorf("an unlimited pool: %v, want +Inf (sent as inf)", got)
	}
	if got := maxServers(pools()); got != 0 {
		t.Errorf("no pools: %v", got)
	}
}
