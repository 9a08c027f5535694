//go:build !nodepool_omit_openshift

package stock

import _ "github.com/nodepool-go/nodepool/driver/openshift" // registers "openshift"
