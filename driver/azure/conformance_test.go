package azure_test

import (
	"testing"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/drivertest"
	"github.com/nodepool-go/nodepool/internal/fakeazure"
)

func TestConformance(t *testing.T) {
	var cloud *fakeazure.Cloud
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) {
			c, ad, cfg := openFake(t, "")
			cloud = c
			return ad, cfg
		},
		ProvokeQuota: func(t *testing.T) { cloud.SetQuota(0, -1) },
		Concurrency:  8,
	})
}
