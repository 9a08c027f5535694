module github.com/nodepool-go/nodepool

go 1.26

require (
	github.com/go-zookeeper/zk v1.0.4
	github.com/google/uuid v1.6.0
)

require gopkg.in/yaml.v3 v3.0.1 // indirect
