//go:build !nodepool_omit_kubernetes

package stock

import _ "github.com/nodepool-go/nodepool/driver/kubernetes" // registers "kubernetes"
