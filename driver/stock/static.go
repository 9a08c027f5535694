//go:build !nodepool_omit_static

package stock

import _ "github.com/nodepool-go/nodepool/driver/static" // registers "static"
