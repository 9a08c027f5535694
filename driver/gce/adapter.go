package gce

import (
	"context"
	"errors"

	"github.com/nodepool-go/nodepool/driver"
)

// Open is not available yet.
func (Driver) Open(context.Context, *driver.ProviderConfig, driver.Env) (driver.Adapter, error) {
	return nil, errors.New("gce: not available yet")
}
