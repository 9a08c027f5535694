package stock

import _ "github.com/nodepool-go/nodepool/driver/gce" // registers "gce"
