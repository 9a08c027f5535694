//go:build !nodepool_omit_openshiftpods

package stock

import _ "github.com/nodepool-go/nodepool/driver/openshiftpods" // registers "openshiftpods"
