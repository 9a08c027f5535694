//go:build !nodepool_omit_metastatic

package stock

import _ "github.com/nodepool-go/nodepool/driver/metastatic" // registers "metastatic"
