// Package kubernetes is the kubernetes driver: each node is a namespace of its own (label type namespace), or a namespace with one pod in it (type pod), with a service account restricted to that namespace whose token Zuul uses.
// The code is shared with the other Kubernetes-based drivers in
// driver/internal/kube, on client-go; the cluster is found through a
// kubeconfig context (KUBECONFIG or ~/.kube/config, read by clientcmd) or
// the in-cluster service account.
package kubernetes

import (
	"context"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/internal/kube"
)

// Name is the driver's registered name.
const Name = "kubernetes"

// Driver parses and opens kubernetes providers.
type Driver struct{}

func init() { driver.Register(Name, Driver{}) }

// ParseProvider reads one kubernetes provider entry.
func (Driver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	return kube.Parse(kube.Kubernetes, s)
}

// Open returns the provider's adapter.
func (Driver) Open(ctx context.Context, cfg *driver.ProviderConfig, env driver.Env) (driver.Adapter, error) {
	return kube.Open(ctx, cfg, env)
}
