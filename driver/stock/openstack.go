package stock

import _ "github.com/nodepool-go/nodepool/driver/openstack" // registers "openstack"
