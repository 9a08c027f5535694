package nodepool

import (
	"github.com/nodepool-go/nodepool/driver/metastatic"
	"github.com/nodepool-go/nodepool/zkclient"
)

// services is what the launcher offers drivers as driver.Env.Services:
// only its ZooKeeper connection, which the metastatic driver uses to
// request, lock and release backing nodes.
type services struct{ zk *zkclient.Client }

var _ metastatic.Services = services{}

// ZooKeeper returns the launcher's ZooKeeper connection.
func (s services) ZooKeeper() *zkclient.Client { return s.zk }
