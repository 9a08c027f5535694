package launcher

import (
	"github.com/nodepool-go/nodepool/internal/pyjson"
	"github.com/nodepool-go/nodepool/quota"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Node states, re-exported from zkclient.
const (
	NodeInit     = zkclient.NodeInit
	NodeBuilding = zkclient.NodeBuilding
	NodeReady    = zkclient.NodeReady
	NodeInUse    = zkclient.NodeInUse
	NodeUsed     = zkclient.NodeUsed
	NodeHold     = zkclient.NodeHold
	NodeDeleting = zkclient.NodeDeleting
	NodeFailed   = zkclient.NodeFailed
	NodeAborted  = zkclient.NodeAborted
	NodeDeleted  = zkclient.NodeDeleted
)

// resourcesOf returns a node's stored resources as a usage value.
func resourcesOf(n *zkclient.Node) quota.Resources { return quota.FromMap(n.Resources, 0) }

// tenantLimit turns a tenant-resource-limits entry into a limit value.
func tenantLimit(m map[string]float64) quota.Resources {
	r := quota.New(quota.Inf, quota.Inf, quota.Inf, quota.Inf, nil)
	for k, v := range m {
		r.Set(k, v)
	}
	return r
}

// marshalAttributes encodes pool node-attributes for a node record.
func marshalAttributes(attrs map[string]any) ([]byte, error) { return pyjson.Marshal(attrs) }
