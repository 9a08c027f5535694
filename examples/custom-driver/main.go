// Command custom-driver is the stock nodepool-launcher with one more
// driver, localdir, compiled in: the whole of what a site needs to run
// the reference launcher on a cloud this project does not ship. Every flag
// of nodepool-launcher works the same; provider entries with
// "driver: localdir" are served by package localdir.
//
//	go build -o nodepool-launcher-localdir ./examples/custom-driver
//	./nodepool-launcher-localdir -c examples/custom-driver/nodepool.yaml
package main

import (
	"os"

	"github.com/nodepool-go/nodepool/cmd/nodepool-launcher/launchercmd"
	_ "github.com/nodepool-go/nodepool/examples/custom-driver/localdir" // registers "localdir"
)

func main() { os.Exit(launchercmd.Main(os.Args[1:])) }
