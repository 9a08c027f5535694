//go:build !nodepool_omit_ibmvpc

package stock

import _ "github.com/nodepool-go/nodepool/driver/ibmvpc" // registers "ibmvpc"
