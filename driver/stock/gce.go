//go:build !nodepool_omit_gce

package stock

import _ "github.com/nodepool-go/nodepool/driver/gce" // registers "gce"
