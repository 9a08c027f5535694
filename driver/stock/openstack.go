//go:build !nodepool_omit_openstack

package stock

import _ "github.com/nodepool-go/nodepool/driver/openstack" // registers "openstack"
