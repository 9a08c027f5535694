package stock

import _ "github.com/nodepool-go/nodepool/driver/openshift" // registers "openshift"
