// Command nodepool-launcher serves node requests from ZooKeeper: the
// reference binary around nodepool.Launcher (see package launchercmd).
package main

import (
	"os"

	"github.com/nodepool-go/nodepool/cmd/nodepool-launcher/launchercmd"
)

func main() { os.Exit(launchercmd.Main(os.Args[1:])) }
