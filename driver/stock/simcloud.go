//go:build !nodepool_omit_simcloud

package stock

import _ "github.com/nodepool-go/nodepool/driver/simcloud" // registers "simcloud"
