package stock

import _ "github.com/nodepool-go/nodepool/driver/azure" // registers "azure"
