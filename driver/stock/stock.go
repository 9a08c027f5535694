// Package stock registers the drivers that ship with nodepool in the global
// driver registry: import it for its side effect,
//
//	import _ "github.com/nodepool-go/nodepool/driver/stock"
//
// The reference binaries under cmd/ import it. A program embedding a
// launcher imports it only if it wants these drivers; one that brings its
// own driver set leaves it out and may then register its own driver under
// any of these names. Each built-in driver is imported from a file of its
// own in this package, behind the build tag nodepool_omit_<driver>, so a
// leaner binary leaves out drivers it does not need, e.g.
//
//	go build -tags "nodepool_omit_kubernetes nodepool_omit_openshift nodepool_omit_openshiftpods" ./cmd/nodepool-launcher
package stock
