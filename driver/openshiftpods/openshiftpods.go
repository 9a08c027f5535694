// Package openshiftpods is the openshiftpods driver: each node is one pod in the pool's existing project (the pool's name), reached with the provider's own service-account token.
// The code is shared with the other Kubernetes-based drivers in
// driver/internal/kube, on client-go; the cluster is found through a
// kubeconfig context (KUBECONFIG or ~/.kube/config, read by clientcmd) or
// the in-cluster service account.
package openshiftpods

import (
	"context"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/internal/kube"
)

// Name is the driver's registered name.
const Name = "openshiftpods"

// Driver parses and opens openshiftpods providers.
type Driver struct{}

func init() { driver.Register(Name, Driver{}) }

// ParseProvider reads one openshiftpods provider entry.
func (Driver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	return kube.Parse(kube.OpenShiftPods, s)
}

// Open returns the provider's adapter.
func (Driver) Open(ctx context.Context, cfg *driver.ProviderConfig, env driver.Env) (driver.Adapter, error) {
	return kube.Open(ctx, cfg, env)
}
