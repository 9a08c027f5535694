// Package openshift is the openshift driver: each node is an OpenShift project of its own, made through a ProjectRequest, with a service account bound to the project's admin role (label type project), plus one pod in it for pod labels.
// The code is shared with the other Kubernetes-based drivers in
// driver/internal/kube, on client-go; the cluster is found through a
// kubeconfig context (KUBECONFIG or ~/.kube/config, read by clientcmd) or
// the in-cluster service account.
package openshift

import (
	"context"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/internal/kube"
)

// Name is the driver's registered name.
const Name = "openshift"

// Driver parses and opens openshift providers.
type Driver struct{}

func init() { driver.Register(Name, Driver{}) }

// ParseProvider reads one openshift provider entry.
func (Driver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	return kube.Parse(kube.OpenShift, s)
}

// Open returns the provider's adapter.
func (Driver) Open(ctx context.Context, cfg *driver.ProviderConfig, env driver.Env) (driver.Adapter, error) {
	return kube.Open(ctx, cfg, env)
}
